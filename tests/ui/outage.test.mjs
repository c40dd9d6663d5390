// A RabbitMQ outage on the flow map: the harness's command stops rabbitmq-server (by pid,
// keeping its node, ports and data); the broker pill says "UNREACHABLE since …" within one poll,
// and "RabbitMQ up" again after the restart.  Run after every other file (it disturbs the
// pipeline): the harness runs it in a second `node --test`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GATEWAY, POLL_MS, launch, instrumentedPage, assertClean, apiJson, tid, control } from './lib.mjs';

let context;
let page;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
});
after(async () => {
  await context?.close();
});

async function gotoFlow() {
  await page.goto(`${GATEWAY}/ui/flow`);
  await tid(page, 'flow-graph').waitFor({ timeout: 15_000 });
}

test('a RabbitMQ outage shows within one poll and clears after the restart', async (t) => {
  if (!process.env.OT_BROKER_STOP) {
    t.skip('OT_BROKER_STOP is not set (the harness sets it)');
    return;
  }
  await gotoFlow();
  assert.match(await tid(page, 'broker-pill').innerText(), /RabbitMQ up/);
  const stopped = Date.now();
  control('OT_BROKER_STOP');
  try {
    // The gateway polls the broker every second (harness config), the page every POLL_MS at
    // most: the pill says so within one poll.
    await tid(page, 'broker-pill').filter({ hasText: /UNREACHABLE since/ })
      .waitFor({ timeout: POLL_MS + 3_000 });
    t.diagnostic(`outage shown ${Date.now() - stopped} ms after the stop command started`);
    const f = await apiJson('/api/v1/flow');
    assert.equal(f.broker.up, false, 'the API says down too');
  } finally {
    control('OT_BROKER_START');
  }
  await tid(page, 'broker-pill').filter({ hasText: /RabbitMQ up/ }).waitFor({ timeout: POLL_MS + 10_000 });
  assert.equal((await apiJson('/api/v1/flow')).broker.up, true);
  await assertClean(assert, page, 'outage');
});
