import { describe, expect, it } from 'vitest';
import { render } from 'lit';
import { hopLaneKey, outagesFromSentence, renderTimeline, timelineModel, TL } from '../src/components/timeline';
import { milestoneRail } from '../src/views/order-view';
import type { OrderDetail, Rules } from '../src/lib/types';
import notProcessedJson from './fixtures/order-not-processed.json';
import closedJson from './fixtures/order-closed.json';
import silentJson from './fixtures/order-silent.json';
import rulesJson from './fixtures/rules.json';

const notProcessed = notProcessedJson as unknown as OrderDetail;
const closed = closedJson as unknown as OrderDetail;
const silent = silentJson as unknown as OrderDetail;
const rules = rulesJson as unknown as Rules;
const H = 3600_000;

describe('timeline model', () => {
  const now = Date.parse(notProcessed.diagnosis!.stage_since!) + 3 * H + 12 * 60_000;
  const m = timelineModel(notProcessed, now);

  it('has a lane per service and per queue', () => {
    const services = new Set(notProcessed.spans.map((s) => s.service));
    for (const s of services) expect(m.lanes.some((l) => l.key === `service:${s}`)).toBe(true);
    for (const h of notProcessed.hops) expect(m.lanes.some((l) => l.key === hopLaneKey(h))).toBe(true);
    expect(m.lanes.filter((l) => l.kind === 'queue').length).toBe(new Set(notProcessed.hops.map(hopLaneKey)).size);
  });

  it('draws spans at least 2 px wide inside the plot', () => {
    for (const s of m.spans) {
      expect(s.w).toBeGreaterThanOrEqual(2);
      expect(s.x).toBeGreaterThanOrEqual(TL.labelWidth);
      expect(s.x + s.w).toBeLessThanOrEqual(TL.width);
    }
  });

  it('runs the open hop to now and folds the long wait', () => {
    const open = m.hops.filter((h) => h.open);
    expect(open.length).toBe(notProcessed.hops.filter((h) => h.open).length);
    for (const h of open) expect(h.x1).toBeCloseTo(m.nowX, 6);
    expect(m.scale.folds.length).toBeGreaterThanOrEqual(1);
    expect(m.deadline).not.toBeNull();
    expect(m.deadline!).toBeLessThan(m.nowX);
  });

  it('marks failed spans and broker outages', () => {
    const order = structuredClone(notProcessed);
    order.spans[1].status = 'ERROR';
    order.spans[2].step_status = 'FAILED';
    const start = Date.parse(order.spans[0].start);
    const mm = timelineModel(order, start + 60_000, [{ start: new Date(start + 10_000).toISOString(), end: new Date(start + 20_000).toISOString(), error: 'connection refused' }]);
    const bad = new Set(mm.spans.filter((s) => s.bad).map((s) => s.span.span_id));
    expect(bad.has(order.spans[1].span_id)).toBe(true);
    expect(bad.has(order.spans[2].span_id)).toBe(true);
    expect(mm.outages.length).toBe(1);
    expect(mm.outages[0].x1).toBeGreaterThan(mm.outages[0].x0);
  });

  it('reads the outage from the diagnosis sentence without broker data', () => {
    const anchor = '2026-12-07T14:00:00.000Z';
    const now = Date.parse('2026-12-07T15:00:00Z');
    expect(outagesFromSentence('RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) during this stage', anchor, now)).toEqual([
      { start: '2026-12-07T14:02:11.000Z', end: '2026-12-07T14:02:40.000Z', error: null },
    ]);
    expect(outagesFromSentence('RabbitMQ unreachable since 14:02:11Z (connection refused)', anchor, now)).toEqual([
      { start: '2026-12-07T14:02:11.000Z', end: null, error: null },
    ]);
    expect(outagesFromSentence('RabbitMQ was unreachable 23:59:50Z–00:00:10Z (20s)', '2026-12-07T23:59:00Z', now)[0].end).toBe('2026-12-08T00:00:10.000Z');
    expect(outagesFromSentence(null, anchor, now)).toEqual([]);
    expect(outagesFromSentence('something else', anchor, now)).toEqual([]);
    const order = structuredClone(notProcessed);
    const t = new Date(Date.parse(order.diagnosis!.stage_since!) + 500).toISOString().slice(11, 19);
    order.diagnosis!.broker = `RabbitMQ unreachable since ${t}Z (connection refused)`;
    expect(timelineModel(order, Date.parse(order.diagnosis!.stage_since!) + 60_000).outages.length).toBe(1);
  });

  it('zooms to a window: only what overlaps it, across the whole width', () => {
    const first = Date.parse(notProcessed.spans[0].start);
    const zoom = { from: first - 1, to: first + 5 };
    const z = timelineModel(notProcessed, now, [], zoom);
    expect(z.scale.domain).toEqual([zoom.from, zoom.to]);
    const inside = notProcessed.spans.filter((s) => Date.parse(s.end) >= zoom.from && Date.parse(s.start) <= zoom.to && !s.heartbeat);
    expect(z.spans.length).toBe(inside.length);
    expect(z.scale.folds).toEqual([]);
    for (const s of z.spans) expect(s.x + s.w).toBeLessThanOrEqual(TL.width);
  });

  it('shows silence since the last heartbeat', () => {
    const sm = timelineModel(silent, Date.parse(silent.diagnosis!.stage_since!) + 600_000);
    expect(sm.silentSince?.at).toBe(silent.diagnosis!.heartbeat!.last ?? silent.diagnosis!.stage_since);
  });

  it('renders SVG with an aria-label and no inline style', () => {
    const host = document.createElement('div');
    render(renderTimeline(m, null, () => {}, 'Timeline of the order'), host);
    const svg = host.querySelector('svg')!;
    expect(svg.getAttribute('aria-label')).toBe('Timeline of the order');
    expect(host.querySelectorAll('rect.span-bar').length).toBe(m.spans.length);
    expect(host.querySelector('[style]')).toBeNull();
    expect(host.textContent).toContain('⋯');
  });
});

describe('milestone rail', () => {
  it('reached / current / future from the rules', () => {
    const rail = milestoneRail(notProcessed, rules);
    expect(rail.map((r) => r.stage)).toEqual(rules.stages.map((s) => s.name));
    const state = Object.fromEntries(rail.map((r) => [r.stage, r.state]));
    expect(state[notProcessed.stage!]).toBe('current');
    expect(state.CLOSED).toBe('future');
    const future = rail.find((r) => r.state === 'future')!;
    expect(future.expectedBy).not.toBeNull();
  });
  it('a closed order has every stage reached, with time spent vs allowance', () => {
    const rail = milestoneRail(closed, rules);
    expect(rail.every((r) => r.state === 'reached')).toBe(true);
    expect(rail[1].spent).not.toBeNull();
    expect(rail[1].allowed).toBe(rules.stages[0].within_seconds);
  });
  it('falls back to the milestones without rules', () => {
    const rail = milestoneRail(notProcessed, null);
    expect(rail.map((r) => r.stage)).toEqual(notProcessed.milestones.map((m) => m.stage));
  });
});
