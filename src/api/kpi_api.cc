#include "api/kpi_api.h"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/text_format.h"
#include "common/values.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr char kNone[] = "none";        // the pseudo stage before any milestone
constexpr char kUnknown[] = "unknown";  // no expected service

json Share(uint64_t part, uint64_t whole) {
  return whole == 0 ? json(nullptr) : json(static_cast<double>(part) / static_cast<double>(whole));
}

// What the KPIs keep of an order started in the window.
struct Started {
  std::string stage;
  std::string service;  // expected_service, else last_service
  std::string partner;
  bool closed = false;
  bool stuck_now = false;
  bool lost = false;
};

struct StageFigures {
  uint64_t reached = 0;
  std::unordered_set<std::string> stuck;  // order ids
  uint64_t lost = 0;
  std::vector<double> lead;  // seconds
};

struct ServiceFigures {
  std::unordered_set<std::string> stuck;  // order ids
  uint64_t lost = 0;
};

struct PartnerFigures {
  uint64_t orders = 0, closed = 0, on_time = 0, decided = 0;
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

  std::unordered_map<std::string, Started> started;
  RETURN_IF_ERROR(store.ForEachOrderSince(since, [&](const journey::OrderRow& o) {
    Started s;
    s.stage = o.stage.empty() ? kNone : o.stage;
    s.service = !o.expected_service.empty() ? o.expected_service
                : !o.last_service.empty()   ? o.last_service
                                            : kUnknown;
    s.partner = o.partner;
    s.closed = o.closed;
    s.stuck_now = o.stuck != journey::StuckKind::kNone;
    s.lost = !o.closed && (now - o.last_ns >= lost_after ||
                           (s.stuck_now && now - o.stuck_since_ns >= lost_after));
    started.emplace(o.order_id, std::move(s));
  }));

  std::map<std::string, StageFigures> stages;  // by stage name
  std::map<std::string, ServiceFigures> services;
  std::unordered_set<std::string> flagged_orders;  // started orders flagged at least once
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
    stages[e.stage.empty() ? kNone : e.stage].stuck.insert(e.order_id);
    services[e.expected_service.empty() ? kUnknown : e.expected_service].stuck.insert(e.order_id);
    if (started.count(e.order_id) > 0) flagged_orders.insert(e.order_id);
  }));

  // Milestones by order, for the lead time from one milestone to the next.
  std::unordered_map<std::string, std::vector<std::pair<int, Nanos>>> reached;
  RETURN_IF_ERROR(store.ForEachMilestoneSince(since, [&](const journey::Milestone& m) {
    const int index = rules->StageIndex(m.stage);
    if (index < 0) return;
    ++stages[m.stage].reached;
    reached[m.order_id].emplace_back(index, m.at_ns);
  }));
  for (auto& [id, list] : reached) {
    std::sort(list.begin(), list.end());
    for (size_t i = 1; i < list.size(); ++i) {
      if (list[i].second >= list[i - 1].second) {
        stages[rules->stages[list[i - 1].first].name].lead.push_back(
            Seconds(list[i - 1].second, list[i].second));
      }
    }
  }

  uint64_t closed = 0, stuck = 0, lost = 0;
  std::map<std::string, PartnerFigures> partners;
  for (const auto& [id, s] : started) {
    const bool flagged = s.stuck_now || flagged_orders.count(id) > 0;
    closed += s.closed ? 1 : 0;
    stuck += flagged ? 1 : 0;
    if (s.lost) {
      ++lost;
      ++stages[s.stage].lost;
      ++services[s.service].lost;
    }
    if (!s.partner.empty()) {
      PartnerFigures& p = partners[s.partner];
      ++p.orders;
      if (s.closed) ++p.closed;
      if (s.closed && !flagged) ++p.on_time;
      if (s.closed || flagged) ++p.decided;
    }
  }

  json by_stage = json::array();
  auto stage_json = [&](const std::string& name) {
    StageFigures& f = stages[name];
    by_stage.push_back(json{{"stage", name},
                            {"reached", f.reached},
                            {"stuck", f.stuck.size()},
                            {"lost", f.lost},
                            {"lead_time_p50_seconds", Quantile(f.lead, 0.5)},
                            {"lead_time_p95_seconds", Quantile(f.lead, 0.95)}});
  };
  if (const auto it = stages.find(kNone); it != stages.end()) stage_json(kNone);
  for (const journey::StageRule& s : rules->stages) stage_json(s.name);

  std::vector<std::pair<std::string, ServiceFigures*>> service_list;
  for (auto& [name, f] : services) service_list.emplace_back(name, &f);
  std::stable_sort(service_list.begin(), service_list.end(), [](const auto& a, const auto& b) {
    return a.second->stuck.size() + a.second->lost > b.second->stuck.size() + b.second->lost;
  });
  json by_service = json::array();
  for (const auto& [name, f] : service_list) {
    by_service.push_back(json{{"service", name}, {"stuck", f->stuck.size()}, {"lost", f->lost}});
  }

  std::vector<std::pair<std::string, PartnerFigures>> partner_list(partners.begin(),
                                                                   partners.end());
  std::stable_sort(partner_list.begin(), partner_list.end(),
                   [](const auto& a, const auto& b) { return a.second.orders > b.second.orders; });
  if (partner_list.size() > options.max_partners) partner_list.resize(options.max_partners);
  json partner_json = json::array();
  for (const auto& [name, p] : partner_list) {
    partner_json.push_back(json{{"partner", name},
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
  server.Route("GET", "/api/v1/kpi",
               guard.Wrap("/api/v1/kpi", "orders.list",
                          [&engine, options](net::HttpRequest& req, net::HttpResponse& res,
                                             audit::AuditEvent& event) {
                            event.resource.emplace_back("type", "kpi");
                            const std::optional<Duration> window =
                                ParseWindowQuery(req.query, kKpiWindows, res);
                            if (!window) return;
                            event.resource.emplace_back("window", FormatDuration(*window));
                            Result<json> body =
                                KpiJson(engine, options, *window, engine.clock().Now());
                            if (!body.ok()) {
                              log::Error("KPIs failed", {{"error", body.status().message()}});
                              AnswerError(res, 500, "journey store: " + body.status().message());
                              return;
                            }
                            AnswerJson(req, res, std::move(body).value());
                          }));
}

}  // namespace ordertrace::api
