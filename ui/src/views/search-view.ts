// Search results, /ui/orders?q=partner:…|trace:…|msg:… (the list API's partner=, trace_id=,
// message_id=, closed orders included). A plain q is an order id: the page links to it.

import { html, nothing } from 'lit';
import { LightElement } from '../lib/base';
import { Poller, type PollState } from '../lib/poller';
import { currentParams, ROUTE_EVENT } from '../lib/router';
import { searchApiFilter } from '../lib/url-state';
import { formatClock, formatCount } from '../lib/format';
import { orderPath } from '../lib/links';
import type { OrderList } from '../lib/types';
import { pollStates } from '../components/common';
import { searchBox } from './not-found';
import { stageLabel } from './stuck-view';

export class SearchView extends LightElement {
  static override properties = { result: { state: true } };
  result: PollState<OrderList> = { data: null, error: null, loading: true, updatedAt: null };
  private q = '';
  private poller: Poller<OrderList> | null = null;
  private readonly onRoute = () => this.readUrl();

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener(ROUTE_EVENT, this.onRoute);
    this.readUrl();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener(ROUTE_EVENT, this.onRoute);
    this.poller?.stop();
  }

  private readUrl(): void {
    if (location.pathname !== '/ui/orders') return;
    this.q = currentParams().get('q') ?? '';
    const f = searchApiFilter(this.q);
    if (!f) {
      this.poller?.stop();
      this.poller = null;
      this.requestUpdate();
      return;
    }
    const p = new URLSearchParams({ [f.key]: f.value, closed: 'true', limit: '100' });
    const path = `/api/v1/orders?${p.toString()}`;
    if (!this.poller) {
      this.poller = new Poller<OrderList>(path, { intervalMs: 0 }, (s) => (this.result = s));
      this.poller.start();
    } else this.poller.setPath(path);
    this.requestUpdate();
  }

  override render() {
    const f = searchApiFilter(this.q);
    return html`<section class="view search-view">
      <h1>Search</h1>
      ${searchBox(this.q)}
      ${!f
        ? this.q
          ? html`<p>Order id <a href=${orderPath(this.q.trim())}>${this.q.trim()}</a>: open it.</p>`
          : html`<p class="muted">Type an order id, <code>partner:&lt;pseudonym&gt;</code>, <code>trace:&lt;32 hex&gt;</code> or <code>msg:&lt;message id&gt;</code>.</p>`
        : pollStates(
            this.result,
            'matching orders',
            (d) => d.orders.length === 0,
            `No order matches ${this.q}.`,
            (d) => html`<p class="count">${formatCount(d.orders.length)}${d.total !== undefined ? html` of ${formatCount(d.total)}` : nothing} orders match <code>${this.q}</code>.</p>
              <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
                <table class="data" data-testid="search-results">
                  <caption class="offscreen">Orders matching ${this.q}</caption>
                  <thead><tr><th scope="col">Order</th><th scope="col">Stage</th><th scope="col">State</th><th scope="col">Last seen</th><th scope="col">Summary</th></tr></thead>
                  <tbody>
                    ${d.orders.map(
                      (o) => html`<tr data-testid="search-row" data-order=${o.order_id}>
                        <th scope="row"><a data-testid="order-link" href=${orderPath(o.order_id)}>${o.order_id}</a></th>
                        <td>${stageLabel(o.stage)}</td>
                        <td>${o.closed ? 'closed' : o.stuck ? html`<span class="tag bad">stuck · ${o.stuck_kind}</span>` : 'on time'}</td>
                        <td>${formatClock(o.last_seen)}</td>
                        <td class="telemetry">${o.summary ?? ''}</td>
                      </tr>`,
                    )}
                  </tbody>
                </table>
              </div>`,
          )}
    </section>`;
  }
}

customElements.define('ot-search-view', SearchView);
