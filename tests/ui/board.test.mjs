// The stuck-orders board (/ui/stuck) against the API at the same moment: totals and stage cards
// = /api/v1/summary, rows = /api/v1/orders?stuck=true&sort=stuck_since; a fault injected
// mid-test appears without a reload and leaves when lifted; filters and sort change the URL and
// the rows; reload and Back keep the state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY, GRACE, STAGE_SECONDS, POLL_MS, launch, instrumentedPage, assertClean, apiJson,
  apiStuck, eventually, sendSpans, stageSpan, tid, num, gotoBoard, hex, waitOrder,
} from './lib.mjs';

let context;
let page;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
});
after(async () => {
  await context?.close();
});

// The stuck rows' order ids, top to bottom.
async function rowIds() {
  return tid(page, 'stuck-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-order')));
}

// Rows = the API's rows (all of them, or the first page the table shows).
async function assertRowsMatchApi(what) {
  await eventually(async () => {
    const url = new URL(page.url());
    const q = new URLSearchParams();
    for (const key of ['stage', 'service', 'kind', 'queue']) {
      for (const v of url.searchParams.getAll(key)) q.append(key, v);
    }
    const sort = url.searchParams.get('sort') || 'stuck_since';
    const list = await apiStuckSorted(q, sort);
    const rows = await rowIds();
    const again = await apiStuckSorted(q, sort);
    const ids = list.map((o) => o.order_id);
    assert.deepEqual(again.map((o) => o.order_id), ids, 'the API changed while reading: retry');
    if (rows.length < ids.length) {
      assert.ok(rows.length > 0, `${what}: no rows, API has ${ids.length}`);
      assert.deepEqual(rows, ids.slice(0, rows.length), `${what}: rows (first page) = API`);
    } else {
      assert.deepEqual(rows, ids, `${what}: rows = API (${new URL(page.url()).search})`);
    }
  });
}

async function apiStuckSorted(filters, sort) {
  const q = new URLSearchParams(filters);
  q.delete('sort');
  const out = [];
  let cursor = '';
  for (let i = 0; i < 50; ++i) {
    const p = new URLSearchParams(q);
    p.set('stuck', 'true');
    p.set('sort', sort);
    p.set('limit', '500');
    if (cursor) p.set('cursor', cursor);
    const r = await apiJson(`/api/v1/orders?${p}`);
    out.push(...r.orders);
    if (!r.next_cursor) break;
    cursor = r.next_cursor;
  }
  return out;
}

test('totals and stage cards equal /api/v1/summary at the same moment', async () => {
  await gotoBoard(page);
  await eventually(async () => {
    const s1 = await apiJson('/api/v1/summary');
    const active = num(await tid(page, 'total-active').innerText());
    const stuck = num(await tid(page, 'total-stuck').innerText());
    const cards = await tid(page, 'stage-card').evaluateAll((els) => els.map((e) => ({
      stage: e.getAttribute('data-stage'),
      active: e.querySelector('[data-testid="stage-active"]')?.textContent ?? '',
      stuck: e.querySelector('[data-testid="stage-stuck"]')?.textContent ?? '',
    })));
    const s2 = await apiJson('/api/v1/summary');
    assert.equal(s2.revision, s1.revision, 'the store changed while reading: retry');
    assert.equal(active, s1.totals.active, 'total active');
    assert.equal(stuck, s1.totals.stuck, 'total stuck');
    // One card per stage in rule order (the pseudo stage "none" only when it has orders).
    const apiStages = s1.stages.filter((st) => st.stage !== 'none' || st.active > 0 || st.stuck > 0);
    const shown = cards.filter((c) => c.stage !== 'none' || num(c.active) > 0);
    assert.deepEqual(shown.map((c) => c.stage), apiStages.map((st) => st.stage), 'stage cards in rule order');
    for (const st of apiStages) {
      const c = cards.find((x) => x.stage === st.stage);
      assert.equal(num(c.active), st.active, `${st.stage} active`);
      assert.equal(num(c.stuck), st.stuck, `${st.stage} stuck`);
    }
  });
  await assertClean(assert, page, 'board');
});

test('stuck rows equal the API stuck list, oldest first', async () => {
  await gotoBoard(page);
  await assertRowsMatchApi('board');
  // Each row links to its order's page.
  const first = page.locator('[data-testid="stuck-row"]').first();
  const id = await first.getAttribute('data-order');
  const href = await first.locator('[data-testid="order-link"]').getAttribute('href');
  assert.equal(new URL(href, GATEWAY).pathname, `/ui/orders/${encodeURIComponent(id)}`);
});

test('the matrix cells equal summary.stuck_by', async () => {
  await gotoBoard(page);
  await eventually(async () => {
    const s1 = await apiJson('/api/v1/summary');
    const cells = await tid(page, 'matrix-cell').evaluateAll((els) => els.map((e) => ({
      stage: e.getAttribute('data-stage'), service: e.getAttribute('data-service') || null,
      kind: e.getAttribute('data-kind'), text: e.textContent })));
    const s2 = await apiJson('/api/v1/summary');
    assert.equal(s2.revision, s1.revision, 'retry');
    for (const b of s1.stuck_by) {
      const c = cells.find((x) => x.stage === b.stage && x.kind === b.kind
        && (x.service || null) === (b.service || null));
      assert.ok(c, `a matrix cell for ${JSON.stringify(b)}`);
      assert.equal(num(c.text), b.count, `matrix ${b.stage}/${b.service}/${b.kind}`);
    }
    const nonzero = cells.filter((c) => num(c.text) > 0);
    assert.equal(nonzero.length, s1.stuck_by.length, 'no other non-empty cell');
  });
});

test('a fault injected mid-test appears without a reload, and leaves when lifted', async () => {
  await gotoBoard(page);
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  const id = `UI-FAULT-${hex(3)}`;
  const trace = hex(16);
  // SUBMITTED, then nothing: stuck after the stage's deadline + grace.
  await sendSpans([stageSpan(id, 'SUBMITTED', { service: 'partner', trace })]);
  const row = page.locator(`[data-testid="stuck-row"][data-order="${id}"]`);
  await row.waitFor({ timeout: (STAGE_SECONDS + GRACE) * 1000 + POLL_MS + 5_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'no reload');
  await assertRowsMatchApi('after the fault');
  // Lifted: every later milestone arrives; the order closes and leaves the board.
  const s = await apiJson('/api/v1/rules');
  const later = s.stages.filter((st) => st.index > 0).map((st) => st.name);
  await sendSpans(later.map((stage) => stageSpan(id, stage, { service: 'crm', trace })));
  await waitOrder(id, (o) => o && !o.stuck);
  await row.waitFor({ state: 'detached', timeout: POLL_MS + 5_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'no reload');
  await assertClean(assert, page, 'board live');
});

test('a matrix cell filters: the URL and the rows change; Back and reload keep the state', async () => {
  await gotoBoard(page);
  const cell = page.locator('[data-testid="matrix-cell"]').filter({ hasText: /[1-9]/ }).first();
  await cell.waitFor();
  const want = {
    stage: await cell.getAttribute('data-stage'),
    kind: await cell.getAttribute('data-kind'),
  };
  const before = page.url();
  await cell.click();
  await page.waitForURL((u) => u.searchParams.get('stage') === want.stage
    && u.searchParams.get('kind') === want.kind);
  await assertRowsMatchApi('filtered by a matrix cell');
  // A chip per active filter.
  assert.ok(await tid(page, 'filter-chip').count() >= 1, 'filter chips shown');
  // Reload keeps the filter.
  const filtered = page.url();
  await page.reload();
  await tid(page, 'stuck-table').waitFor();
  assert.equal(page.url(), filtered);
  await assertRowsMatchApi('filtered, reloaded');
  // Back returns to the unfiltered board.
  await page.goBack();
  await page.waitForURL(before);
  await assertRowsMatchApi('back to the board');
  await page.goForward();
  await page.waitForURL(filtered);
  await assertRowsMatchApi('forward to the filter');
  await assertClean(assert, page, 'board filters');
});

test('a filter in the URL and removing its chip', async () => {
  const summary = await apiJson('/api/v1/summary');
  const stage = summary.stuck_by[0]?.stage;
  assert.ok(stage, 'the fault mix leaves stuck orders');
  await gotoBoard(page, `?stage=${encodeURIComponent(stage)}`);
  await assertRowsMatchApi(`?stage=${stage}`);
  const chip = tid(page, 'filter-chip').first();
  await chip.waitFor();
  // The chip removes its filter (a button inside it, or the chip itself).
  const button = chip.locator('button');
  await ((await button.count()) ? button.first() : chip).click();
  await page.waitForURL((u) => !u.searchParams.has('stage'));
  await assertRowsMatchApi('chip removed');
});

test('sorting by a column changes the URL and the rows', async () => {
  await gotoBoard(page);
  const headers = await tid(page, 'stuck-table').locator('[data-testid^="sort-"]')
    .evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')));
  assert.ok(headers.length >= 2, `sortable headers: ${headers}`);
  const apiSorts = new Set(['order_id', 'stuck_since', '-stuck_since', 'stage_since', '-stage_since']);
  let checked = 0;
  for (const h of headers) {
    const before = new URL(page.url()).searchParams.get('sort');
    await tid(page, h).first().click();
    await page.waitForURL((u) => u.searchParams.get('sort') !== before, { timeout: 5_000 });
    const sort = new URL(page.url()).searchParams.get('sort');
    if (apiSorts.has(sort)) {
      await assertRowsMatchApi(`sorted by ${sort}`);
      ++checked;
    } else {
      // A column the API does not sort: the rows are the same set, in the column's order.
      await eventually(async () => {
        const ids = (await apiStuck()).map((o) => o.order_id).sort();
        const rows = (await rowIds()).slice().sort();
        if (rows.length === ids.length) assert.deepEqual(rows, ids, `sorted by ${sort}: same rows`);
      });
    }
  }
  assert.ok(checked >= 1, 'at least one column sorts as the API does');
  // Sorting twice on the same column reverses it.
  await gotoBoard(page, '?sort=stuck_since');
  await assertRowsMatchApi('?sort=stuck_since');
  await gotoBoard(page, '?sort=-stuck_since');
  await assertRowsMatchApi('?sort=-stuck_since');
  await assertClean(assert, page, 'board sort');
});
