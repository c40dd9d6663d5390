#include "broker/monitor.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <utility>

#include "broker/route.h"
#include "common/log.h"
#include "common/text_format.h"

namespace ordertrace::broker {
namespace {

using nlohmann::json;

// The result label of ordertrace_broker_scrapes_total.
const char* ResultOf(const Status& s) {
  if (s.ok()) return "ok";
  if (s.code() == StatusCode::kInvalidArgument) return "invalid";
  if (s.message().find(": HTTP ") != std::string::npos) return "http_error";
  return "unreachable";
}

std::string QueueSentence(const QueueState& q) {
  if (!q.counted) {
    return "queue " + q.name + ": " + WithThousands(q.consumers) +
           (q.consumers == 1 ? " consumer" : " consumers") +
           ", message counts not reported yet (RabbitMQ just started or declared it)";
  }
  return "queue " + q.name + ": " + WithThousands(q.ready) + " ready, " + WithThousands(q.unacked) +
         " unacked, " + WithThousands(q.consumers) +
         (q.consumers == 1 ? " consumer" : " consumers");
}

json TimeOrNull(Nanos t) { return t == 0 ? json(nullptr) : json(Rfc3339(t)); }

// Whether two polls differ in what DescribeHop() says (queue counts and consumers, the
// routing), rates left out: they change at every poll.
bool SameForHops(const Snapshot& a, const Snapshot& b) {
  auto queue = [](const QueueState& q) {
    return std::tie(q.vhost, q.name, q.ready, q.unacked, q.consumers, q.counted);
  };
  auto exchange = [](const ExchangeInfo& e) {
    return std::tie(e.vhost, e.name, e.type, e.alternate_exchange);
  };
  auto binding = [](const BindingInfo& x) {
    return std::tie(x.vhost, x.source, x.destination, x.destination_type, x.routing_key);
  };
  auto same = [](const auto& xs, const auto& ys, auto key) {
    return std::equal(xs.begin(), xs.end(), ys.begin(), ys.end(),
                      [&](const auto& x, const auto& y) { return key(x) == key(y); });
  };
  return same(a.queues, b.queues, queue) && same(a.exchanges, b.exchanges, exchange) &&
         same(a.bindings, b.bindings, binding);
}

}  // namespace

std::string_view ExchangeOf(const journey::Hop& hop) {
  if (hop.exchange == "amq.default" || hop.exchange == "<default>") return "";
  return hop.exchange;
}

BrokerMonitor::BrokerMonitor(MonitorOptions options, const Clock& clock,
                             metrics::Registry* registry)
    : options_(std::move(options)), client_(options_.management), clock_(clock) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  up_ = &registry
             ->AddGauge("ordertrace_broker_up",
                        "1 when RabbitMQ's management API answered the latest poll, else 0.")
             .With({});
  scrapes_ = &registry->AddCounter("ordertrace_broker_scrapes_total",
                                   "Polls of RabbitMQ's management API, by result "
                                   "(ok, unreachable, http_error, invalid).",
                                   {"result"});
  for (const char* r : {"ok", "unreachable", "http_error", "invalid"}) scrapes_->With({r});
  ready_ = &registry->AddGauge("ordertrace_broker_queue_messages_ready",
                               "Messages ready for delivery in the queue.", {"queue"});
  unacked_ =
      &registry->AddGauge("ordertrace_broker_queue_messages_unacknowledged",
                          "Messages delivered from the queue and not acknowledged yet.", {"queue"});
  consumers_ = &registry->AddGauge("ordertrace_broker_queue_consumers", "Consumers of the queue.",
                                   {"queue"});
  publish_rate_ = &registry->AddGauge("ordertrace_broker_queue_publish_rate",
                                      "Messages per second published into the queue.", {"queue"});
  deliver_rate_ = &registry->AddGauge("ordertrace_broker_queue_deliver_rate",
                                      "Messages per second delivered from the queue.", {"queue"});
}

BrokerMonitor::~BrokerMonitor() { Stop(); }

void BrokerMonitor::SetTransitionListener(TransitionFn fn) { listener_ = std::move(fn); }

void BrokerMonitor::Start() {
  if (poller_.running()) return;
  log::Info("polling RabbitMQ's management API",
            {{"broker", broker()},
             {"user", options_.management.user},
             {"vhost", options_.management.vhost},
             {"interval", std::to_string(options_.interval.count()) + "ms"}});
  poller_.Start("broker monitor", options_.interval, [this] { PollOnce(); });
}

void BrokerMonitor::Stop() { poller_.Stop(); }

void BrokerMonitor::PollOnce() {
  const Nanos now = clock_.Now();
  Record(client_.Fetch(now), now);
}

void BrokerMonitor::Record(Result<Snapshot> result, Nanos now) {
  scrapes_->With({ResultOf(result.status())}).Inc();
  std::optional<BrokerTransition> transition;
  Nanos down_since = 0;
  bool first = false;
  if (result.ok()) {
    auto snap = std::make_shared<const Snapshot>(std::move(result).value());
    UpdateQueueMetrics(*snap);
    {
      std::lock_guard lock(mu_);
      first = !health_.polled;
      if (health_.polled && !health_.up) {
        down_since = health_.since_ns;
        if (!outages_.empty() && outages_.back().end_ns == 0) outages_.back().end_ns = now;
        transition = BrokerTransition{true, now, down_since, "", broker()};
      }
      if (!health_.polled || !health_.up) health_.since_ns = now;
      health_.polled = true;
      health_.up = true;
      health_.error.clear();
      health_.last_poll_ns = now;
      health_.last_success_ns = now;
      if (first || transition || !snapshot_ || !SameForHops(*snapshot_, *snap)) {
        generation_.fetch_add(1, std::memory_order_acq_rel);
      }
      snapshot_ = snap;
    }
    up_->Set(1);
    if (first) {
      log::Info("RabbitMQ management API reachable",
                {{"broker", broker()},
                 {"node", snap->overview.node},
                 {"version", snap->overview.rabbitmq_version},
                 {"queues", static_cast<uint64_t>(snap->queues.size())}});
    } else if (transition) {
      log::Info("RabbitMQ management API reachable again",
                {{"broker", broker()},
                 {"down_since", Rfc3339(down_since)},
                 {"down_for", HumanDuration(std::chrono::duration_cast<Duration>(
                                  std::chrono::nanoseconds(now - down_since)))}});
    }
  } else {
    const std::string error = result.status().message();
    {
      std::lock_guard lock(mu_);
      if (!health_.polled || health_.up) {
        health_.since_ns = now;
        outages_.push_back(Outage{now, 0, error});
        while (outages_.size() > options_.max_outages) outages_.pop_front();
        transition = BrokerTransition{false, now, now, error, broker()};
      } else if (!outages_.empty()) {
        outages_.back().error = error;
      }
      if (transition || health_.error != error) generation_.fetch_add(1, std::memory_order_acq_rel);
      health_.polled = true;
      health_.up = false;
      health_.error = error;
      health_.last_poll_ns = now;
    }
    up_->Set(0);
    if (transition) {
      log::Warn("RabbitMQ management API unreachable", {{"broker", broker()}, {"error", error}});
    }
  }
  if (transition && listener_) listener_(*transition);
}

void BrokerMonitor::UpdateQueueMetrics(const Snapshot& snap) {
  std::set<std::string> seen;
  size_t left_out = 0;
  for (const QueueState& q : snap.queues) {
    if (series_.count(q.name) == 0) {
      if (series_.size() >= options_.max_queue_series) {
        ++left_out;
        continue;
      }
      series_.insert(q.name);
    }
    seen.insert(q.name);
    if (q.counted) {  // else the previous values stay until RabbitMQ reports them
      ready_->With({q.name}).Set(static_cast<double>(q.ready));
      unacked_->With({q.name}).Set(static_cast<double>(q.unacked));
    }
    consumers_->With({q.name}).Set(static_cast<double>(q.consumers));
    publish_rate_->With({q.name}).Set(q.publish_rate);
    deliver_rate_->With({q.name}).Set(q.deliver_rate);
  }
  // Deleted queues: their series stay, at 0.
  for (const std::string& name : series_) {
    if (seen.count(name) != 0) continue;
    for (auto* f : {ready_, unacked_, consumers_, publish_rate_, deliver_rate_}) {
      f->With({name}).Set(0);
    }
  }
  if (left_out != capped_logged_) {
    if (left_out > 0) {
      log::Warn("broker queue metrics capped: some queues have no series",
                {{"broker", broker()},
                 {"queues_with_series", static_cast<uint64_t>(series_.size())},
                 {"queues_left_out", static_cast<uint64_t>(left_out)},
                 {"max_queue_series", static_cast<uint64_t>(options_.max_queue_series)}});
    }
    capped_logged_ = left_out;
  }
}

std::shared_ptr<const Snapshot> BrokerMonitor::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

BrokerHealth BrokerMonitor::health() const {
  std::lock_guard lock(mu_);
  return health_;
}

std::vector<journey::BrokerView::Outage> BrokerMonitor::OutagesSince(Nanos from_ns) const {
  std::lock_guard lock(mu_);
  std::vector<Outage> out;
  for (const Outage& o : outages_) {
    if (o.end_ns == 0 || o.end_ns >= from_ns) out.push_back(o);
  }
  return out;
}

std::string BrokerMonitor::DescribeHop(const journey::Hop& hop, Nanos now) const {
  BrokerHealth h;
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard lock(mu_);
    h = health_;
    snap = snapshot_;
  }
  if (!h.polled) return "";
  if (!h.up) {
    return "RabbitMQ unreachable since " + ClockTime(h.since_ns, now) + " (" + h.error + ")";
  }
  if (!snap) return "";
  // The consumer's queue when the span named it, else where the exchange routes the key.
  if (!hop.queue.empty()) {
    if (const QueueState* q = snap->FindQueue(hop.queue)) return QueueSentence(*q);
  }
  const std::string_view exchange = ExchangeOf(hop);
  const Route r = ResolveRoute(*snap, exchange, hop.routing_key);
  switch (r.kind) {
    case Route::Kind::kQueues: {
      std::string s;
      const size_t shown = std::min<size_t>(r.queues.size(), 3);
      for (size_t i = 0; i < shown; ++i) {
        if (const QueueState* q = snap->FindQueue(r.queues[i])) {
          s += (s.empty() ? "" : "; ") + QueueSentence(*q);
        }
      }
      if (r.queues.size() > shown) {
        s += " (+" + std::to_string(r.queues.size() - shown) + " more queues)";
      }
      return s;
    }
    case Route::Kind::kUnrouted:
      if (exchange.empty()) {
        return "no queue named '" + hop.routing_key +
               "' for the default exchange: RabbitMQ dropped the message";
      }
      return "no queue is bound to exchange '" + std::string(exchange) + "' with routing key '" +
             hop.routing_key + "': RabbitMQ dropped the message";
    case Route::Kind::kNoExchange:
      return "exchange '" + std::string(exchange) + "' does not exist in vhost '" +
             options_.management.vhost + "': the publish failed";
    case Route::Kind::kHeaders:
      return "exchange '" + std::string(exchange) + "' routes by headers (" + r.exchange_type +
             " exchange): queue not resolved";
  }
  return "";
}

std::string BrokerMonitor::StatusJson() const {
  BrokerHealth h;
  std::shared_ptr<const Snapshot> snap;
  std::deque<Outage> outages;
  {
    std::lock_guard lock(mu_);
    h = health_;
    snap = snapshot_;
    outages = outages_;
  }
  json j{{"broker", broker()},
         {"vhost", options_.management.vhost},
         {"up", h.polled ? json(h.up) : json(nullptr)},
         {"since", TimeOrNull(h.since_ns)},
         {"error", h.up || h.error.empty() ? json(nullptr) : json(h.error)},
         {"last_poll", TimeOrNull(h.last_poll_ns)},
         {"last_success", TimeOrNull(h.last_success_ns)},
         {"interval_seconds", std::chrono::duration<double>(options_.interval).count()}};
  if (snap) {
    j["node"] = snap->overview.node;
    j["cluster_name"] = snap->overview.cluster_name;
    j["version"] = snap->overview.rabbitmq_version;
    j["snapshot_at"] = Rfc3339(snap->at_ns);
  } else {
    j["node"] = j["cluster_name"] = j["version"] = j["snapshot_at"] = nullptr;
  }
  json list = json::array();
  for (const Outage& o : outages) {
    list.push_back(
        {{"start", Rfc3339(o.start_ns)}, {"end", TimeOrNull(o.end_ns)}, {"error", o.error}});
  }
  j["outages"] = std::move(list);
  json queues = json::array();
  if (snap) {
    for (const QueueState& q : snap->queues) {
      queues.push_back({{"name", q.name},
                        {"vhost", q.vhost},
                        {"messages_ready", q.counted ? json(q.ready) : json(nullptr)},
                        {"messages_unacknowledged", q.counted ? json(q.unacked) : json(nullptr)},
                        {"consumers", q.consumers},
                        {"publish_rate", q.publish_rate},
                        {"deliver_rate", q.deliver_rate},
                        {"ack_rate", q.ack_rate}});
    }
  }
  // While down, these are the last known values (snapshot_at says when).
  j["queues"] = std::move(queues);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace ordertrace::broker
