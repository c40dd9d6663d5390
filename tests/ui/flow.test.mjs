// The flow map (/ui/flow) and the broker view (/ui/broker) against /api/v1/flow and
// /api/v1/broker at the same moment: the "consumer gone" queue in red; a RabbitMQ outage
// (stopped by the harness's command) shows within one poll and clears after the restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY, POLL_MS, launch, instrumentedPage, assertClean, apiJson, eventually, tid, control,
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
  assert.ok(new URL(page.url()).searchParams.toString().length > 0, 'the board is filtered');
  await tid(page, 'stuck-table').waitFor();
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

test('a RabbitMQ outage shows within one poll and clears after the restart', async (t) => {
  if (!process.env.OT_BROKER_STOP) {
    t.skip('OT_BROKER_STOP is not set (the harness sets it)');
    return;
  }
  await gotoFlow();
  assert.match(await tid(page, 'broker-pill').innerText(), /RabbitMQ up/);
  control('OT_BROKER_STOP');
  try {
    // The gateway polls the broker every second (harness config), the page every POLL_MS at
    // most: the pill says so within one poll.
    const seen = Date.now();
    await tid(page, 'broker-pill').filter({ hasText: /UNREACHABLE since/ })
      .waitFor({ timeout: POLL_MS + 3_000 });
    t.diagnostic(`outage shown ${Date.now() - seen} ms after the broker stopped`);
    const f = await apiJson('/api/v1/flow');
    assert.equal(f.broker.up, false, 'the API says down too');
  } finally {
    control('OT_BROKER_START');
  }
  await tid(page, 'broker-pill').filter({ hasText: /RabbitMQ up/ }).waitFor({ timeout: POLL_MS + 10_000 });
  assert.equal((await apiJson('/api/v1/flow')).broker.up, true);
  await assertClean(assert, page, 'outage');
});
