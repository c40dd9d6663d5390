// The queues panel (board) and table (broker page): ready / unacked / consumers per queue, with
// "no consumer" in words beside the colour.

import { html, nothing } from 'lit';
import { formatClock, formatCount, formatDuration, parseTime } from '../lib/format';
import type { Broker, BrokerQueue } from '../lib/types';
import { iconWarn } from '../components/icons';

export function queueProblem(q: BrokerQueue): string | null {
  if (q.consumers === 0 && q.messages_ready > 0) return 'messages and no consumer';
  if (q.consumers === 0) return 'no consumer';
  return null;
}

export function queuesTable(broker: Broker, rates: boolean, caption: string) {
  const queues = [...broker.queues].sort((a, b) => a.name.localeCompare(b.name));
  return html`<table class="data queues">
    <caption>${caption}</caption>
    <thead>
      <tr>
        <th scope="col">Queue</th>
        <th scope="col" class="num">Ready</th>
        <th scope="col" class="num">Unacked</th>
        <th scope="col" class="num">${rates ? 'Consumers' : html`<abbr title="Consumers">Cons.</abbr>`}</th>
        ${rates
          ? html`<th scope="col" class="num">Publish/s</th>
              <th scope="col" class="num">Deliver/s</th>
              <th scope="col" class="num">Ack/s</th>`
          : nothing}
        <th scope="col">State</th>
      </tr>
    </thead>
    <tbody>
      ${queues.map((q) => {
        const problem = queueProblem(q);
        return html`<tr data-testid="queue-row" data-queue=${q.name} class=${problem && q.messages_ready > 0 ? 'bad' : problem ? 'warn' : ''}>
          <th scope="row"><a href="/ui/stuck?queue=${encodeURIComponent(q.name)}">${q.name}</a></th>
          <td class="num">${formatCount(q.messages_ready)}</td>
          <td class="num">${formatCount(q.messages_unacknowledged)}</td>
          <td class="num">${formatCount(q.consumers)}</td>
          ${rates
            ? html`<td class="num">${rate(q.publish_rate)}</td>
                <td class="num">${rate(q.deliver_rate)}</td>
                <td class="num">${rate(q.ack_rate)}</td>`
            : nothing}
          <td>${problem ? html`<span class="tag bad">${iconWarn()} ${problem}</span>` : html`<span class="muted">ok</span>`}</td>
        </tr>`;
      })}
    </tbody>
  </table>`;
}

function rate(r: number | null): string {
  return r === null || r === undefined ? '—' : r.toFixed(1);
}

export function outagesList(broker: Broker, limit: number) {
  const outages = [...broker.outages].sort((a, b) => (parseTime(b.start) ?? 0) - (parseTime(a.start) ?? 0)).slice(0, limit);
  if (outages.length === 0) return html`<p class="muted">No outage recorded.</p>`;
  return html`<ul class="outages">
    ${outages.map((o) => {
      const start = parseTime(o.start);
      const end = parseTime(o.end) ?? Date.now();
      return html`<li>
        <span class="tag ${o.end ? 'warn' : 'bad'}">${o.end ? 'ended' : 'ongoing'}</span>
        ${formatClock(o.start)}–${o.end ? formatClock(o.end) : 'now'}
        (${start === null ? '—' : formatDuration((end - start) / 1000)})${o.error ? html`: <span class="telemetry">${o.error}</span>` : nothing}
      </li>`;
    })}
  </ul>`;
}
