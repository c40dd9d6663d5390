// The flow map, /ui/flow: services, exchanges and queues left → right in lifecycle order (the
// API's rank), laid out with dagre; per edge count, latency, open and stuck; state "bad" in red
// with a text mark too. A click opens the board filtered by the node's service or queue. The
// same data follows as tables (the text alternative of the graph). Polls every 10 s.

import { html, nothing, svg } from 'lit';
import { WindowView } from '../lib/window-view';
import { backLanes, buildFlowGraph, edgeFilter, edgePath, layoutFlow, nodeFilter, type FlowGraph } from '../lib/flowgraph';
import { formatClock, formatCount, formatDuration } from '../lib/format';
import type { Flow, FlowEdge, FlowNode } from '../lib/types';
import { pollStates } from '../components/common';
import { iconWarn } from '../components/icons';

export const FLOW_WINDOWS = ['15m', '1h', '6h', '24h', '7d'];

function boardLink(f: { service?: string; queue?: string } | null): string | null {
  if (!f) return null;
  const p = new URLSearchParams();
  if (f.service) p.set('service', f.service);
  if (f.queue) p.set('queue', f.queue);
  return `/ui/stuck?${p.toString()}`;
}

function stateMark(state: string): string {
  return state === 'bad' ? '⚠ ' : state === 'warn' ? '! ' : '';
}

export class FlowView extends WindowView<Flow> {
  private graphFor: Flow | null = null;
  private graph: FlowGraph | null = null;

  constructor() {
    super('/ui/flow', '/api/v1/flow', '1h', FLOW_WINDOWS);
  }

  private layout(flow: Flow): FlowGraph {
    if (this.graphFor !== flow || !this.graph) {
      this.graph = layoutFlow(buildFlowGraph(flow));
      this.graphFor = flow;
    }
    return this.graph;
  }

  private renderNode(n: FlowGraph['nodes'][number]) {
    const f = n.node;
    const link = boardLink(nodeFilter(f));
    const x = n.x - n.width / 2;
    const y = n.y - n.height / 2;
    const lines: string[] = [];
    lines.push(`${formatCount(f.messages)} msgs${f.stuck ? ` · ${formatCount(f.stuck)} stuck` : ''}`);
    if (f.queue) {
      lines.push(`${formatCount(f.queue.ready)} ready · ${formatCount(f.queue.unacked)} unacked`);
      lines.push(f.queue.consumers === 0 ? (f.queue.ready > 0 ? 'NO CONSUMER' : '0 consumers') : `${formatCount(f.queue.consumers)} consumer${f.queue.consumers === 1 ? '' : 's'}`);
    }
    const label = `${f.kind} ${f.name}: ${lines.join(', ')}, state ${f.state}`;
    const body = svg`<rect x=${x} y=${y} width=${n.width} height=${n.height} rx=${f.kind === 'exchange' ? 18 : 6} class="node-box"></rect>
      <text x=${x + 8} y=${y + 17} class="node-title">${stateMark(f.state)}${f.kind === 'queue' ? '⇶ ' : f.kind === 'exchange' ? '⇄ ' : ''}${clip(f.name, 17)}</text>
      ${lines.map((l, i) => svg`<text x=${x + 8} y=${y + 33 + i * 14} class="node-stat">${l}</text>`)}
      <title>${label}</title>`;
    return svg`<g class="flow-node ${f.kind} ${f.state}" data-testid="flow-node" data-id=${f.id} data-state=${f.state}>
      ${link
        ? svg`<a href=${link} aria-label=${`${label}; open the board filtered`}>${body}</a>`
        : body}
    </g>`;
  }

  private renderEdge(g: FlowGraph, e: FlowGraph['edges'][number], nodes: FlowNode[], backY: number | undefined) {
    const a = g.nodes.find((n) => n.id === e.source)!;
    const b = g.nodes.find((n) => n.id === e.target)!;
    const d = edgePath(a, b, backY);
    const f = e.edge;
    const width = Math.min(8, 1.5 + Math.log10(1 + f.count) * 2);
    const label = `${f.count} msgs${f.open ? `, ${f.open} open` : ''}${f.stuck ? `, ${f.stuck} stuck` : ''}${f.p95_seconds !== null ? `, p95 ${formatDuration(f.p95_seconds)}` : ''}`;
    const link = boardLink(edgeFilter(f, nodes));
    const mx = (a.x + a.width / 2 + b.x - b.width / 2) / 2;
    const my = b.x > a.x ? (a.y + b.y) / 2 - 4 : (backY ?? a.y + a.height) - 3;
    const inner = svg`<path d=${d} class="edge-line" stroke-width=${width} marker-end="url(#ot-flow-arrow)"></path>
      <path d=${d} class="edge-hit"></path>
      ${f.state !== 'ok' || f.open || f.stuck ? svg`<text x=${b.x > a.x ? mx : (a.x + b.x) / 2} y=${my} text-anchor="middle" class="edge-label">${stateMark(f.state)}${label}</text>` : nothing}
      <title>${f.source} → ${f.target}: ${label}</title>`;
    return svg`<g class="flow-edge ${f.state}" data-testid="flow-edge" data-id=${f.id} data-state=${f.state}>
      ${link ? svg`<a href=${link} aria-label=${`${f.source} to ${f.target}: ${label}; open the board filtered`}>${inner}</a>` : inner}
    </g>`;
  }

  private renderGraph(flow: Flow) {
    const g = this.layout(flow);
    const back = backLanes(g);
    const h = back.height;
    return html`<div tabindex="0" role="region" aria-label="Flow map, scrolls sideways" class="scroll-x flow-wrap ${flow.broker.configured && flow.broker.up === false ? 'greyed' : ''}">
      <svg class="flow" data-testid="flow-graph" viewBox="0 0 ${g.width} ${h}" width=${g.width} height=${h} role="group"
        aria-label="Flow map: ${flow.nodes.length} nodes and ${flow.edges.length} edges; the same data is in the tables below">
        <defs>
          <marker id="ot-flow-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
            <path d="M0,0 L8,4 L0,8 z" class="arrow-head"></path>
          </marker>
        </defs>
        ${g.edges.map((e) => this.renderEdge(g, e, flow.nodes, back.lanes.get(e.id)))} ${g.nodes.map((n) => this.renderNode(n))}
      </svg>
    </div>`;
  }

  private renderTables(flow: Flow) {
    const name = new Map(flow.nodes.map((n) => [n.id, `${n.kind} ${n.name}`]));
    const nodes = [...flow.nodes].sort((a, b) => a.rank - b.rank || a.name.localeCompare(b.name));
    return html`<div data-testid="flow-table">
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data">
          <caption>Nodes</caption>
          <thead>
            <tr>
              <th scope="col">Node</th><th scope="col">Kind</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Stuck</th>
              <th scope="col" class="num">Ready</th><th scope="col" class="num">Unacked</th><th scope="col" class="num">Consumers</th><th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            ${nodes.map((n) => {
              const link = boardLink(nodeFilter(n));
              return html`<tr class=${n.state} data-node=${n.id}>
                <th scope="row">${link ? html`<a href=${link}>${n.name}</a>` : n.name}</th>
                <td>${n.kind}</td><td class="num">${formatCount(n.messages)}</td><td class="num">${formatCount(n.stuck)}</td>
                <td class="num">${n.queue ? formatCount(n.queue.ready) : ''}</td><td class="num">${n.queue ? formatCount(n.queue.unacked) : ''}</td>
                <td class="num">${n.queue ? formatCount(n.queue.consumers) : ''}</td>
                <td>${stateCell(n.state, n.queue && n.queue.consumers === 0 && n.queue.ready > 0 ? 'no consumer' : n.stuck ? 'stuck orders' : '')}</td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>
      <div class="scroll-x" tabindex="0" role="region" aria-label="Table, scrolls sideways on narrow screens">
        <table class="data">
          <caption>Edges (publish → process latency of processed messages)</caption>
          <thead>
            <tr>
              <th scope="col">From</th><th scope="col">To</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Open</th>
              <th scope="col" class="num">Stuck</th><th scope="col" class="num">p50</th><th scope="col" class="num">p95</th><th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            ${flow.edges.map((e: FlowEdge) => {
              const link = boardLink(edgeFilter(e, flow.nodes));
              return html`<tr class=${e.state} data-edge=${e.id}>
                <th scope="row">${link ? html`<a href=${link}>${name.get(e.source) ?? e.source}</a>` : name.get(e.source) ?? e.source}</th>
                <td>${name.get(e.target) ?? e.target}</td><td class="num">${formatCount(e.count)}</td><td class="num">${formatCount(e.open)}</td>
                <td class="num">${formatCount(e.stuck)}</td><td class="num">${formatDuration(e.p50_seconds)}</td><td class="num">${formatDuration(e.p95_seconds)}</td>
                <td>${stateCell(e.state, '')}</td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>
    </div>`;
  }

  override render() {
    return html`<section class="view flow-view">
      ${this.renderHead('Flow', 'flow-window')}
      ${pollStates(
        this.data,
        'the flow map',
        (f) => f.nodes.length === 0,
        'No message went through the broker in this window.',
        (f) => html`${f.broker.configured && f.broker.up === false
            ? html`<p class="banner bad" role="alert">${iconWarn()} RabbitMQ unreachable since ${formatClock(f.broker.since)}${f.broker.error ? html`: <span class="telemetry">${f.broker.error}</span>` : nothing}; queue figures are the last known.</p>`
            : nothing}
          ${(f.unsettled ?? 0) > 0
            ? html`<p class="note" role="status" data-testid="unsettled">
                Catching up: ${formatCount(f.unsettled)} verdict${f.unsettled === 1 ? ' is' : 's are'} from the last moments not in the stuck
                counts yet. The map refreshes by itself.
              </p>`
            : nothing}
          <p class="muted">Click a service or queue to see its stuck orders. Red (⚠): a queue with messages and no consumer, or stuck orders.</p>
          ${this.renderGraph(f)} ${this.renderTables(f)}`,
      )}
    </section>`;
  }
}

function stateCell(state: string, why: string) {
  if (state === 'bad') return html`<span class="tag bad">${iconWarn()} bad${why ? `: ${why}` : ''}</span>`;
  if (state === 'warn') return html`<span class="tag warn">warn${why ? `: ${why}` : ''}</span>`;
  return html`<span class="muted">ok</span>`;
}

function clip(text: string, n: number): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

customElements.define('ot-flow-view', FlowView);
