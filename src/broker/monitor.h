// BrokerMonitor: polls RabbitMQ's management API every `interval` on its own thread, keeps the
// latest snapshot and the broker's reachability, exports them as Prometheus metrics, and
// answers the diagnosis' questions about message hops (journey::BrokerView).
//
//   poll thread ─ ManagementClient::Fetch ─► Record(): snapshot, up/down (+ since, error),
//                                            outage history, metrics, one log line per
//                                            transition, the transition listener (alerts)
//   API / alert threads ─ snapshot(), health(), StatusJson(), DescribeHop(), OutagesSince()
//
// Reachability: one failed poll (connection refused, timeout, an HTTP error, a response that
// does not parse) makes the broker "down" from that poll on; the next successful poll makes it
// "up" again and closes the outage interval.  The last `max_outages` intervals are kept for
// attribution ("RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) during this stage").
//
// Metrics (no order ids; queue names are bounded by `max_queue_series`, the rest are left
// out with a log line):
//   ordertrace_broker_up                                   1 reachable, 0 not (0 before the first
//   poll) ordertrace_broker_scrapes_total{result}                ok | unreachable | http_error |
//   invalid ordertrace_broker_queue_messages_ready{queue}          messages waiting for a consumer
//   ordertrace_broker_queue_messages_unacknowledged{queue} delivered, not acknowledged
//   ordertrace_broker_queue_consumers{queue}
//   ordertrace_broker_queue_publish_rate{queue}            messages/s published into the queue
//   ordertrace_broker_queue_deliver_rate{queue}            messages/s delivered (deliver + get)
// A queue that disappears keeps its series at 0 (the registry does not delete series).
//
// Thread-safety: every public method may be called from any thread; Start()/Stop() from one
// controlling thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "broker/management.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/worker.h"
#include "journey/diagnosis.h"

namespace ordertrace::broker {

struct MonitorOptions {
  ManagementOptions management;
  std::chrono::milliseconds interval{10000};
  size_t max_queue_series = 200;  // queues with their own metric series
  size_t max_outages = 16;        // outage intervals kept for attribution
};

struct BrokerHealth {
  bool polled = false;  // a poll has finished (until then the state is unknown)
  bool up = false;
  Nanos since_ns = 0;  // when the current state began (the first poll that saw it)
  std::string error;   // while down: the latest error ("connection refused", "HTTP 401 ...")
  Nanos last_poll_ns = 0;
  Nanos last_success_ns = 0;
};

// A change of reachability, for the BrokerUnreachable alert.
struct BrokerTransition {
  bool up = false;
  Nanos at_ns = 0;          // the poll that saw the change
  Nanos down_since_ns = 0;  // up: when the outage began; down: == at_ns
  std::string error;        // down: why
  std::string broker;       // HOST:PORT of the management API
};

class BrokerMonitor final : public journey::BrokerView {
 public:
  using TransitionFn = std::function<void(const BrokerTransition&)>;

  // `clock` and `registry` must outlive the monitor; `registry` may be null (tests).
  BrokerMonitor(MonitorOptions options, const Clock& clock, metrics::Registry* registry);
  ~BrokerMonitor() override;  // Stop()
  BrokerMonitor(const BrokerMonitor&) = delete;
  BrokerMonitor& operator=(const BrokerMonitor&) = delete;

  // Called on the poll thread, outside the monitor's lock, for every transition (including
  // the first poll when it fails; the first success is not a transition).  Set before Start().
  void SetTransitionListener(TransitionFn fn);

  // Starts the poll thread; its first poll is immediate.
  void Start();
  // Stops and joins the poll thread (a poll in flight ends within the request timeout).
  void Stop();

  // One poll on the caller's thread (the thread's loop body).
  void PollOnce();
  // Takes a poll's outcome: the snapshot or the error.  Public for tests.
  void Record(Result<Snapshot> result, Nanos now);

  std::shared_ptr<const Snapshot> snapshot() const;  // the latest successful poll (null: none)
  BrokerHealth health() const;
  // The JSON of GET /api/v1/broker: {"broker", "up", "since", "error", "last_poll",
  // "last_success", "node", "version", "outages": [...], "queues": [...]}.
  std::string StatusJson() const;
  const std::string& broker() const { return client_.host_port(); }

  // journey::BrokerView
  std::string DescribeHop(const journey::Hop& hop, Nanos now) const override;
  std::vector<Outage> OutagesSince(Nanos from_ns) const override;
  // Bumped by Record() when the reachability, the error, a queue's counts or consumers, the
  // exchanges or the bindings differ from the previous poll's (not for rates alone).
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

 private:
  void UpdateQueueMetrics(const Snapshot& snap);

  MonitorOptions options_;
  ManagementClient client_;
  const Clock& clock_;
  TransitionFn listener_;

  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_;
  BrokerHealth health_;
  std::deque<Outage> outages_;           // oldest first; the last one open while down
  std::atomic<uint64_t> generation_{0};  // see generation(); bumped under mu_

  // Metrics.
  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Gauge* up_;
  metrics::Family<metrics::Counter>* scrapes_;
  metrics::Family<metrics::Gauge>* ready_;
  metrics::Family<metrics::Gauge>* unacked_;
  metrics::Family<metrics::Gauge>* consumers_;
  metrics::Family<metrics::Gauge>* publish_rate_;
  metrics::Family<metrics::Gauge>* deliver_rate_;
  std::set<std::string> series_;  // queues with series (poll thread only)
  size_t capped_logged_ = 0;      // queues left out when last logged

  // Last: stopped (joined) first on destruction, while the state above still exists.
  Worker poller_;
};

// The hop's exchange as RabbitMQ names it: "" for the default exchange, which spans may call
// "amq.default" or "<default>".
std::string_view ExchangeOf(const journey::Hop& hop);

}  // namespace ordertrace::broker
