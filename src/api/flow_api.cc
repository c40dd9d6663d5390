#include "api/flow_api.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/route.h"
#include "common/log.h"
#include "common/text_format.h"
#include "common/values.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr char kUnknownQueue[] = "?";
constexpr double kUnplaced = 1e9;  // a service placed by nothing: rightmost
constexpr size_t kStuckPage = 1000;

enum class NodeKind { kService, kExchange, kQueue };

struct Node {
  NodeKind kind = NodeKind::kService;
  std::string name;
  uint64_t messages = 0;
  std::unordered_set<std::string> stuck;  // order ids
  uint64_t late = 0;                      // open hops past messages.processed_within
  double position = kUnplaced;            // services: the lifecycle order (see the header)
  size_t column = 0;
  std::vector<std::string> publishers;  // exchanges and queues: services publishing through it
};

struct Edge {
  std::string source, target;
  uint64_t count = 0;
  uint64_t open = 0;
  uint64_t late = 0;
  std::unordered_set<std::string> stuck;  // order ids
  std::vector<double> latency;            // seconds, processed hops in the window
};

std::string NodeId(NodeKind kind, const std::string& name) {
  switch (kind) {
    case NodeKind::kService:
      return "service:" + name;
    case NodeKind::kExchange:
      return "exchange:" + name;
    case NodeKind::kQueue:
      return "queue:" + name;
  }
  return name;
}

const char* KindName(NodeKind kind) {
  return kind == NodeKind::kService    ? "service"
         : kind == NodeKind::kExchange ? "exchange"
                                       : "queue";
}

// The exchange as a node name: RabbitMQ's name for the default exchange is "".
std::string ExchangeName(const journey::Hop& h) {
  const std::string_view e = broker::ExchangeOf(h);
  return e.empty() ? std::string("amq.default") : std::string(e);
}

class FlowBuilder {
 public:
  FlowBuilder(const journey::Rules& rules, Nanos now, Nanos since,
              std::shared_ptr<const broker::Snapshot> snapshot)
      : rules_(rules), now_(now), since_(since), snapshot_(std::move(snapshot)) {
    const Nanos within = std::chrono::nanoseconds(rules.message_processed_within).count();
    late_after_ = within > 0 ? within + std::chrono::nanoseconds(rules.grace).count() : 0;
  }

  void AddHop(const journey::Hop& h, bool stuck_order) {
    if (h.published_ns == 0 || h.send_service.empty()) return;
    const bool in_window = h.published_ns >= since_;
    const bool late = h.open() && late_after_ > 0 && now_ - h.published_ns >= late_after_;
    const std::string publisher = NodeId(NodeKind::kService, h.send_service);
    const std::string exchange = NodeId(NodeKind::kExchange, ExchangeName(h));
    const std::string queue = NodeId(NodeKind::kQueue, QueueOf(h));
    Touch(NodeKind::kService, h.send_service, in_window, late, nullptr);
    Touch(NodeKind::kExchange, ExchangeName(h), in_window, late, &h.send_service);
    Touch(NodeKind::kQueue, QueueOf(h), in_window, late, &h.send_service);
    std::vector<Edge*> path = {&EdgeOf(publisher, exchange), &EdgeOf(exchange, queue)};
    if (!h.open() && !h.process_service.empty()) {
      Touch(NodeKind::kService, h.process_service, in_window, false, nullptr);
      path.push_back(&EdgeOf(queue, NodeId(NodeKind::kService, h.process_service)));
    }
    for (Edge* e : path) {
      if (in_window) ++e->count;
      if (h.open()) ++e->open;
      if (late) ++e->late;
      if (h.open() && stuck_order) e->stuck.insert(h.order_id);
      if (in_window && !h.open() && h.processed_ns >= h.published_ns) {
        e->latency.push_back(Seconds(h.published_ns, h.processed_ns));
      }
    }
    if (h.open() && stuck_order) {
      nodes_[exchange].stuck.insert(h.order_id);
      nodes_[queue].stuck.insert(h.order_id);
    }
  }

  // A stuck order expecting `service` (OrderRow::expected_service).
  void AddStuckService(const std::string& service, const std::string& order_id) {
    if (service.empty()) return;
    Touch(NodeKind::kService, service, false, false, nullptr);
    nodes_[NodeId(NodeKind::kService, service)].stuck.insert(order_id);
  }

  // A service reached `stage` in the window (a milestone): places it in the lifecycle.
  void AddMilestone(const std::string& service, int stage) {
    auto it = nodes_.find(NodeId(NodeKind::kService, service));
    if (it != nodes_.end() && stage >= 0) {
      it->second.position = std::min(it->second.position, static_cast<double>(stage));
    }
  }

  json Build(json broker) {
    PlaceServices();
    AssignColumns();
    json nodes = json::array();
    std::vector<const std::pair<const std::string, Node>*> sorted;
    for (const auto& n : nodes_) sorted.push_back(&n);
    std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
      return std::tie(a->second.column, a->first) < std::tie(b->second.column, b->first);
    });
    for (const auto* entry : sorted) {
      const Node& n = entry->second;
      json queue = nullptr;
      std::string state = !n.stuck.empty() ? "bad" : n.late > 0 ? "warn" : "ok";
      if (n.kind == NodeKind::kQueue && snapshot_ != nullptr) {
        if (const broker::QueueState* q = snapshot_->FindQueue(n.name)) {
          queue = json{{"ready", q->ready}, {"unacked", q->unacked}, {"consumers", q->consumers}};
          if (q->ready > 0 && q->consumers == 0) state = "bad";
        }
      }
      nodes.push_back(json{{"id", entry->first},
                           {"kind", KindName(n.kind)},
                           {"name", n.name},
                           {"rank", n.column},
                           {"messages", n.messages},
                           {"stuck", n.stuck.size()},
                           {"queue", std::move(queue)},
                           {"state", state}});
    }
    json edges = json::array();
    for (auto& [id, e] : edges_) {
      const std::string& target_state = StateOf(e.target);
      const std::string state = (!e.stuck.empty() || target_state == "bad") ? "bad"
                                : e.late > 0                                ? "warn"
                                                                            : "ok";
      edges.push_back(json{{"id", id},
                           {"source", e.source},
                           {"target", e.target},
                           {"count", e.count},
                           {"open", e.open},
                           {"stuck", e.stuck.size()},
                           {"p50_seconds", Quantile(e.latency, 0.5)},
                           {"p95_seconds", Quantile(e.latency, 0.95)},
                           {"state", state}});
    }
    return json{
        {"broker", std::move(broker)}, {"nodes", std::move(nodes)}, {"edges", std::move(edges)}};
  }

 private:
  // The hop's queue: as the spans named it, else where the broker's bindings route the message
  // (one queue only: a fanout to several is not guessed), else "?".
  std::string QueueOf(const journey::Hop& h) const {
    if (!h.queue.empty()) return h.queue;
    if (snapshot_ != nullptr) {
      const broker::Route r =
          broker::ResolveRoute(*snapshot_, broker::ExchangeOf(h), h.routing_key);
      if (r.kind == broker::Route::Kind::kQueues && r.queues.size() == 1) return r.queues[0];
    }
    return kUnknownQueue;
  }

  void Touch(NodeKind kind, const std::string& name, bool in_window, bool late,
             const std::string* publisher) {
    Node& n = nodes_[NodeId(kind, name)];
    n.kind = kind;
    n.name = name;
    if (in_window) ++n.messages;
    if (late) ++n.late;
    if (publisher != nullptr &&
        std::find(n.publishers.begin(), n.publishers.end(), *publisher) == n.publishers.end()) {
      n.publishers.push_back(*publisher);
    }
  }

  Edge& EdgeOf(const std::string& source, const std::string& target) {
    Edge& e = edges_[source + "->" + target];
    e.source = source;
    e.target = target;
    return e;
  }

  const std::string& StateOf(const std::string& node_id) {
    static const std::string kOk = "ok", kBad = "bad";
    const auto it = nodes_.find(node_id);
    if (it == nodes_.end()) return kOk;
    const Node& n = it->second;
    if (!n.stuck.empty()) return kBad;
    if (n.kind == NodeKind::kQueue && snapshot_ != nullptr) {
      const broker::QueueState* q = snapshot_->FindQueue(n.name);
      if (q != nullptr && q->ready > 0 && q->consumers == 0) return kBad;
    }
    return kOk;
  }

  Node* Service(const std::string& name) {
    const auto it = nodes_.find(NodeId(NodeKind::kService, name));
    return it == nodes_.end() ? nullptr : &it->second;
  }

  // Lifecycle positions: the rules, then the milestones (AddMilestone), then neighbours.
  void PlaceServices() {
    for (size_t i = 0; i < rules_.stages.size(); ++i) {
      const journey::StageRule& s = rules_.stages[i];
      const std::pair<const std::string*, double> acts[] = {
          {&s.received_by, static_cast<double>(i)},
          {&s.processed_by, static_cast<double>(i)},
          {&s.next_by, static_cast<double>(i) + 0.5}};
      for (const auto& [service, at] : acts) {
        if (Node* n = service->empty() ? nullptr : Service(*service)) {
          n->position = std::min(n->position, at);
        }
      }
    }
    // Services placed by neither: next to the services they exchange messages with.
    for (const auto& [id, e] : edges_) {
      if (e.source.rfind("queue:", 0) != 0) continue;  // queue → consumer edges
      Node* consumer = FindNode(e.target);
      for (const std::string& publisher : nodes_[e.source].publishers) {
        Node* p = Service(publisher);
        if (p == nullptr || consumer == nullptr) continue;
        if (p->position >= kUnplaced && consumer->position < kUnplaced) {
          p->position = consumer->position - 0.25;
        } else if (consumer->position >= kUnplaced && p->position < kUnplaced) {
          consumer->position = p->position + 0.25;
        }
      }
    }
  }

  Node* FindNode(const std::string& id) {
    const auto it = nodes_.find(id);
    return it == nodes_.end() ? nullptr : &it->second;
  }

  // Service k (in lifecycle order) in column 3k; an exchange in 3k+1 and a queue in 3k+2 after
  // its earliest publisher k; the empty columns are then squeezed out.
  void AssignColumns() {
    std::vector<Node*> services;
    for (auto& [id, n] : nodes_) {
      if (n.kind == NodeKind::kService) services.push_back(&n);
    }
    std::sort(services.begin(), services.end(), [](const Node* a, const Node* b) {
      return std::tie(a->position, a->name) < std::tie(b->position, b->name);
    });
    std::unordered_map<std::string, size_t> order;
    for (size_t k = 0; k < services.size(); ++k) {
      order[services[k]->name] = k;
      services[k]->column = 3 * k;
    }
    std::set<size_t> used;
    for (auto& [id, n] : nodes_) {
      if (n.kind != NodeKind::kService) {
        size_t k = services.size();
        for (const std::string& p : n.publishers) k = std::min(k, order[p]);
        n.column = 3 * k + (n.kind == NodeKind::kExchange ? 1 : 2);
      }
      used.insert(n.column);
    }
    std::unordered_map<size_t, size_t> squeezed;
    for (size_t c : used) squeezed.emplace(c, squeezed.size());
    for (auto& [id, n] : nodes_) n.column = squeezed[n.column];
  }

  const journey::Rules& rules_;
  const Nanos now_;
  const Nanos since_;
  const std::shared_ptr<const broker::Snapshot> snapshot_;
  Nanos late_after_ = 0;
  std::map<std::string, Node> nodes_;  // by node id
  std::map<std::string, Edge> edges_;  // by edge id
};

json BrokerBlock(const broker::BrokerMonitor* broker) {
  if (broker == nullptr) {
    return json{{"configured", false}, {"up", nullptr}, {"since", nullptr}, {"error", nullptr}};
  }
  const broker::BrokerHealth h = broker->health();
  return json{{"configured", true},
              {"up", h.polled ? json(h.up) : json(nullptr)},
              {"since", h.polled && h.since_ns != 0 ? json(Rfc3339(h.since_ns)) : json(nullptr)},
              {"error", h.up || h.error.empty() ? json(nullptr) : json(h.error)}};
}

}  // namespace

Result<json> FlowJson(journey::Engine& engine, const broker::BrokerMonitor* broker, Duration window,
                      Nanos now) {
  const auto rules = engine.rules();
  const Nanos since = now - std::chrono::nanoseconds(window).count();
  journey::JourneyStore& store = engine.store();
  FlowBuilder flow(*rules, now, since, broker != nullptr ? broker->snapshot() : nullptr);

  // Stuck orders (active ones: a closed order is never stuck), with the service they expect.
  std::unordered_set<std::string> stuck;
  journey::OrderQuery query;
  query.stuck = true;
  query.include_closed = false;
  query.limit = kStuckPage;
  do {
    ASSIGN_OR_RETURN(journey::OrderPage page, store.ListOrders(query));
    for (const journey::OrderRow& o : page.orders) {
      stuck.insert(o.order_id);
      flow.AddStuckService(o.expected_service, o.order_id);
    }
    query.cursor = page.next_cursor;
  } while (!query.cursor.empty());

  RETURN_IF_ERROR(store.ForEachHopSince(
      since, [&](const journey::Hop& h) { flow.AddHop(h, stuck.count(h.order_id) > 0); }));
  // Older hops still open (the window's own open ones came above).
  RETURN_IF_ERROR(store.ForEachOpenHop([&](const journey::Hop& h) {
    if (h.published_ns < since) flow.AddHop(h, stuck.count(h.order_id) > 0);
  }));
  RETURN_IF_ERROR(store.ForEachMilestoneSince(since, [&](const journey::Milestone& m) {
    flow.AddMilestone(m.service, rules->StageIndex(m.stage));
  }));

  json body = flow.Build(BrokerBlock(broker));
  body["as_of"] = Rfc3339(now);
  body["window_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(window).count();
  // TODO(api/etag.h): Engine::revision() once merged.
  body["revision"] = nullptr;
  return body;
}

void RegisterFlowRoute(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                       const broker::BrokerMonitor* broker) {
  server.Route("GET", "/api/v1/flow",
               guard.Wrap("/api/v1/flow", "orders.list",
                          [&engine, broker](net::HttpRequest& req, net::HttpResponse& res,
                                            audit::AuditEvent& event) {
                            event.resource.emplace_back("type", "flow");
                            const std::optional<Duration> window =
                                ParseWindowQuery(req.query, kFlowWindows, res);
                            if (!window) return;
                            event.resource.emplace_back("window", FormatDuration(*window));
                            Result<json> body =
                                FlowJson(engine, broker, *window, engine.clock().Now());
                            if (!body.ok()) {
                              log::Error("flow map failed", {{"error", body.status().message()}});
                              AnswerError(res, 500, "journey store: " + body.status().message());
                              return;
                            }
                            AnswerJson(req, res, std::move(body).value());
                          }));
}

}  // namespace ordertrace::api
