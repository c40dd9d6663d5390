// One order's journey, /ui/orders/{id}: the diagnosis in words first, badges, the milestone rail
// (reached / current with countdown or "overdue by" / future greyed, from /api/v1/rules), the
// timeline, spans and hops tables (tab= in the URL), the heartbeat box, Jaeger links and the
// copy buttons. Polls every 5 s while the order is open; stops once it is closed.

import { html, nothing } from 'lit';
import { LightElement, onTick } from '../lib/base';
import { apiGet } from '../lib/api';
import { Poller, type PollState } from '../lib/poller';
import { currentParams, navigate, ROUTE_EVENT } from '../lib/router';
import { formatClock, formatDateTime, formatDuration, parseTime, secondsSince } from '../lib/format';
import { orderApiPath } from '../lib/links';
import { copyText, orderChatLine } from '../lib/chat';
import type { Broker, Hop, OrderDetail, RuleStage, Rules, Span } from '../lib/types';
import { emptyState, errorState, externalLink, loadingState } from '../components/common';
import { iconCopy, iconOk, iconWarn, iconClock } from '../components/icons';
import { isBadSpan, renderTimeline, timelineModel, type Brush, type TimeWindow, type ZoomHandlers } from '../components/timeline';
import { searchBox } from './not-found';
import { stageLabel } from './stuck-view';

type Tab = 'timeline' | 'spans' | 'hops';
const TABS: { id: Tab; label: string }[] = [
  { id: 'timeline', label: 'Timeline' },
  { id: 'spans', label: 'Spans' },
  { id: 'hops', label: 'Hops' },
];

export interface RailEntry {
  stage: string;
  state: 'reached' | 'current' | 'future';
  at: string | null;
  service: string | null;
  spent: number | null; // seconds in the previous stage
  allowed: number | null; // the previous stage's allowance
  expectedBy: string | null;
}

/** The milestone rail: rule stages in order (or the order's own milestones without rules). */
export function milestoneRail(order: OrderDetail, rules: Rules | null): RailEntry[] {
  const reached = new Map((order.milestones ?? []).map((m) => [m.stage, m]));
  const stages: RuleStage[] = rules
    ? [...rules.stages].sort((a, b) => a.index - b.index)
    : (order.milestones ?? []).map((m, i) => ({
        name: m.stage,
        index: i,
        terminal: false,
        within_seconds: null,
        next_by: null,
        heartbeat_seconds: null,
        received_by: null,
        within_receipt_seconds: null,
        processed_by: null,
        within_processing_seconds: null,
        severity: '',
      }));
  const current = order.closed ? null : order.stage ?? null;
  const out: RailEntry[] = [];
  let prevAt: number | null = null;
  let prevRule: RuleStage | null = null;
  let firstUnreachedSeen = false;
  for (const st of stages) {
    const m = reached.get(st.name);
    const at = m ? parseTime(m.at) : null;
    let state: RailEntry['state'] = m ? 'reached' : 'future';
    if (st.name === current) state = 'current';
    // An order with no milestone yet waits for the first stage.
    if (!current && !order.closed && !m && !firstUnreachedSeen && reached.size === 0) state = 'current';
    if (!m) firstUnreachedSeen = true;
    out.push({
      stage: st.name,
      state,
      at: m?.at ?? null,
      service: m?.service ?? null,
      spent: at !== null && prevAt !== null ? (at - prevAt) / 1000 : null,
      allowed: prevRule?.within_seconds ?? null,
      expectedBy: prevRule?.next_by ?? st.received_by ?? null,
    });
    if (at !== null) prevAt = at;
    prevRule = st;
  }
  return out;
}

export class OrderView extends LightElement {
  static override properties = {
    orderId: { attribute: false },
    broker: { attribute: false },
    order: { state: true },
    rules: { state: true },
    copied: { state: true },
  };

  orderId = '';
  broker: PollState<Broker> = { data: null, error: null, loading: true, updatedAt: null };
  order: PollState<OrderDetail> = { data: null, error: null, loading: true, updatedAt: null };
  rules: Rules | null = null;
  copied = '';
  private poller: Poller<OrderDetail> | null = null;
  private cleanups: (() => void)[] = [];
  private tab: Tab = 'timeline';
  private span: string | null = null;
  private zoom: TimeWindow | null = null;
  private spanService: string | null = null;
  private errorsOnly = false;
  private brush: Brush | null = null;
  private scrolledTo: string | null = null;
  private readonly onRoute = () => this.readUrl();

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener(ROUTE_EVENT, this.onRoute);
    this.cleanups.push(onTick(() => this.requestUpdate()));
    this.readUrl();
    this.loadRules();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener(ROUTE_EVENT, this.onRoute);
    this.poller?.stop();
    this.poller = null;
    for (const c of this.cleanups) c();
    this.cleanups = [];
  }

  override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has('orderId') && this.orderId) {
      const path = orderApiPath(this.orderId);
      if (!this.poller) {
        this.poller = new Poller<OrderDetail>(path, { intervalMs: 5000 }, (s) => {
          this.order = s;
          // A closed order no longer changes: stop polling it.
          this.poller?.setIntervalMs(s.data?.closed ? 0 : 5000);
        });
        this.poller.start();
      } else {
        this.poller.setIntervalMs(5000);
        this.poller.setPath(path);
      }
    }
  }

  override updated(): void {
    // span= in the URL: scroll its row into view once it exists.
    if (this.span && this.scrolledTo !== this.span) {
      const row = this.querySelector(`tr[data-span="${CSS.escape(this.span)}"]`);
      if (row) {
        this.scrolledTo = this.span;
        row.scrollIntoView?.({ block: 'nearest' });
      }
    }
  }

  private readUrl(): void {
    const p = currentParams();
    const t = p.get('tab');
    this.tab = t === 'spans' || t === 'hops' ? t : 'timeline';
    this.span = p.get('span');
    this.spanService = p.get('svc') || null;
    this.errorsOnly = p.get('errors') === '1';
    const from = parseTime(p.get('from'));
    const to = parseTime(p.get('to'));
    this.zoom = from !== null && to !== null && to > from ? { from, to } : null;
    this.requestUpdate();
  }

  private async loadRules(): Promise<void> {
    const r = await apiGet<Rules>('/api/v1/rules');
    if (r.kind === 'ok') this.rules = r.data;
  }

  private setParam(key: string, value: string | null): void {
    this.setParams({ [key]: value }, key === 'span');
  }

  private setParams(values: Record<string, string | null>, replace = false): void {
    const p = currentParams();
    for (const [key, value] of Object.entries(values)) {
      if (value === null) p.delete(key);
      else p.set(key, value);
    }
    const q = p.toString();
    navigate(`${location.pathname}${q ? `?${q}` : ''}`, { replace });
  }

  private async copy(text: string): Promise<void> {
    this.copied = (await copyText(text)) ? 'Copied.' : `Copy failed; the text: ${text}`;
    setTimeout(() => (this.copied = ''), 4000);
  }

  private renderHead(o: OrderDetail, now: number) {
    const d = o.diagnosis;
    const deadline = parseTime(o.deadline ?? d?.deadline ?? null);
    const left = deadline === null ? null : (deadline - now) / 1000;
    return html`<div class="order-head">
        <h1><span class="muted">Order</span> <span data-testid="order-id">${o.order_id}</span></h1>
        <span class="badge" data-testid="stage-badge">${stageLabel(o.stage)}</span>
        ${o.closed
          ? html`<span class="badge ok" data-testid="stuck-badge" data-stuck="false">${iconOk()} closed</span>`
          : o.stuck
            ? html`<span class="badge bad" data-testid="stuck-badge" data-stuck="true">${iconWarn()} STUCK · ${o.stuck_kind ?? ''}</span>`
            : html`<span class="badge ok" data-testid="stuck-badge" data-stuck="false">${iconOk()} on time</span>`}
        ${o.partner ? html`<span class="muted">partner <code>${o.partner}</code></span>` : nothing}
      </div>
      <p class="diagnosis ${(d?.summary ?? '') === '' ? 'blank' : ''}" data-testid="diagnosis-summary">${d?.summary ?? ''}</p>
      ${o.closed ? html`<p class="ok-text">${iconOk()} Closed: reached ${stageLabel(o.stage)} at ${formatDateTime(o.stage_since)}; first seen ${formatDateTime(o.first_seen)}.</p>` : nothing}
      ${!o.closed && d?.expected
        ? html`<p>
            ${iconClock()} Expected: ${d.expected}${d.expected_service ? html` (service <strong>${d.expected_service}</strong>)` : nothing}${left === null
              ? nothing
              : left >= 0
                ? html`, due in ${formatDuration(left)} (${formatClock(deadline)})`
                : html`, <strong class="bad-text">overdue by ${formatDuration(-left)}</strong> (deadline ${formatClock(deadline)})`}
          </p>`
        : nothing}
      ${d?.last_span
        ? html`<p class="muted">
            Last span: ${d.last_span.service} '<span class="telemetry">${d.last_span.operation}</span>' ${d.last_span.status}${d.last_span.step_status
              ? ` step ${d.last_span.step_status}`
              : ''}
            at ${formatDateTime(d.last_span.end)}${d.last_span.error ? html` — error: <span class="telemetry">${d.last_span.error}</span>` : nothing}
          </p>`
        : nothing}
      ${d?.open_hops?.length
        ? html`<ul class="open-hops" aria-label="Unprocessed messages">
            ${d.open_hops.map(
              (h) => html`<li data-testid="open-hop" data-message=${h.message_id}>
                ${iconWarn()} Message <code>${h.message_id}</code> to ${h.exchange ?? '?'} / ${h.routing_key ?? '?'}${h.queue ? html` (queue ${h.queue})` : nothing},
                published ${formatClock(h.published)}, not processed for ${formatDuration(secondsSince(h.published, now))}.
                ${h.broker ? html`<br /><span class="broker-sentence" data-testid="open-hop-broker">${h.broker}</span>` : html`<span data-testid="open-hop-broker" class="muted">no broker data</span>`}
              </li>`,
            )}
          </ul>`
        : nothing}
      ${d?.broker ? html`<p class="banner warn">${iconWarn()} <span class="telemetry">${d.broker}</span></p>` : nothing}
      <div class="actions">
        <button class="action" @click=${() => this.copy(location.href)}>${iconCopy()} Copy link</button>
        <button class="action" data-testid="copy-chat" @click=${() => this.copy(orderChatLine(o, Date.now()))}>${iconCopy()} Copy for chat</button>
        ${d?.jaeger_links?.length ? externalLink(d.jaeger_links[d.jaeger_links.length - 1], 'Latest trace in Jaeger') : nothing}
        ${externalLink(d?.jaeger_search_link ?? o.jaeger_search_link, `All traces in Jaeger${d?.trace_ids?.length ? ` (${d.trace_ids.length})` : ''}`, 'jaeger-all-link')}
        <span class="muted" role="status">${this.copied}</span>
      </div>`;
  }

  private renderRail(o: OrderDetail, now: number) {
    const rail = milestoneRail(o, this.rules);
    if (rail.length === 0) return html`<p class="muted">No milestone reached yet${this.rules ? '' : ' (rules unavailable)'}.</p>`;
    const deadline = parseTime(o.deadline ?? o.diagnosis?.deadline ?? null);
    return html`<ol class="rail" aria-label="Milestones">
      ${rail.map((r) => {
        const over = r.spent !== null && r.allowed !== null && r.spent > r.allowed;
        return html`<li class="milestone ${r.state}" data-testid="milestone" data-stage=${r.stage} data-state=${r.state}>
          <span class="ms-name">${r.state === 'reached' ? iconOk() : r.state === 'current' ? iconClock() : nothing}${r.stage}</span>
          ${r.at
            ? html`<span class="ms-when">${formatClock(r.at)}${r.service ? ` · ${r.service}` : ''}</span>`
            : nothing}
          ${r.spent !== null
            ? html`<span class="ms-spent ${over ? 'slow' : ''}"
                >${formatDuration(r.spent)}${r.allowed !== null ? ` / ${formatDuration(r.allowed)}${over ? ' over' : ''}` : ''}</span
              >`
            : nothing}
          ${r.state === 'current' && !o.closed
            ? html`<span class="ms-due ${deadline !== null && deadline < now ? 'slow' : ''}"
                >${deadline === null
                  ? 'no deadline'
                  : deadline >= now
                    ? `next due in ${formatDuration((deadline - now) / 1000)}`
                    : `overdue by ${formatDuration((now - deadline) / 1000)}`}${o.expected_service ? ` · expects ${o.expected_service}` : ''}</span
              >`
            : nothing}
          ${r.state === 'future' && r.expectedBy ? html`<span class="muted">by ${r.expectedBy}</span>` : nothing}
        </li>`;
      })}
    </ol>`;
  }

  private renderHeartbeat(o: OrderDetail, now: number) {
    const hb = o.diagnosis?.heartbeat;
    if (!hb) return nothing;
    const alive = hb.expected ? hb.alive !== false : true;
    return html`<section class="box heartbeat" data-testid="heartbeat" data-alive=${alive ? 'true' : 'false'} aria-labelledby="h-hb">
      <h2 id="h-hb">Heartbeat</h2>
      ${hb.expected
        ? html`<p>Expected every ${formatDuration(hb.interval_seconds)}; last ${hb.last ? html`${formatClock(hb.last)} (${formatDuration(secondsSince(hb.last, now))} ago)` : 'never'}.</p>
            <p class=${alive ? 'ok-text' : 'bad-text'}>${alive ? html`${iconOk()} alive` : html`${iconWarn()} silent since ${hb.last ? formatClock(hb.last) : 'the start'}`}</p>`
        : html`<p class="muted">No heartbeat expected in this stage${o.last_heartbeat ? html`; last one ${formatClock(o.last_heartbeat)}` : nothing}.</p>`}
    </section>`;
  }

  private renderSpans(o: OrderDetail) {
    const all = o.spans ?? [];
    if (all.length === 0) return emptyState('No span of this order is stored.');
    const services = [...new Set(all.map((s) => s.service))].sort();
    const spans = all.filter((s) => (!this.spanService || s.service === this.spanService) && (!this.errorsOnly || isBadSpan(s)));
    return html`${o.spans_truncated ? html`<p class="banner warn">Only the latest ${all.length} spans are shown; the rest are in Jaeger.</p>` : nothing}
      <div class="span-filters">
        <label
          >Service
          <select data-testid="span-service" @change=${(e: Event) => this.setParam('svc', (e.target as HTMLSelectElement).value || null)}>
            <option value="" ?selected=${!this.spanService}>all</option>
            ${services.map((sv) => html`<option value=${sv} ?selected=${sv === this.spanService}>${sv}</option>`)}
          </select></label
        >
        <label
          ><input type="checkbox" data-testid="span-errors" .checked=${this.errorsOnly} @change=${(e: Event) => this.setParam('errors', (e.target as HTMLInputElement).checked ? '1' : null)} />
          errors and failed steps only</label
        >
        <span class="muted">${spans.length} of ${all.length} spans</span>
      </div>
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data spans">
          <caption class="offscreen">Spans of the order</caption>
          <thead>
            <tr>
              <th scope="col">Start</th>
              <th scope="col">Service</th>
              <th scope="col">Name</th>
              <th scope="col" class="num">Duration</th>
              <th scope="col">Status</th>
              <th scope="col">Stage</th>
              <th scope="col">Message</th>
              <th scope="col">Jaeger</th>
            </tr>
          </thead>
          <tbody>
            ${spans.map((s) => this.renderSpanRow(s))}
          </tbody>
        </table>
      </div>`;
  }

  private renderSpanRow(s: Span) {
    const bad = isBadSpan(s);
    const selected = this.span === s.span_id;
    return html`<tr data-testid="span-row" data-span=${s.span_id} class="${bad ? 'bad' : ''} ${selected ? 'selected' : ''}">
      <td>${formatClock(s.start, true)}</td>
      <td>${s.service}</td>
      <th scope="row">
        <button class="linklike" @click=${() => this.setParam('span', selected ? null : s.span_id)}><span class="telemetry">${s.name}</span></button>
        ${s.heartbeat ? html`<span class="tag">heartbeat</span>` : nothing}
      </th>
      <td class="num">${formatDuration(s.duration_ms / 1000)}</td>
      <td>${bad ? html`<span class="tag bad">${iconWarn()} ${s.status}${s.step_status && s.step_status !== 'OK' ? ` / ${s.step_status}` : ''}</span>` : s.status}
        ${s.error ? html`<br /><span class="telemetry bad-text">${s.error}</span>` : nothing}</td>
      <td>${s.stage ?? ''}</td>
      <td>${s.messaging
        ? html`<span class="telemetry">${s.messaging.operation ?? ''} ${s.messaging.exchange ?? ''}${s.messaging.routing_key ? ` / ${s.messaging.routing_key}` : ''}${s.messaging.queue ? ` → ${s.messaging.queue}` : ''}</span>`
        : nothing}</td>
      <td>${externalLink(s.jaeger_link, 'trace', 'span-jaeger-link', `Span ${s.name} in Jaeger`)}</td>
    </tr>`;
  }

  private renderHops(o: OrderDetail, now: number) {
    const hops = [...(o.hops ?? [])].sort((a, b) => Number(b.open) - Number(a.open));
    if (hops.length === 0) return emptyState('No message hop recorded for this order.');
    const brokerOf = new Map((o.diagnosis?.open_hops ?? []).map((h) => [h.message_id, h.broker ?? null]));
    return html`<div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
      <table class="data hops">
        <caption class="offscreen">Message hops of the order</caption>
        <thead>
          <tr>
            <th scope="col">Message</th>
            <th scope="col">Exchange / routing key</th>
            <th scope="col">Queue</th>
            <th scope="col">Published</th>
            <th scope="col">Processed</th>
            <th scope="col" class="num">Wait</th>
          </tr>
        </thead>
        <tbody>
          ${hops.map((h: Hop) => {
            const wait = h.open ? secondsSince(h.published, now) : ((parseTime(h.processed) ?? 0) - (parseTime(h.published) ?? 0)) / 1000;
            return html`<tr data-testid="hop-row" data-message=${h.message_id} class=${h.open ? 'bad' : ''}>
              <th scope="row"><code>${h.message_id}</code>${h.open ? html` <span class="tag bad">${iconWarn()} open</span>` : nothing}</th>
              <td>${h.exchange ?? '—'} / ${h.routing_key ?? '—'}</td>
              <td>${h.queue ?? '—'}${h.open && brokerOf.get(h.message_id) ? html`<br /><span class="muted">${brokerOf.get(h.message_id)}</span>` : nothing}</td>
              <td>${h.publisher ?? '?'} · ${formatClock(h.published, true)}</td>
              <td>${h.open ? html`<span class="bad-text">not yet</span>` : html`${h.processor ?? '?'} · ${formatClock(h.processed, true)}`}</td>
              <td class="num">${formatDuration(wait)}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>`;
  }

  private renderSelectedSpan(o: OrderDetail) {
    if (!this.span) return nothing;
    const s = (o.spans ?? []).find((x) => x.span_id === this.span);
    if (!s) return html`<p class="muted">Span ${this.span} is not among the spans shown.</p>`;
    return html`<section class="box span-detail" aria-label="Selected span">
      <h3><span class="telemetry">${s.name}</span> <span class="muted">(${s.service})</span></h3>
      <dl class="pairs">
        <dt>Start</dt><dd>${formatDateTime(s.start)} (${formatClock(s.start, true)})</dd>
        <dt>Duration</dt><dd>${formatDuration(s.duration_ms / 1000)}</dd>
        <dt>Status</dt><dd>${s.status}${s.step_status ? ` · step ${s.step_status}` : ''}</dd>
        ${s.error ? html`<dt>Error</dt><dd class="telemetry">${s.error}</dd>` : nothing}
        <dt>Trace</dt><dd><code>${s.trace_id}</code> / <code>${s.span_id}</code></dd>
      </dl>
      ${externalLink(s.jaeger_link, 'Open this span in Jaeger')}
      <button class="linklike" @click=${() => this.setParam('span', null)}>Clear selection</button>
    </section>`;
  }

  private renderBody(o: OrderDetail) {
    const now = Date.now();
    const outages = this.broker.data?.outages ?? [];
    const model = timelineModel(o, now, outages, this.zoom);
    const zoom: ZoomHandlers = {
      brush: this.brush,
      onBrush: (b) => {
        this.brush = b;
        this.requestUpdate();
      },
      onZoom: (w) => this.setParams({ from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString() }),
    };
    return html`${this.renderHead(o, now)}
      <section aria-labelledby="h-rail"><h2 id="h-rail" class="offscreen">Milestones</h2>${this.renderRail(o, now)}</section>
      <div class="order-grid">
        <div class="order-main">
          <div role="tablist" class="tabs" aria-label="Order details">
            ${TABS.map(
              (t) => html`<button
                role="tab"
                id="tab-${t.id}"
                data-testid="tab-${t.id}"
                aria-selected=${this.tab === t.id ? 'true' : 'false'}
                aria-controls="panel-${t.id}"
                tabindex=${this.tab === t.id ? 0 : -1}
                @click=${() => this.setParam('tab', t.id === 'timeline' ? null : t.id)}
                @keydown=${(e: KeyboardEvent) => this.tabKey(e)}
              >
                ${t.label}
              </button>`,
            )}
          </div>
          <div role="tabpanel" id="panel-timeline" aria-labelledby="tab-timeline" ?hidden=${this.tab !== 'timeline'}>
            <div class="scroll-x timeline-wrap" tabindex="0" role="region" aria-label="Timeline, scrolls sideways on narrow screens">
              ${renderTimeline(model, this.span, (id) => this.setParam('span', id), `Timeline of order ${o.order_id}: ${model.lanes.length} lanes, ${model.spans.length} spans, ${model.hops.length} message hops${model.scale.folds.length ? `, ${model.scale.folds.length} idle gaps folded` : ''}. The same data is in the Spans and Hops tabs.`, zoom)}
            </div>
            ${this.zoom
              ? html`<p class="zoom-note">
                  Zoomed to ${formatDateTime(this.zoom.from)} – ${formatClock(this.zoom.to, true)}
                  <button class="action" data-testid="zoom-reset" @click=${() => this.setParams({ from: null, to: null })}>Show the whole journey</button>
                </p>`
              : html`<p class="zoom-note muted">Drag across the timeline to zoom in.</p>`}
            <p class="legend muted">
              Bars: spans (red: error or failed step). Lines in a queue lane: a message waiting (dashed red: still open, up to now).
              Ticks: heartbeats. Hatched: broker unreachable. ⋯ marks a folded idle gap.
            </p>
            ${this.renderSelectedSpan(o)}
          </div>
          <div role="tabpanel" id="panel-spans" aria-labelledby="tab-spans" ?hidden=${this.tab !== 'spans'}>${this.renderSpans(o)}</div>
          <div role="tabpanel" id="panel-hops" aria-labelledby="tab-hops" ?hidden=${this.tab !== 'hops'}>${this.renderHops(o, now)}</div>
        </div>
        <aside class="order-side">${this.renderHeartbeat(o, now)}</aside>
      </div>`;
  }

  private tabKey(e: KeyboardEvent): void {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = TABS.findIndex((t) => t.id === this.tab);
    const next = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
    this.setParam('tab', next.id === 'timeline' ? null : next.id);
    this.updateComplete.then(() => this.querySelector<HTMLElement>(`#tab-${next.id}`)?.focus());
  }

  override render() {
    const s = this.order;
    if (s.data === null || (s.data && s.data.order_id !== this.orderId)) {
      if (s.error) {
        return html`<section class="view order">
          <h1>Order <span data-testid="order-id">${this.orderId}</span></h1>
          ${errorState(s.error.message, s.error.forbidden)}
          ${s.error.status === 404 ? html`<p>Look for another order:</p>${searchBox(this.orderId)}` : nothing}
        </section>`;
      }
      return html`<section class="view order">${loadingState(`order ${this.orderId}`)}</section>`;
    }
    return html`<section class="view order">
      ${s.error ? errorState(s.error.message, s.error.forbidden) : nothing} ${this.renderBody(s.data)}
    </section>`;
  }
}

customElements.define('ot-order-view', OrderView);
