// The board's first render with many stuck orders, in headless Chromium (Debian's, driven by
// tests/ui/node_modules/playwright-core: run tests/ui/setup first), and the compressed size of
// the UI's assets.  Usage:
//   bench/ui-render [--gateway URL] [--orders N] [--runs R] [--bin PATH]
//     --gateway URL  measure this gateway (it must hold the stuck orders already); default:
//                    start `ordertrace serve` (--bin, default build/src/cli/ordertrace, built
//                    with the UI embedded) on free loopback ports with a temp data directory and
//                    short rules, and fill it with N orders that get stuck
//     --orders N     stuck orders to fill (default 10000)
//     --runs R       measured page loads (default 5), each in a fresh browser profile (cold cache)
// First render = navigation start → the stuck table's rows and the stage cards are in the DOM
// (inside the views' shadow roots), or the web UI's own mark `ordertrace:board-rendered`
// (performance.mark) when it sets one, whichever the page has.  Prints every run, the median and
// the max, the assets' gzip size, and last a Markdown row and one JSON object.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants as zc } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = { orders: 10000, runs: 5, bin: join(root, 'build/src/cli/ordertrace'), gateway: '' };
for (let i = 0; i < args.length; ++i) {
  const next = () => args[++i];
  if (args[i] === '--gateway') opt.gateway = next();
  else if (args[i] === '--orders') opt.orders = Number(next());
  else if (args[i] === '--runs') opt.runs = Number(next());
  else if (args[i] === '--bin') opt.bin = next();
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 15)
      .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else {
    console.error(`bench/ui-render: unknown argument '${args[i]}' (try --help)`);
    process.exit(2);
  }
}

let chromium;
try {
  ({ chromium } = await import(join(root, 'tests/ui/node_modules/playwright-core/index.mjs')));
} catch {
  console.error('bench/ui-render: tests/ui/node_modules has no playwright-core: run tests/ui/setup');
  process.exit(1);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Short rules: every stage due in 2 s, so N orders are stuck a few seconds after they arrive.
const RULES = `stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED]
expect:
  SUBMITTED:             {next: PRICE_CALCULATED, within: 2s, next_by: mes}
  PRICE_CALCULATED:      {next: APPROVED, within: 2s, next_by: crm}
  APPROVED:              {next: MANUFACTURING_STARTED, within: 2s, next_by: mes}
  MANUFACTURING_STARTED: {next: SHIPPED, within: 2s, next_by: mes}
  SHIPPED:               {next: CLOSED, within: 2s, next_by: crm}
grace: 1s
`;
const STAGES = ['SUBMITTED', 'PRICE_CALCULATED', 'APPROVED', 'MANUFACTURING_STARTED', 'SHIPPED'];
const SERVICES = ['partner', 'crm', 'mes'];

let child = null;
let dataDir = null;
function stop() {
  if (child && child.exitCode === null) child.kill('SIGTERM');
}
process.on('exit', () => {
  stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));

async function startGateway() {
  dataDir = mkdtempSync(join(tmpdir(), 'ordertrace-ui-render-'));
  writeFileSync(join(dataDir, 'rules.yaml'), RULES);
  child = spawn(opt.bin, ['serve', '--otlp-grpc', '127.0.0.1:0', '--otlp-http', '127.0.0.1:0',
    '--http', '127.0.0.1:0', '--data', join(dataDir, 'data'), '--rules', join(dataDir, 'rules.yaml')],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  for (let i = 0; i < 200; ++i) {
    const m = /otlp_http=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)/.exec(log);
    if (m) return { api: `http://127.0.0.1:${m[2]}`, otlp: `http://127.0.0.1:${m[1]}/v1/traces` };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`the gateway did not start (${opt.bin}):\n${log.slice(-2000)}`);
}

const hex = (n, w) => n.toString(16).padStart(w, '0');
async function fill(otlp, n) {
  const batch = 1000;
  const now = Date.now();
  for (let start = 0; start < n; start += batch) {
    const byService = new Map();
    for (let i = start; i < Math.min(n, start + batch); ++i) {
      const service = SERVICES[i % SERVICES.length];
      const t = now - 1000 + (i % 1000);
      if (!byService.has(service)) byService.set(service, []);
      byService.get(service).push({
        traceId: hex(0xb00000 + i, 32), spanId: hex(0xb00000 + i, 16), name: 'step', kind: 2,
        startTimeUnixNano: `${BigInt(t) * 1000000n}`, endTimeUnixNano: `${BigInt(t + 5) * 1000000n}`,
        attributes: [
          { key: 'order.id', value: { stringValue: `BENCH-${String(i + 1).padStart(6, '0')}` } },
          { key: 'order.stage', value: { stringValue: STAGES[i % STAGES.length] } },
        ],
        status: { code: 1 },
      });
    }
    const body = { resourceSpans: [...byService].map(([service, spans]) => ({
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
      scopeSpans: [{ scope: { name: 'ui-render' }, spans }] })) };
    const r = await fetch(otlp, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body) });
    if (r.status !== 200) throw new Error(`OTLP: HTTP ${r.status} ${await r.text()}`);
  }
}

async function stuckNow(api) {
  const r = await fetch(`${api}/api/v1/summary`);
  if (r.status === 200) return (await r.json()).totals.stuck;
  // Before /api/v1/summary: count the stuck list.
  let count = 0;
  let cursor = '';
  for (;;) {
    const page = await (await fetch(`${api}/api/v1/orders?stuck=true&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).json();
    count += page.orders.length;
    if (!page.next_cursor) return count;
    cursor = page.next_cursor;
  }
}

// The UI's assets as the index page names them: raw bytes, gzip -9, and what the gateway sends
// with Accept-Encoding: gzip.
async function assetSizes(api) {
  const html = await (await fetch(`${api}/ui/stuck`)).text();
  const urls = [...new Set([...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]))];
  // Modules the entry imports (code-split chunks) are named in the entry's text.
  const seen = new Set();
  const queue = [...urls];
  const files = [];
  while (queue.length) {
    const u = queue.shift();
    if (seen.has(u)) continue;
    seen.add(u);
    const r = await fetch(api + u, { headers: { 'accept-encoding': 'identity' } });
    if (r.status !== 200) continue;
    const buf = Buffer.from(await r.arrayBuffer());
    const sent = await fetch(api + u, { headers: { 'accept-encoding': 'gzip' } });
    const sentBytes = (await sent.arrayBuffer()).byteLength;  // fetch decodes: use the header
    const wire = Number(sent.headers.get('content-length') || sentBytes);
    files.push({ url: u, raw: buf.length, gzip: gzipSync(buf, { level: zc.Z_BEST_COMPRESSION }).length,
      sent: sent.headers.get('content-encoding') === 'gzip' ? wire : null });
    for (const m of buf.toString('utf8').matchAll(/["'(]\.?\/?((?:ui\/)?assets\/[\w.-]+\.(?:js|css))["')]/g)) {
      const p = m[1].startsWith('ui/') ? `/${m[1]}` : `/ui/${m[1]}`;
      if (!seen.has(p)) queue.push(p);
    }
  }
  const indexGzip = gzipSync(Buffer.from(html), { level: zc.Z_BEST_COMPRESSION }).length;
  return { files, indexGzip };
}

async function measure(api) {
  const profile = mkdtempSync(join(tmpdir(), 'ordertrace-ui-render-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.OT_CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    viewport: { width: 1440, height: 900 },
  });
  try {
    const page = await context.newPage();
    await page.goto(`${api}/ui/stuck`, { waitUntil: 'commit' });
    // Rows and stage cards in the DOM, through open shadow roots; or the UI's mark.
    const ms = await page.waitForFunction(() => {
      const mark = performance.getEntriesByName('ordertrace:board-rendered', 'mark')[0];
      if (mark) return mark.startTime;
      const find = (rootNode, sel) => {
        if (rootNode.querySelector(sel)) return true;
        for (const el of rootNode.querySelectorAll('*')) {
          if (el.shadowRoot && find(el.shadowRoot, sel)) return true;
        }
        return false;
      };
      if (find(document, '[data-testid="stuck-row"]') && find(document, '[data-testid="stage-card"]')) {
        return performance.now();
      }
      return false;
    }, null, { polling: 'raf', timeout: 60_000 });
    const rows = await page.locator('[data-testid="stuck-row"]').count();
    return { ms: await ms.jsonValue(), rows };
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

let api = opt.gateway;
if (!api) {
  const gw = await startGateway();
  api = gw.api;
  process.stdout.write(`gateway ${api}: filling ${opt.orders} orders that get stuck ... `);
  const t0 = Date.now();
  await fill(gw.otlp, opt.orders);
  for (let i = 0; i < 240 && (await stuckNow(api)) < opt.orders; ++i) await sleep(500);
  console.log(`${await stuckNow(api)} stuck after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const stuck = await stuckNow(api);
const ui = await fetch(`${api}/ui/stuck`);
if (ui.status !== 200) {
  console.error(`bench/ui-render: ${api}/ui/stuck answers ${ui.status}: is the UI built in (ORDERTRACE_UI=ON)?`);
  process.exit(1);
}

if (opt.runs > 0) await measure(api);  // warm-up: the gateway's caches, not the browser's (each run is a new profile)
const runs = [];
for (let i = 0; i < opt.runs; ++i) {
  const r = await measure(api);
  runs.push(r.ms);
  console.log(`run ${i + 1}: first render ${r.ms.toFixed(0)} ms (${r.rows} rows shown, ${stuck} stuck)`);
}
const sorted = [...runs].sort((a, b) => a - b);
const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
const max = sorted.length ? sorted[sorted.length - 1] : NaN;
const sizes = await assetSizes(api);
const gz = sizes.files.reduce((s, f) => s + f.gzip, 0);
const raw = sizes.files.reduce((s, f) => s + f.raw, 0);
for (const f of sizes.files) {
  console.log(`asset ${f.url}: ${f.raw} B, gzip -9 ${f.gzip} B${f.sent ? `, sent gzip ${f.sent} B` : ''}`);
}
console.log(`index.html gzip -9 ${sizes.indexGzip} B`);
console.log(`board first render, ${stuck} stuck orders: median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms over ${runs.length} runs (target <= 1000 ms)`);
console.log(`UI assets: ${sizes.files.length} files, ${(raw / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzip -9 (+ index.html ${(sizes.indexGzip / 1024).toFixed(1)} KB) (target <= 150 KB)`);
const date = new Date().toISOString().slice(0, 10);
console.log(`| ${date} | board first render, ${stuck} stuck, headless Chromium | median ${median.toFixed(0)} ms, max ${max.toFixed(0)} ms (${runs.length} runs) | UI assets ${(gz / 1024).toFixed(1)} KB gzip | load avg ${loadavg()[0].toFixed(1)}, ${cpus().length} cores |`);
console.log(JSON.stringify({ bench: 'ui-render', stuck, runs_ms: runs.map((x) => Math.round(x)),
  median_ms: Math.round(median), max_ms: Math.round(max), assets_gzip_bytes: gz,
  assets_raw_bytes: raw, index_gzip_bytes: sizes.indexGzip, files: sizes.files.length }));
stop();
