// The flow map's graph: nodes and edges from /api/v1/flow, laid out left → right. Columns are
// the API's `rank` (lifecycle order); dagre (a layered layout) orders the nodes inside each
// column to keep edges from crossing. Drawing is the view's job; this file is pure data.

import { graphlib, layout } from '@dagrejs/dagre';
import type { Flow, FlowEdge, FlowNode } from './types';

export interface GraphNode {
  id: string;
  node: FlowNode;
  width: number;
  height: number;
  rank: number;
  x: number; // centre, after layout
  y: number;
}

export interface GraphEdge {
  id: string;
  edge: FlowEdge;
  source: string;
  target: string;
}

export interface FlowGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  width: number;
  height: number;
}

export const NODE_WIDTH = 150;
export const NODE_HEIGHT: Record<FlowNode['kind'], number> = { service: 58, exchange: 44, queue: 72 };
const COLUMN_GAP = 48;
const ROW_GAP = 28;
const MARGIN = 16;

/** Nodes and edges from the API answer; edges to unknown nodes are dropped, ranks normalised. */
export function buildFlowGraph(flow: Pick<Flow, 'nodes' | 'edges'>): FlowGraph {
  const ranks = [...new Set(flow.nodes.map((n) => (Number.isFinite(n.rank) ? n.rank : 0)))].sort((a, b) => a - b);
  const column = new Map(ranks.map((r, i) => [r, i]));
  const nodes: GraphNode[] = flow.nodes.map((n) => ({
    id: n.id,
    node: n,
    width: NODE_WIDTH,
    height: NODE_HEIGHT[n.kind] ?? 50,
    rank: column.get(Number.isFinite(n.rank) ? n.rank : 0) ?? 0,
    x: 0,
    y: 0,
  }));
  const ids = new Set(nodes.map((n) => n.id));
  const edges: GraphEdge[] = flow.edges
    .filter((e) => ids.has(e.source) && ids.has(e.target))
    .map((e) => ({ id: e.id, edge: e, source: e.source, target: e.target }));
  return { nodes, edges, width: 0, height: 0 };
}

/** The dagre graph (input of the layout): what the tests check. */
export function layoutInput(graph: FlowGraph): graphlib.Graph {
  const g = new graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: 'LR', nodesep: ROW_GAP, ranksep: COLUMN_GAP, marginx: MARGIN, marginy: MARGIN });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: n.width, height: n.height });
  for (const e of graph.edges) {
    if (e.source === e.target) continue;
    // Edges running against the lifecycle (a service publishing back into an exchange of an
    // earlier column) carry no weight, so they do not pull columns out of order.
    const forward = rankOf(graph, e.source) < rankOf(graph, e.target);
    g.setEdge(e.source, e.target, { weight: forward ? 2 : 0, minlen: 1 }, e.id);
  }
  return g;
}

function rankOf(graph: FlowGraph, id: string): number {
  return graph.nodes.find((n) => n.id === id)?.rank ?? 0;
}

/** Places the nodes: x from the API's rank (column), y from dagre's order within the column. */
export function layoutFlow(graph: FlowGraph): FlowGraph {
  if (graph.nodes.length === 0) return { ...graph, width: 0, height: 0 };
  const g = layoutInput(graph);
  layout(g);
  const columns = new Map<number, GraphNode[]>();
  for (const n of graph.nodes) {
    const placed = g.node(n.id) as { y?: number } | undefined;
    n.y = placed?.y ?? 0;
    const list = columns.get(n.rank) ?? [];
    list.push(n);
    columns.set(n.rank, list);
  }
  let height = 0;
  for (const list of columns.values()) {
    // Keep dagre's vertical order, pack the column from the top.
    list.sort((a, b) => a.y - b.y || a.id.localeCompare(b.id));
    let y = MARGIN;
    for (const n of list) {
      n.y = y + n.height / 2;
      y += n.height + ROW_GAP;
    }
    height = Math.max(height, y - ROW_GAP + MARGIN);
  }
  const maxRank = Math.max(...graph.nodes.map((n) => n.rank));
  for (const n of graph.nodes) n.x = MARGIN + n.rank * (NODE_WIDTH + COLUMN_GAP) + NODE_WIDTH / 2;
  const width = MARGIN * 2 + (maxRank + 1) * NODE_WIDTH + maxRank * COLUMN_GAP;
  return { ...graph, width, height };
}

/**
 * An SVG path from the right side of `a` to the left side of `b`. An edge running backwards (a
 * service publishing into an exchange of an earlier column) goes down to `backY`, under the
 * nodes, and up into the bottom of `b`, so it does not cross the boxes.
 */
export function edgePath(a: GraphNode, b: GraphNode, backY?: number): string {
  if (b.x > a.x) {
    const x1 = a.x + a.width / 2;
    const x2 = b.x - b.width / 2;
    const mid = (x1 + x2) / 2;
    return `M${x1},${a.y} C${mid},${a.y} ${mid},${b.y} ${x2},${b.y}`;
  }
  const x1 = a.x;
  const y1 = a.y + a.height / 2;
  const x2 = b.x;
  const y2 = b.y + b.height / 2;
  const low = backY ?? Math.max(y1, y2) + 36;
  return `M${x1},${y1} L${x1},${low - 8} Q${x1},${low} ${x1 - 8},${low} L${x2 + 8},${low} Q${x2},${low} ${x2},${low - 8} L${x2},${y2}`;
}

/** The y of each backward edge's lane under the graph (one lane per edge), and the height used. */
export function backLanes(graph: FlowGraph): { lanes: Map<string, number>; height: number } {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const lanes = new Map<string, number>();
  let y = graph.height + 6;
  for (const e of graph.edges) {
    const a = byId.get(e.source);
    const b = byId.get(e.target);
    if (a && b && b.x <= a.x) {
      y += 12;
      lanes.set(e.id, y);
    }
  }
  return { lanes, height: y + 14 };
}

/** The board filter a click on a node leads to. */
export function nodeFilter(node: FlowNode): { service?: string; queue?: string } | null {
  if (node.kind === 'service') return { service: node.name };
  if (node.kind === 'queue') return { queue: node.name };
  return null;
}

/** The board filter of an edge: its queue (exchange → queue, queue → service) or its service. */
export function edgeFilter(edge: FlowEdge, nodes: FlowNode[]): { service?: string; queue?: string } | null {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const s = byId.get(edge.source);
  const t = byId.get(edge.target);
  if (t?.kind === 'queue') return { queue: t.name };
  if (s?.kind === 'queue') return { queue: s.name };
  if (t?.kind === 'service') return { service: t.name };
  if (s?.kind === 'service') return { service: s.name };
  return null;
}
