import { describe, expect, it } from 'vitest';
import { chooseFolds, foldedScale, mergeIntervals } from '../src/lib/timescale';

const S = 1000;
const H = 3600 * S;

describe('folded time scale', () => {
  it('merges overlapping intervals', () => {
    expect(mergeIntervals([[5, 6], [0, 2], [1, 3], [10, 10]])).toEqual([[0, 3], [5, 6], [10, 10]]);
    expect(mergeIntervals([[0, 2], [3, 4]], 1)).toEqual([[0, 4]]);
  });

  it('folds a day-long idle gap and keeps ms spans visible', () => {
    const t0 = Date.parse('2026-12-07T00:00:00Z');
    const intervals: [number, number][] = [
      [t0, t0 + 2], // 2 ms span
      [t0 + 1500, t0 + 1510],
      [t0 + 3 * H + 12 * 60 * S, t0 + 3 * H + 12 * 60 * S + 5], // after 3h12m of nothing
      [t0 + 26 * H, t0 + 26 * H], // a day later
    ];
    const scale = foldedScale(intervals, { x0: 0, x1: 1000 });
    expect(scale.folds.length).toBe(2);
    expect(scale.folds[0].t0).toBe(t0 + 1510);
    expect(scale.folds[0].t1).toBe(t0 + 3 * H + 12 * 60 * S);
    // The 1.5 s stretch between the first spans is unfolded and gets most of the width.
    expect(scale.x(t0 + 1500) - scale.x(t0)).toBeGreaterThan(500);
    // The 2 ms span is more than a pixel wide.
    expect(scale.x(t0 + 2) - scale.x(t0)).toBeGreaterThan(0.5);
    expect(scale.x(t0)).toBe(0);
    expect(scale.x(t0 + 26 * H)).toBeCloseTo(1000, 6);
  });

  it('is strictly increasing across folds and segments (order preserved)', () => {
    const t0 = 1_000_000;
    const intervals: [number, number][] = [
      [t0, t0 + 10],
      [t0 + 20 * S, t0 + 21 * S],
      [t0 + 5 * H, t0 + 5 * H + 100],
      [t0 + 5 * H + 3 * S, t0 + 5 * H + 3 * S],
      [t0 + 50 * H, t0 + 50 * H + 1],
    ];
    const scale = foldedScale(intervals, { x0: 100, x1: 900 });
    let last = -Infinity;
    for (let t = t0; t <= t0 + 50 * H + 1; t += 997 * 13) {
      const x = scale.x(t);
      expect(x).toBeGreaterThan(last);
      last = x;
    }
    const pts = intervals.flat().sort((a, b) => a - b);
    for (let i = 1; i < pts.length; i++) if (pts[i] > pts[i - 1]) expect(scale.x(pts[i])).toBeGreaterThan(scale.x(pts[i - 1]));
  });

  it('folds only idle gaps: never inside a span', () => {
    const t0 = 0;
    // A 10 h span covering everything: nothing to fold.
    const s1 = foldedScale(
      [
        [t0, t0 + 10 * H],
        [t0 + 5 * H, t0 + 5 * H + 1],
        [t0 + 10 * H, t0 + 10 * H],
      ],
      { x0: 0, x1: 1000 },
    );
    expect(s1.folds).toEqual([]);
    // Folds lie strictly between clusters.
    const intervals: [number, number][] = [
      [0, 1000],
      [2 * H, 2 * H + 1000],
      [4 * H, 4 * H],
    ];
    const s2 = foldedScale(intervals, { x0: 0, x1: 1000 });
    for (const f of s2.folds) {
      for (const [a, b] of intervals) expect(f.t1 <= a || f.t0 >= b).toBe(true);
    }
    expect(s2.folds.length).toBe(2);
  });

  it('inverts x back to time across segments and folds', () => {
    const t0 = 0;
    const scale = foldedScale(
      [
        [t0, t0 + 1000],
        [t0 + 3 * H, t0 + 3 * H + 2000],
        [t0 + 30 * H, t0 + 30 * H],
      ],
      { x0: 150, x1: 984 },
    );
    for (const t of [0, 500, 1000, 2 * H, 3 * H + 10, 3 * H + 2000, 20 * H, 30 * H]) expect(scale.invert(scale.x(t))).toBeCloseTo(t, 0);
    expect(scale.invert(0)).toBe(scale.domain[0]);
    expect(scale.invert(5000)).toBe(scale.domain[1]);
  });

  it('leaves short gaps alone', () => {
    expect(chooseFolds([[0, 10], [2000, 2010], [4000, 4000]], 5000, 0.25)).toEqual([]);
    const s = foldedScale([[0, 10], [2000, 2010]], { x0: 0, x1: 100 });
    expect(s.folds).toEqual([]);
    expect(s.x(1000)).toBeCloseTo(50, 0);
  });

  it('copes with a single instant and no data', () => {
    const one = foldedScale([[5000, 5000]], { x0: 0, x1: 100 });
    expect(one.x(5000)).toBeCloseTo(50, 6);
    const none = foldedScale([], { x0: 0, x1: 100 });
    expect(none.segments.length).toBe(1);
  });
});
