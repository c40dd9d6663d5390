// Shapes of the gateway's JSON API as the UI reads them (docs/api.md and the issue-17 contract).
// Everything here is untrusted telemetry: render it with text bindings only.

export type Iso = string;

export interface ApiError {
  error: string;
  status: number;
}

export interface Me {
  sub: string;
  iss: string;
  name: string;
  auth: 'session' | 'bearer' | 'anonymous' | string;
  roles: string[];
  actions: string[];
}

export interface OpenHopRef {
  message_id: string;
  exchange: string | null;
  routing_key: string | null;
  queue: string | null;
  published: Iso | null;
  broker: string | null;
}

export interface OrderListEntry {
  order_id: string;
  stage: string | null;
  stage_since: Iso | null;
  stuck: boolean;
  stuck_kind: string | null;
  stuck_since: Iso | null;
  expected_service: string | null;
  last_service: string | null;
  first_seen: Iso | null;
  last_seen: Iso | null;
  open_hops: number;
  partner: string | null;
  closed: boolean;
  summary: string | null;
  deadline?: Iso | null;
  open_hop?: OpenHopRef | null;
}

export interface OrderList {
  orders: OrderListEntry[];
  next_cursor: string | null;
  total?: number;
  /** Verdicts of the last moments the list's filters, sort and total do not see yet (its rows are current). */
  unsettled?: number;
}

export interface Hop {
  message_id: string;
  exchange: string | null;
  routing_key: string | null;
  queue: string | null;
  publisher: string | null;
  published: Iso | null;
  processor: string | null;
  processed: Iso | null;
  open: boolean;
  send_span_id: string | null;
  send_trace_id: string | null;
  process_span_id: string | null;
  broker?: string | null;
}

export interface Span {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  start: Iso;
  end: Iso;
  duration_ms: number;
  status: string;
  step_status: string | null;
  error: string | null;
  stage: string | null;
  heartbeat: boolean;
  messaging?: {
    operation: string | null;
    message_id: string | null;
    exchange: string | null;
    routing_key: string | null;
    queue: string | null;
  };
  jaeger_link?: string | null;
}

export interface Milestone {
  stage: string;
  at: Iso;
  service: string | null;
  span_id: string | null;
  trace_id: string | null;
}

export interface Heartbeat {
  expected: boolean;
  interval_seconds: number;
  last: Iso | null;
  alive: boolean | null;
}

export interface Diagnosis {
  summary: string;
  stage: string | null;
  stage_since: Iso | null;
  kind: string | null;
  expected: string | null;
  expected_service: string | null;
  expected_stage: string | null;
  allowed_seconds: number | null;
  deadline: Iso | null;
  in_stage_seconds: number | null;
  last_span: {
    service: string;
    operation: string;
    status: string;
    step_status: string | null;
    error: string | null;
    end: Iso;
    span_id: string;
    trace_id: string;
  } | null;
  open_hops: Hop[];
  broker: string | null;
  heartbeat: Heartbeat | null;
  trace_ids: string[];
  jaeger_links: string[];
  jaeger_search_link: string | null;
}

export interface OrderDetail extends OrderListEntry {
  last_heartbeat: Iso | null;
  deadline: Iso | null;
  diagnosis: Diagnosis | null; // null once the order is closed
  milestones: Milestone[];
  spans: Span[];
  spans_truncated?: boolean;
  hops: Hop[];
  jaeger_search_link?: string | null;
}

export interface BrokerQueue {
  name: string;
  vhost: string;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
  publish_rate: number | null;
  deliver_rate: number | null;
  ack_rate: number | null;
}

export interface BrokerOutage {
  start: Iso;
  end: Iso | null;
  error: string | null;
}

export interface Broker {
  broker: string;
  vhost: string;
  up: boolean;
  since: Iso | null;
  error: string | null;
  last_poll: Iso | null;
  last_success: Iso | null;
  snapshot_at: Iso | null;
  interval_seconds: number;
  cluster_name?: string | null;
  node?: string | null;
  version?: string | null;
  outages: BrokerOutage[];
  queues: BrokerQueue[];
}

export interface SummaryStage {
  stage: string;
  index: number;
  terminal: boolean;
  active: number;
  stuck: number;
  allowed_seconds: number | null;
  expected_service: string | null;
  p50_seconds: number | null;
  p95_seconds: number | null;
}

export interface Summary {
  as_of: Iso;
  revision: number;
  totals: {
    active: number;
    stuck: number;
    open_hops: number;
    flagged_total: number;
    cleared_total: number;
    closed_total: number;
    spans_accepted_total: number | null;
    alerts_sent_total: number | null;
  };
  stages: SummaryStage[];
  stuck_by: { stage: string; service: string | null; kind: string; count: number }[];
}

export interface RuleStage {
  name: string;
  index: number;
  terminal: boolean;
  within_seconds: number | null;
  next_by: string | null;
  heartbeat_seconds: number | null;
  received_by: string | null;
  within_receipt_seconds: number | null;
  processed_by: string | null;
  within_processing_seconds: number | null;
  severity: string;
}

export interface Rules {
  source: string;
  entity_key: string;
  grace_seconds: number;
  message_processed_within_seconds: number | null;
  stages: RuleStage[];
  revision: number;
}

export type FlowState = 'ok' | 'warn' | 'bad';

export interface FlowNode {
  id: string;
  kind: 'service' | 'exchange' | 'queue';
  name: string;
  rank: number;
  messages: number;
  stuck: number;
  queue: { ready: number; unacked: number; consumers: number } | null;
  state: FlowState;
}

export interface FlowEdge {
  id: string;
  source: string;
  target: string;
  count: number;
  open: number;
  stuck: number;
  p50_seconds: number | null;
  p95_seconds: number | null;
  state: FlowState;
}

export interface Flow {
  as_of: Iso;
  window_seconds: number;
  revision: number;
  broker: { configured: boolean; up: boolean | null; since: Iso | null; error: string | null };
  nodes: FlowNode[];
  edges: FlowEdge[];
  /** Verdicts of the last moments the stuck counts do not include yet (0: exact). */
  unsettled?: number;
}

export interface Kpi {
  as_of: Iso;
  window_seconds: number;
  detection_lag_seconds: { count: number; p50: number | null; p95: number | null; p99: number | null; max: number | null };
  time_stuck_seconds: { episodes: number; ongoing: number; p50: number | null; p95: number | null; total: number };
  orders: {
    started: number;
    closed: number;
    open: number;
    stuck: number;
    lost: number;
    closed_share: number | null;
    stuck_share: number | null;
    lost_share: number | null;
  };
  by_stage: {
    stage: string;
    reached: number;
    stuck: number;
    lost: number;
    lead_time_p50_seconds: number | null;
    lead_time_p95_seconds: number | null;
  }[];
  by_service: { service: string; stuck: number; lost: number }[];
  partners: { partner: string; orders: number; closed: number; on_time: number; on_time_share: number | null }[];
}
