// GET /api/v1/flow?window=1h: the flow map (docs/api.md "GET /api/v1/flow").  Services,
// exchanges and queues as nodes; edges publisher service → exchange → queue → processing
// service, from the message hops published in the window (store.h ForEachHopSince) and every
// hop still open (published, not processed, of any age):
//
//   count   hops published in the window through the edge
//   open    hops not processed yet (any age)
//   stuck   stuck orders with an open hop on the edge
//   p50/p95 publish → process latency of the edge's processed hops in the window
//
// "unsettled" (top level): verdicts of the last moments the stuck counts do not include yet
// (FlowJson); 0 when they are exact.
//
// A node's `stuck`: a service's is the stuck orders expecting it (OrderRow::expected_service),
// an exchange's or queue's the stuck orders with an open hop through it.  Queue nodes carry the
// broker monitor's counts (ready, unacked, consumers; from its latest successful poll, also
// while it is unreachable: `broker.up` says so); a queue with ready > 0 and no consumer is
// "bad".  A hop whose queue is not known yet (no process side, and the publish span named none)
// goes to the queue RabbitMQ routes it to by the monitor's bindings (broker/route.h), else to
// a queue node named "?<exchange>/<routing key>" (queue: null; one per exchange and key, so
// messages bound for different queues are not drawn as one).
//
// Ranks are columns, left to right in lifecycle order: services are ordered by the earliest
// stage they act on in the rules (received_by / processed_by: that stage; next_by: just after
// it) or reached a milestone of in the window's last 10 minutes, a service known from neither just
// before the service consuming its messages (or just after the one whose messages it consumes), the
// rest last; each exchange and queue sits right of its earliest publisher.
//
// Thread-safety: handlers run concurrently; the engine, store and monitor are thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "api/api_guard.h"
#include "api/windowed.h"
#include "broker/monitor.h"
#include "common/status.h"
#include "journey/engine.h"
#include "net/http_server.h"

namespace ordertrace::api {

// 1m..7d, default 1h.
inline const WindowRange kFlowWindows{std::chrono::minutes(1), std::chrono::hours(24 * 7),
                                      std::chrono::hours(1)};

// The answer for the window ending at `now` (without ETag).  `broker` may be null (none
// configured).  The stuck orders are listed after waiting at most `settle_wait` for verdicts the
// store has not indexed yet (journey::OrderQuery::settle_wait); past it the stuck counts are as
// of the indexed part and "unsettled" says how many entries are left (0: exact).  Exposed for
// tests and the benchmark.
Result<nlohmann::json> FlowJson(journey::Engine& engine, const broker::BrokerMonitor* broker,
                                Duration window, Nanos now,
                                Duration settle_wait = std::chrono::seconds(1));

// Registers GET /api/v1/flow behind `guard` (action orders.list).  `engine`, `guard` and
// `broker` (null: no broker configured) must outlive the server.  A window's answer is reused
// for `reuse_for` (AnswerCache) unless the broker's reachability or poll changed meanwhile.
void RegisterFlowRoute(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                       const broker::BrokerMonitor* broker,
                       Duration reuse_for = std::chrono::seconds(5));

}  // namespace ordertrace::api
