// Telemetry is untrusted input: a span name, an error and a routing key carrying markup render
// as text (no dialog, no element).  Every view: the CSP and nosniff headers, zero CSP violations,
// zero console errors, no request leaving the gateway's origin, no inline script or style in
// the index page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  GATEWAY, GRACE, STAGE_SECONDS, launch, instrumentedPage, assertClean, api, apiJson, apiStuckAny,
  sendSpans, span, stageSpan, tid, hex, waitOrder, encodeId,
} from './lib.mjs';

const HOSTILE = '<img src=x onerror=alert(1)>';

let context;
let page;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
});
after(async () => {
  await context?.close();
});

// No <img> the page did not mean: the injected one would have src="x".
async function injectedImages() {
  return page.locator('img[src="x"], img[onerror]').count();
}

test('markup in a span name, an error and a routing key renders as text', async () => {
  const id = `UI-XSS-${hex(3)}`;
  const trace = hex(16);
  const root = hex(8);
  await sendSpans([
    span({ service: 'partner', name: HOSTILE, trace, span: root, error: HOSTILE,
      attrs: { 'order.id': id, 'order.stage': 'SUBMITTED', 'order.step.status': 'FAIL' } }),
    // A publish nobody processes: an open hop whose routing key is markup.
    span({ service: 'partner', name: `publish ${HOSTILE}`, trace, parent: root, kind: 4,
      attrs: { 'order.id': id, 'messaging.system': 'rabbitmq', 'messaging.operation.type': 'send',
        'messaging.destination.name': `orders:${HOSTILE}`,
        'messaging.rabbitmq.destination.routing_key': HOSTILE,
        'messaging.message.id': `m-${hex(4)}` } }),
  ]);
  await waitOrder(id, (o) => o && o.stuck, (STAGE_SECONDS + GRACE) * 1000 + 20_000);

  // The board (its row shows the open hop's routing key / the summary).
  await page.goto(`${GATEWAY}/ui/stuck`);
  await page.locator(`[data-testid="stuck-row"][data-order="${id}"]`).waitFor({ timeout: 20_000 });
  assert.equal(await injectedImages(), 0, 'board: no injected element');

  // The order: the diagnosis, the spans tab, the hops tab.
  for (const tab of ['', '?tab=spans', '?tab=hops', '?tab=timeline']) {
    await page.goto(`${GATEWAY}/ui/orders/${encodeId(id)}${tab}`);
    await tid(page, 'order-id').waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(await injectedImages(), 0, `order${tab}: no injected element`);
  }
  await page.goto(`${GATEWAY}/ui/orders/${encodeId(id)}?tab=spans`);
  await tid(page, 'span-row').first().waitFor();
  assert.ok(await page.getByText(HOSTILE, { exact: false }).count() > 0,
    'the span name is shown as text, markup and all');
  assert.deepEqual(page.problems.dialogs, [], 'no dialog');
  await assertClean(assert, page, 'hostile telemetry');
});

test('security headers on the UI; the index page has no inline script or style', async () => {
  const r = await api('/ui/stuck');
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy') || '';
  assert.match(csp, /default-src 'self'|default-src 'none'/, `CSP: ${csp}`);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const html = String(r.body);
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline <script>');
  assert.doesNotMatch(html, /\sstyle=/i, 'no style= attribute');
  assert.doesNotMatch(html, /<style/i, 'no <style> element');
  assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1|localhost|www\.w3\.org)/i, 'no third-party URL');
  // Hashed assets are cached for good; the index never.
  assert.match(r.headers.get('cache-control') || '', /no-store|no-cache/);
  const asset = /(\/ui\/assets\/[^"']+\.js)/.exec(html);
  assert.ok(asset, 'the index loads a hashed asset');
  const a = await api(asset[1]);
  assert.equal(a.status, 200);
  assert.match(a.headers.get('cache-control') || '', /immutable|max-age=\d{6,}/);
  assert.equal((await api('/ui/')).status, 200, '/ui/ redirects to the board');
});

test('every view: zero CSP violations, console errors and foreign requests', async () => {
  const stuck = await apiStuckAny();
  const id = stuck[0]?.order_id;
  const views = ['/ui/stuck', '/ui/flow', '/ui/broker', '/ui/kpi', '/ui/orders?q=msg:none',
    '/ui/nope'];
  if (id) views.push(`/ui/orders/${encodeId(id)}`, `/ui/orders/${encodeId(id)}?tab=spans`);
  for (const v of views) {
    await page.goto(GATEWAY + v);
    await page.waitForLoadState('networkidle');
    // Two polls' worth of live updates.
    await page.waitForTimeout(2_500);
    await assertClean(assert, page, v);
  }
  // The API the views use refuses nothing here (open API).
  assert.equal((await apiJson('/api/v1/summary')).totals !== undefined, true);
});
