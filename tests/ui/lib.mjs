// Shared helpers of the browser tests (tests/ui/*.test.mjs): Debian's chromium through
// playwright-core (never a downloaded browser), pages instrumented for CSP violations, console
// errors and requests leaving the gateway's origin, the API read at the same moment as the page,
// OTLP/HTTP JSON spans sent to the gateway, and the harness's control commands.
//
// The harness (tests/ui/ui_test.cc) sets, and a person running `node --test` by hand sets:
//   OT_GATEWAY         the gateway with the open API and the UI (http://127.0.0.1:PORT)
//   OT_OTLP_HTTP       its OTLP/HTTP traces endpoint (http://127.0.0.1:PORT/v1/traces)
//   OT_SIGNIN_GATEWAY  a gateway with browser sign-in (http://localhost:PORT); unset: those
//                      cases skip
//   OT_BROKER_STOP / OT_BROKER_START  shell commands that stop / restart RabbitMQ (unset: the
//                      outage case skips)
//   OT_SCREENSHOTS     where the screenshots go (default: $TMPDIR/ordertrace-ui-screenshots)
//   OT_GRACE_SECONDS   the rules' grace (default 1)
//   OT_STAGE_SECONDS   the longest `within` of the rules (default 4): a stuck order is flagged
//                      at most this + grace after its milestone
//   OT_CHROMIUM        the browser (default /usr/bin/chromium)
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

export const GATEWAY = process.env.OT_GATEWAY || 'http://127.0.0.1:8080';
export const OTLP = process.env.OT_OTLP_HTTP || 'http://127.0.0.1:4318/v1/traces';
export const SIGNIN_GATEWAY = process.env.OT_SIGNIN_GATEWAY || '';
export const GRACE = Number(process.env.OT_GRACE_SECONDS || 1);
export const STAGE_SECONDS = Number(process.env.OT_STAGE_SECONDS || 4);
export const SHOTS = process.env.OT_SCREENSHOTS || join(tmpdir(), 'ordertrace-ui-screenshots');

// The board polls every 2 s, an order every 5 s, the flow every 10 s (web-ui.md §4): a change
// must show within one poll of the slowest view plus a margin for a loaded machine.
export const POLL_MS = 10_000;
export const SETTLE_MS = POLL_MS + 5_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One browser per test file: chromium from Debian with the project's flags and a fresh profile.
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'ordertrace-ui-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.OT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1440, height: 900 },
  });
  // The profile goes when the browser has exited (after close(), not at its 'close' event).
  const close = context.close.bind(context);
  context.close = async (...a) => {
    await close(...a);
    try { rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }); } catch { /* left in tmp */ }
  };
  return context;
}

// A page that records what must never happen: CSP violations (a listener added before any
// script of the page runs), console errors, page errors, dialogs (an injected alert()), and
// requests to another origin than the gateway's (each is aborted and recorded).  `allowed`
// lists further origins a navigation may reach (the IdP in the sign-in cases).
export async function instrumentedPage(context, { origin = GATEWAY, allowed = [] } = {}) {
  const page = await context.newPage();
  const problems = { csp: [], console: [], pageErrors: [], dialogs: [], foreign: [] };
  const origins = new Set([new URL(origin).origin, ...allowed.map((a) => new URL(a).origin)]);
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const gatewayOrigin = new URL(origin).origin;
  // Only the gateway's pages are under test: the IdP's login pages (sign-in cases) may do as
  // they like (oidc-provider's development pages ask for a web font, aborted here).
  const onGateway = (url) => {
    try { return new URL(url).origin === gatewayOrigin; } catch { return true; }
  };
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (!onGateway(page.url())) return;
    const text = m.text();
    // A 401/403/404 the test asked for is logged by Chromium as a failed resource load: not
    // the UI's error.  Everything else counts.
    if (/Failed to load resource: the server responded with a status of (401|403|404)/.test(text)) return;
    problems.console.push(text);
  });
  page.on('pageerror', (e) => problems.pageErrors.push(String(e)));
  page.on('dialog', async (d) => {
    problems.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  await page.route('**', async (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || origins.has(url.origin)) {
      return route.continue();
    }
    let from = '';
    try { from = route.request().frame().url(); } catch { /* a service worker's request */ }
    if (onGateway(from) || route.request().isNavigationRequest()) problems.foreign.push(route.request().url());
    return route.abort();
  });
  page.problems = problems;
  page.collectCsp = async () => {
    try {
      const v = await page.evaluate(() => window.__cspViolations || []);
      for (const x of v) if (!problems.csp.includes(x)) problems.csp.push(x);
    } catch { /* navigating */ }
    return problems.csp;
  };
  return page;
}

// Asserts that `page` saw none of the forbidden things since the last call (the record is
// cleared either way, so one failure does not fail the next test of the file too).
export async function assertClean(assert, page, where) {
  await page.collectCsp();
  const p = page.problems;
  const seen = JSON.parse(JSON.stringify(p));
  for (const k of Object.keys(p)) p[k].length = 0;
  await page.evaluate(() => { window.__cspViolations = []; }).catch(() => {});
  assert.deepEqual(seen.foreign, [], `${where}: requests leaving the gateway's origin`);
  assert.deepEqual(seen.csp, [], `${where}: CSP violations`);
  assert.deepEqual(seen.console, [], `${where}: console errors`);
  assert.deepEqual(seen.pageErrors, [], `${where}: uncaught page errors`);
  assert.deepEqual(seen.dialogs, [], `${where}: dialogs`);
}

// The API as the page sees it, at this moment.
export async function api(path, { base = GATEWAY, headers = {} } = {}) {
  const r = await fetch(base + path, { headers });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, headers: r.headers, body };
}
export async function apiJson(path, opts) {
  const r = await api(path, opts);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

// The order id as the API and the UI paths write it (RFC 3986 unreserved kept).
export const encodeId = (id) => encodeURIComponent(id);

// Retries `fn` (page and API read together) until it returns without throwing, or the time is
// up: then its last error is thrown.  Used so that a check compares one moment of the page with
// the same moment of the API, and retries when a poll fell between the two reads.
export async function eventually(fn, { timeout = SETTLE_MS, interval = 500 } = {}) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw last;
    await sleep(interval);
  }
}

// All the stuck orders of the API in the board's order (oldest stuck first), every page.
export async function apiStuck(query = '') {
  const out = [];
  let cursor = '';
  for (let i = 0; i < 100; ++i) {
    const q = `/api/v1/orders?stuck=true&sort=stuck_since&limit=500${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await apiJson(q);
    out.push(...page.orders);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

// The stuck orders in any order (to pick some for a check; no sort needed).
export async function apiStuckAny() {
  return (await apiJson('/api/v1/orders?stuck=true&limit=1000')).orders;
}

// ---- OTLP/HTTP JSON spans ----
export const hex = (bytes) => randomBytes(bytes).toString('hex');
const nanos = (ms) => `${BigInt(Math.round(ms)) * 1000000n}`;
function attr(key, value) {
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  if (typeof value === 'number') return { key, value: { intValue: String(value) } };
  return { key, value: { stringValue: String(value) } };
}

// One span: {service, name, trace, span, parent, startMs, endMs, kind (1 internal, 2 server,
// 4 producer, 5 consumer), error (status message), attrs {k: v}}.
export function span(s) {
  const start = s.startMs ?? Date.now() - 20;
  return {
    service: s.service || 'ui-test',
    span: {
      traceId: s.trace || hex(16),
      spanId: s.span || hex(8),
      ...(s.parent ? { parentSpanId: s.parent } : {}),
      name: s.name || 'step',
      kind: s.kind || 2,
      startTimeUnixNano: nanos(start),
      endTimeUnixNano: nanos(s.endMs ?? start + 10),
      attributes: Object.entries(s.attrs || {}).map(([k, v]) => attr(k, v)),
      status: s.error ? { code: 2, message: s.error } : { code: 1 },
    },
  };
}

// Sends spans (from span()) in one OTLP/HTTP JSON request, grouped by service.
export async function sendSpans(spans) {
  const byService = new Map();
  for (const s of spans) {
    if (!byService.has(s.service)) byService.set(s.service, []);
    byService.get(s.service).push(s.span);
  }
  const body = {
    resourceSpans: [...byService].map(([service, list]) => ({
      resource: { attributes: [attr('service.name', service)] },
      scopeSpans: [{ scope: { name: 'ordertrace-ui-test' }, spans: list }],
    })),
  };
  const r = await fetch(OTLP, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`OTLP POST: ${r.status} ${await r.text()}`);
}

// An order reaching `stage` now (a server span of `service` carrying order.id and order.stage).
export function stageSpan(orderId, stage, extra = {}) {
  return span({ service: extra.service || 'crm', name: extra.name || `reach ${stage}`,
    trace: extra.trace, error: extra.error,
    attrs: { 'order.id': orderId, 'order.stage': stage, 'order.step.status': 'OK', ...(extra.attrs || {}) } });
}

// Waits until the API says `pred(order)` for `id` (null: not found).
export async function waitOrder(id, pred, timeout = 30_000) {
  return eventually(async () => {
    const r = await api(`/api/v1/orders/${encodeId(id)}`);
    const o = r.status === 200 ? r.body : null;
    if (!pred(o)) throw new Error(`order ${id}: ${JSON.stringify(o)?.slice(0, 300)}`);
    return o;
  }, { timeout });
}

// Runs one of the harness's control commands (OT_BROKER_STOP, ...); false when unset.
export function control(name) {
  const cmd = process.env[name];
  if (!cmd) return false;
  execSync(cmd, { stdio: 'inherit', timeout: 120_000 });
  return true;
}

// A data-testid locator (Playwright's CSS engine pierces open shadow roots).
export const tid = (page, id, extra = '') => page.locator(`[data-testid="${id}"]${extra}`);

// Texts of a list of locators.
export async function texts(loc) {
  return (await loc.allInnerTexts()).map((s) => s.trim());
}

// The integer in a text ("12 stuck" → 12; "1,204" → 1204).
export function num(text) {
  const m = String(text).replace(/[,\u202f\u00a0 ](?=\d{3}\b)/g, '').match(/-?\d+/);
  return m ? Number(m[0]) : NaN;
}

// Waits for the board to have rendered (the web UI's mark, or the stuck table).
export async function gotoBoard(page, query = '') {
  await page.goto(`${GATEWAY}/ui/stuck${query}`);
  await tid(page, 'totals').waitFor({ timeout: 15_000 });
  await tid(page, 'stuck-table').waitFor({ timeout: 15_000 });
}

export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}
