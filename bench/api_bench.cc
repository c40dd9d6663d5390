// The web UI's API under load (docs/benchmarks.md, "API for the UI: summary and stuck list"):
// the latency of GET /api/v1/summary and of the stuck list's first page with 1M active orders
// and 50k of them stuck, over HTTP on loopback, through the gateway's own handlers.
//
// Builds an Engine (DefaultRules, a ManualClock) on a SqliteStore in a fresh directory under
// $TMPDIR (or --dir) with --orders active orders ("ORD-2026-%07d"), each reaching a stage through
// one span, applied --batch per Apply() (the engine's write path: rows, spans, milestones and the
// list's indexes).  --stuck of them (every orders/stuck-th) reached their stage three days ago,
// cycling over the five stages that expect something (SUBMITTED ... SHIPPED), so their deadlines
// have passed, and every 5th of those also published a message nobody processed (an open hop);
// the others reached their stage within the last minute.  One Tick() flags the stuck ones.  Then
// an HttpServer on 127.0.0.1 serves RegisterJourneyRoutes (behind an ApiGuard that allows all, no
// audit) with one thread, and one keep-alive client times --requests GETs of each target, after 5
// of warm-up:
//   summary          /api/v1/summary
//   stuck            /api/v1/orders?stuck=true&sort=stuck_since&limit=100
//   stuck_in_stage   /api/v1/orders?stuck=true&sort=stuck_since&stage=APPROVED&limit=100
//   stuck_not_modified  the stuck list again with If-None-Match: its ETag (the 304 path)
// Each prints p50 / p99 / max in ms; the last line of stdout is one JSON object.
//
// Usage: ordertrace-bench-api [--orders 1000000] [--stuck 50000] [--requests 200]
//          [--batch 1000] [--cache-mb 64] [--dir DIR] [--keep]
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/api_guard.h"
#include "api/journey_api.h"
#include "bench_ids.h"
#include "common/log.h"
#include "journey/engine.h"
#include "journey/rules/rules.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/url.h"

namespace {

namespace fs = std::filesystem;
namespace jr = ordertrace::journey;
using nlohmann::json;
using ordertrace::Nanos;
using ordertrace::bench::Hex;
using ordertrace::bench::Mix;
using Steady = std::chrono::steady_clock;

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kSec = 1'000 * kMs;
constexpr Nanos kT = 1'795'000'000 * kSec;  // the clock's "now" (2026-11-18)

struct Options {
  uint64_t orders = 1'000'000;
  uint64_t stuck = 50'000;
  int requests = 200;
  uint64_t batch = 1000;
  int cache_mb = 64;
  std::string dir;
  bool keep = false;
};

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--keep") {
      o->keep = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--orders") {
      o->orders = std::strtoull(v, nullptr, 10);
    } else if (a == "--stuck") {
      o->stuck = std::strtoull(v, nullptr, 10);
    } else if (a == "--requests") {
      o->requests = std::atoi(v);
    } else if (a == "--batch") {
      o->batch = std::strtoull(v, nullptr, 10);
    } else if (a == "--cache-mb") {
      o->cache_mb = std::atoi(v);
    } else if (a == "--dir") {
      o->dir = v;
    } else {
      return false;
    }
  }
  return o->orders > 0 && o->stuck > 0 && o->stuck <= o->orders && o->requests > 0 && o->batch > 0;
}

std::string OrderId(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ORD-2026-%07" PRIu64, i);
  return buf;
}

// The stages that expect something, with the service whose span reaches each: one that leaves
// the stage's expectation unmet (mes has not received a SUBMITTED order from crm, ...).
struct StagePlan {
  const char* stage;
  const char* service;
};
constexpr StagePlan kStages[] = {{"SUBMITTED", "crm"},
                                 {"PRICE_CALCULATED", "mes"},
                                 {"APPROVED", "crm"},
                                 {"MANUFACTURING_STARTED", "mes"},
                                 {"SHIPPED", "mes"}};

// Order i's facts: its milestone span, and for every 5th stuck order a publish nobody processed.
void FactsOf(uint64_t i, bool stuck, uint64_t stuck_index, std::vector<jr::SpanRecord>* out) {
  const StagePlan& plan = kStages[(stuck ? stuck_index : i) % 5];
  jr::SpanRecord s;
  s.order_id = OrderId(i);
  s.trace_id = Hex(Mix(i * 2 + 1)) + Hex(Mix(i * 2 + 2));
  s.span_id = Hex(Mix(i) | 1);
  s.service = plan.service;
  s.name = std::string("reach ") + plan.stage;
  // Stuck: three days ago, one second apart (distinct stuck times); else within the last minute.
  s.end_ns = stuck ? kT - 3 * 24 * 3600 * kSec + static_cast<Nanos>(stuck_index) * kSec
                   : kT - static_cast<Nanos>(i % 60) * kSec;
  s.start_ns = s.end_ns - 35 * kMs;
  s.otel_status = 1;
  s.stage = plan.stage;
  out->push_back(s);
  if (stuck && stuck_index % 5 == 0) {
    jr::SpanRecord p = s;
    p.span_id = Hex(Mix(i + (uint64_t{1} << 40)) | 1);
    p.name = "publish order.next";
    p.stage.clear();
    p.hop = jr::HopRole::kSend;
    p.message_id = "msg-" + std::to_string(i);
    p.exchange = "orders";
    p.routing_key = "order.next";
    p.queue = "mes.orders";
    p.start_ns += kMs;
    p.end_ns += kMs;
    out->push_back(std::move(p));
  }
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

struct Timing {
  std::string name;
  std::string target;
  int status = 0;
  size_t bytes = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
};

// `requests` GETs of `target` (after 5 of warm-up) on one keep-alive connection.
bool Time(ordertrace::net::HttpConnection& conn, int requests, const std::string& name,
          const std::string& target, const std::string& if_none_match, Timing* t) {
  t->name = name;
  t->target = target;
  ordertrace::net::HeaderList headers;
  if (!if_none_match.empty()) headers.emplace_back("If-None-Match", if_none_match);
  std::vector<double> ms;
  for (int i = 0; i < requests + 5; ++i) {
    const auto t0 = Steady::now();
    const ordertrace::net::HttpOutcome r =
        conn.Send("GET", target, "", headers, std::chrono::seconds(30), uint64_t{64} << 20);
    const auto t1 = Steady::now();
    if (!r.ok()) {
      std::fprintf(stderr, "GET %s: %s\n", target.c_str(), r.failure->Describe().c_str());
      return false;
    }
    t->status = r.reply.status;
    t->bytes = r.reply.body.size();
    if (i >= 5) ms.push_back(Seconds(t1 - t0) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&ms](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
  };
  t->p50_ms = at(0.5);
  t->p99_ms = at(0.99);
  t->max_ms = ms.back();
  double sum = 0;
  for (double v : ms) sum += v;
  t->mean_ms = sum / static_cast<double>(ms.size());
  return true;
}

int Run(const Options& opt) {
  std::string dir = opt.dir;
  bool made_dir = false;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-bench-api-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    made_dir = true;
  }
  jr::SqliteStoreOptions so;
  so.path = (fs::path(dir) / "journeys.db").string();
  so.cache_mb = opt.cache_mb;
  auto store = jr::OpenSqliteStore(so);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  ordertrace::ManualClock clock(kT);
  jr::Engine engine(std::make_shared<jr::Rules>(jr::DefaultRules()), **store, clock, nullptr);
  const std::string load_before = LoadAvg();

  // The orders, stuck ones spread evenly.
  const uint64_t every = opt.orders / opt.stuck;
  const auto build_start = Steady::now();
  auto last_report = build_start;
  uint64_t stuck_made = 0;
  for (uint64_t i = 0; i < opt.orders;) {
    std::vector<jr::SpanRecord> facts;
    const uint64_t end = std::min(opt.orders, i + opt.batch);
    for (; i < end; ++i) {
      const bool stuck = i % every == 0 && stuck_made < opt.stuck;
      FactsOf(i, stuck, stuck_made, &facts);
      if (stuck) ++stuck_made;
    }
    const ordertrace::Status s = engine.Apply(std::move(facts));
    if (!s.ok()) {
      std::fprintf(stderr, "apply: %s\n", s.ToString().c_str());
      return 1;
    }
    if (Steady::now() - last_report > std::chrono::seconds(10)) {
      last_report = Steady::now();
      std::fprintf(stderr, "built %" PRIu64 " orders (%.0f s)\n", i,
                   Seconds(last_report - build_start));
    }
  }
  const double build_s = Seconds(Steady::now() - build_start);
  const auto tick_start = Steady::now();
  const size_t flagged = engine.Tick(clock.Now());
  const double tick_s = Seconds(Steady::now() - tick_start);
  std::fprintf(stderr, "built %" PRIu64 " orders in %.0f s; %zu flagged in %.1f s\n", opt.orders,
               build_s, flagged, tick_s);

  // The store's share of the stuck list, in process: the page alone, with its count, with the
  // oldest open hop of each order (what the handler asks for).
  std::vector<Timing> store_timings;
  for (int part = 0; part < 3; ++part) {
    jr::OrderQuery q;
    q.stuck = true;
    q.sort = jr::OrderSort::kStuckSince;
    q.limit = 100;
    q.count_total = part >= 1;
    q.with_open_hop = part >= 2;
    Timing t;
    t.name = part == 0 ? "store_page" : part == 1 ? "store_page_count" : "store_page_count_hops";
    t.target = "ListOrders(stuck, sort=stuck_since, limit 100)";
    std::vector<double> ms;
    for (int i = 0; i < opt.requests / 4 + 5; ++i) {
      const auto t0 = Steady::now();
      auto page = (*store)->ListOrders(q);
      const auto t1 = Steady::now();
      if (!page.ok()) return 1;
      if (i >= 5) ms.push_back(Seconds(t1 - t0) * 1e3);
    }
    std::sort(ms.begin(), ms.end());
    t.p50_ms = ms[ms.size() / 2];
    t.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
    t.max_ms = ms.back();
    store_timings.push_back(t);
    std::fprintf(stderr, "%s: p50 %.2f ms, p99 %.2f ms\n", t.name.c_str(), t.p50_ms, t.p99_ms);
  }

  ordertrace::api::AllowAll allow;
  ordertrace::api::ApiGuard guard(allow);
  ordertrace::net::HttpServerOptions ho;
  ho.host = "127.0.0.1";
  ho.port = 0;
  ho.threads = 1;
  ordertrace::net::HttpServer server(ho);
  ordertrace::api::JourneyApiOptions api;
  ordertrace::api::RegisterJourneyRoutes(server, engine, guard, api);
  if (const ordertrace::Status s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "server: %s\n", s.ToString().c_str());
    return 1;
  }
  auto url = ordertrace::net::ParseUrl("http://127.0.0.1:" + std::to_string(server.port()));
  if (!url.ok()) return 1;
  ordertrace::net::HttpConnection conn(*url);

  const std::string load_start = LoadAvg();
  const std::string stuck_list = "/api/v1/orders?stuck=true&sort=stuck_since&limit=100";
  std::vector<Timing> timings(4);
  bool ok =
      Time(conn, opt.requests, "summary", "/api/v1/summary", "", &timings[0]) &&
      Time(conn, opt.requests, "stuck", stuck_list, "", &timings[1]) &&
      Time(conn, opt.requests, "stuck_in_stage",
           "/api/v1/orders?stuck=true&sort=stuck_since&stage=APPROVED&limit=100", "", &timings[2]);
  std::string etag;
  if (ok) {
    const auto r =
        conn.Send("GET", stuck_list, "", {}, std::chrono::seconds(30), uint64_t{64} << 20);
    ok = r.ok();
    if (ok) {
      etag = std::string(r.reply.Header("ETag"));
      const json page = json::parse(r.reply.body, nullptr, false);
      std::fprintf(stderr, "stuck list: total %s, %zu on the first page\n",
                   page.is_object() ? page["total"].dump().c_str() : "?",
                   page.is_object() ? page["orders"].size() : 0);
    }
  }
  ok = ok && Time(conn, opt.requests, "stuck_not_modified", stuck_list, etag, &timings[3]);
  const std::string load_end = LoadAvg();
  conn.Close();
  server.Shutdown();
  if (!ok) return 1;

  json out{{"orders", opt.orders},
           {"stuck_orders", flagged},
           {"requests", opt.requests},
           {"build_seconds", build_s},
           {"load_build_start", load_before},
           {"load_requests_start", load_start},
           {"load_requests_end", load_end}};
  for (const Timing& t : timings) {
    std::printf("%-19s %3d %8zu B  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  mean %7.2f ms  %s\n",
                t.name.c_str(), t.status, t.bytes, t.p50_ms, t.p99_ms, t.max_ms, t.mean_ms,
                t.target.c_str());
    out[t.name] = json{{"target", t.target},  {"status", t.status}, {"bytes", t.bytes},
                       {"p50_ms", t.p50_ms},  {"p99_ms", t.p99_ms}, {"max_ms", t.max_ms},
                       {"mean_ms", t.mean_ms}};
  }
  std::printf("%s\n", out.dump().c_str());
  if (made_dir && !opt.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: ordertrace-bench-api [--orders 1000000] [--stuck 50000] "
                 "[--requests 200] [--batch 1000] [--cache-mb 64] [--dir DIR] [--keep]\n");
    return 2;
  }
  (void)ordertrace::log::Init("warn", ordertrace::log::Format::kLogfmt);
  return Run(opt);
}
