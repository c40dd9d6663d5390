// One order's journey (/ui/orders/{id}) against GET /api/v1/orders/{id} at the same moment:
// milestones, the diagnosis in words, the open hop with the broker's sentence, the heartbeat,
// every Jaeger href; ids with `/` and `%` round-trip; reload and Back keep the state; an unknown
// id and an unknown path show the 404 view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY, launch, instrumentedPage, assertClean, api, apiJson, apiStuckAny, eventually,
  sendSpans, stageSpan, tid, hex, waitOrder, encodeId,
} from './lib.mjs';

// Links to Jaeger start at this base (the harness sets journeys.jaeger_ui to the gateway's own
// /jaeger so that a followed link stays on the gateway's origin).
const JAEGER_BASE = process.env.OT_JAEGER_BASE || `${GATEWAY}/jaeger`;
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const SPAN_LINK = new RegExp(`^${esc(JAEGER_BASE)}/trace/[0-9a-f]{32}\\?uiFind=[0-9a-f]{16}$`);
const ALL_LINK = new RegExp(`^${esc(JAEGER_BASE)}/search\\?traceID=[0-9a-f]{32}(&traceID=[0-9a-f]{32})*$`);

let context;
let page;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
});
after(async () => {
  await context?.close();
});

// Durations and counts of seconds move on between two reads ("for 4m 14s", "3s ago"): the
// diagnosis is compared with them replaced.
const steady = (s) => String(s ?? '').trim()
  .replace(/\b\d+(\.\d+)?\s?(ms|[dhms])\b/g, 'N')
  .replace(/(N\s*)+/g, 'N ');

async function gotoOrder(id, query = '') {
  await page.goto(`${GATEWAY}/ui/orders/${encodeId(id)}${query}`);
  await tid(page, 'order-id').waitFor({ timeout: 15_000 });
}

// The stuck orders worth a look: one with an open hop, one with a heartbeat expectation.
async function pickOrders() {
  const stuck = await apiStuckAny();
  const out = {};
  for (const o of stuck) {
    if (out.hop && out.heartbeat) break;
    const full = await apiJson(`/api/v1/orders/${encodeId(o.order_id)}`);
    const d = full.diagnosis || {};
    if (!out.hop && (d.open_hops || []).length > 0) out.hop = full;
    if (!out.heartbeat && d.heartbeat) out.heartbeat = full;
  }
  out.any = stuck[0] ? await apiJson(`/api/v1/orders/${encodeId(stuck[0].order_id)}`) : null;
  return out;
}

// Whether the page says "stuck": a stuck-badge saying so (data-stuck="true"), or present at all
// when the badge has no data-stuck.
async function stuckBadge() {
  const badges = await tid(page, 'stuck-badge').evaluateAll((els) => els.map((e) => e.getAttribute('data-stuck')));
  if (badges.length === 0) return false;
  return badges[0] === null ? true : badges[0] === 'true';
}

// The page and the API agree on everything the order view shows.
async function assertOrderMatchesApi(id) {
  await eventually(async () => {
    const a = await apiJson(`/api/v1/orders/${encodeId(id)}`);
    assert.equal((await tid(page, 'order-id').innerText()).trim(), id, 'order id as text');
    // Milestones: reached / current / future, in rule order.
    const rules = await apiJson('/api/v1/rules');
    const ms = await tid(page, 'milestone').evaluateAll((els) => els.map((e) => ({
      stage: e.getAttribute('data-stage'), state: e.getAttribute('data-state') })));
    assert.deepEqual(ms.map((m) => m.stage), rules.stages.map((s) => s.name), 'a milestone per stage');
    const reached = new Set((a.milestones || []).map((m) => m.stage));
    for (const m of ms) {
      if (a.closed) {
        assert.ok(['reached', 'current'].includes(m.state) || !reached.has(m.stage),
          `closed order: ${m.stage} ${m.state}`);
        if (reached.has(m.stage)) assert.notEqual(m.state, 'future', `${m.stage} reached`);
      } else if (m.stage === a.stage) {
        assert.equal(m.state, 'current', `${m.stage} is current`);
      } else if (reached.has(m.stage)) {
        assert.equal(m.state, 'reached', `${m.stage} reached`);
      } else {
        assert.equal(m.state, 'future', `${m.stage} future`);
      }
    }
    const d = a.diagnosis;
    if (a.stuck) {
      assert.equal(await stuckBadge(), true, 'stuck badge');
      assert.equal(steady(await tid(page, 'diagnosis-summary').innerText()), steady(d.summary),
        'diagnosis summary');
      // The open hops with their broker sentences.
      const hops = await tid(page, 'open-hop').evaluateAll((els) => els.map((e) => ({
        message: e.getAttribute('data-message'),
        broker: e.querySelector('[data-testid="open-hop-broker"]')?.textContent?.trim() ?? null,
      })));
      const want = (d.open_hops || []).map((h) => h.message_id).sort();
      assert.deepEqual([...new Set(hops.map((h) => h.message))].sort(), want, 'open hops');
      for (const h of d.open_hops || []) {
        if (!h.broker) continue;
        const shown = hops.find((x) => x.message === h.message_id);
        assert.equal(steady(shown.broker), steady(h.broker), `broker sentence of ${h.message_id}`);
      }
      if (d.heartbeat) {
        assert.equal(await tid(page, 'heartbeat').first().getAttribute('data-alive'),
          String(d.heartbeat.alive), 'heartbeat alive');
      }
    } else {
      assert.equal(await stuckBadge(), false, 'no stuck badge');
    }
    // Jaeger links.
    const all = await tid(page, 'jaeger-all-link').first().getAttribute('href');
    const search = a.jaeger_search_link ?? d?.jaeger_search_link;
    assert.equal(all, search, 'all-traces link');
    assert.match(all, ALL_LINK);
  });
}

async function assertSpanLinks(id) {
  if (!new URL(page.url()).searchParams.get('tab')) {
    await tid(page, 'tab-spans').click();
    await page.waitForURL((u) => u.searchParams.get('tab') === 'spans');
  }
  await tid(page, 'span-row').first().waitFor();
  await eventually(async () => {
    const a = await apiJson(`/api/v1/orders/${encodeId(id)}`);
    const rows = await tid(page, 'span-row').evaluateAll((els) => els.map((e) => ({
      span: e.getAttribute('data-span'),
      href: e.querySelector('[data-testid="span-jaeger-link"]')?.getAttribute('href') ?? null,
    })));
    assert.deepEqual(rows.map((r) => r.span).sort(), a.spans.map((s) => s.span_id).sort(), 'a row per span');
    for (const s of a.spans) {
      const r = rows.find((x) => x.span === s.span_id);
      assert.equal(r.href, s.jaeger_link, `span ${s.span_id} link`);
      assert.match(r.href, SPAN_LINK);
      assert.ok(r.href.includes(`/trace/${s.trace_id}?uiFind=${s.span_id}`));
    }
  });
}

test('a stuck order with an open hop: milestones, diagnosis, hop + broker, links = API', async () => {
  const { hop, any } = await pickOrders();
  const o = hop || any;
  assert.ok(o, 'the fault mix leaves a stuck order');
  assert.ok(hop, 'the fault mix leaves an order with an open hop (crm-ignores-price)');
  await gotoOrder(o.order_id);
  await assertOrderMatchesApi(o.order_id);
  await assertSpanLinks(o.order_id);
  await assertClean(assert, page, `order ${o.order_id}`);
});

test('an order expecting heartbeats shows the heartbeat state of the API', async () => {
  const { heartbeat } = await pickOrders();
  assert.ok(heartbeat, 'the fault mix leaves an order expecting heartbeats (mes-silent)');
  await gotoOrder(heartbeat.order_id);
  await assertOrderMatchesApi(heartbeat.order_id);
  await tid(page, 'heartbeat').first().waitFor();
});

test('a closed order: every milestone reached, no diagnosis', async () => {
  const closed = (await apiJson('/api/v1/orders?stuck=false&limit=1000')).orders.filter((o) => o.closed);
  assert.ok(closed.length > 0, 'the pipeline closes some orders');
  const id = closed[0].order_id;
  await gotoOrder(id);
  await assertOrderMatchesApi(id);
  const states = await tid(page, 'milestone').evaluateAll((els) => els.map((e) => e.getAttribute('data-state')));
  assert.ok(!states.includes('future'), `closed: ${states}`);
});

test('an id with / and % round-trips through the URL, reload and Back', async () => {
  const id = `ORD/7%x-${hex(2)}`;
  await sendSpans([stageSpan(id, 'SUBMITTED', { service: 'partner' })]);
  await waitOrder(id, (o) => o !== null);
  await gotoOrder(id);
  assert.equal(new URL(page.url()).pathname, `/ui/orders/${encodeURIComponent(id)}`);
  assert.equal((await tid(page, 'order-id').innerText()).trim(), id);
  await assertOrderMatchesApi(id);
  // A tab is view state: in the URL, kept by reload, undone by Back.
  const plain = page.url();
  await tid(page, 'tab-spans').click();
  await page.waitForURL((u) => u.searchParams.get('tab') === 'spans');
  const spansUrl = page.url();
  await page.reload();
  await tid(page, 'span-row').first().waitFor();
  assert.equal(page.url(), spansUrl);
  assert.equal((await tid(page, 'order-id').innerText()).trim(), id);
  await page.goBack();
  await page.waitForURL(plain);
  assert.equal((await tid(page, 'order-id').innerText()).trim(), id);
  // Found from the board's search box too.
  await page.goto(`${GATEWAY}/ui/stuck`);
  await tid(page, 'search').waitFor();
  await tid(page, 'search').fill(id);
  await tid(page, 'search').press('Enter');
  await page.waitForURL((u) => u.pathname === `/ui/orders/${encodeURIComponent(id)}`
    || u.pathname === '/ui/orders');
  if (new URL(page.url()).pathname === '/ui/orders') {
    await page.locator(`a[href$="/ui/orders/${encodeURIComponent(id)}"]`).first().click();
    await page.waitForURL((u) => u.pathname === `/ui/orders/${encodeURIComponent(id)}`);
  }
  await tid(page, 'order-id').waitFor();
  assert.equal((await tid(page, 'order-id').innerText()).trim(), id);
  await assertClean(assert, page, 'odd id');
});

test('an unknown order and an unknown path show the 404 view', async () => {
  const id = `NOPE-${hex(4)}`;
  assert.equal((await api(`/api/v1/orders/${id}`)).status, 404);
  await page.goto(`${GATEWAY}/ui/orders/${id}`);
  await page.locator('[data-testid="not-found"], [data-testid="error"]').first().waitFor();
  const r = await page.goto(`${GATEWAY}/ui/no/such/view`);
  assert.equal(r.status(), 200, 'the index page serves every /ui/ path');
  await tid(page, 'not-found').waitFor();
  // A missing asset is a 404, never the index page.
  assert.equal((await api('/ui/assets/missing-0000.js')).status, 404);
  await assertClean(assert, page, '404 views');
});
