// The KPIs the request names, /ui/kpi: detection lag, time stuck, shares of orders closed /
// stuck / lost, per stage and per service, on-time share per partner (pseudonym). window= in the
// URL; polls every 10 s.

import { html, nothing } from 'lit';
import { WindowView } from '../lib/window-view';
import { formatCount, formatDuration, formatShare } from '../lib/format';
import type { Kpi } from '../lib/types';
import { pollStates } from '../components/common';

export const KPI_WINDOWS = ['1h', '24h', '7d', '30d'];

export class KpiView extends WindowView<Kpi> {
  constructor() {
    super('/ui/kpi', '/api/v1/kpi', '24h', KPI_WINDOWS);
  }

  private figure(id: string, label: string, value: string, raw: number | null, note?: string) {
    return html`<div class="kpi" data-testid="kpi-${id}" data-value=${raw ?? ''}>
      <dt>${label}</dt>
      <dd>${value}${note ? html`<span class="muted kpi-note">${note}</span>` : nothing}</dd>
    </div>`;
  }

  private renderKpi(k: Kpi) {
    const lag = k.detection_lag_seconds;
    const st = k.time_stuck_seconds;
    const o = k.orders;
    return html`<h2>Detection and time stuck</h2>
      <dl class="totals">
        ${this.figure('detection-lag-p50', 'Detection lag p50', formatDuration(lag.p50), lag.p50, `${formatCount(lag.count)} alerts`)}
        ${this.figure('detection-lag-p95', 'Detection lag p95', formatDuration(lag.p95), lag.p95)}
        ${this.figure('detection-lag-p99', 'Detection lag p99', formatDuration(lag.p99), lag.p99)}
        ${this.figure('detection-lag-max', 'Detection lag max', formatDuration(lag.max), lag.max)}
        ${this.figure('time-stuck-p50', 'Time stuck p50', formatDuration(st.p50), st.p50, `${formatCount(st.episodes)} episodes, ${formatCount(st.ongoing)} ongoing`)}
        ${this.figure('time-stuck-p95', 'Time stuck p95', formatDuration(st.p95), st.p95)}
        ${this.figure('time-stuck-total', 'Time stuck, total', formatDuration(st.total), st.total)}
      </dl>
      <h2>Orders started in the window</h2>
      <dl class="totals">
        ${this.figure('orders-started', 'Started', formatCount(o.started), o.started)}
        ${this.figure('orders-closed', 'Closed', formatCount(o.closed), o.closed, formatShare(o.closed_share))}
        ${this.figure('orders-open', 'Open', formatCount(o.open), o.open)}
        ${this.figure('orders-stuck', 'Stuck', formatCount(o.stuck), o.stuck, formatShare(o.stuck_share))}
        ${this.figure('orders-lost', 'Lost', formatCount(o.lost), o.lost, formatShare(o.lost_share))}
      </dl>
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data" data-testid="kpi-by-stage">
          <caption>Per stage: lead time (time to reach the next stage), stuck and lost</caption>
          <thead><tr><th scope="col">Stage</th><th scope="col" class="num">Reached</th><th scope="col" class="num">Stuck</th><th scope="col" class="num">Lost</th><th scope="col" class="num">Lead time p50</th><th scope="col" class="num">p95</th></tr></thead>
          <tbody>
            ${k.by_stage.map(
              (s) => html`<tr data-stage=${s.stage}><th scope="row">${s.stage}</th><td class="num">${formatCount(s.reached)}</td><td class="num">${formatCount(s.stuck)}</td>
                <td class="num">${formatCount(s.lost)}</td><td class="num">${formatDuration(s.lead_time_p50_seconds)}</td><td class="num">${formatDuration(s.lead_time_p95_seconds)}</td></tr>`,
            )}
          </tbody>
        </table>
      </div>
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data" data-testid="kpi-by-service">
          <caption>Per expected service</caption>
          <thead><tr><th scope="col">Service</th><th scope="col" class="num">Stuck</th><th scope="col" class="num">Lost</th></tr></thead>
          <tbody>
            ${k.by_service.map((s) => html`<tr data-service=${s.service}><th scope="row">${s.service}</th><td class="num">${formatCount(s.stuck)}</td><td class="num">${formatCount(s.lost)}</td></tr>`)}
          </tbody>
        </table>
      </div>
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data" data-testid="kpi-partners">
          <caption>Partners (pseudonyms): orders closed on time</caption>
          <thead><tr><th scope="col">Partner</th><th scope="col" class="num">Orders</th><th scope="col" class="num">Closed</th><th scope="col" class="num">On time</th><th scope="col" class="num">On-time share</th></tr></thead>
          <tbody>
            ${k.partners.length === 0
              ? html`<tr><td colspan="5" class="muted">No partner in this window.</td></tr>`
              : k.partners.map(
                  (p) => html`<tr><th scope="row"><a href="/ui/orders?q=${encodeURIComponent(`partner:${p.partner}`)}"><code>${p.partner}</code></a></th>
                    <td class="num">${formatCount(p.orders)}</td><td class="num">${formatCount(p.closed)}</td><td class="num">${formatCount(p.on_time)}</td><td class="num">${formatShare(p.on_time_share)}</td></tr>`,
                )}
          </tbody>
        </table>
      </div>`;
  }

  override render() {
    return html`<section class="view kpi-view">
      ${this.renderHead('KPIs', 'kpi-window')}
      ${pollStates(this.data, 'the KPIs', () => false, '', (k) => this.renderKpi(k))}
    </section>`;
  }
}

customElements.define('ot-kpi-view', KpiView);
