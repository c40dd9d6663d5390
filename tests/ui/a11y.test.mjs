// Accessibility and looks: axe-core (wcag2a, wcag2aa) finds nothing serious or critical on any
// view; the keyboard alone goes from the board to an order to its Jaeger link; screenshots of
// each view at desktop (1440×900) and phone (390×844) sizes with the clock frozen, saved into
// OT_SCREENSHOTS for review by eye (docs/ui.md shows the current ones).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AxeBuilder } from '@axe-core/playwright';
import {
  GATEWAY, launch, instrumentedPage, assertClean, apiStuckAny, apiJson, tid, encodeId, screenshot,
  SHOTS,
} from './lib.mjs';

let context;
let page;
let views;
before(async () => {
  context = await launch();
  page = await instrumentedPage(context);
  // The stuck order with an open hop if there is one (the richest journey page).
  const stuck = await apiStuckAny();
  let order = stuck[0]?.order_id;
  for (const o of stuck) {
    if (o.open_hop || o.open_hops > 0) { order = o.order_id; break; }
  }
  views = {
    board: '/ui/stuck',
    order: order ? `/ui/orders/${encodeId(order)}` : null,
    'order-spans': order ? `/ui/orders/${encodeId(order)}?tab=spans` : null,
    flow: '/ui/flow',
    broker: '/ui/broker',
    kpi: '/ui/kpi',
    search: '/ui/orders?q=partner:none',
    'not-found': '/ui/no-such-view',
  };
});
after(async () => {
  await context?.close();
});

async function settle() {
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(500);
}

test('axe-core: nothing serious or critical on any view', async () => {
  const found = [];
  for (const [name, path] of Object.entries(views)) {
    if (!path) continue;
    await page.goto(GATEWAY + path);
    await settle();
    const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
    for (const v of result.violations) {
      if (v.impact === 'serious' || v.impact === 'critical') {
        found.push(`${name}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3)
          .map((n) => n.target.join(' ')).join(' | ')}`);
      }
    }
  }
  assert.deepEqual(found, [], 'axe violations');
  await assertClean(assert, page, 'axe');
});

// The focused element, through open shadow roots.
function focused() {
  return page.evaluate(() => {
    let a = document.activeElement;
    while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
    return a ? { tid: a.getAttribute('data-testid'), href: a.getAttribute('href'),
      target: a.getAttribute('target'), tag: a.tagName } : null;
  });
}

async function tabTo(ids, max = 250) {
  for (let i = 0; i < max; ++i) {
    await page.keyboard.press('Tab');
    const f = await focused();
    if (f && ids.includes(f.tid)) return f;
  }
  throw new Error(`Tab never reached ${ids.join(' or ')}`);
}

test('keyboard only: board → an order → its Jaeger link', async () => {
  await page.goto(`${GATEWAY}/ui/stuck`);
  await tid(page, 'stuck-row').first().waitFor({ timeout: 15_000 });
  const link = await tabTo(['order-link']);
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.pathname === new URL(link.href, GATEWAY).pathname);
  await tid(page, 'order-id').waitFor();
  const id = (await tid(page, 'order-id').innerText()).trim();
  const o = await apiJson(`/api/v1/orders/${encodeId(id)}`);
  const jaeger = await tabTo(['jaeger-all-link', 'span-jaeger-link', 'tab-spans']);
  let target = jaeger;
  if (jaeger.tid === 'tab-spans') {
    await page.keyboard.press('Enter');
    await page.waitForURL((u) => u.searchParams.get('tab') === 'spans');
    target = await tabTo(['span-jaeger-link', 'jaeger-all-link']);
  }
  const links = [o.jaeger_search_link, ...o.spans.map((s) => s.jaeger_link)];
  assert.ok(links.includes(target.href), `a Jaeger link of the API: ${target.href}`);
  // Enter follows it: a new tab (target=_blank) or this one.
  const opened = target.target === '_blank'
    ? context.waitForEvent('page').then(async (p) => { await p.waitForLoadState('commit'); return p.url(); })
    : page.waitForURL((u) => u.pathname.includes('/jaeger')).then(() => page.url());
  await page.keyboard.press('Enter');
  const url = await opened;
  assert.equal(decodeURI(url), decodeURI(new URL(target.href, GATEWAY).toString()));
});

test('screenshots of each view, desktop and phone, clock frozen', async (t) => {
  await page.clock.setFixedTime(new Date());
  const sizes = { desktop: { width: 1440, height: 900 }, phone: { width: 390, height: 844 } };
  for (const [size, viewport] of Object.entries(sizes)) {
    await page.setViewportSize(viewport);
    for (const [name, path] of Object.entries(views)) {
      if (!path) continue;
      await page.goto(GATEWAY + path);
      await settle();
      await screenshot(page, `${name}-${size}`);
    }
  }
  await page.setViewportSize(sizes.desktop);
  t.diagnostic(`screenshots in ${SHOTS}`);
});
