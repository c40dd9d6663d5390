// A piecewise-linear time scale that folds idle gaps, so millisecond spans and day-long waits
// share one axis (the wish of jaeger-ui#686). Activity intervals (spans, points such as
// milestones or a deadline) are merged into clusters; a gap between clusters longer than the
// fold threshold is drawn at a fixed width with its length as text ("⋯ 3h 12m ⋯"); everything
// else is drawn at one common rate. The mapping is strictly increasing: order is never changed.

export interface Fold {
  t0: number; // ms, start of the idle gap
  t1: number; // ms, end of the idle gap
  x0: number;
  x1: number;
}

export interface FoldedScale {
  /** x in pixels of a time in ms (clamped to the domain). */
  x(t: number): number;
  /** The time in ms at x (clamped to the range): the inverse of x(). */
  invert(x: number): number;
  domain: [number, number];
  range: [number, number];
  folds: Fold[];
  /** The unfolded stretches, in time and pixels (for axis labels). */
  segments: { t0: number; t1: number; x0: number; x1: number }[];
}

export interface FoldOptions {
  x0: number; // left edge in px
  x1: number; // right edge in px
  foldWidth?: number; // px given to each folded gap (default 44)
  minFoldMs?: number; // gaps shorter than this are never folded (default 5000)
  foldRatio?: number; // a gap is folded when longer than ratio × the unfolded time (default 0.25)
  mergeMs?: number; // intervals closer than this form one cluster (default 0)
}

/** Merges [start, end] intervals (ms) into sorted disjoint clusters. */
export function mergeIntervals(intervals: [number, number][], mergeMs = 0): [number, number][] {
  const sorted = intervals
    .filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b))
    .map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]))
    .sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + mergeMs) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Which idle gaps to fold: repeatedly the longest gap while it dominates what is left unfolded. */
export function chooseFolds(clusters: [number, number][], minFoldMs: number, foldRatio: number): [number, number][] {
  const gaps: [number, number][] = [];
  for (let i = 1; i < clusters.length; i++) gaps.push([clusters[i - 1][1], clusters[i][0]]);
  if (clusters.length === 0) return [];
  const total = clusters[clusters.length - 1][1] - clusters[0][0];
  const byLength = [...gaps].sort((p, q) => q[1] - q[0] - (p[1] - p[0]));
  const folded: [number, number][] = [];
  let unfolded = total;
  for (const gap of byLength) {
    const len = gap[1] - gap[0];
    if (len < minFoldMs) break;
    // Fold while the gap is long compared with what the reader would still see unfolded.
    if (len > foldRatio * (unfolded - len)) {
      folded.push(gap);
      unfolded -= len;
    } else break;
  }
  return folded.sort((p, q) => p[0] - q[0]);
}

export function foldedScale(intervals: [number, number][], options: FoldOptions): FoldedScale {
  const foldWidth = options.foldWidth ?? 44;
  const clusters = mergeIntervals(intervals, options.mergeMs ?? 0);
  const rangeX: [number, number] = [options.x0, options.x1];
  if (clusters.length === 0) {
    const now = Date.now();
    return linear([now - 1000, now], rangeX);
  }
  const domain: [number, number] = [clusters[0][0], clusters[clusters.length - 1][1]];
  if (domain[1] - domain[0] <= 0) return linear([domain[0] - 500, domain[0] + 500], rangeX);

  const foldGaps = chooseFolds(clusters, options.minFoldMs ?? 5000, options.foldRatio ?? 0.25);
  const width = rangeX[1] - rangeX[0];
  const foldsPx = Math.min(foldGaps.length * foldWidth, width * 0.5);
  const perFold = foldGaps.length ? foldsPx / foldGaps.length : 0;
  const unfoldedMs = domain[1] - domain[0] - foldGaps.reduce((s, [a, b]) => s + (b - a), 0);
  const rate = unfoldedMs > 0 ? (width - foldsPx) / unfoldedMs : 0;
  // With no unfolded time at all (only folds), spread the folds over the whole width.
  const foldPx = unfoldedMs > 0 ? perFold : width / Math.max(1, foldGaps.length);

  const folds: Fold[] = [];
  const segments: FoldedScale['segments'] = [];
  let x = rangeX[0];
  let t = domain[0];
  for (const [a, b] of foldGaps) {
    const segEnd = x + (a - t) * rate;
    segments.push({ t0: t, t1: a, x0: x, x1: segEnd });
    folds.push({ t0: a, t1: b, x0: segEnd, x1: segEnd + foldPx });
    x = segEnd + foldPx;
    t = b;
  }
  segments.push({ t0: t, t1: domain[1], x0: x, x1: x + (domain[1] - t) * rate });

  const map = (time: number): number => {
    const c = Math.min(Math.max(time, domain[0]), domain[1]);
    for (const f of folds) {
      if (c >= f.t0 && c <= f.t1) return f.x0 + ((c - f.t0) / (f.t1 - f.t0)) * (f.x1 - f.x0);
    }
    for (const s of segments) {
      if (c >= s.t0 && c <= s.t1) return s.t1 === s.t0 ? s.x0 : s.x0 + ((c - s.t0) / (s.t1 - s.t0)) * (s.x1 - s.x0);
    }
    return rangeX[1];
  };
  return { x: map, invert: inverter(segments, folds, rangeX, domain), domain, range: rangeX, folds, segments };
}

function linear(domain: [number, number], range: [number, number]): FoldedScale {
  const k = (range[1] - range[0]) / (domain[1] - domain[0]);
  const x = (t: number) => range[0] + (Math.min(Math.max(t, domain[0]), domain[1]) - domain[0]) * k;
  const segments = [{ t0: domain[0], t1: domain[1], x0: range[0], x1: range[1] }];
  return { x, invert: inverter(segments, [], range, domain), domain, range, folds: [], segments };
}

function inverter(
  segments: { t0: number; t1: number; x0: number; x1: number }[],
  folds: Fold[],
  range: [number, number],
  domain: [number, number],
): (x: number) => number {
  const pieces = [...segments, ...folds].sort((a, b) => a.x0 - b.x0);
  return (x: number) => {
    const c = Math.min(Math.max(x, range[0]), range[1]);
    for (const p of pieces) {
      if (c >= p.x0 && c <= p.x1) return p.x1 === p.x0 ? p.t0 : p.t0 + ((c - p.x0) / (p.x1 - p.x0)) * (p.t1 - p.t0);
    }
    return c <= range[0] ? domain[0] : domain[1];
  };
}
