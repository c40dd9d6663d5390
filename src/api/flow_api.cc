#include "api/flow_api.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/route.h"
#include "common/text_format.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

const std::string kUnknownQueue = "?";  // + exchange/routing key
constexpr double kUnplaced = 1e9;       // a service placed by nothing: rightmost
constexpr size_t kStuckPage = 1000;
constexpr Duration kPlacingSpan = std::chrono::minutes(10);  // milestones that place services

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

// Hops that took the same route: publisher, exchange, queue (or the routing key while the queue
// is unknown) and consumer (open hops have none).
struct Route {
  std::string send_service, exchange, queue, routing_key, process_service;
  bool processed = false;
  uint64_t in_window = 0;  // published in the window
  uint64_t open = 0;
  uint64_t late = 0;                      // open past messages.processed_within + grace
  std::unordered_set<std::string> stuck;  // stuck orders with an open hop on the route
  std::vector<double> latency;            // seconds, processed hops in the window
};

const std::string kOpenMark = "\x1f(open)";

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

  // Hops are summed per route first (a handful of distinct routes for any number of hops);
  // Build() turns the routes into nodes and edges.
  void AddHop(const journey::Hop& h, bool stuck_order) {
    if (h.published_ns == 0 || h.send_service.empty()) return;
    const bool processed = !h.open();
    const std::string exchange = ExchangeName(h);
    std::string key = h.send_service;
    for (const std::string* part :
         {&exchange, &h.queue, h.queue.empty() ? &h.routing_key : &h.queue,
          processed ? &h.process_service : &kOpenMark}) {
      key.push_back('\x1f');
      key += *part;
    }
    auto [it, inserted] = routes_.try_emplace(std::move(key));
    Route& r = it->second;
    if (inserted) {
      r.send_service = h.send_service;
      r.exchange = exchange;
      r.queue = h.queue;
      r.routing_key = h.routing_key;
      r.process_service = processed ? h.process_service : std::string();
      r.processed = processed;
    }
    const bool in_window = h.published_ns >= since_;
    if (in_window) ++r.in_window;
    if (!processed) {
      ++r.open;
      if (late_after_ > 0 && now_ - h.published_ns >= late_after_) ++r.late;
      if (stuck_order) r.stuck.insert(h.order_id);
    } else if (in_window && h.processed_ns >= h.published_ns) {
      r.latency.push_back(Seconds(h.published_ns, h.processed_ns));
    }
  }

  // A stuck order expecting `service` (OrderRow::expected_service).
  void AddStuckService(const std::string& service, const std::string& order_id) {
    if (service.empty()) return;
    Touch(NodeKind::kService, service, 0, 0, nullptr);
    nodes_[NodeId(NodeKind::kService, service)].stuck.insert(order_id);
  }

  // A service reached `stage` in the window (a milestone): places it in the lifecycle.
  void AddMilestone(const std::string& service, int stage) {
    if (stage < 0) return;
    auto [it, inserted] = milestone_positions_.try_emplace(service, stage);
    if (!inserted) it->second = std::min(it->second, static_cast<double>(stage));
  }

  json Build(json broker) {
    for (auto& [key, route] : routes_) Expand(route);
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
  // The route's queue: as the spans named it, else where the broker's bindings route the
  // message (one queue only: a fanout to several is not guessed), else "?<exchange>/<key>".
  std::string QueueOf(const Route& r) const {
    if (!r.queue.empty()) return r.queue;
    if (snapshot_ != nullptr) {
      const std::string_view exchange =
          r.exchange == "amq.default" ? std::string_view() : std::string_view(r.exchange);
      const broker::Route route = broker::ResolveRoute(*snapshot_, exchange, r.routing_key);
      if (route.kind == broker::Route::Kind::kQueues && route.queues.size() == 1) {
        return route.queues[0];
      }
    }
    // Per exchange and routing key: messages bound for different queues stay apart.
    return kUnknownQueue + r.exchange + "/" + r.routing_key;
  }

  void Touch(NodeKind kind, const std::string& name, uint64_t messages, uint64_t late,
             const std::string* publisher) {
    Node& n = nodes_[NodeId(kind, name)];
    n.kind = kind;
    n.name = name;
    n.messages += messages;
    n.late += late;
    if (publisher != nullptr &&
        std::find(n.publishers.begin(), n.publishers.end(), *publisher) == n.publishers.end()) {
      n.publishers.push_back(*publisher);
    }
  }

  // One route's hops into its nodes and edges.
  void Expand(Route& r) {
    const std::string queue_name = QueueOf(r);
    const std::string publisher = NodeId(NodeKind::kService, r.send_service);
    const std::string exchange = NodeId(NodeKind::kExchange, r.exchange);
    const std::string queue = NodeId(NodeKind::kQueue, queue_name);
    Touch(NodeKind::kService, r.send_service, r.in_window, r.late, nullptr);
    Touch(NodeKind::kExchange, r.exchange, r.in_window, r.late, &r.send_service);
    Touch(NodeKind::kQueue, queue_name, r.in_window, r.late, &r.send_service);
    std::vector<Edge*> path = {&EdgeOf(publisher, exchange), &EdgeOf(exchange, queue)};
    if (r.processed && !r.process_service.empty()) {
      Touch(NodeKind::kService, r.process_service, r.in_window, 0, nullptr);
      path.push_back(&EdgeOf(queue, NodeId(NodeKind::kService, r.process_service)));
    }
    for (Edge* e : path) {
      e->count += r.in_window;
      e->open += r.open;
      e->late += r.late;
      e->stuck.insert(r.stuck.begin(), r.stuck.end());
      e->latency.insert(e->latency.end(), r.latency.begin(), r.latency.end());
    }
    nodes_[exchange].stuck.insert(r.stuck.begin(), r.stuck.end());
    nodes_[queue].stuck.insert(r.stuck.begin(), r.stuck.end());
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
    for (const auto& [service, at] : milestone_positions_) {
      if (Node* n = Service(service)) n->position = std::min(n->position, at);
    }
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
  std::unordered_map<std::string, Route> routes_;                // by route key (AddHop)
  std::unordered_map<std::string, double> milestone_positions_;  // by service
  std::map<std::string, Node> nodes_;                            // by node id
  std::map<std::string, Edge> edges_;                            // by edge id
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
                      Nanos now, Duration settle_wait) {
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
  query.settle_wait = settle_wait;
  uint64_t unsettled = 0;
  do {
    ASSIGN_OR_RETURN(journey::OrderPage page, store.ListOrders(query));
    unsettled = std::max(unsettled, page.unsettled);
    query.settle_wait = Duration(0);  // the first page waited; the others take the log as it is
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
  // Milestones only place services in the lifecycle: the last few minutes show every active one.
  const Nanos placing = std::max(since, now - std::chrono::nanoseconds(kPlacingSpan).count());
  RETURN_IF_ERROR(store.ForEachMilestoneSince(placing, [&](const journey::Milestone& m) {
    flow.AddMilestone(m.service, rules->StageIndex(m.stage));
  }));

  json body = flow.Build(BrokerBlock(broker));
  body["as_of"] = Rfc3339(now);
  body["window_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(window).count();
  body["revision"] = engine.revision();
  body["unsettled"] = unsettled;
  return body;
}

void RegisterFlowRoute(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                       const broker::BrokerMonitor* broker, Duration reuse_for) {
  WindowedRoute route;
  route.path = "/api/v1/flow";
  route.type = "flow";
  route.range = kFlowWindows;
  route.reuse_for = reuse_for;
  if (broker != nullptr) {
    // A reused answer is dropped when the broker was polled or its reachability changed.
    route.extra_key = [broker] {
      const broker::BrokerHealth h = broker->health();
      return std::to_string(h.last_success_ns) + "/" + (h.up ? "up" : "down:" + h.error);
    };
  }
  route.compute = [&engine, broker](Duration window, Nanos now) {
    return FlowJson(engine, broker, window, now);
  };
  RegisterWindowedRoute(server, guard, engine.clock(), std::move(route));
}

}  // namespace ordertrace::api
