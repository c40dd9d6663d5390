import { describe, expect, it } from 'vitest';
import {
  boardQuery,
  DEFAULT_SORT,
  listApiQuery,
  nextSort,
  parseBoardState,
  searchApiFilter,
  searchTarget,
  toggleFilter,
  withFilters,
} from '../src/lib/url-state';
import { matchRoute } from '../src/lib/router';
import { decodeId, encodeId, orderApiPath, orderPath } from '../src/lib/links';

describe('board state ↔ URL', () => {
  it('round-trips filters (repeatable, in order) and sort', () => {
    const q = '?stage=SUBMITTED&stage=APPROVED&service=crm&kind=not_processed&queue=crm.prices&sort=-stage_since';
    const state = parseBoardState(q);
    expect(state.filters.stage).toEqual(['SUBMITTED', 'APPROVED']);
    expect(state.filters.queue).toEqual(['crm.prices']);
    expect(state.sort).toBe('-stage_since');
    expect(boardQuery(state)).toBe(q);
    expect(parseBoardState(boardQuery(state))).toEqual(state);
  });
  it('drops the default sort, empty and duplicate values, unknown sorts', () => {
    const state = parseBoardState('?stage=&stage=A&stage=A&sort=bogus');
    expect(state.filters.stage).toEqual(['A']);
    expect(state.sort).toBe(DEFAULT_SORT);
    expect(boardQuery(state)).toBe('?stage=A');
    expect(boardQuery(parseBoardState(''))).toBe('');
  });
  it('round-trips values with reserved characters', () => {
    const state = withFilters(parseBoardState(''), { queue: 'a&b=c/d%', service: 'crm #1' });
    expect(parseBoardState(boardQuery(state))).toEqual(state);
  });
  it('toggles and replaces filters', () => {
    let s = parseBoardState('');
    s = toggleFilter(s, 'stage', 'A');
    s = toggleFilter(s, 'stage', 'B');
    expect(s.filters.stage).toEqual(['A', 'B']);
    s = toggleFilter(s, 'stage', 'A');
    expect(s.filters.stage).toEqual(['B']);
    const cell = withFilters(s, { stage: 'APPROVED', service: 'mes', kind: 'not_received' });
    expect(boardQuery(cell)).toBe('?stage=APPROVED&service=mes&kind=not_received');
    expect(withFilters(s, { service: null }).filters.service).toEqual([]);
  });
  it('builds the list API query with sort, limit and cursor', () => {
    const s = parseBoardState('?kind=silent&kind=not_processed');
    expect(listApiQuery(s, 100, 'abc')).toBe('stuck=true&kind=silent&kind=not_processed&sort=stuck_since&limit=100&cursor=abc');
  });
  it('flips a column on the second click', () => {
    expect(nextSort('stuck_since', 'stuck_since')).toBe('-stuck_since');
    expect(nextSort('-stuck_since', 'stuck_since')).toBe('stuck_since');
    expect(nextSort('stuck_since', 'stage_since')).toBe('stage_since');
    expect(nextSort('stuck_since', 'order_id')).toBe('order_id');
  });
});

describe('search box', () => {
  it('goes to an order or to the results', () => {
    expect(searchTarget('ORD-7')).toBe('/ui/orders/ORD-7');
    expect(searchTarget(' ORD/42%x ')).toBe('/ui/orders/ORD%2F42%25x');
    expect(searchTarget('partner:pse:k1:abc')).toBe('/ui/orders?q=partner%3Apse%3Ak1%3Aabc');
    expect(searchTarget('trace: 0123456789abcdef0123456789ABCDEF')).toBe('/ui/orders?q=trace%3A0123456789abcdef0123456789ABCDEF');
    expect(searchTarget('msg:ORD-1/price.calculated')).toBe('/ui/orders?q=msg%3AORD-1%2Fprice.calculated');
    expect(searchTarget('   ')).toBeNull();
  });
  it('maps q to the list API filter', () => {
    expect(searchApiFilter('partner:pse:k1:abc')).toEqual({ key: 'partner', value: 'pse:k1:abc' });
    expect(searchApiFilter('trace:ABCDEF')).toEqual({ key: 'trace_id', value: 'abcdef' });
    expect(searchApiFilter('msg:m-1')).toEqual({ key: 'message_id', value: 'm-1' });
    expect(searchApiFilter('ORD-7')).toBeNull();
  });
});

describe('ids and routes', () => {
  it('percent-encodes ids so / and % round-trip', () => {
    for (const id of ['ORD-7', 'ORD/42', '100%', 'a b?c#d', 'ÄÖ/ü%2F', '%41']) {
      const path = orderPath(id);
      expect(path.slice('/ui/orders/'.length)).not.toContain('/');
      const route = matchRoute(path);
      expect(route).toEqual({ name: 'order', id });
      expect(decodeId(encodeId(id))).toBe(id);
    }
    expect(orderPath('ORD/42')).toBe('/ui/orders/ORD%2F42');
    expect(orderApiPath('ORD/42')).toBe('/api/v1/orders/ORD%2F42');
  });
  it('routes every view and sends the rest to 404', () => {
    expect(matchRoute('/ui/stuck')).toEqual({ name: 'stuck' });
    expect(matchRoute('/ui/stuck/')).toEqual({ name: 'stuck' });
    expect(matchRoute('/ui/flow')).toEqual({ name: 'flow' });
    expect(matchRoute('/ui/broker')).toEqual({ name: 'broker' });
    expect(matchRoute('/ui/kpi')).toEqual({ name: 'kpi' });
    expect(matchRoute('/ui/orders')).toEqual({ name: 'search' });
    expect(matchRoute('/ui/')).toEqual({ name: 'root' });
    expect(matchRoute('/ui/nope')).toEqual({ name: 'not-found' });
    expect(matchRoute('/ui/orders/a/b')).toEqual({ name: 'not-found' });
    expect(matchRoute('/ui/orders/%E0%A4%A')).toEqual({ name: 'not-found' });
  });
});
