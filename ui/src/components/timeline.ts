// One order's timeline as SVG: a lane per service and per queue; spans as bars (at least 2 px,
// red on ERROR or a failed step); hops as publish → queue → process arrows (open ones dashed
// red, running to "now"); heartbeat ticks and "silent since"; milestone, deadline and now lines;
// broker outages as hatched bands; long idle gaps folded ("⋯ 3h 12m ⋯") by the folded scale.
// The geometry is `timelineModel` (pure, tested); `renderTimeline` only draws it.

import { svg, html, nothing } from 'lit';
import { foldedScale, type FoldedScale } from '../lib/timescale';
import { formatClock, formatDuration, parseTime } from '../lib/format';
import type { BrokerOutage, OrderDetail, Span } from '../lib/types';

export const TL = { width: 1000, labelWidth: 150, laneHeight: 26, top: 44, right: 16, bottom: 10 };

export interface Lane {
  key: string;
  label: string;
  kind: 'service' | 'queue';
  y: number; // top of the lane
}

export interface TimelineModel {
  scale: FoldedScale;
  lanes: Lane[];
  height: number;
  now: number;
  spans: { span: Span; lane: Lane; x: number; w: number; bad: boolean }[];
  ticks: { span: Span; lane: Lane; x: number }[];
  hops: {
    id: string;
    open: boolean;
    from: Lane | null;
    queue: Lane;
    to: Lane | null;
    x0: number;
    x1: number;
    label: string;
  }[];
  milestones: { stage: string; x: number; row: number }[];
  deadline: number | null; // x
  nowX: number;
  showNow: boolean; // false when a zoom leaves "now" (or a closed order's end) out
  silentSince: { x: number; at: string } | null;
  outages: { x0: number; x1: number; label: string }[];
}

export function hopLaneKey(h: { queue: string | null; exchange: string | null; routing_key: string | null }): string {
  return h.queue ? `queue:${h.queue}` : `queue:${h.exchange ?? '?'} → ${h.routing_key ?? '?'}`;
}

export function isBadSpan(s: Span): boolean {
  return s.status === 'ERROR' || (s.step_status !== null && s.step_status !== undefined && !/^(OK|UNSET|)$/i.test(s.step_status));
}

/** A zoom: only [from, to] (ms) is drawn. */
export interface TimeWindow {
  from: number;
  to: number;
}

export function timelineModel(order: OrderDetail, now: number, outages: BrokerOutage[] = [], zoom: TimeWindow | null = null): TimelineModel {
  const spans = order.spans ?? [];
  const hops = order.hops ?? [];
  // Lanes: services in order of first appearance, then queues.
  const services: string[] = [];
  const addService = (s: string | null | undefined) => {
    if (s && !services.includes(s)) services.push(s);
  };
  const firstAt = new Map<string, number>();
  for (const s of spans) {
    const t = parseTime(s.start) ?? 0;
    if (!firstAt.has(s.service) || t < (firstAt.get(s.service) ?? 0)) firstAt.set(s.service, t);
  }
  [...firstAt.entries()].sort((a, b) => a[1] - b[1]).forEach(([s]) => addService(s));
  for (const h of hops) {
    addService(h.publisher);
    addService(h.processor);
  }
  addService(order.diagnosis?.expected_service ?? order.expected_service);
  const queues: string[] = [];
  for (const h of hops) {
    const k = hopLaneKey(h);
    if (!queues.includes(k)) queues.push(k);
  }
  const lanes: Lane[] = [
    ...services.map((s): Lane => ({ key: `service:${s}`, label: s, kind: 'service', y: 0 })),
    ...queues.map((q): Lane => ({ key: q, label: q.slice('queue:'.length), kind: 'queue', y: 0 })),
  ];
  lanes.forEach((l, i) => (l.y = TL.top + i * TL.laneHeight));
  const laneOf = new Map(lanes.map((l) => [l.key, l]));
  const height = TL.top + lanes.length * TL.laneHeight + TL.bottom;

  // What the scale must show: spans as intervals, everything else as points.
  const intervals: [number, number][] = [];
  for (const s of spans) {
    const a = parseTime(s.start);
    const b = parseTime(s.end);
    if (a !== null) intervals.push([a, b ?? a]);
  }
  const point = (iso: string | null | undefined) => {
    const t = parseTime(iso);
    if (t !== null) intervals.push([t, t]);
  };
  for (const h of hops) {
    point(h.published);
    point(h.processed);
  }
  for (const m of order.milestones ?? []) point(m.at);
  const deadlineIso = order.deadline ?? order.diagnosis?.deadline ?? null;
  if (!order.closed) {
    point(deadlineIso);
    intervals.push([now, now]);
  }
  point(order.first_seen);
  point(order.last_seen);
  const lastActivity = intervals.length ? Math.max(...intervals.map((i) => i[1])) : now;
  if (zoom) {
    // Keep what overlaps the zoom, clipped to it, and the zoom's own edges.
    const kept = intervals.filter(([a, b]) => b >= zoom.from && a <= zoom.to).map(([a, b]): [number, number] => [Math.max(a, zoom.from), Math.min(b, zoom.to)]);
    intervals.length = 0;
    intervals.push(...kept, [zoom.from, zoom.from], [zoom.to, zoom.to]);
  }
  const lo = intervals.length ? Math.min(...intervals.map((i) => i[0])) : now;
  const hi = intervals.length ? Math.max(...intervals.map((i) => i[1])) : now;
  const known = outages.length ? outages : outagesFromSentence(order.diagnosis?.broker ?? null, order.diagnosis?.stage_since ?? order.first_seen, now);
  const shownOutages = known
    .map((o) => ({ a: parseTime(o.start), b: parseTime(o.end) ?? now, error: o.error }))
    .filter((o): o is { a: number; b: number; error: string | null } => o.a !== null && o.b >= lo && o.a <= hi);
  for (const o of shownOutages) {
    intervals.push([Math.max(o.a, lo), Math.max(o.a, lo)]);
    intervals.push([Math.min(o.b, hi), Math.min(o.b, hi)]);
  }
  const scale = foldedScale(intervals, { x0: TL.labelWidth, x1: TL.width - TL.right, minFoldMs: 5000, foldRatio: 0.25 });
  const x = (iso: string | null | undefined) => {
    const t = parseTime(iso);
    return t === null ? null : scale.x(t);
  };
  const end = order.closed ? lastActivity : now;

  const spanBars: TimelineModel['spans'] = [];
  const ticks: TimelineModel['ticks'] = [];
  for (const s of spans) {
    const lane = laneOf.get(`service:${s.service}`);
    const x0 = x(s.start);
    if (!lane || x0 === null) continue;
    if (zoom && ((parseTime(s.end) ?? 0) < zoom.from || (parseTime(s.start) ?? 0) > zoom.to)) continue;
    if (s.heartbeat) {
      ticks.push({ span: s, lane, x: x0 });
      continue;
    }
    // Clock skew can put an end before its start: draw from the earlier one.
    const x1 = x(s.end) ?? x0;
    spanBars.push({ span: s, lane, x: Math.min(x0, x1), w: Math.max(2, Math.abs(x1 - x0)), bad: isBadSpan(s) });
  }
  const hopShapes: TimelineModel['hops'] = [];
  for (const h of hops) {
    const q = laneOf.get(hopLaneKey(h));
    const x0 = x(h.published) ?? x(h.processed);
    if (!q || x0 === null) continue;
    if (zoom && ((parseTime(h.published) ?? 0) > zoom.to || (!h.open && (parseTime(h.processed) ?? 0) < zoom.from))) continue;
    const x1 = h.open ? scale.x(end) : x(h.processed) ?? x0;
    hopShapes.push({
      id: h.message_id,
      open: h.open,
      from: h.publisher ? laneOf.get(`service:${h.publisher}`) ?? null : null,
      queue: q,
      to: h.processor ? laneOf.get(`service:${h.processor}`) ?? null : null,
      x0,
      x1: Math.max(x0, x1),
      label: h.open
        ? `open for ${formatDuration((end - (parseTime(h.published) ?? end)) / 1000)}`
        : `waited ${formatDuration(((parseTime(h.processed) ?? 0) - (parseTime(h.published) ?? 0)) / 1000)}`,
    });
  }
  const hb = order.diagnosis?.heartbeat;
  // Silent: from the last heartbeat, or from the stage's start when none ever came.
  const silentAt = hb && hb.expected && hb.alive === false ? hb.last ?? order.diagnosis?.stage_since ?? order.first_seen : null;
  const silentSince = silentAt ? { x: x(silentAt) ?? TL.labelWidth, at: silentAt } : null;
  return {
    scale,
    lanes,
    height,
    now,
    spans: spanBars,
    ticks,
    hops: hopShapes,
    milestones: staggerLabels(
      (order.milestones ?? [])
        .filter((m) => !zoom || ((parseTime(m.at) ?? 0) >= zoom.from && (parseTime(m.at) ?? 0) <= zoom.to))
        .map((m) => ({ stage: m.stage, x: x(m.at) ?? TL.labelWidth })),
    ),
    deadline: order.closed ? null : x(deadlineIso),
    nowX: scale.x(end),
    showNow: !zoom || (end >= zoom.from && end <= zoom.to),
    silentSince,
    outages: shownOutages.map((o) => ({
      x0: scale.x(Math.max(o.a, lo)),
      x1: Math.max(scale.x(Math.min(o.b, hi)), scale.x(Math.max(o.a, lo)) + 2),
      label: `RabbitMQ unreachable ${formatClock(o.a)}–${formatClock(o.b)}`,
    })),
  };
}

export interface Brush {
  x0: number;
  x1: number;
}

/** Drag on the plot to zoom: `onBrush` gets the selection while dragging and null at the end, `onZoom` the time range. */
export interface ZoomHandlers {
  brush: Brush | null;
  onBrush(b: Brush | null): void;
  onZoom(w: TimeWindow): void;
}

function svgX(e: PointerEvent): number {
  const svg = (e.currentTarget as Element).closest('svg')!;
  const r = svg.getBoundingClientRect();
  return r.width > 0 ? ((e.clientX - r.left) * TL.width) / r.width : e.clientX;
}

export function renderTimeline(
  m: TimelineModel,
  selectedSpan: string | null,
  onSelect: (spanId: string) => void,
  label: string,
  zoom?: ZoomHandlers,
) {
  const laneMid = (l: Lane) => l.y + TL.laneHeight / 2;
  const bottom = m.height - TL.bottom;
  const shortSpan = m.scale.segments.every((s) => s.t1 - s.t0 < 60_000);
  return html`<svg
    class="timeline"
    data-testid="timeline"
    viewBox="0 0 ${TL.width} ${m.height}"
    width=${TL.width}
    height=${m.height}
    role="img"
    aria-label=${label}
  >
    <defs>
      <pattern id="ot-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
        <rect width="6" height="6" class="hatch-bg"></rect>
        <line x1="0" y1="0" x2="0" y2="6" class="hatch-line" stroke-width="3"></line>
      </pattern>
      <marker id="ot-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M0,0 L8,4 L0,8 z" class="arrow-head"></path>
      </marker>
    </defs>
    ${m.lanes.map(
      (l, i) => svg`<g class="lane ${l.kind} ${i % 2 ? 'odd' : 'even'}">
        <rect x="0" y=${l.y} width=${TL.width} height=${TL.laneHeight} class="lane-bg"></rect>
        <text x="6" y=${laneMid(l) + 4} class="lane-label">${l.kind === 'queue' ? '⇶ ' : ''}${truncate(l.label, 22)}</text>
      </g>`,
    )}
    ${zoom
      ? svg`<rect class="zoom-area" x=${TL.labelWidth} y=${TL.top} width=${TL.width - TL.labelWidth} height=${Math.max(0, bottom - TL.top)}
          @pointerdown=${(e: PointerEvent) => {
            const x = svgX(e);
            (e.currentTarget as Element).setPointerCapture?.(e.pointerId);
            zoom.onBrush({ x0: x, x1: x });
          }}
          @pointermove=${(e: PointerEvent) => {
            if (zoom.brush) zoom.onBrush({ x0: zoom.brush.x0, x1: svgX(e) });
          }}
          @pointerup=${(e: PointerEvent) => {
            const b = zoom.brush;
            zoom.onBrush(null);
            if (!b) return;
            const x1 = svgX(e);
            const [a, c] = [Math.min(b.x0, x1), Math.max(b.x0, x1)];
            if (c - a >= 6) zoom.onZoom({ from: Math.floor(m.scale.invert(a)), to: Math.ceil(m.scale.invert(c)) });
          }}
        ><title>Drag to zoom into a stretch of time</title></rect>`
      : nothing}
    ${m.outages.map(
      (o) => svg`<g class="outage"><rect x=${o.x0} y=${TL.top} width=${o.x1 - o.x0} height=${bottom - TL.top} fill="url(#ot-hatch)" class="outage-band"><title>${o.label}</title></rect>
        <text x=${o.x0 + 3} y=${bottom - 3} class="outage-label">broker down</text></g>`,
    )}
    ${m.scale.segments
      .filter((s, i) => i === 0 || s.x1 - s.x0 >= 40)
      .map(
      (s) => svg`<g class="axis-tick">
        <line x1=${s.x0} y1="14" x2=${s.x0} y2=${bottom} class="grid"></line>
        <text x=${s.x0 + 2} y="12" class="axis-label">${formatClock(s.t0, shortSpan)}</text>
      </g>`,
    )}
    ${m.scale.folds.map(
      (f) => svg`<g class="fold">
        <rect x=${f.x0} y="16" width=${f.x1 - f.x0} height=${bottom - 16} class="fold-band"></rect>
        <text x=${(f.x0 + f.x1) / 2} y="26" text-anchor="middle" class="fold-label">⋯ ${formatDuration((f.t1 - f.t0) / 1000)} ⋯</text>
        <title>${formatDuration((f.t1 - f.t0) / 1000)} without activity (folded)</title>
      </g>`,
    )}
    ${m.milestones.map(
      (ms) => svg`<g class="milestone-line"><line x1=${ms.x} y1="30" x2=${ms.x} y2=${bottom} class="milestone-rule"></line>
        <text x=${ms.x > TL.width - 110 ? ms.x - 2 : ms.x + 2} y=${ms.row ? 28 : 40} text-anchor=${ms.x > TL.width - 110 ? 'end' : 'start'} class="milestone-label">${ms.stage}</text></g>`,
    )}
    ${m.hops.map((h) => {
      const qy = laneMid(h.queue);
      const parts = [];
      if (h.from) parts.push(svg`<line x1=${h.x0} y1=${laneMid(h.from)} x2=${h.x0} y2=${qy} class="hop-link"></line>`);
      parts.push(svg`<line x1=${h.x0} y1=${qy} x2=${Math.max(h.x1, h.x0 + 2)} y2=${qy} class="hop-wait ${h.open ? 'open' : ''}"
        marker-end=${h.open ? 'url(#ot-arrow)' : nothing}></line>`);
      if (h.to && !h.open) parts.push(svg`<line x1=${h.x1} y1=${qy} x2=${h.x1} y2=${laneMid(h.to)} class="hop-link" marker-end="url(#ot-arrow)"></line>`);
      return svg`<g class="hop ${h.open ? 'open' : 'closed'}"><title>${h.id}: ${h.label}</title>${parts}
        ${h.open ? svg`<text x=${Math.max(h.x0, h.x1 - 120)} y=${qy - 5} class="hop-label">${h.label}</text>` : nothing}</g>`;
    })}
    ${m.spans.map(
      (s) => svg`<rect
        x=${s.x} y=${s.lane.y + 6} width=${s.w} height=${TL.laneHeight - 12}
        class="span-bar ${s.bad ? 'bad' : ''} ${selectedSpan === s.span.span_id ? 'selected' : ''}"
        data-span=${s.span.span_id}
        @click=${() => onSelect(s.span.span_id)}
      ><title>${s.span.service}: ${s.span.name} (${formatDuration(s.span.duration_ms / 1000)}, ${s.span.status}${s.bad ? ', failed' : ''})</title></rect>`,
    )}
    ${m.ticks.map(
      (t) => svg`<line x1=${t.x} y1=${t.lane.y + 4} x2=${t.x} y2=${t.lane.y + TL.laneHeight - 4} class="hb-tick"><title>heartbeat ${formatClock(t.span.start)}</title></line>`,
    )}
    ${m.silentSince
      ? svg`<g class="silent"><line x1=${m.silentSince.x} y1="30" x2=${m.nowX} y2="30" class="silent-line"></line>
        <text x=${m.silentSince.x + 2} y=${TL.top - 16 + 0} class="silent-label">silent since ${formatClock(m.silentSince.at)}</text></g>`
      : nothing}
    ${m.deadline !== null
      ? svg`<g class="deadline"><line x1=${m.deadline} y1="14" x2=${m.deadline} y2=${bottom} class="deadline-line"></line>
        <text x=${m.deadline - 2} y=${TL.top - 4} text-anchor="end" class="deadline-label">deadline</text></g>`
      : nothing}
    ${zoom?.brush
      ? svg`<rect class="brush" x=${Math.min(zoom.brush.x0, zoom.brush.x1)} y=${TL.top} width=${Math.abs(zoom.brush.x1 - zoom.brush.x0)} height=${Math.max(0, bottom - TL.top)}></rect>`
      : nothing}
    <text x=${TL.width - TL.right} y="12" text-anchor="end" class="axis-label">${formatClock(m.scale.domain[1], shortSpan)}</text>
    ${m.showNow
      ? svg`<g class="now"><line x1=${m.nowX} y1="14" x2=${m.nowX} y2=${bottom} class="now-line"></line>
      <text x=${m.nowX - 2} y=${bottom - 3} text-anchor="end" class="now-label">${m.deadline !== null ? 'now' : 'end'}</text></g>`
      : nothing}
  </svg>`;
}

/**
 * The outage the diagnosis names ("RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) during this
 * stage", "… unreachable since 14:02:11Z …"), for a reader without broker.read: the times carry
 * no date, so they are placed on the day of `anchor` (the next day when they would precede it).
 */
export function outagesFromSentence(sentence: string | null, anchor: string | null, now: number): BrokerOutage[] {
  if (!sentence) return [];
  const base = parseTime(anchor);
  if (base === null) return [];
  const at = (clock: string): number => {
    const day = new Date(base).toISOString().slice(0, 10);
    let t = Date.parse(`${day}T${clock}Z`);
    if (t < base - 1000) t += 86_400_000;
    return t;
  };
  const range = /(\d\d:\d\d:\d\d)Z\s*[–-]\s*(\d\d:\d\d:\d\d)Z/.exec(sentence);
  if (range) {
    const a = at(range[1]);
    let b = at(range[2]);
    if (b < a) b += 86_400_000;
    return [{ start: new Date(a).toISOString(), end: new Date(b).toISOString(), error: null }];
  }
  const since = /unreachable since (\d\d:\d\d:\d\d)Z/.exec(sentence);
  if (since) return [{ start: new Date(Math.min(at(since[1]), now)).toISOString(), end: null, error: null }];
  return [];
}

/** Puts close milestone labels on alternating rows so they do not overlap. */
function staggerLabels(items: { stage: string; x: number }[]): { stage: string; x: number; row: number }[] {
  const lastX = [-Infinity, -Infinity];
  return items.map((m) => {
    const width = m.stage.length * 6 + 8;
    const row = m.x >= lastX[0] ? 0 : m.x >= lastX[1] ? 1 : 0;
    lastX[row] = m.x + width;
    return { ...m, row };
  });
}

function truncate(text: string, n: number): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}
