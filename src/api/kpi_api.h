// GET /api/v1/kpi?window=24h: the request's KPIs over a window (docs/api.md "GET /api/v1/kpi"
// defines every figure exactly).  Read from the store by time (store.h ForEach...Since): the
// orders first seen in the window, the milestones reached in it, and the stuck episodes
// (types.h StuckEpisode) flagged or cleared in it or still ongoing.
//
//   detection_lag_seconds  flagged - (deadline + grace), episodes flagged in the window
//   time_stuck_seconds     episodes ended in the window (p50, p95 of cleared - due), ongoing
//                          ones, and the stuck time of all of them inside the window (total)
//   orders                 started in the window: closed, open, stuck (flagged at least once, or
//                          stuck now), lost (below); shares of started
//   by_stage, by_service   reached (milestones in the window), stuck (orders with an episode
//                          flagged there in the window), lost; lead time milestone → next
//                          milestone (both in the window)
//   partners               per partner (pseudonym) of the started orders: closed, on time
//
// Lost: started in the window, not closed, and either silent (no span) or stuck for at least
// lost_after = min(KpiOptions::lost_after, window / 2) (half the window: an order must have had
// time to get lost inside it).  On time: closed and never flagged; on_time_share = on_time /
// (closed + open orders flagged at least once: the orders whose outcome is known).
//
// Thread-safety: handlers run concurrently; the engine and store are thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "api/api_guard.h"
#include "api/windowed.h"
#include "common/status.h"
#include "journey/engine.h"
#include "net/http_server.h"

namespace ordertrace::api {

// 1h..30d, default 24h.
inline const WindowRange kKpiWindows{std::chrono::hours(1), std::chrono::hours(24 * 30),
                                     std::chrono::hours(24)};

struct KpiOptions {
  // An open order silent (or stuck) this long is lost (capped at half the window).
  Duration lost_after{std::chrono::hours(24)};
  size_t max_partners = 1000;  // the partners with most orders; the rest are left out
  // A window's answer is reused this long (AnswerCache): the KPIs move slowly.
  Duration reuse_for{std::chrono::seconds(30)};
};

// The answer for the window ending at `now` (without ETag).  Exposed for tests and the
// benchmark.
Result<nlohmann::json> KpiJson(journey::Engine& engine, const KpiOptions& options, Duration window,
                               Nanos now);

// Registers GET /api/v1/kpi behind `guard` (action orders.list).  `engine` and `guard` must
// outlive the server.
void RegisterKpiRoute(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                      KpiOptions options = {});

}  // namespace ordertrace::api
