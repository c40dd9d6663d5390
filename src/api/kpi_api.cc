#include "api/kpi_api.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/text_format.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr char kNone[] = "none";        // the pseudo stage before any milestone
constexpr char kUnknown[] = "unknown";  // no expected service

json Share(uint64_t part, uint64_t whole) {
  return whole == 0 ? json(nullptr) : json(static_cast<double>(part) / static_cast<double>(whole));
}

// Orders are told apart by a 64-bit hash of their id (the scans hand out hundreds of thousands
// of them: no copy of each id is kept); a collision merges two orders' figures, at odds of about
// n²/2^65 (1e-9 for 200k orders).
uint64_t OrderKey(std::string_view order_id) { return std::hash<std::string_view>()(order_id); }

// Small sets of names (stages, services, partners) as dense ids.
class Names {
 public:
  uint32_t Id(const std::string& name) {
    auto [it, inserted] = ids_.try_emplace(name, static_cast<uint32_t>(names_.size()));
    if (inserted) names_.push_back(name);
    return it->second;
  }
  const std::string& Name(uint32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::string> names_;
};

constexpr uint32_t kNoPartner = UINT32_MAX;

// What the KPIs keep of an order started in the window.
struct Started {
  uint32_t stage = 0;    // in `stages` (kNone before a milestone)
  uint32_t service = 0;  // in `services`: expected_service, else last_service, else kUnknown
  uint32_t partner = kNoPartner;
  bool closed = false;
  bool stuck_now = false;
  bool lost = false;
  bool flagged = false;  // an episode flagged in the window
};

struct StageFigures {
  uint64_t reached = 0;
  std::unordered_set<uint64_t> stuck;  // order keys
  uint64_t lost = 0;
  std::vector<double> lead;  // seconds
};

struct ServiceFigures {
  std::unordered_set<uint64_t> stuck;  // order keys
  uint64_t lost = 0;
};

struct PartnerFigures {
  uint64_t orders = 0, closed = 0, on_time = 0, decided = 0;
};

struct Reached {
  uint64_t order;
  int stage;
  Nanos at;
  bool operator<(const Reached& o) const {
    return std::tie(order, stage, at) < std::tie(o.order, o.stage, o.at);
  }
};

}  // namespace

Result<json> KpiJson(journey::Engine& engine, const KpiOptions& options, Duration window,
                     Nanos now) {
  const auto rules = engine.rules();
  const Nanos window_ns = std::chrono::nanoseconds(window).count();
  const Nanos since = now - window_ns;
  const Nanos lost_after =
      std::min(std::chrono::nanoseconds(options.lost_after).count(), window_ns / 2);
  journey::JourneyStore& store = engine.store();

  // Stage ids 0..n-1 are the rules' stages, n is "none"; figures by stage id.
  Names stages, services, partners;
  for (const journey::StageRule& r : rules->stages) stages.Id(r.name);
  const uint32_t none = stages.Id(kNone);
  std::unordered_map<uint64_t, Started> started;
  RETURN_IF_ERROR(store.ForEachOrderSince(since, [&](const journey::OrderRow& o) {
    Started s;
    s.stage = o.stage.empty() ? none : stages.Id(o.stage);
    s.service = services.Id(!o.expected_service.empty() ? o.expected_service
                            : !o.last_service.empty()   ? o.last_service
                                                        : std::string(kUnknown));
    if (!o.partner.empty()) s.partner = partners.Id(o.partner);
    s.closed = o.closed;
    s.stuck_now = o.stuck != journey::StuckKind::kNone;
    s.lost = !o.closed && (now - o.last_ns >= lost_after ||
                           (s.stuck_now && now - o.stuck_since_ns >= lost_after));
    started[OrderKey(o.order_id)] = s;
  }));

  std::vector<StageFigures> by_stage_id;
  std::vector<ServiceFigures> by_service_id;
  auto stage_figures = [&](uint32_t id) -> StageFigures& {
    if (id >= by_stage_id.size()) by_stage_id.resize(id + 1);
    return by_stage_id[id];
  };
  auto service_figures = [&](uint32_t id) -> ServiceFigures& {
    if (id >= by_service_id.size()) by_service_id.resize(id + 1);
    return by_service_id[id];
  };
  std::vector<double> lags, ended;
  uint64_t ongoing = 0;
  double total_stuck = 0;
  RETURN_IF_ERROR(store.ForEachEpisodeSince(since, [&](const journey::StuckEpisode& e) {
    const Nanos end = e.cleared_ns != 0 ? e.cleared_ns : now;
    if (end > since) total_stuck += Seconds(std::max(e.due_ns, since), end);
    if (e.cleared_ns == 0) {
      ++ongoing;
    } else if (e.cleared_ns >= since) {
      ended.push_back(std::max(0.0, Seconds(e.due_ns, e.cleared_ns)));
    }
    if (e.flagged_ns < since) return;
    lags.push_back(std::max(0.0, Seconds(e.due_ns, e.flagged_ns)));
    const uint64_t key = OrderKey(e.order_id);
    stage_figures(e.stage.empty() ? none : stages.Id(e.stage)).stuck.insert(key);
    service_figures(
        services.Id(e.expected_service.empty() ? std::string(kUnknown) : e.expected_service))
        .stuck.insert(key);
    if (const auto it = started.find(key); it != started.end()) it->second.flagged = true;
  }));

  // Milestones by order (sorted), for the lead time from one milestone to the next.
  std::vector<Reached> reached;
  RETURN_IF_ERROR(store.ForEachMilestoneSince(since, [&](const journey::Milestone& m) {
    const int index = rules->StageIndex(m.stage);
    if (index < 0) return;
    ++stage_figures(static_cast<uint32_t>(index)).reached;
    reached.push_back(Reached{OrderKey(m.order_id), index, m.at_ns});
  }));
  std::sort(reached.begin(), reached.end());
  for (size_t i = 1; i < reached.size(); ++i) {
    const Reached& a = reached[i - 1];
    const Reached& b = reached[i];
    if (a.order == b.order && b.at >= a.at) {
      stage_figures(static_cast<uint32_t>(a.stage)).lead.push_back(Seconds(a.at, b.at));
    }
  }

  uint64_t closed = 0, stuck = 0, lost = 0;
  std::vector<PartnerFigures> by_partner(partners.size());
  for (const auto& [key, s] : started) {
    const bool flagged = s.stuck_now || s.flagged;
    closed += s.closed ? 1 : 0;
    stuck += flagged ? 1 : 0;
    if (s.lost) {
      ++lost;
      ++stage_figures(s.stage).lost;
      ++service_figures(s.service).lost;
    }
    if (s.partner != kNoPartner) {
      PartnerFigures& p = by_partner[s.partner];
      ++p.orders;
      if (s.closed) ++p.closed;
      if (s.closed && !flagged) ++p.on_time;
      if (s.closed || flagged) ++p.decided;
    }
  }

  json by_stage = json::array();
  auto stage_json = [&](uint32_t id) {
    StageFigures& f = stage_figures(id);
    by_stage.push_back(json{{"stage", stages.Name(id)},
                            {"reached", f.reached},
                            {"stuck", f.stuck.size()},
                            {"lost", f.lost},
                            {"lead_time_p50_seconds", Quantile(f.lead, 0.5)},
                            {"lead_time_p95_seconds", Quantile(f.lead, 0.95)}});
  };
  if (!stage_figures(none).stuck.empty() || stage_figures(none).lost > 0) stage_json(none);
  for (uint32_t id = 0; id < rules->stages.size(); ++id) stage_json(id);

  std::vector<uint32_t> service_ids;
  for (uint32_t id = 0; id < services.size(); ++id) {
    const ServiceFigures& f = service_figures(id);
    if (!f.stuck.empty() || f.lost > 0) service_ids.push_back(id);
  }
  std::sort(service_ids.begin(), service_ids.end(), [&](uint32_t a, uint32_t b) {
    const ServiceFigures &fa = by_service_id[a], &fb = by_service_id[b];
    const size_t na = fa.stuck.size() + fa.lost, nb = fb.stuck.size() + fb.lost;
    return na != nb ? na > nb : services.Name(a) < services.Name(b);
  });
  json by_service = json::array();
  for (uint32_t id : service_ids) {
    const ServiceFigures& f = by_service_id[id];
    by_service.push_back(
        json{{"service", services.Name(id)}, {"stuck", f.stuck.size()}, {"lost", f.lost}});
  }

  std::vector<uint32_t> partner_ids(partners.size());
  for (uint32_t id = 0; id < partner_ids.size(); ++id) partner_ids[id] = id;
  std::sort(partner_ids.begin(), partner_ids.end(), [&](uint32_t a, uint32_t b) {
    return by_partner[a].orders != by_partner[b].orders
               ? by_partner[a].orders > by_partner[b].orders
               : partners.Name(a) < partners.Name(b);
  });
  if (partner_ids.size() > options.max_partners) partner_ids.resize(options.max_partners);
  json partner_json = json::array();
  for (uint32_t id : partner_ids) {
    const PartnerFigures& p = by_partner[id];
    partner_json.push_back(json{{"partner", partners.Name(id)},
                                {"orders", p.orders},
                                {"closed", p.closed},
                                {"on_time", p.on_time},
                                {"on_time_share", Share(p.on_time, p.decided)}});
  }

  const uint64_t n = started.size();
  json lag_max = nullptr;
  if (!lags.empty()) lag_max = *std::max_element(lags.begin(), lags.end());
  return json{{"as_of", Rfc3339(now)},
              {"window_seconds", window_ns / 1'000'000'000},
              {"lost_after_seconds", lost_after / 1'000'000'000},
              {"detection_lag_seconds", json{{"count", lags.size()},
                                             {"p50", Quantile(lags, 0.5)},
                                             {"p95", Quantile(lags, 0.95)},
                                             {"p99", Quantile(lags, 0.99)},
                                             {"max", lag_max}}},
              {"time_stuck_seconds", json{{"episodes", ended.size()},
                                          {"ongoing", ongoing},
                                          {"p50", Quantile(ended, 0.5)},
                                          {"p95", Quantile(ended, 0.95)},
                                          {"total", total_stuck}}},
              {"orders", json{{"started", n},
                              {"closed", closed},
                              {"open", n - closed},
                              {"stuck", stuck},
                              {"lost", lost},
                              {"closed_share", Share(closed, n)},
                              {"stuck_share", Share(stuck, n)},
                              {"lost_share", Share(lost, n)}}},
              {"by_stage", std::move(by_stage)},
              {"by_service", std::move(by_service)},
              {"partners", std::move(partner_json)}};
}

void RegisterKpiRoute(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                      KpiOptions options) {
  WindowedRoute route;
  route.path = "/api/v1/kpi";
  route.type = "kpi";
  route.range = kKpiWindows;
  route.reuse_for = options.reuse_for;
  route.compute = [&engine, options](Duration window, Nanos now) {
    return KpiJson(engine, options, window, now);
  };
  RegisterWindowedRoute(server, guard, engine.clock(), std::move(route));
}

}  // namespace ordertrace::api
