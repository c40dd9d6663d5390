import { describe, expect, it } from 'vitest';
import { backLanes, buildFlowGraph, edgeFilter, edgePath, layoutFlow, layoutInput, nodeFilter } from '../src/lib/flowgraph';
import type { Flow } from '../src/lib/types';
import flowJson from './fixtures/flow.json';

const flow = flowJson as unknown as Flow;

describe('flow graph', () => {
  it('builds nodes and edges from the API answer', () => {
    const g = buildFlowGraph(flow);
    expect(g.nodes.map((n) => n.id)).toEqual(flow.nodes.map((n) => n.id));
    expect(g.edges.length).toBe(flow.edges.length);
    const ranks = [...new Set(flow.nodes.map((n) => n.rank))].sort((a, b) => a - b);
    for (const n of g.nodes) expect(n.rank).toBe(ranks.indexOf(n.node.rank));
  });

  it('drops edges to unknown nodes and normalises sparse ranks', () => {
    const g = buildFlowGraph({
      nodes: [
        { ...flow.nodes[0], rank: 10 },
        { ...flow.nodes[1], rank: 30 },
      ],
      edges: [
        { ...flow.edges[0], source: flow.nodes[0].id, target: flow.nodes[1].id },
        { ...flow.edges[1], source: flow.nodes[0].id, target: 'queue:ghost' },
      ],
    });
    expect(g.nodes.map((n) => n.rank)).toEqual([0, 1]);
    expect(g.edges.length).toBe(1);
  });

  it('gives dagre every node with its size and every edge, left to right', () => {
    const g = buildFlowGraph(flow);
    const input = layoutInput(g);
    expect(input.graph().rankdir).toBe('LR');
    expect(input.nodeCount()).toBe(flow.nodes.length);
    expect(input.edgeCount()).toBe(flow.edges.filter((e) => e.source !== e.target).length);
    const crm = input.node('service:crm') as { width: number; height: number };
    expect(crm.width).toBeGreaterThan(0);
    expect(crm.height).toBeGreaterThan(0);
  });

  it('lays nodes out in columns by rank without overlaps', () => {
    const g = layoutFlow(buildFlowGraph(flow));
    expect(g.width).toBeGreaterThan(0);
    expect(g.height).toBeGreaterThan(0);
    for (const a of g.nodes) {
      for (const b of g.nodes) {
        if (a.rank < b.rank) expect(a.x).toBeLessThan(b.x);
        if (a.rank === b.rank && a !== b) expect(Math.abs(a.y - b.y)).toBeGreaterThanOrEqual((a.height + b.height) / 2);
      }
      expect(a.y - a.height / 2).toBeGreaterThanOrEqual(0);
      expect(a.y + a.height / 2).toBeLessThanOrEqual(g.height);
    }
    const e = g.edges[0];
    const path = edgePath(g.nodes.find((n) => n.id === e.source)!, g.nodes.find((n) => n.id === e.target)!);
    expect(path).toMatch(/^M[\d.-]+,[\d.-]+ C/);
  });

  it('routes backward edges under the nodes, one lane each', () => {
    const g = layoutFlow(buildFlowGraph(flow));
    const { lanes, height } = backLanes(g);
    const byId = new Map(g.nodes.map((n) => [n.id, n]));
    const backward = g.edges.filter((e) => byId.get(e.target)!.x <= byId.get(e.source)!.x);
    expect(backward.length).toBeGreaterThan(0);
    expect(lanes.size).toBe(backward.length);
    expect(new Set(lanes.values()).size).toBe(backward.length);
    for (const y of lanes.values()) {
      expect(y).toBeGreaterThan(g.height);
      expect(y).toBeLessThan(height);
    }
    const e = backward[0];
    expect(edgePath(byId.get(e.source)!, byId.get(e.target)!, lanes.get(e.id))).toContain(`,${lanes.get(e.id)}`);
  });

  it('maps clicks to board filters', () => {
    const byId = new Map(flow.nodes.map((n) => [n.id, n]));
    expect(nodeFilter(byId.get('service:crm')!)).toEqual({ service: 'crm' });
    expect(nodeFilter(byId.get('queue:crm.prices')!)).toEqual({ queue: 'crm.prices' });
    expect(nodeFilter(byId.get('exchange:orders')!)).toBeNull();
    const e = flow.edges.find((x) => x.target === 'queue:crm.prices')!;
    expect(edgeFilter(e, flow.nodes)).toEqual({ queue: 'crm.prices' });
  });

  it('copes with an empty flow', () => {
    const g = layoutFlow(buildFlowGraph({ nodes: [], edges: [] }));
    expect(g.nodes).toEqual([]);
    expect(g.width).toBe(0);
  });
});
