// The load of the durability tests (tests/durability/durability_test.cc): orders as a CRM and a
// MES would report them over RabbitMQ, one OTLP/HTTP request at a time, with every span id
// recorded so a test can say which spans a gateway acknowledged and check that each one reached
// its consumers (the upstream, the journeys), and with the journey each order must end with, to
// check the reference the test compares against.
//
//   OrderLoad       builds the requests: each carries the first part of a new order and the
//                   rest of the previous one (the MES exports separately from the CRM, so an
//                   order's spans span two requests and a kill can fall between them)
//   LoadClient      POSTs requests to a gateway until one answers 200, counting every other
//                   answer (429, 503, 500, refused connections) and keeping Retry-After
//   UpstreamRecorder an OTLP/HTTP upstream in the test process that counts every span id
//
// Orders, by number n (n % 5):
//   0-2 healthy: SUBMITTED and its publish (crm); next request: the MES's consume span (no
//       order.id: attributed through its parent, the publish), PRICE_CALCULATED, APPROVED,
//       MANUFACTURING_STARTED, SHIPPED, CLOSED with three hops, all processed.  Never stuck.
//   3   stuck at once: SUBMITTED and a publish stamped a minute ago, never consumed; stuck at the
//       detector's first pass after it is applied (stuck_since from the span times alone).
//   4   stalls: everything up to MANUFACTURING_STARTED and one heartbeat, in one request, stamped
//       now; nothing after, so the detector flags it silent seconds later, during the run.
// The lifecycle rules that go with them are kRules; their deadlines are long enough that a
// healthy order is never overdue while the gateway restarts, short enough that stalls are
// flagged within the run, and no verdict changes after that within a test (a stall's next
// deadline is 10 minutes away), so two gateways can be compared at any moment.
//
// Thread-safety: OrderLoad is used by one thread.  LoadClient's counters and UpstreamRecorder
// are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "net/http_server.h"
#include "pipeline/batch_sink.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"

namespace ordertrace::durability {

using Nanos = int64_t;

// The lifecycle rules of the load (docs/rules.md).  Attribution waits min(10s, grace / 2) = 1s.
inline constexpr char kRules[] =
    R"(stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED]
expect:
  SUBMITTED:
    next: PRICE_CALCULATED
    within: 30s
    next_by: mes
    received_by: mes
    within_receipt: 20s
    severity: critical
  PRICE_CALCULATED:
    processed_by: crm
    within_processing: 20s
    next: APPROVED
    within: 30s
    next_by: crm
  APPROVED:
    next: MANUFACTURING_STARTED
    within: 30s
    next_by: mes
    received_by: mes
    within_receipt: 20s
  MANUFACTURING_STARTED:
    next: SHIPPED
    within: 10m
    next_by: mes
    heartbeat: 2s
  SHIPPED:
    next: CLOSED
    within: 30s
    next_by: crm
messages:
  processed_within: 20s
grace: 2s
)";

enum class OrderKind { kHealthy, kStuckAtOnce, kStalls };

// What an order's journey must be once every span of it is applied and its deadlines passed.
struct OrderPlan {
  std::string id;
  uint32_t number = 0;
  OrderKind kind = OrderKind::kHealthy;
  std::string final_stage;
  bool stuck = false;
  bool closed = false;
  size_t hops = 0;                 // messages published
  size_t open_hops = 0;            // of them never processed
  std::set<std::string> span_ids;  // hex, every span of the order (attributed ones included)
};

// One OTLP/HTTP request body (protobuf) and what it carries.
struct LoadRequest {
  std::string body;
  std::vector<std::string> span_ids;  // hex
  size_t bytes() const { return body.size(); }
};

class OrderLoad {
 public:
  // `prefix` makes the order ids (`<prefix>-<n>`) and the trace ids of this load unique.
  // `padding` bytes of an attribute on every span make requests larger (to fill a log sooner).
  explicit OrderLoad(std::string prefix, size_t padding = 0);

  // The first part of a new order and the rest of the previous one, stamped around `now`.
  LoadRequest Next(Nanos now);
  // The rest of the last order, if any (empty body when nothing is left).
  LoadRequest Flush(Nanos now);

  const std::map<std::string, OrderPlan>& orders() const { return orders_; }
  std::set<std::string> ExpectedStuck() const;

 private:
  class Builder;
  // The MES's side of healthy order `pending_` and what follows, into `req`.
  void FinishPending(Nanos now, testing_support::RequestBuilder& req);

  std::string prefix_;
  std::string padding_;
  uint32_t next_order_ = 0;
  uint32_t next_span_ = 0;
  uint32_t trace_salt_ = 0;  // from the prefix: two loads never share a trace or span id
  // The healthy order whose second part goes into the next request, and its publish span.
  std::string pending_;
  std::string pending_publish_;
  std::map<std::string, OrderPlan> orders_;
};

// The result of one POST.
struct PostResult {
  int status = 0;           // HTTP status; 0 when the connection failed
  std::string retry_after;  // the Retry-After header, as sent
};

// POST `body` as OTLP/HTTP protobuf to 127.0.0.1:`port`/v1/traces.
PostResult PostTraces(uint16_t port, const std::string& body);

// Sends requests to a gateway until each is acknowledged, counting every answer.
class LoadClient {
 public:
  // `port()` gives the gateway's current OTLP/HTTP port (0 while it is down: wait).
  explicit LoadClient(std::function<uint16_t()> port) : port_(std::move(port)) {}

  // POSTs until 200 or until `give_up()` says so (then false).  Between attempts waits `pause`,
  // or the Retry-After the gateway asked for when `honour_retry_after` (capped at 1s).
  bool SendUntilAcknowledged(const LoadRequest& r, const std::function<bool()>& give_up,
                             bool honour_retry_after = false);
  // One attempt; counts the answer; 200 records the span ids as acknowledged.
  PostResult SendOnce(const LoadRequest& r);

  std::set<std::string> acknowledged() const;
  size_t acknowledged_requests() const { return acked_requests_.load(); }
  // Answers by HTTP status (0: connection failed), and Retry-After values seen per status.
  std::map<int, size_t> statuses() const;
  std::map<int, std::set<std::string>> retry_afters() const;

 private:
  std::function<uint16_t()> port_;
  mutable std::mutex mu_;
  std::set<std::string> acked_;
  std::map<int, size_t> statuses_;
  std::map<int, std::set<std::string>> retry_afters_;
  std::atomic<size_t> acked_requests_{0};
};

// An OTLP/HTTP upstream (POST /v1/traces) in the test process, on a free loopback port, that
// counts each span id it receives (duplicates included) and the time of each arrival.
class UpstreamRecorder : public pipeline::BatchSink {
 public:
  UpstreamRecorder();
  ~UpstreamRecorder() override;
  bool Start();  // on the same port every time (the gateway's config names it)
  void Stop();
  // While refusing, every request is answered 503 (Retry-After 100 ms) and nothing is kept: an
  // outage of the upstream without giving up its port.
  void SetRefusing(bool refusing) { refusing_ = refusing; }

  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces"; }
  size_t distinct() const;
  size_t total() const;  // duplicates included
  // The ids of `wanted` it has not received.
  std::vector<std::string> Missing(const std::set<std::string>& wanted) const;

 private:
  uint16_t port_ = 0;
  metrics::Registry registry_;
  receive::ReceiverMetrics metrics_;
  std::unique_ptr<net::HttpServer> server_;
  mutable std::mutex mu_;
  std::map<std::string, int> received_;
  size_t total_ = 0;
  std::atomic<bool> refusing_{false};
};

}  // namespace ordertrace::durability
