#!/usr/bin/env node
// Captures real answers of a running gateway (with the demo pipeline and its faults) into
// test/fixtures/*.json, the data the UI's render tests use.
//
//   node scripts/capture-fixtures.mjs [GATEWAY_URL]      (default http://127.0.0.1:8080)
//   npm run capture-fixtures -- http://127.0.0.1:8080
//
// The gateway must answer without sign-in (an open API, as `ordertrace serve` without
// auth.* config) or with OT_TOKEN set to a bearer token. Endpoints the gateway does not have yet
// (404) are reported and their fixture is left as it is (see test/fixtures/README.md).
// Order ids, partner pseudonyms and times are whatever the pipeline produced: the tests read
// them from the fixtures, never hard-code them.
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const base = (process.argv[2] ?? process.env.OT_GATEWAY ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures');
const headers = { Accept: 'application/json' };
if (process.env.OT_TOKEN) headers.Authorization = `Bearer ${process.env.OT_TOKEN}`;

async function get(path) {
  const r = await fetch(base + path, { headers });
  const text = await r.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: r.status, body };
}

async function save(name, path, body) {
  await writeFile(join(dir, name), JSON.stringify(body, null, 2) + '\n');
  console.log(`captured ${name}  ← GET ${path}`);
}

async function capture(name, path, { required = true } = {}) {
  const { status, body } = await get(path);
  if (status !== 200 || body === null) {
    const msg = `GET ${path}: HTTP ${status}${body?.error ? ` (${body.error})` : ''}`;
    if (required) throw new Error(msg);
    console.log(`skipped ${name}: ${msg} (kept the existing file)`);
    return null;
  }
  await save(name, path, body);
  return body;
}

async function main() {
  await capture('me.json', '/api/v1/me');
  await capture('broker.json', '/api/v1/broker');
  const stuck = await capture('orders-stuck.json', '/api/v1/orders?stuck=true&limit=20');
  const all = (await get('/api/v1/orders?closed=true&limit=1000')).body?.orders ?? [];

  const pick = async (name, entry, what) => {
    if (!entry) {
      console.log(`skipped ${name}: no ${what} order on the gateway now`);
      return;
    }
    await capture(name, `/api/v1/orders/${encodeURIComponent(entry.order_id)}`);
  };
  const stuckOrders = stuck.orders;
  await pick('order-not-processed.json', stuckOrders.find((o) => o.stuck_kind === 'not_processed' && o.open_hops > 0), 'not_processed');
  await pick('order-silent.json', stuckOrders.find((o) => o.stuck_kind === 'silent'), 'silent');
  await pick('order-closed.json', all.find((o) => o.closed), 'closed');

  const missing = await get('/api/v1/orders/NO-SUCH-ORDER%2F1');
  await save('error-404.json', '/api/v1/orders/NO-SUCH-ORDER%2F1', missing.body);

  // Endpoints of issue 17 that land later: captured when present.
  await capture('summary.json', '/api/v1/summary', { required: false });
  await capture('rules.json', '/api/v1/rules', { required: false });
  await capture('flow.json', '/api/v1/flow?window=1h', { required: false });
  await capture('kpi.json', '/api/v1/kpi?window=24h', { required: false });
  await capture('orders-sorted.json', '/api/v1/orders?stuck=true&sort=stuck_since&limit=20', { required: false });
}

main().catch((e) => {
  console.error(`capture-fixtures: ${e.message} (is a gateway running at ${base}?)`);
  process.exit(1);
});
