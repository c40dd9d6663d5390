// The flow map (/ui/flow) and the broker view (/ui/broker) against /api/v1/flow and
// /api/v1/broker at the same moment: the "consumer gone" queue in red; a RabbitMQ outage
// is in outage.test.mjs (run last).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY, launch, instrumentedPage, assertClean, apiJson, eventually, tid,
} from './lib.mjs';

// The queue whose consumer the harness's fault mix removes (consumer-gone).
const GONE_QUEUE = process.env.OT_CONSUMER_GONE_QUEUE || 'crm.shipments';

let context;
let page;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
});
after(async () => {
  await context?.close();
});

async function gotoFlow(query = '') {
  await page.goto(`${GATEWAY}/ui/flow${query}`);
  await tid(page, 'flow-graph').waitFor({ timeout: 15_000 });
}

const attrs = (loc) => loc.evaluateAll((els) => els.map((e) => ({
  id: e.getAttribute('data-id'), state: e.getAttribute('data-state') })));

test('the flow map: nodes and edges with their states = /api/v1/flow', async () => {
  await gotoFlow();
  await eventually(async () => {
    const window = new URL(page.url()).searchParams.get('window') || '1h';
    const f1 = await apiJson(`/api/v1/flow?window=${window}`);
    const nodes = await attrs(tid(page, 'flow-node'));
    const edges = await attrs(tid(page, 'flow-edge'));
    const f2 = await apiJson(`/api/v1/flow?window=${window}`);
    assert.equal(f2.revision, f1.revision, 'retry');
    const byId = (l) => l.map((x) => `${x.id}=${x.state}`).sort();
    assert.deepEqual(byId(nodes), byId(f1.nodes), 'nodes and states');
    assert.deepEqual(byId(edges), byId(f1.edges), 'edges and states');
  });
  await tid(page, 'flow-table').waitFor();
  await assertClean(assert, page, 'flow');
});

test('the consumer-gone queue is red on the map and in the API', async () => {
  await gotoFlow();
  const id = `queue:${GONE_QUEUE}`;
  await eventually(async () => {
    const f = await apiJson('/api/v1/flow');
    const n = f.nodes.find((x) => x.id === id);
    assert.ok(n, `${id} in the API`);
    assert.equal(n.queue?.consumers, 0, 'no consumer');
    assert.equal(n.state, 'bad');
    assert.equal(await page.locator(`[data-testid="flow-node"][data-id="${id}"]`).getAttribute('data-state'), 'bad');
  });
  // A click on the node opens the board filtered by it.
  await page.locator(`[data-testid="flow-node"][data-id="${id}"]`).click();
  await page.waitForURL((u) => u.pathname === '/ui/stuck');
  const filters = new URL(page.url()).searchParams;
  assert.ok(filters.toString().length > 0, 'the board is filtered');
  await tid(page, 'totals').waitFor();
  // Its rows are the API's for that filter (none when no consumer ever named the queue: a hop's
  // queue is known from its consumer's span).
  await eventually(async () => {
    const q = new URLSearchParams(filters);
    q.set('stuck', 'true');
    q.set('limit', '1000');
    const ids = (await apiJson(`/api/v1/orders?${q}`)).orders.map((o) => o.order_id).sort();
    const rows = (await tid(page, 'stuck-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-order')))).sort();
    assert.deepEqual(rows, ids, `rows of ${filters}`);
  });
  await assertClean(assert, page, 'flow → board');
});

test('the broker view: one row per queue of /api/v1/broker', async () => {
  await page.goto(`${GATEWAY}/ui/broker`);
  await tid(page, 'broker-queues').waitFor({ timeout: 15_000 });
  await eventually(async () => {
    const b = await apiJson('/api/v1/broker');
    const rows = await tid(page, 'broker-queues').locator('[data-testid="queue-row"]')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-queue')));
    assert.deepEqual(rows.slice().sort(), b.queues.map((q) => q.name).sort());
  });
  assert.match(await tid(page, 'broker-pill').innerText(), /RabbitMQ up/);
  await assertClean(assert, page, 'broker');
});
