// Render tests: the whole app (frame + views) in happy-dom, the API answered from the fixtures.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import '../src/components/app';
import me from './fixtures/me.json';
import broker from './fixtures/broker.json';
import summary from './fixtures/summary.json';
import rules from './fixtures/rules.json';
import list from './fixtures/orders-sorted.json';
import flow from './fixtures/flow.json';
import kpi from './fixtures/kpi.json';
import notProcessed from './fixtures/order-not-processed.json';
import silent from './fixtures/order-silent.json';
import closed from './fixtures/order-closed.json';
import error404 from './fixtures/error-404.json';

type Handler = (url: URL) => { status: number; body: unknown } | undefined;
let requests: string[] = [];
let override: Handler | null = null;

const orders: Record<string, unknown> = {
  [notProcessed.order_id]: notProcessed,
  [silent.order_id]: silent,
  [closed.order_id]: closed,
};

function answer(url: URL): { status: number; body: unknown } {
  const o = override?.(url);
  if (o) return o;
  const p = url.pathname;
  if (p === '/api/v1/me') return { status: 200, body: me };
  if (p === '/api/v1/broker') return { status: 200, body: broker };
  if (p === '/api/v1/summary') return { status: 200, body: summary };
  if (p === '/api/v1/rules') return { status: 200, body: rules };
  if (p === '/api/v1/flow') return { status: 200, body: flow };
  if (p === '/api/v1/kpi') return { status: 200, body: kpi };
  if (p === '/api/v1/orders') return { status: 200, body: list };
  if (p.startsWith('/api/v1/orders/')) {
    const id = decodeURIComponent(p.slice('/api/v1/orders/'.length));
    return orders[id] ? { status: 200, body: orders[id] } : { status: 404, body: error404 };
  }
  return { status: 404, body: { error: 'no route', status: 404 } };
}

async function until<T>(fn: () => T | null | undefined | false, what: string, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const $ = (sel: string) => document.querySelector(sel);
const $$ = (sel: string) => [...document.querySelectorAll(sel)];
const tid = (id: string) => `[data-testid="${id}"]`;

function mount(path: string) {
  history.replaceState(null, '', path);
  const app = document.createElement('ot-app');
  document.body.appendChild(app);
  return app;
}

beforeEach(() => {
  requests = [];
  override = null;
  vi.stubGlobal('fetch', async (input: string) => {
    const url = new URL(input, location.origin);
    requests.push(url.pathname + url.search);
    const { status, body } = answer(url);
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ETag: '"r1"' } });
  });
});

afterEach(() => {
  document.body.innerHTML = '';
  vi.unstubAllGlobals();
});

describe('frame', () => {
  it('shows nav, search, broker pill, status and user', async () => {
    mount('/ui/stuck');
    await until(() => $(tid('broker-pill'))?.textContent?.includes('RabbitMQ up'), 'broker pill');
    for (const n of ['nav-stuck', 'nav-flow', 'nav-broker', 'nav-kpi']) expect($(tid(n))).not.toBeNull();
    expect($(tid('nav-stuck'))!.getAttribute('aria-current')).toBe('page');
    expect($(tid('search'))).not.toBeNull();
    await until(() => $(tid('status'))?.textContent?.includes('updated'), 'status');
    expect($(tid('user'))!.textContent).toContain('no role');
  });

  it('routes the search box and focuses it on /', async () => {
    mount('/ui/stuck');
    const input = await until(() => $(tid('search')) as HTMLInputElement | null, 'search');
    document.dispatchEvent(new KeyboardEvent('keydown', { key: '/', bubbles: true }));
    expect(document.activeElement).toBe(input);
    input.value = 'ORD/42';
    input.form!.dispatchEvent(new Event('submit', { cancelable: true }));
    expect(location.pathname).toBe('/ui/orders/ORD%2F42');
    await until(() => $(tid('error'))?.textContent === error404.error, '404 error text');
  });

  it('shows the 404 view with a search box', async () => {
    mount('/ui/nothing-here');
    await until(() => $(tid('not-found')), 'not-found');
    expect($('[data-testid="not-found"] input[type="search"]')).not.toBeNull();
  });
});

describe('board', () => {
  it('renders totals, stage cards, matrix, rows and queues from the API', async () => {
    mount('/ui/stuck');
    await until(() => $$(tid('stuck-row')).length === list.orders.length, 'rows');
    expect($(`${tid('totals')} ${tid('total-active')}`)!.textContent).toContain(String(summary.totals.active));
    expect($(tid('total-closed'))!.getAttribute('data-value')).toBe(String(summary.totals.closed_total));
    expect($(`${tid('totals')} ${tid('total-stuck')}`)!.textContent).toContain(String(summary.totals.stuck));
    const cards = $$(tid('stage-card'));
    expect(cards.map((c) => c.getAttribute('data-stage'))).toEqual([...summary.stages].sort((a, b) => a.index - b.index).map((s) => s.stage));
    for (const s of summary.stages) {
      const card = $(`${tid('stage-card')}[data-stage="${s.stage}"]`)!;
      expect(card.querySelector(tid('stage-active'))!.textContent).toBe(String(s.active));
      expect(card.querySelector(tid('stage-stuck'))!.textContent).toBe(String(s.stuck));
      expect(card.querySelector(tid('stage-active'))!.getAttribute('data-value')).toBe(String(s.active));
    }
    expect($$(tid('matrix-cell')).length).toBe(summary.stuck_by.length);
    const rows = $$(tid('stuck-row'));
    expect(rows.map((r) => r.getAttribute('data-order'))).toEqual(list.orders.map((o) => o.order_id));
    const link = rows[0].querySelector(tid('order-link')) as HTMLAnchorElement;
    expect(link.getAttribute('href')).toBe(`/ui/orders/${encodeURIComponent(list.orders[0].order_id)}`);
    expect($('.count')!.textContent).toContain(`of ${list.total}`);
    await until(() => $$(`${tid('queues-panel')} ${tid('queue-row')}`).length === broker.queues.length, 'queue rows');
    // The API was asked for stuck orders, oldest stuck first.
    expect(requests.some((r) => r.startsWith('/api/v1/orders?stuck=true') && r.includes('sort=stuck_since'))).toBe(true);
  });

  it('says when the list has not caught up with the latest verdicts', async () => {
    override = (url) => (url.pathname === '/api/v1/orders' ? { status: 200, body: { ...list, unsettled: 1234 } } : undefined);
    mount('/ui/stuck');
    const note = await until(() => $(tid('unsettled')), 'unsettled note');
    expect(note.textContent).toContain('1,234 verdicts are from the last moments');
    expect(note.getAttribute('role')).toBe('status');
  });

  it('filters and sorts through the URL', async () => {
    mount('/ui/stuck?stage=SUBMITTED&kind=silent');
    await until(() => $$(tid('filter-chip')).length === 2, 'chips');
    expect(requests.some((r) => r.includes('stage=SUBMITTED') && r.includes('kind=silent'))).toBe(true);
    ($(tid('sort-stage_since')) as HTMLButtonElement).click();
    expect(new URLSearchParams(location.search).get('sort')).toBe('stage_since');
    await until(() => requests.some((r) => r.includes('sort=stage_since')), 'sorted request');
    ($(tid('filter-chip')) as HTMLButtonElement).click();
    expect(new URLSearchParams(location.search).getAll('stage')).toEqual([]);
    const cell = await until(() => $(tid('matrix-cell')) as HTMLButtonElement | null, 'matrix cell');
    cell.click();
    const p = new URLSearchParams(location.search);
    expect(p.get('stage')).toBe(cell.getAttribute('data-stage'));
    expect(p.get('kind')).toBe(cell.getAttribute('data-kind'));
    history.back();
  });

  it('routes a click on an order link in place, and Back returns with the filters', async () => {
    mount('/ui/stuck?kind=silent');
    const link = await until(() => $(tid('order-link')) as HTMLAnchorElement | null, 'link');
    const id = link.closest('tr')!.getAttribute('data-order')!;
    link.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, button: 0 }));
    expect(location.pathname).toBe(`/ui/orders/${encodeURIComponent(id)}`);
    await until(() => $(tid('order-id'))?.textContent === id || $(tid('error')), 'order page');
    history.back();
    await until(() => location.pathname === '/ui/stuck' && $$(tid('filter-chip')).length === 1, 'back on the board');
    expect(location.search).toBe('?kind=silent');
  });

  it('moves through the orders with j and k', async () => {
    mount('/ui/stuck');
    await until(() => $$(tid('order-link')).length === list.orders.length, 'links');
    const links = $$(tid('order-link'));
    document.body.dispatchEvent(new KeyboardEvent('keydown', { key: 'j', bubbles: true }));
    expect(document.activeElement).toBe(links[0]);
    links[0].dispatchEvent(new KeyboardEvent('keydown', { key: 'j', bubbles: true }));
    expect(document.activeElement).toBe(links[1]);
    links[1].dispatchEvent(new KeyboardEvent('keydown', { key: 'k', bubbles: true }));
    expect(document.activeElement).toBe(links[0]);
  });

  it('keeps an expanded row across a refresh', async () => {
    mount('/ui/stuck');
    const btn = await until(() => $(`${tid('stuck-row')} td.summary button`) as HTMLButtonElement | null, 'row');
    btn.click();
    await until(() => $('td.summary.expanded'), 'expanded');
    await new Promise((r) => setTimeout(r, 2300)); // one poll later
    expect($('td.summary.expanded')).not.toBeNull();
  });

  it('shows the API error text as text', async () => {
    override = (u) => (u.pathname === '/api/v1/orders' ? { status: 400, body: { error: "cursor: not valid for sort 'stuck_since'", status: 400 } } : undefined);
    mount('/ui/stuck');
    await until(() => $$(tid('error')).some((e) => e.textContent === "cursor: not valid for sort 'stuck_since'"), 'error');
  });

  it('says what the role may not do on 403', async () => {
    override = (u) => (u.pathname === '/api/v1/summary' ? { status: 403, body: { error: 'forbidden', status: 403 } } : undefined);
    mount('/ui/stuck');
    await until(() => $$(tid('error')).some((e) => e.textContent?.startsWith('Your role may not list orders')), 'forbidden text');
  });
});

describe('order', () => {
  it('shows the diagnosis, milestones, open hop, spans with Jaeger links, heartbeat', async () => {
    mount(`/ui/orders/${encodeURIComponent(notProcessed.order_id)}`);
    await until(() => $(tid('diagnosis-summary')), 'diagnosis');
    expect($(tid('order-id'))!.textContent).toBe(notProcessed.order_id);
    expect($(tid('diagnosis-summary'))!.textContent).toBe(notProcessed.diagnosis.summary);
    expect($(tid('stage-badge'))!.textContent).toBe(notProcessed.stage);
    expect($(tid('stuck-badge'))!.textContent).toContain(notProcessed.stuck_kind!);
    await until(() => $$(tid('milestone')).length === rules.stages.length, 'rail from rules');
    const states = Object.fromEntries($$(tid('milestone')).map((m) => [m.getAttribute('data-stage'), m.getAttribute('data-state')]));
    for (const m of notProcessed.milestones) if (m.stage !== notProcessed.stage) expect(states[m.stage]).toBe('reached');
    expect(states[notProcessed.stage!]).toBe('current');
    expect(states.CLOSED).toBe('future');
    const hop = notProcessed.diagnosis.open_hops[0];
    const hopEl = $(`${tid('open-hop')}[data-message="${hop.message_id}"]`)!;
    expect(hopEl.querySelector(tid('open-hop-broker'))!.textContent).toBe(hop.broker);
    expect($(tid('timeline'))!.tagName.toLowerCase()).toBe('svg');
    expect($(tid('timeline'))!.getAttribute('aria-label')).toContain('Timeline');
    const rows = $$(tid('span-row'));
    expect(rows.length).toBe(notProcessed.spans.length);
    for (const s of notProcessed.spans) {
      const a = $(`${tid('span-row')}[data-span="${s.span_id}"] ${tid('span-jaeger-link')}`) as HTMLAnchorElement;
      expect(a.getAttribute('href')).toBe(s.jaeger_link);
      expect(a.getAttribute('target')).toBe('_blank');
      expect(a.getAttribute('rel')).toBe('noopener noreferrer');
    }
    expect($(tid('jaeger-all-link'))!.getAttribute('href')).toBe(notProcessed.diagnosis.jaeger_search_link);
    expect($(tid('copy-chat'))).not.toBeNull();
    for (const t of ['tab-timeline', 'tab-spans', 'tab-hops']) expect($(tid(t))).not.toBeNull();
    const svc = notProcessed.spans[0].service;
    const sel = $(tid('span-service')) as HTMLSelectElement;
    sel.value = svc;
    sel.dispatchEvent(new Event('change'));
    expect(new URLSearchParams(location.search).get('svc')).toBe(svc);
    await until(() => $$(tid('span-row')).length === notProcessed.spans.filter((s) => s.service === svc).length, 'filtered spans');
    history.replaceState(null, '', location.pathname);
    window.dispatchEvent(new Event('ot-route'));
    await until(() => $$(tid('span-row')).length === notProcessed.spans.length, 'all spans again');
    ($(tid('tab-spans')) as HTMLButtonElement).click();
    expect(new URLSearchParams(location.search).get('tab')).toBe('spans');
    await until(() => !($('#panel-spans') as HTMLElement).hidden, 'spans panel');
  });

  it('marks a silent heartbeat', async () => {
    mount(`/ui/orders/${encodeURIComponent(silent.order_id)}`);
    const hb = await until(() => $(tid('heartbeat')), 'heartbeat');
    expect(hb.getAttribute('data-alive')).toBe(String(silent.diagnosis.heartbeat.alive !== false));
  });

  it('shows a closed order with every stage reached and stops polling', async () => {
    mount(`/ui/orders/${encodeURIComponent(closed.order_id)}`);
    await until(() => $$(tid('milestone')).length === rules.stages.length, 'rail');
    expect($$(tid('milestone')).map((m) => m.getAttribute('data-state'))).toEqual(rules.stages.map(() => 'reached'));
    const n = requests.filter((r) => r.startsWith('/api/v1/orders/')).length;
    await new Promise((r) => setTimeout(r, 5300));
    expect(requests.filter((r) => r.startsWith('/api/v1/orders/')).length).toBe(n);
  }, 10_000);

  it('renders hostile telemetry as text and refuses non-http links', async () => {
    const evil = '<img src=x onerror="globalThis.pwned=1">';
    const order = structuredClone(notProcessed);
    order.order_id = 'EVIL/1%';
    order.diagnosis.summary = evil;
    order.spans[0].name = evil;
    order.spans[0].jaeger_link = 'javascript:alert(1)';
    order.diagnosis.jaeger_search_link = 'javascript:alert(2)';
    order.diagnosis.open_hops[0].broker = evil;
    orders['EVIL/1%'] = order;
    mount('/ui/orders/EVIL%2F1%25');
    await until(() => $(tid('diagnosis-summary'))?.textContent === evil, 'evil summary');
    expect($(tid('order-id'))!.textContent).toBe('EVIL/1%');
    expect(requests).toContain('/api/v1/orders/EVIL%2F1%25');
    expect(document.querySelector('main img')).toBeNull();
    expect((globalThis as { pwned?: number }).pwned).toBeUndefined();
    expect($(`${tid('span-row')}[data-span="${order.spans[0].span_id}"] ${tid('span-jaeger-link')}`)).toBeNull();
    expect($(tid('jaeger-all-link'))).toBeNull();
    for (const a of $$('a[href]')) expect(a.getAttribute('href')!.toLowerCase().startsWith('javascript')).toBe(false);
  });
});

describe('flow, broker, kpi, search', () => {
  it('draws the flow graph and its table', async () => {
    mount('/ui/flow');
    await until(() => $$(tid('flow-node')).length === flow.nodes.length, 'nodes');
    expect($(tid('flow-graph'))!.tagName.toLowerCase()).toBe('svg');
    expect($$(tid('flow-edge')).length).toBe(flow.edges.length);
    for (const n of flow.nodes) expect($(`${tid('flow-node')}[data-id="${n.id}"]`)!.getAttribute('data-state')).toBe(n.state);
    expect($(tid('flow-table'))).not.toBeNull();
    const bad = flow.nodes.find((n) => n.kind === 'queue' && n.state === 'bad')!;
    const a = $(`${tid('flow-node')}[data-id="${bad.id}"] a`)!;
    expect(a.getAttribute('href')).toBe(`/ui/stuck?queue=${encodeURIComponent(bad.name)}`);
    expect(requests).toContain('/api/v1/flow?window=1h');
    expect($(tid('unsettled'))).toBeNull();
  });

  it('says when the flow map has not caught up with the latest verdicts', async () => {
    override = (url) => (url.pathname === '/api/v1/flow' ? { status: 200, body: { ...flow, unsettled: 1 } } : undefined);
    mount('/ui/flow');
    const note = await until(() => $(tid('unsettled')), 'unsettled note');
    expect(note.textContent).toContain('1 verdict is from the last moments');
  });

  it('lists the broker queues', async () => {
    mount('/ui/broker');
    await until(() => $$(`${tid('broker-queues')} ${tid('queue-row')}`).length === broker.queues.length, 'queues');
  });

  it('shows the KPI figures for the window in the URL', async () => {
    mount('/ui/kpi?window=7d');
    await until(() => $(tid('kpi-orders-started')), 'kpi');
    expect($(tid('kpi-orders-started'))!.textContent).toContain(kpi.orders.started.toLocaleString('en-US'));
    expect($(tid('kpi-orders-started'))!.getAttribute('data-value')).toBe(String(kpi.orders.started));
    expect($(tid('total-active'))).toBeNull();
    expect(requests).toContain('/api/v1/kpi?window=7d');
  });

  it('searches by partner through the list API', async () => {
    const partner = list.orders[0].partner!;
    mount(`/ui/orders?q=${encodeURIComponent(`partner:${partner}`)}`);
    await until(() => $$(tid('search-row')).length === list.orders.length, 'results');
    expect(requests.some((r) => r.startsWith('/api/v1/orders?') && new URLSearchParams(r.split('?')[1]).get('partner') === partner)).toBe(true);
  });
});
