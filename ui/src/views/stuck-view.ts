// The stuck-orders board, /ui/stuck: totals, one card per stage (rule order), the stage × service
// × kind matrix, the stuck table (server-sorted keyset pages, filters from the URL, live "stuck
// for"), and the queues panel. Polls summary and the current page every 2 s with ETags; a refresh
// re-renders in place, so scroll, focus and expanded rows stay.

import { html, nothing } from 'lit';
import { isTypingTarget, LightElement, onTick } from '../lib/base';
import { apiGet } from '../lib/api';
import { Poller, type PollState } from '../lib/poller';
import { currentParams, navigate, ROUTE_EVENT } from '../lib/router';
import {
  boardQuery,
  FILTER_KEYS,
  listApiQuery,
  nextSort,
  parseBoardState,
  toggleFilter,
  withFilters,
  type BoardState,
  type FilterKey,
  type Sort,
} from '../lib/url-state';
import { formatCount, formatDuration, secondsSince } from '../lib/format';
import { absoluteUrl, orderPath } from '../lib/links';
import { boardChatLine, copyText } from '../lib/chat';
import type { Broker, OrderList, OrderListEntry, Summary, SummaryStage } from '../lib/types';
import { errorState, loadingState, pollStates } from '../components/common';
import { iconCopy, iconWarn } from '../components/icons';
import { outagesList, queuesTable } from './queues';

const PAGE = 100;
const MAX_ROWS = 1000; // the list API's max_limit
const NEW_MS = 10_000;

export const KIND_TEXT: Record<string, string> = {
  next_overdue: 'next milestone overdue',
  not_received: 'message not received',
  not_processed: 'message not processed',
  silent: 'silent (no heartbeat)',
  message_unprocessed: 'message unprocessed',
};

export function stageLabel(stage: string | null): string {
  return !stage || stage === 'none' ? '(no milestone yet)' : stage;
}

export class StuckView extends LightElement {
  static override properties = {
    broker: { attribute: false },
    summary: { state: true },
    list: { state: true },
    extra: { state: true },
    copied: { state: true },
  };

  broker: PollState<Broker> = { data: null, error: null, loading: true, updatedAt: null };
  summary: PollState<Summary> = { data: null, error: null, loading: true, updatedAt: null };
  list: PollState<OrderList> = { data: null, error: null, loading: true, updatedAt: null };
  /** Rows loaded with "Load more" beyond the polled first pages (until the next poll covers them). */
  extra: OrderListEntry[] = [];
  copied = '';
  private state: BoardState = parseBoardState('');
  private rows = PAGE;
  private expanded = new Set<string>();
  private firstSeen = new Map<string, number>();
  private summaryPoller = new Poller<Summary>('/api/v1/summary', { intervalMs: 2000 }, (s) => (this.summary = s));
  private listPoller = new Poller<OrderList>('', { intervalMs: 2000 }, (s) => this.onList(s));
  private cleanups: (() => void)[] = [];
  private loadingMore = false;
  private readonly onRoute = () => this.readUrl();
  /** j / k move the focus down / up the stuck orders' links (Enter opens one). */
  private readonly onKey = (e: KeyboardEvent) => {
    if ((e.key !== 'j' && e.key !== 'k') || e.ctrlKey || e.metaKey || e.altKey) return;
    if (isTypingTarget(e.target)) return;
    const links = [...this.querySelectorAll<HTMLAnchorElement>('a[data-testid="order-link"]')];
    if (links.length === 0) return;
    const i = links.indexOf(document.activeElement as HTMLAnchorElement);
    const next = i < 0 ? 0 : Math.min(links.length - 1, Math.max(0, i + (e.key === 'j' ? 1 : -1)));
    e.preventDefault();
    links[next].focus();
    links[next].scrollIntoView?.({ block: 'nearest' });
  };

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener(ROUTE_EVENT, this.onRoute);
    document.addEventListener('keydown', this.onKey);
    this.readUrl();
    this.summaryPoller.start();
    this.listPoller.start();
    this.cleanups.push(onTick(() => this.requestUpdate()));
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener(ROUTE_EVENT, this.onRoute);
    document.removeEventListener('keydown', this.onKey);
    this.summaryPoller.stop();
    this.listPoller.stop();
    for (const c of this.cleanups) c();
    this.cleanups = [];
  }

  private readUrl(): void {
    if (!location.pathname.startsWith('/ui/stuck')) return;
    const next = parseBoardState(currentParams());
    const changed = boardQuery(next) !== boardQuery(this.state) || next.sort !== this.state.sort;
    this.state = next;
    if (changed) {
      this.rows = PAGE;
      this.extra = [];
    }
    this.listPoller.setPath(`/api/v1/orders?${listApiQuery(this.state, this.rows)}`, !changed);
    this.requestUpdate();
  }

  /** Once the first summary and list are on screen: a mark that bench/ui-render measures. */
  private rendered = false;
  override updated(): void {
    if (this.rendered || !this.summary.data || !this.list.data) return;
    this.rendered = true;
    performance.mark('ordertrace:board-rendered');
  }

  private onList(s: PollState<OrderList>): void {
    const now = Date.now();
    if (s.data) {
      const initial = this.firstSeen.size === 0;
      for (const o of s.data.orders) if (!this.firstSeen.has(o.order_id)) this.firstSeen.set(o.order_id, initial ? 0 : now);
      // Rows the poll now covers leave the "load more" extras.
      const polled = new Set(s.data.orders.map((o) => o.order_id));
      if (this.extra.length) this.extra = this.extra.filter((o) => !polled.has(o.order_id));
    }
    this.list = s;
  }

  private go(state: BoardState): void {
    navigate(`/ui/stuck${boardQuery(state)}`);
  }

  private async loadMore(): Promise<void> {
    const cursor = this.extra.length ? this.extraCursor : this.list.data?.next_cursor;
    if (!cursor || this.loadingMore) return;
    this.loadingMore = true;
    const r = await apiGet<OrderList>(`/api/v1/orders?${listApiQuery(this.state, PAGE, cursor)}`);
    this.loadingMore = false;
    if (r.kind === 'ok') {
      this.extra = [...this.extra, ...r.data.orders];
      this.extraCursor = r.data.next_cursor;
      this.rows = Math.min(MAX_ROWS, this.rows + PAGE);
      // The poll then fetches all loaded rows in one page (up to the API's limit).
      this.listPoller.setPath(`/api/v1/orders?${listApiQuery(this.state, this.rows)}`, true);
    }
  }
  private extraCursor: string | null = null;

  private async copyChat(): Promise<void> {
    const rows = this.allRows();
    const filterText = FILTER_KEYS.flatMap((k) => this.state.filters[k].map((v) => `${k}=${v}`)).join(', ');
    const line = boardChatLine(this.list.data?.total ?? null, rows.length, oldestStuck(rows), filterText, absoluteUrl(`/ui/stuck${boardQuery(this.state)}`), Date.now());
    this.copied = (await copyText(line)) ? 'Copied.' : `Copy failed; the line: ${line}`;
    setTimeout(() => (this.copied = ''), 4000);
  }

  /** The rows on screen as CSV, downloaded from a Blob (nothing leaves the browser). */
  private exportCsv(): void {
    const cols: (keyof OrderListEntry)[] = ['order_id', 'stage', 'stuck_kind', 'expected_service', 'stuck_since', 'stage_since', 'last_service', 'open_hops', 'partner', 'summary'];
    const csv = [cols.join(','), ...this.allRows().map((o) => cols.map((c) => csvCell(o[c])).join(','))].join('\r\n') + '\r\n';
    const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `stuck-orders-${new Date().toISOString().slice(0, 19).replace(/:/g, '')}Z.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  private allRows(): OrderListEntry[] {
    const base = this.list.data?.orders ?? [];
    const seen = new Set(base.map((o) => o.order_id));
    return [...base, ...this.extra.filter((o) => !seen.has(o.order_id))];
  }

  private renderTotals(s: Summary) {
    const t = s.totals;
    const item = (id: string, label: string, value: number | null, bad = false) =>
      html`<div class="kpi ${bad ? 'bad' : ''}" data-testid=${id} data-value=${value ?? ''}>
        <dt>${label}</dt>
        <dd>${bad ? iconWarn() : nothing}${formatCount(value)}</dd>
      </div>`;
    return html`<dl class="totals" data-testid="totals">
      ${item('total-active', 'Active orders', t.active)} ${item('total-stuck', 'Stuck now', t.stuck, t.stuck > 0)}
      ${item('total-open-hops', 'Open hops', t.open_hops)} ${item('total-flagged', 'Flagged', t.flagged_total)}
      ${item('total-cleared', 'Cleared', t.cleared_total)} ${item('total-closed', 'Closed', t.closed_total)}
      ${item('total-alerts', 'Alerts sent', t.alerts_sent_total)} ${item('total-spans', 'Spans accepted', t.spans_accepted_total)}
    </dl>`;
  }

  private renderStages(s: Summary) {
    const selected = new Set(this.state.filters.stage);
    return html`<ol class="stages" aria-label="Stages in lifecycle order">
      ${[...s.stages]
        .sort((a, b) => a.index - b.index)
        .map((st) => {
          const slow = st.allowed_seconds !== null && st.p95_seconds !== null && st.p95_seconds > st.allowed_seconds;
          return html`<li>
            <button
              class="stage-card ${st.stuck > 0 ? 'has-stuck' : ''} ${selected.has(st.stage) ? 'selected' : ''}"
              data-testid="stage-card"
              data-stage=${st.stage}
              aria-pressed=${selected.has(st.stage) ? 'true' : 'false'}
              @click=${() => this.go(toggleFilter(this.state, 'stage', st.stage))}
            >
              <span class="stage-name">${stageLabel(st.stage)}</span>
              <span class="stage-counts"
                ><span data-testid="stage-active" data-value=${st.active}>${formatCount(st.active)}</span> active ·
                <span class="stuck-count" data-testid="stage-stuck" data-value=${st.stuck}>${formatCount(st.stuck)}</span> stuck${st.stuck > 0 ? iconWarn() : nothing}</span
              >
              ${st.terminal
                ? html`<span class="muted">terminal</span>`
                : html`<span class="stage-times ${slow ? 'slow' : ''}"
                    >p50 ${formatDuration(st.p50_seconds)} · p95 ${formatDuration(st.p95_seconds)}
                    ${st.allowed_seconds !== null ? html`/ allowed ${formatDuration(st.allowed_seconds)}${slow ? ' (over)' : ''}` : nothing}</span
                  >`}
              ${st.expected_service ? html`<span class="muted">next: ${st.expected_service}</span>` : nothing}
            </button>
          </li>`;
        })}
    </ol>`;
  }

  private renderMatrix(s: Summary) {
    if (s.stuck_by.length === 0) return html`<p class="state empty">Nothing stuck: no stage × service × kind breakdown.</p>`;
    const order = new Map(s.stages.map((st) => [st.stage, st.index]));
    const stages = [...new Set(s.stuck_by.map((c) => c.stage))].sort((a, b) => (order.get(a) ?? 99) - (order.get(b) ?? 99));
    const cols = [...new Map(s.stuck_by.map((c) => [`${c.service ?? ''}\u0000${c.kind}`, { service: c.service, kind: c.kind }])).values()].sort(
      (a, b) => (a.service ?? '').localeCompare(b.service ?? '') || a.kind.localeCompare(b.kind),
    );
    const max = Math.max(...s.stuck_by.map((c) => c.count));
    const count = (stage: string, service: string | null, kind: string) =>
      s.stuck_by.find((c) => c.stage === stage && c.service === service && c.kind === kind)?.count ?? 0;
    return html`<div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
      <table class="data matrix" data-testid="matrix">
        <caption>Stuck orders by stage, expected service and kind (click a count to filter)</caption>
        <thead>
          <tr>
            <th scope="col">Stage</th>
            ${cols.map((c) => html`<th scope="col">${c.service ?? '(no service)'}<br /><span class="muted">${c.kind}</span></th>`)}
          </tr>
        </thead>
        <tbody>
          ${stages.map(
            (stage) => html`<tr>
              <th scope="row">${stageLabel(stage)}</th>
              ${cols.map((c) => {
                const n = count(stage, c.service, c.kind);
                if (n === 0) return html`<td class="num muted">·</td>`;
                const heat = Math.min(4, Math.ceil((n / max) * 4));
                return html`<td class="num heat-${heat}">
                  <button
                    class="cell"
                    data-testid="matrix-cell"
                    data-stage=${stage}
                    data-service=${c.service ?? ''}
                    data-kind=${c.kind}
                    data-value=${n}
                    aria-label="${n} stuck in ${stageLabel(stage)}, ${c.service ?? 'no service'}, ${c.kind}: filter"
                    @click=${() => this.go(withFilters(this.state, { stage, service: c.service, kind: c.kind }))}
                  >
                    ${formatCount(n)}
                  </button>
                </td>`;
              })}
            </tr>`,
          )}
        </tbody>
      </table>
    </div>`;
  }

  private renderChips() {
    const chips = FILTER_KEYS.flatMap((k) => this.state.filters[k].map((v) => ({ k, v })));
    if (chips.length === 0) return html`<p class="chips muted">No filter: every stuck order.</p>`;
    return html`<ul class="chips" aria-label="Filters">
      ${chips.map(
        ({ k, v }) =>
          html`<li>
            <button class="chip" data-testid="filter-chip" data-key=${k} data-value=${v} @click=${() => this.go(toggleFilter(this.state, k as FilterKey, v))} aria-label="Remove filter ${k} = ${v}">
              ${k}: ${v} <span aria-hidden="true">×</span>
            </button>
          </li>`,
      )}
      <li><button class="chip clear" @click=${() => this.go(withFilters(this.state, {}))}>Clear all</button></li>
    </ul>`;
  }

  private sortHeader(column: 'order_id' | 'stuck_since' | 'stage_since', label: string) {
    const s = this.state.sort;
    const dir = s === column ? (column === 'order_id' ? 'ascending' : 'ascending') : s === `-${column}` ? 'descending' : 'none';
    const hint = column === 'order_id' ? '' : s === column ? ' (longest first)' : s === `-${column}` ? ' (shortest first)' : '';
    return html`<th scope="col" aria-sort=${dir}>
      <button class="sort" data-testid="sort-${column}" @click=${() => this.go({ ...this.state, sort: nextSort(s, column) as Sort })}>
        ${label}${hint}<span aria-hidden="true">${dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''}</span>
      </button>
    </th>`;
  }

  private renderTable() {
    return pollStates(
      this.list,
      'stuck orders',
      (d) => d.orders.length === 0,
      FILTER_KEYS.some((k) => this.state.filters[k].length) ? 'No stuck order matches these filters.' : 'No order is stuck.',
      (d) => {
        const rows = this.allRows();
        const now = Date.now();
        const total = d.total ?? null;
        const more = this.extra.length ? this.extraCursor : d.next_cursor;
        const unsettled = d.unsettled ?? 0;
        return html`<p class="count">
            Showing ${formatCount(rows.length)} ${total !== null ? html`of ${formatCount(total)}` : nothing} stuck
            order${(total ?? rows.length) === 1 ? '' : 's'}.
          </p>
          ${unsettled > 0
            ? html`<p class="note" role="status" data-testid="unsettled">
                Catching up: ${formatCount(unsettled)} verdict${unsettled === 1 ? ' is' : 's are'} from the last moments not in this list
                and its count yet. The board refreshes by itself; an order's own page is always current.
              </p>`
            : nothing}
          <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
            <table class="data stuck" data-testid="stuck-table">
              <caption class="offscreen">Stuck orders</caption>
              <thead>
                <tr>
                  ${this.sortHeader('order_id', 'Order')}
                  <th scope="col">Stage</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Expected</th>
                  ${this.sortHeader('stuck_since', 'Stuck for')} ${this.sortHeader('stage_since', 'In stage')}
                  <th scope="col">Open hop</th>
                  <th scope="col">Summary</th>
                </tr>
              </thead>
              <tbody>
                ${rows.map((o) => this.renderRow(o, now))}
              </tbody>
            </table>
          </div>
          ${more
            ? html`<button class="more" @click=${() => this.loadMore()} ?disabled=${this.rows >= MAX_ROWS}>
                Load ${PAGE} more${this.rows >= MAX_ROWS ? ' (narrow the filters to see further)' : ''}
              </button>`
            : nothing}`;
      },
    );
  }

  private renderRow(o: OrderListEntry, now: number) {
    const open = this.expanded.has(o.order_id);
    const seen = this.firstSeen.get(o.order_id) ?? 0;
    const isNew = seen > 0 && now - seen < NEW_MS;
    const hop = o.open_hop ?? null;
    return html`<tr data-testid="stuck-row" data-order=${o.order_id} class=${isNew ? 'new' : ''}>
      <th scope="row">
        <a data-testid="order-link" href=${orderPath(o.order_id)}>${o.order_id}</a>${isNew ? html` <span class="tag new">new</span>` : nothing}
      </th>
      <td>${stageLabel(o.stage)}</td>
      <td><span class="tag bad" title=${KIND_TEXT[o.stuck_kind ?? ''] ?? ''}>${o.stuck_kind ?? '—'}</span></td>
      <td>${o.expected_service ?? '—'}</td>
      <td class="num">${formatDuration(secondsSince(o.stuck_since, now))}</td>
      <td class="num">${formatDuration(secondsSince(o.stage_since, now))}</td>
      <td>
        ${hop
          ? html`<span class="queue">${hop.queue ?? `${hop.exchange ?? '?'} → ${hop.routing_key ?? '?'}`}</span
              >${hop.broker ? html`<br /><span class="muted telemetry">${hop.broker}</span>` : nothing}`
          : o.open_hops > 0
            ? html`${o.open_hops} open`
            : html`<span class="muted">none</span>`}
      </td>
      <td class="summary ${open ? 'expanded' : ''}">
        <button
          class="linklike"
          aria-expanded=${open ? 'true' : 'false'}
          @click=${() => {
            if (open) this.expanded.delete(o.order_id);
            else this.expanded.add(o.order_id);
            this.requestUpdate();
          }}
        >
          <span class="telemetry">${o.summary ?? ''}</span>
        </button>
      </td>
    </tr>`;
  }

  private renderQueues() {
    const b = this.broker;
    if (b.data === null) {
      if (b.error) return errorState(b.error.status === 404 ? 'No broker configured.' : b.error.message, b.error.forbidden);
      return loadingState('queues');
    }
    return html`${b.data.up
        ? nothing
        : html`<p class="banner bad" role="alert">${iconWarn()} RabbitMQ unreachable since ${b.data.since ?? '—'}: <span class="telemetry">${b.data.error ?? ''}</span> (last known values)</p>`}
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">${queuesTable(b.data, false, `Queues on ${b.data.vhost}`)}</div>
      <h3>Outages</h3>
      ${outagesList(b.data, 5)}`;
  }

  override render() {
    return html`<section class="view board">
      <div class="view-head">
        <h1>Stuck orders</h1>
        <span class="muted keys">Keys: <kbd>/</kbd> search, <kbd>j</kbd>/<kbd>k</kbd> next/previous order</span>
        <button class="action" data-testid="copy-chat" @click=${() => this.copyChat()}>${iconCopy()} Copy for chat</button>
        <button class="action" data-testid="export-csv" @click=${() => this.exportCsv()}>Export CSV</button>
        <span class="muted" role="status">${this.copied}</span>
      </div>
      <section aria-labelledby="h-summary">
        <h2 id="h-summary" class="offscreen">Totals and stages</h2>
        ${pollStates(this.summary, 'the summary', () => false, '', (s) => html`${this.renderTotals(s)} ${this.renderStages(s)}`)}
      </section>
      <div class="board-grid">
        <section class="board-main" aria-labelledby="h-stuck">
          <h2 id="h-stuck">Stuck orders</h2>
          ${this.summary.data ? this.renderMatrix(this.summary.data) : nothing} ${this.renderChips()} ${this.renderTable()}
        </section>
        <aside class="board-side" data-testid="queues-panel" aria-labelledby="h-queues">
          <h2 id="h-queues">Queues</h2>
          ${this.renderQueues()}
        </aside>
      </div>
    </section>`;
  }
}

/** One CSV field (RFC 4180); a leading = + - @ is prefixed with ' so a spreadsheet does not run it. */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let text = String(v);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n']/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function oldestStuck(rows: OrderListEntry[]): OrderListEntry | null {
  let best: OrderListEntry | null = null;
  for (const r of rows) if (r.stuck_since && (!best || (best.stuck_since ?? '') > r.stuck_since)) best = r;
  return best;
}

export type { SummaryStage };
customElements.define('ot-stuck-view', StuckView);
