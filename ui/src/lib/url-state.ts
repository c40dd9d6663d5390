// View state ↔ URL query. Filters are repeatable keys (OR within one key, AND across keys, as
// the list API reads them); everything a view shows is reproducible from a pasted link.

export const FILTER_KEYS = ['stage', 'service', 'kind', 'queue'] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];

export type Sort = 'stuck_since' | '-stuck_since' | 'stage_since' | '-stage_since' | 'order_id';
export const API_SORTS: readonly Sort[] = ['stuck_since', '-stuck_since', 'stage_since', '-stage_since', 'order_id'];
export const DEFAULT_SORT: Sort = 'stuck_since';

export interface BoardState {
  filters: Record<FilterKey, string[]>;
  sort: Sort;
}

export function emptyFilters(): Record<FilterKey, string[]> {
  return { stage: [], service: [], kind: [], queue: [] };
}

/** The board's state from a query string; unknown sorts fall back to the default. */
export function parseBoardState(search: string | URLSearchParams): BoardState {
  const params = typeof search === 'string' ? new URLSearchParams(search) : search;
  const filters = emptyFilters();
  for (const key of FILTER_KEYS) {
    const seen = new Set<string>();
    for (const v of params.getAll(key)) {
      if (v !== '' && !seen.has(v)) {
        seen.add(v);
        filters[key].push(v);
      }
    }
  }
  const sortParam = params.get('sort');
  const sort = (API_SORTS as readonly string[]).includes(sortParam ?? '') ? (sortParam as Sort) : DEFAULT_SORT;
  return { filters, sort };
}

/** The query string of a board state ("" or "?stage=A&sort=…"); the default sort is left out. */
export function boardQuery(state: BoardState): string {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) for (const v of state.filters[key]) params.append(key, v);
  if (state.sort !== DEFAULT_SORT) params.set('sort', state.sort);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** The list API's query for the board's state (stuck orders only). */
export function listApiQuery(state: BoardState, limit: number, cursor?: string | null): string {
  const params = new URLSearchParams();
  params.set('stuck', 'true');
  for (const key of FILTER_KEYS) for (const v of state.filters[key]) params.append(key, v);
  params.set('sort', state.sort);
  params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  return params.toString();
}

/** Toggles one filter value. */
export function toggleFilter(state: BoardState, key: FilterKey, value: string): BoardState {
  const filters = { ...state.filters, [key]: [...state.filters[key]] };
  const i = filters[key].indexOf(value);
  if (i >= 0) filters[key].splice(i, 1);
  else filters[key].push(value);
  return { ...state, filters };
}

/** Replaces the filters with exactly these values (a matrix cell, a flow node). */
export function withFilters(state: BoardState, set: Partial<Record<FilterKey, string | null>>): BoardState {
  const filters = emptyFilters();
  for (const key of FILTER_KEYS) {
    const v = set[key];
    if (v) filters[key] = [v];
  }
  return { ...state, filters };
}

/** A column header's next sort: the same column flips direction, another starts ascending. */
export function nextSort(current: Sort, column: 'stuck_since' | 'stage_since' | 'order_id'): Sort {
  if (column === 'order_id') return 'order_id';
  if (current === column) return `-${column}` as Sort;
  return column;
}

/** The search box's text → where it leads: an order page or the search results. */
export function searchTarget(text: string): string | null {
  const q = text.trim();
  if (!q) return null;
  const m = /^(partner|trace|msg):\s*(.+)$/i.exec(q);
  if (m) return `/ui/orders?q=${encodeURIComponent(`${m[1].toLowerCase()}:${m[2].trim()}`)}`;
  return `/ui/orders/${encodeURIComponent(q)}`;
}

/** The search results page's `q` → the list API's filter, or null when it is not a search. */
export function searchApiFilter(q: string): { key: 'partner' | 'trace_id' | 'message_id'; value: string } | null {
  const m = /^(partner|trace|msg):\s*(.+)$/i.exec(q.trim());
  if (!m) return null;
  const value = m[2].trim();
  const kind = m[1].toLowerCase();
  if (kind === 'partner') return { key: 'partner', value };
  if (kind === 'trace') return { key: 'trace_id', value: value.toLowerCase() };
  return { key: 'message_id', value };
}
