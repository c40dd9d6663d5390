// Flow map and KPI benchmark: fills an SQLite journey store with N orders started in the last
// hour (so both the flow's 1 h and the KPIs' 24 h window hold all of them), then times
// api::FlowJson (window 1h) and api::KpiJson (window 24h) on it, as GET /api/v1/flow and
// /api/v1/kpi compute them (without HTTP and the JSON text).
//
// Workload per order: an order row (partner one of --partners pseudonyms), 3 milestones
// (SUBMITTED, PRICE_CALCULATED, APPROVED; every 3rd order closed with CLOSED instead of APPROVED)
// and 2 hops (crm → orders → mes.calculate → mes processed in 5..50 ms; partner → orders →
// crm.orders, open for every 20th order); every 20th order is stuck now (with an ongoing
// episode), every 10th had an episode that ended.  Written in batches of 5000 orders.
//
// Usage: ordertrace-bench-flowkpi [--orders 200000] [--runs 5] [--partners 500] [--path FILE]
// Without --path the store goes to a fresh directory under $TMPDIR, removed at the end.  The
// last line of output is one JSON object with the figures (milliseconds).
#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "api/flow_api.h"
#include "api/kpi_api.h"
#include "bench_ids.h"
#include "journey/engine.h"
#include "journey/store/sqlite/sqlite_store.h"

namespace {

using namespace ordertrace;  // NOLINT: a benchmark's main file
using journey::Hop;
using journey::Milestone;
using journey::OrderRow;
using journey::StuckEpisode;
using journey::StuckKind;
using journey::WriteBatch;
using SteadyClock = std::chrono::steady_clock;

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kSec = 1'000 * kMs;

struct Options {
  uint64_t orders = 200'000;
  int runs = 5;
  uint64_t partners = 500;
  std::string path;
};

// CPU time of this thread, ms: the figure the other processes on a shared machine do not move.
double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double MsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

void Fill(journey::JourneyStore& store, const Options& o, Nanos now) {
  const char* stages[] = {"SUBMITTED", "PRICE_CALCULATED", "APPROVED", "CLOSED"};
  WriteBatch b;
  for (uint64_t i = 0; i < o.orders; ++i) {
    const std::string id = "ord-" + std::to_string(1'000'000'000 + i);
    const Nanos first = now - 3600 * kSec + static_cast<Nanos>(i * (3500 * kSec) / o.orders);
    const bool closed = i % 3 == 0;
    const bool stuck = !closed && i % 20 == 1;
    OrderRow r;
    r.order_id = id;
    r.stage = closed ? "CLOSED" : "APPROVED";
    r.first_ns = first;
    r.stage_ns = first + 3 * kSec;
    r.last_ns = first + 3 * kSec;
    r.last_service = "crm";
    r.expected_service = closed ? "" : "mes";
    r.closed = closed;
    r.partner = "pse:k1:" + bench::Hex(bench::Mix(i % o.partners));
    if (stuck) {
      r.stuck = StuckKind::kNextOverdue;
      r.stuck_since_ns = first + 10 * kSec;
      b.episodes.push_back(StuckEpisode{id, "APPROVED", StuckKind::kNextOverdue, "mes",
                                        first + 10 * kSec, first + 10 * kSec + 300 * kMs, 0});
    }
    if (i % 10 == 2) {
      b.episodes.push_back(StuckEpisode{id, "SUBMITTED", StuckKind::kNotReceived, "mes",
                                        first + kSec, first + kSec + 200 * kMs, first + 2 * kSec});
    }
    b.orders.push_back(std::move(r));
    for (int s = 0; s < 3; ++s) {
      Milestone m;
      m.order_id = id;
      m.stage = stages[s == 2 && closed ? 3 : s];
      m.at_ns = first + s * kSec;
      m.service = s == 0 ? "partner" : s == 1 ? "mes" : "crm";
      m.trace_id = bench::Hex(bench::Mix(i)) + bench::Hex(i);
      m.span_id = bench::Hex(bench::Mix(i * 8 + s));
      b.milestones.push_back(std::move(m));
    }
    for (int h = 0; h < 2; ++h) {
      Hop hop;
      hop.order_id = id;
      hop.send_span_id = bench::Hex(bench::Mix(i * 8 + 4 + h));
      hop.send_trace_id = bench::Hex(bench::Mix(i)) + bench::Hex(i);
      hop.send_service = h == 0 ? "partner" : "crm";
      hop.message_id = "msg-" + std::to_string(i * 2 + h);
      hop.exchange = "orders";
      hop.routing_key = h == 0 ? "order.submit" : "price.calculate";
      hop.published_ns = first + h * kSec;
      const bool open = h == 0 && (i % 20 == 1);
      if (!open) {
        hop.queue = h == 0 ? "crm.orders" : "mes.calculate";
        hop.processed_ns = hop.published_ns + static_cast<Nanos>(5 + i % 46) * kMs;
        hop.process_service = h == 0 ? "crm" : "mes";
        hop.process_span_id = bench::Hex(bench::Mix(i * 8 + 6 + h));
      }
      b.hops.push_back(std::move(hop));
    }
    if (b.orders.size() == 5000 || i + 1 == o.orders) {
      const Status s = store.Write(b);
      if (!s.ok()) {
        std::fprintf(stderr, "write: %s\n", s.ToString().c_str());
        std::exit(1);
      }
      b = WriteBatch{};
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--orders" && v) {
      o.orders = std::strtoull(v, nullptr, 10), ++i;
    } else if (a == "--runs" && v) {
      o.runs = std::atoi(v), ++i;
    } else if (a == "--partners" && v) {
      o.partners = std::max<uint64_t>(1, std::strtoull(v, nullptr, 10)), ++i;
    } else if (a == "--path" && v) {
      o.path = v, ++i;
    } else {
      std::fprintf(stderr,
                   "usage: ordertrace-bench-flowkpi [--orders N] [--runs N] [--partners N] "
                   "[--path FILE]\n");
      return 2;
    }
  }
  namespace fs = std::filesystem;
  std::string dir;
  if (o.path.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-flowkpi-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return 1;
    dir = tmpl;
    o.path = dir + "/journeys.db";
  }
  journey::SqliteStoreOptions so;
  so.path = o.path;
  auto store = journey::OpenSqliteStore(so);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  ManualClock clock(1'790'000'000 * kSec);
  const Nanos now = clock.Now();
  auto t0 = SteadyClock::now();
  Fill(**store, o, now);
  const double fill_ms = MsSince(t0);
  std::fprintf(stderr, "filled %llu orders in %.0f ms\n", static_cast<unsigned long long>(o.orders),
               fill_ms);

  journey::Engine engine(std::make_shared<journey::Rules>(journey::DefaultRules()), **store, clock,
                         nullptr);
  {
    // The store scans alone (stderr): what the answers cost before any counting.
    journey::JourneyStore& st = **store;
    const Nanos since = now - 3600 * kSec;
    size_t n = 0;
    auto count = [&n](const auto&) { ++n; };
    const std::pair<const char*, std::function<Status()>> scans[] = {
        {"orders", [&] { return st.ForEachOrderSince(since, count); }},
        {"milestones", [&] { return st.ForEachMilestoneSince(since, count); }},
        {"hops", [&] { return st.ForEachHopSince(since, count); }},
        {"open hops", [&] { return st.ForEachOpenHop(count); }},
        {"episodes", [&] { return st.ForEachEpisodeSince(since, count); }}};
    for (const auto& [name, scan] : scans) {
      n = 0;
      t0 = SteadyClock::now();
      const Status s = scan();
      std::fprintf(stderr, "scan %s: %zu rows in %.0f ms (%s)\n", name, n, MsSince(t0),
                   s.ok() ? "ok" : s.ToString().c_str());
    }
  }
  std::vector<double> flow, kpi, flow_cpu, kpi_cpu;
  size_t flow_bytes = 0, kpi_bytes = 0;
  for (int r = 0; r < o.runs; ++r) {
    t0 = SteadyClock::now();
    double cpu0 = ThreadCpuMs();
    auto f = api::FlowJson(engine, nullptr, std::chrono::hours(1), now);
    flow.push_back(MsSince(t0));
    flow_cpu.push_back(ThreadCpuMs() - cpu0);
    t0 = SteadyClock::now();
    cpu0 = ThreadCpuMs();
    auto k = api::KpiJson(engine, api::KpiOptions{}, std::chrono::hours(24), now);
    kpi.push_back(MsSince(t0));
    kpi_cpu.push_back(ThreadCpuMs() - cpu0);
    if (!f.ok() || !k.ok()) {
      std::fprintf(stderr, "query failed\n");
      return 1;
    }
    flow_bytes = f->dump().size();
    kpi_bytes = k->dump().size();
    if (r == 0) {
      std::fprintf(stderr, "kpi orders: %s\n", (*k)["orders"].dump().c_str());
    }
  }
  for (auto* v : {&flow, &kpi, &flow_cpu, &kpi_cpu}) std::sort(v->begin(), v->end());
  std::printf(
      "{\"orders\": %llu, \"runs\": %d, \"fill_ms\": %.0f, \"flow_ms_median\": %.1f, "
      "\"flow_ms_max\": %.1f, \"flow_cpu_ms_median\": %.1f, \"flow_bytes\": %zu, "
      "\"kpi_ms_median\": %.1f, \"kpi_ms_max\": %.1f, \"kpi_cpu_ms_median\": %.1f, "
      "\"kpi_bytes\": %zu}\n",
      static_cast<unsigned long long>(o.orders), o.runs, fill_ms, flow[flow.size() / 2],
      flow.back(), flow_cpu[flow_cpu.size() / 2], flow_bytes, kpi[kpi.size() / 2], kpi.back(),
      kpi_cpu[kpi_cpu.size() / 2], kpi_bytes);
  if (!dir.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}
