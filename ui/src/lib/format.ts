// Text for durations, times and counts. All times are shown in UTC (suffix Z), as the API and
// `ordertrace watch` print them, so what people paste into chat matches every other tool.

/** "350ms", "4.2s", "47m 3s", "3h 12m", "2d 4h". Negative durations get a leading "-". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 0) return '-' + formatDuration(-seconds);
  const ms = seconds * 1000;
  if (ms < 1) return ms === 0 ? '0ms' : '<1ms';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (seconds < 10) return `${trimZero(seconds.toFixed(1))}s`;
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return r === 0 ? `${m}m` : `${m}m ${r}s`;
  }
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return m === 0 ? `${h}h` : `${h}h ${m}m`;
  }
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  return h === 0 ? `${d}d` : `${d}d ${h}h`;
}

function trimZero(text: string): string {
  return text.endsWith('.0') ? text.slice(0, -2) : text;
}

/** Milliseconds since the epoch of an RFC 3339 time, or null when absent or unparsable. */
export function parseTime(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** Seconds from `iso` to `now` (ms), or null. */
export function secondsSince(iso: string | null | undefined, now: number): number | null {
  const t = parseTime(iso);
  return t === null ? null : (now - t) / 1000;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** "03:23:09Z" (with ms when asked: "03:23:09.210Z"). */
export function formatClock(iso: string | number | null | undefined, withMs = false): string {
  const t = typeof iso === 'number' ? iso : parseTime(iso);
  if (t === null) return '—';
  const d = new Date(t);
  const base = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return withMs ? `${base}.${pad(d.getUTCMilliseconds(), 3)}Z` : `${base}Z`;
}

/** "2026-12-07 03:23:09Z". */
export function formatDateTime(iso: string | number | null | undefined): string {
  const t = typeof iso === 'number' ? iso : parseTime(iso);
  if (t === null) return '—';
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${formatClock(t)}`;
}

/** Integer with thousands separators, as the broker sentences print them ("1,204"). */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return Math.round(n).toLocaleString('en-US');
}

/** A share 0..1 as "12.5%". */
export function formatShare(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${trimZero((x * 100).toFixed(1))}%`;
}

/** "1h", "15m", "7d": the window values of /api/v1/flow and /api/v1/kpi. */
export function formatWindow(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
