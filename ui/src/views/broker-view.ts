// The broker page, /ui/broker: RabbitMQ as the gateway's monitor last saw it (queues with rates,
// outages). The data comes from the frame's broker poll.

import { html, nothing } from 'lit';
import { LightElement } from '../lib/base';
import type { PollState } from '../lib/poller';
import { formatClock, formatDateTime } from '../lib/format';
import type { Broker } from '../lib/types';
import { pollStates } from '../components/common';
import { iconDown, iconOk } from '../components/icons';
import { outagesList, queuesTable } from './queues';

export class BrokerView extends LightElement {
  static override properties = { broker: { attribute: false } };
  broker: PollState<Broker> = { data: null, error: null, loading: true, updatedAt: null };

  override render() {
    return html`<section class="view broker-view">
      <h1>Broker</h1>
      ${pollStates(
        this.broker,
        'the broker state',
        () => false,
        '',
        (b) => html`<p class=${b.up ? 'ok-text' : 'bad-text'}>
            ${b.up ? html`${iconOk()} RabbitMQ up since ${formatDateTime(b.since)}` : html`${iconDown()} RabbitMQ UNREACHABLE since ${formatDateTime(b.since)}`}
            ${b.error ? html`: <span class="telemetry">${b.error}</span>` : nothing}
          </p>
          <p class="muted">
            ${b.broker} · vhost ${b.vhost}${b.version ? ` · RabbitMQ ${b.version}` : ''}${b.cluster_name ? ` · ${b.cluster_name}` : ''} · polled every
            ${b.interval_seconds}s, last success ${formatClock(b.last_success)}
          </p>
          <div class="scroll-x" data-testid="broker-queues" tabindex="0" role="region" aria-label="Queues table, scrolls sideways">${queuesTable(b, true, `Queues (snapshot ${formatClock(b.snapshot_at)})`)}</div>
          <h2>Outages</h2>
          ${outagesList(b, 16)}`,
      )}
    </section>`;
  }
}

customElements.define('ot-broker-view', BrokerView);
