// Journey engine benchmark: RAM per active order, and the lag from a deadline passing to the
// order being flagged, with many active orders (docs/benchmarks.md, "Journeys").
//
//   --memory  builds N active orders in an Engine (DefaultRules) and reports the heap and RSS
//             they cost per order and Apply()'s throughput.  Each order reaches SUBMITTED
//             through one span from crm ("ORD-2026-%07d"), so it has a deadline in the heap;
//             records are applied in batches of --batch per Apply().  The heap is glibc's
//             bytes in use (mallinfo2: uordblks + hblkhd, every arena); SQLite's own heap
//             (sqlite3_memory_used(): mostly its page caches, bounded by --cache-mb for the
//             writer and half that for the reader) is reported apart and subtracted to give
//             the engine's figure.
//   --lag     builds N active orders whose first deadline + grace (with DefaultRules: mes has
//             not received it within 2m, + 30s grace, after the SUBMITTED span's end) falls
//             uniformly in [t0 + 10 s, t0 + 10 s + spread], t0 being the moment the detector
//             thread starts (StartDetector(), SystemClock); an EngineListener records, for each
//             flag, clock.Now() at OnStuck - row.stuck_since_ns.  Flags write order rows to the
//             store: part of the cost measured.  Prints p50/p90/p99/max of that lag, and how
//             long the store took to settle what it deferred (store.h Settle: SQLite's
//             verdict log) once the flags were all heard.
//   --ingest  the journey consumer's write path in process: bench/run ingest's workload
//             (bench/ingest_workload.h, the same generator and seed; --distinct requests of 512
//             spans, each with an order id, cycled), decoded once (otlp::DecodeExportRequest),
//             then --spans spans through FactExtractor::Extract and Engine::Apply in batches of
//             --batch spans (default 32768: many requests' facts per Apply, one store
//             transaction, as the durable log's journey consumer does).  --fresh rewrites the
//             span, parent and trace ids of every pass after the first, so every span is new
//             (the orders recur); without it, passes after the first repeat spans (as bench/run
//             does).  Prints spans/s and CPU µs per span, extraction and Apply apart.
//
// Usage: ordertrace-bench-journey (--memory | --lag | --ingest) [--orders 1000000] [--batch 1000]
//          [--spans 1048576] [--distinct 256] [--fresh]
//          [--store sqlite|memory] [--cache-mb 64] [--spread 60s] [--lead 0]
//          [--timeout 60] [--settle-timeout 600] [--dir DIR] [--keep]
// --lead: seconds between the start of the build and t0 (0: 10 + orders / 6000; the program
// waits for t0 after the build, and says so when the build ran past it); --timeout: seconds
// to wait for all flags after the last deadline (default 60); --settle-timeout: seconds to wait,
// after the last flag, for the store to settle what it deferred (default 600).  Without --dir the
// SQLite file goes to a fresh directory under $TMPDIR, removed at the end unless --keep.  A run
// whose flags do not all come within --timeout prints the lags it has (orders not flagged count as
// longer than the run) and exits 1 without joining the detector.  Progress lines go to stderr every
// few seconds; the last line of stdout is one JSON object with the figures.
#include <malloc.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_ids.h"
#include "common/log.h"
#include "common/values.h"
#include "ingest_workload.h"
#include "journey/engine.h"
#include "journey/facts.h"
#include "journey/rules/rules.h"
#include "journey/store/memory/memory_store.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "otlp/decoder.h"

namespace {

namespace jr = ordertrace::journey;
using jr::SpanRecord;
using ordertrace::Nanos;
using Steady = std::chrono::steady_clock;

constexpr Nanos kMs = 1'000'000;
std::function<void()> g_cleanup;  // removes the temporary store (a run that gives up _Exit()s)
constexpr Nanos kSec = 1'000 * kMs;

struct Options {
  bool memory = false;
  bool lag = false;
  bool ingest = false;
  uint64_t orders = 1'000'000;
  uint64_t batch = 0;  // 0: the mode's default (1000 orders; --ingest 32768 spans)
  uint64_t spans = 1'048'576;
  int distinct = 256;
  bool fresh = false;
  std::string store = "sqlite";
  int cache_mb = 64;
  Nanos spread_ns = 60 * kSec;
  double lead_s = 0;
  double timeout_s = 60;
  double settle_timeout_s = 600;
  std::string dir;
  bool keep = false;
};

using ordertrace::bench::Hex;
using ordertrace::bench::Mix;

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--memory") {
      o->memory = true;
    } else if (a == "--lag") {
      o->lag = true;
    } else if (a == "--ingest") {
      o->ingest = true;
    } else if (a == "--fresh") {
      o->fresh = true;
    } else if (a == "--keep") {
      o->keep = true;
    } else {
      const char* v = next();
      if (v == nullptr) return false;
      if (a == "--orders") {
        o->orders = std::strtoull(v, nullptr, 10);
      } else if (a == "--batch") {
        o->batch = std::strtoull(v, nullptr, 10);
      } else if (a == "--spans") {
        o->spans = std::strtoull(v, nullptr, 10);
      } else if (a == "--distinct") {
        o->distinct = std::atoi(v);
      } else if (a == "--store") {
        o->store = v;
      } else if (a == "--cache-mb") {
        o->cache_mb = std::atoi(v);
      } else if (a == "--spread") {
        auto d = ordertrace::ParseDuration(v);  // 60s, 5m, 500ms ...
        if (!d.ok()) return false;
        o->spread_ns = std::chrono::nanoseconds(*d).count();
      } else if (a == "--lead") {
        o->lead_s = std::atof(v);
      } else if (a == "--timeout") {
        o->timeout_s = std::atof(v);
      } else if (a == "--settle-timeout") {
        o->settle_timeout_s = std::atof(v);
      } else if (a == "--dir") {
        o->dir = v;
      } else {
        return false;
      }
    }
  }
  if (o->batch == 0) o->batch = o->ingest ? 32768 : 1000;
  return int{o->memory} + int{o->lag} + int{o->ingest} == 1 && o->orders > 0 && o->spans > 0 &&
         o->distinct > 0 && (o->store == "sqlite" || o->store == "memory");
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

std::string OrderId(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ORD-2026-%07" PRIu64, i);
  return buf;
}

// The SUBMITTED span of order i (from crm), ending at end_ns.
SpanRecord SubmitSpan(uint64_t i, Nanos end_ns) {
  SpanRecord s;
  s.order_id = OrderId(i);
  s.trace_id = Hex(Mix(i * 2 + 1)) + Hex(Mix(i * 2 + 2));
  s.span_id = Hex(Mix(i) | 1);
  s.service = "crm";
  s.name = "POST /api/orders";
  s.start_ns = end_ns - 35 * kMs;
  s.end_ns = end_ns;
  s.otel_status = 1;
  s.step = ordertrace::StepStatus::kOk;
  s.stage = "SUBMITTED";
  return s;
}

struct Mem {
  uint64_t heap = 0;   // malloc bytes in use (all arenas, mmapped chunks included)
  uint64_t rss = 0;    // resident set size
  int64_t sqlite = 0;  // sqlite3_memory_used()
};

Mem MemNow() {
  Mem m;
  const struct mallinfo2 mi = mallinfo2();
  m.heap = mi.uordblks + mi.hblkhd;
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  m.rss = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  m.sqlite = sqlite3_memory_used();
  return m;
}

std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

double CpuSeconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Applies orders [0, n) in batches; end_of(i) gives the SUBMITTED span's end.  Returns the
// seconds spent inside Apply().
template <typename EndOf>
bool Build(jr::Engine& engine, const Options& opt, EndOf end_of, double* apply_s, double* wall_s,
           const std::function<void(uint64_t)>& after_batch = {}) {
  const auto start = Steady::now();
  auto last_report = start;
  Steady::duration in_apply{};
  for (uint64_t i = 0; i < opt.orders;) {
    std::vector<SpanRecord> facts;
    const uint64_t end = std::min(opt.orders, i + opt.batch);
    facts.reserve(end - i);
    for (; i < end; ++i) facts.push_back(SubmitSpan(i, end_of(i)));
    const auto t0 = Steady::now();
    const auto st = engine.Apply(std::move(facts));
    const auto t1 = Steady::now();
    in_apply += t1 - t0;
    if (!st.ok()) {
      std::fprintf(stderr, "apply: %s\n", st.ToString().c_str());
      return false;
    }
    if (after_batch) after_batch(i);
    if (t1 - last_report > std::chrono::seconds(5)) {
      std::fprintf(
          stderr, "  build: %9" PRIu64 " orders  %6.1f s  %7.0f orders/s in Apply  load %s\n", i,
          Seconds(t1 - start), static_cast<double>(i) / Seconds(in_apply), LoadAvg().c_str());
      last_report = t1;
    }
  }
  *apply_s = Seconds(in_apply);
  *wall_s = Seconds(Steady::now() - start);
  return true;
}

class LagRecorder : public jr::EngineListener {
 public:
  LagRecorder(const ordertrace::Clock& clock, size_t n) : clock_(clock), lag_ns_(n, -1) {}
  void OnStuck(const jr::OrderRow& row) override {
    const Nanos now = clock_.Now();
    const size_t k = n_.load(std::memory_order_relaxed);
    if (k < lag_ns_.size()) lag_ns_[k] = now - row.stuck_since_ns;
    if (row.stuck != jr::StuckKind::kNotReceived) ++other_kind_;
    n_.store(k + 1, std::memory_order_release);  // one call at a time (engine.h)
  }
  void OnCleared(const jr::OrderRow&) override { ++cleared_; }
  size_t count() const { return n_.load(std::memory_order_acquire); }
  std::vector<Nanos>& lags() { return lag_ns_; }
  uint64_t other_kind() const { return other_kind_; }
  uint64_t cleared() const { return cleared_; }

 private:
  const ordertrace::Clock& clock_;
  std::vector<Nanos> lag_ns_;
  std::atomic<size_t> n_{0};
  uint64_t other_kind_ = 0;
  std::atomic<uint64_t> cleared_{0};
};

int RunMemory(const Options& opt, jr::JourneyStore& store) {
  ordertrace::SystemClock clock;
  const Mem before_engine = MemNow();
  auto engine = std::make_unique<jr::Engine>(std::make_shared<const jr::Rules>(jr::DefaultRules()),
                                             store, clock, nullptr);
  const Mem before = MemNow();
  const Nanos now = clock.Now();
  // Milestones in the last minute (first deadline + grace 2m30s later).  Nothing is flagged:
  // no Tick() runs in this mode, so a slow build whose first deadlines pass changes nothing.
  auto end_of = [&](uint64_t i) { return now - static_cast<Nanos>(Mix(i + 99) % 60'000) * kMs; };
  double apply_s = 0, wall_s = 0;
  const double cpu0 = CpuSeconds();
  if (!Build(*engine, opt, end_of, &apply_s, &wall_s)) return 1;
  const double cpu_s = CpuSeconds() - cpu0;
  const Mem after = MemNow();
  const size_t active = engine->active_orders();
  const auto n = static_cast<double>(opt.orders);
  const double heap_delta = static_cast<double>(after.heap) - static_cast<double>(before.heap);
  const double sqlite_delta = static_cast<double>(after.sqlite - before.sqlite);
  const double rss_delta = static_cast<double>(after.rss) - static_cast<double>(before.rss);
  const double engine_heap = heap_delta - sqlite_delta;
  std::printf("active orders: %zu (of %" PRIu64 "), next deadline in %.1f s, load %s\n", active,
              opt.orders, static_cast<double>(engine->NextDeadline() - clock.Now()) / 1e9,
              LoadAvg().c_str());
  std::printf(
      "build: %.1f s wall, %.1f s in Apply(): %.0f orders/s (Apply), %.0f orders/s "
      "(wall), %.1f s CPU\n",
      wall_s, apply_s, n / apply_s, n / wall_s, cpu_s);
  std::printf(
      "heap in use: +%.1f MB = %.0f bytes/order; of which SQLite +%.1f MB (%.0f "
      "bytes/order, bounded by its caches: %d + %d MB)\n",
      heap_delta / 1e6, heap_delta / n, sqlite_delta / 1e6, sqlite_delta / n, opt.cache_mb,
      std::max(1, opt.cache_mb / 2));
  std::printf("engine heap (heap - SQLite): %.0f bytes/order\n", engine_heap / n);
  std::printf(
      "RSS: +%.1f MB = %.0f bytes/order (SQLite's caches included); empty engine "
      "%.0f bytes\n",
      rss_delta / 1e6, rss_delta / n,
      static_cast<double>(before.heap) - static_cast<double>(before_engine.heap));
  engine.reset();
  const Mem freed = MemNow();
  std::printf("after destroying the engine: heap %.1f MB above the start (SQLite %.1f MB)\n",
              (static_cast<double>(freed.heap) - static_cast<double>(before_engine.heap)) / 1e6,
              static_cast<double>(freed.sqlite - before_engine.sqlite) / 1e6);
  std::printf("{\"mode\":\"memory\",\"store\":\"%s\",\"orders\":%" PRIu64
              ",\"active\":%zu,"
              "\"heap_bytes_per_order\":%.0f,\"engine_heap_bytes_per_order\":%.0f,"
              "\"sqlite_bytes_per_order\":%.0f,\"rss_bytes_per_order\":%.0f,\"build_s\":%.1f,"
              "\"apply_s\":%.1f,\"apply_orders_per_s\":%.0f,\"cpu_s\":%.1f,\"load\":\"%s\"}\n",
              opt.store.c_str(), opt.orders, active, heap_delta / n, engine_heap / n,
              sqlite_delta / n, rss_delta / n, wall_s, apply_s, n / apply_s, cpu_s,
              LoadAvg().c_str());
  return active == opt.orders ? 0 : 1;
}

int RunLag(const Options& opt, jr::JourneyStore& store) {
  ordertrace::SystemClock clock;
  jr::Engine engine(std::make_shared<const jr::Rules>(jr::DefaultRules()), store, clock, nullptr);
  LagRecorder rec(clock, opt.orders);
  engine.AddListener(&rec);
  const jr::Rules rules = jr::DefaultRules();
  const Nanos first_deadline = std::chrono::nanoseconds(rules.stages[0].within_receipt).count() +
                               std::chrono::nanoseconds(rules.grace).count();  // 2m + 30s

  // The deadlines are fixed in the spans before the build, so t0 must lie beyond its end:
  // --lead, or 10 s + the build at 6,000 orders/s (SQLite on a busy 2-core machine does
  // 8,000-17,000); the program then waits for t0.
  const double lead_s = opt.lead_s > 0 ? opt.lead_s : 10 + static_cast<double>(opt.orders) / 6000.0;
  std::fprintf(stderr, "lead: %.0f s from the start of the build to t0\n", lead_s);
  const Nanos build_start = clock.Now();
  const Nanos t0 = build_start + static_cast<Nanos>(lead_s * 1e9);
  std::vector<Nanos> target(opt.orders);
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<Nanos> u(0, opt.spread_ns);
  for (auto& t : target) t = t0 + 10 * kSec + u(rng);
  auto end_of = [&](uint64_t i) { return target[i] - first_deadline; };
  double apply_s = 0, wall_s = 0;
  if (!Build(engine, opt, end_of, &apply_s, &wall_s)) return 1;
  const auto n = static_cast<double>(opt.orders);
  const Nanos built = clock.Now();
  std::printf("build: %" PRIu64
              " orders in %.1f s (%.0f orders/s in Apply), %.1f s before t0, "
              "load %s\n",
              opt.orders, wall_s, n / apply_s, static_cast<double>(t0 - built) / 1e9,
              LoadAvg().c_str());
  if (built > t0) {
    std::fprintf(stderr,
                 "the build ran past t0 by %.1f s: the first deadlines are less than 10 s "
                 "ahead (use a larger --lead)\n",
                 static_cast<double>(built - t0) / 1e9);
  } else {
    std::this_thread::sleep_for(std::chrono::nanoseconds(t0 - clock.Now()));
  }

  const double cpu0 = CpuSeconds();
  const auto flag_start = Steady::now();
  const std::string load_start = LoadAvg();
  engine.StartDetector();
  const Nanos give_up = t0 + 10 * kSec + opt.spread_ns + static_cast<Nanos>(opt.timeout_s * 1e9);
  size_t last = 0;
  auto last_report = Steady::now();
  while (rec.count() < opt.orders && clock.Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Steady::now() - last_report >= std::chrono::seconds(5)) {
      const size_t c = rec.count();
      const Nanos lag = c > 0 ? rec.lags()[c - 1] : 0;
      std::fprintf(stderr, "  flagged %9zu (+%zu)  t0%+6.1f s  last lag %.1f ms  load %s\n", c,
                   c - last, static_cast<double>(clock.Now() - t0) / 1e9,
                   static_cast<double>(lag) / 1e6, LoadAvg().c_str());
      last = c;
      last_report = Steady::now();
    }
  }
  const double flag_wall = Seconds(Steady::now() - flag_start);
  const double cpu_s = CpuSeconds() - cpu0;
  const std::string load_end = LoadAvg();
  const Nanos end_now = clock.Now();
  const size_t flagged = std::min<size_t>(rec.count(), opt.orders);
  const bool timed_out = flagged < opt.orders;
  // The store's deferred writes (SQLite: the verdict log) are settled by the verdict writer
  // once the burst is over: how many there were at the last flag, and how long settling took.
  ordertrace::Result<size_t> deferred = store.Settle(0);  // 0: counts, folds nothing
  const size_t deferred_at_end = deferred.ok() ? *deferred : 0;
  double settle_s = 0, settle_cpu_s = 0;
  size_t settle_left = deferred_at_end;
  if (!timed_out && deferred_at_end > 0) {
    const auto settle_start = Steady::now();
    const double settle_cpu0 = CpuSeconds();
    const auto settle_until = settle_start + std::chrono::duration<double>(opt.settle_timeout_s);
    auto settle_report = settle_start;
    for (;;) {
      auto left = store.Settle(0);  // 0: counts, folds nothing
      if (!left.ok()) break;
      settle_left = *left;
      if (settle_left == 0 || Steady::now() >= settle_until) break;
      if (Steady::now() - settle_report >= std::chrono::seconds(10)) {
        std::fprintf(stderr, "  settling: %zu deferred records left, %.0f s after the last flag\n",
                     settle_left, Seconds(Steady::now() - settle_start));
        settle_report = Steady::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    settle_s = Seconds(Steady::now() - settle_start);
    settle_cpu_s = CpuSeconds() - settle_cpu0;
  }
  // Don't join the detector when some flags never came: it may be in the middle of a long
  // Tick().  Print, clean up and leave (below).
  if (!timed_out) engine.StopDetector();

  // Over all orders: one not flagged by the end counts as a lag longer than the run allowed
  // (at least end_now - the latest deadline), so the percentiles stay honest.
  std::vector<Nanos> lags(rec.lags().begin(), rec.lags().begin() + static_cast<long>(flagged));
  lags.resize(opt.orders, std::numeric_limits<Nanos>::max());
  std::sort(lags.begin(), lags.end());
  const double censored_s = static_cast<double>(end_now - (t0 + 10 * kSec + opt.spread_ns)) / 1e9;
  auto pct = [&](double p) -> std::string {
    char buf[64];
    const size_t i =
        std::min(lags.size() - 1, static_cast<size_t>(p * static_cast<double>(lags.size())));
    if (lags[i] == std::numeric_limits<Nanos>::max()) {
      std::snprintf(buf, sizeof buf, ">%.0f s (not flagged)", censored_s);
    } else {
      std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(lags[i]) / 1e6);
    }
    return buf;
  };
  auto pct_ms = [&](double p) -> double {  // -1: not flagged within the run
    const size_t i =
        std::min(lags.size() - 1, static_cast<size_t>(p * static_cast<double>(lags.size())));
    return lags[i] == std::numeric_limits<Nanos>::max() ? -1.0 : static_cast<double>(lags[i]) / 1e6;
  };
  std::printf("flagged %zu of %" PRIu64 " (%" PRIu64 " of another kind, %" PRIu64
              " cleared) in %.1f s%s, %.1f s CPU (%.1f us CPU per flag)\n",
              flagged, opt.orders, rec.other_kind(), rec.cleared(), flag_wall,
              timed_out ? " (gave up)" : "", cpu_s,
              flagged ? cpu_s * 1e6 / static_cast<double>(flagged) : 0.0);
  std::printf("load: %s at the start of flagging, %s at the end\n", load_start.c_str(),
              load_end.c_str());
  if (deferred_at_end > 0) {
    const size_t settled = deferred_at_end - std::min(settle_left, deferred_at_end);
    std::printf(
        "deferred store records at the last flag: %zu; %zu settled in %.1f s after it%s "
        "(%.1f s CPU, %.1f us a record)\n",
        deferred_at_end, settled, settle_s, settle_left > 0 ? " (gave up waiting)" : "",
        settle_cpu_s, settled > 0 ? settle_cpu_s * 1e6 / static_cast<double>(settled) : 0.0);
  }
  std::printf("deadline -> flagged lag over all %" PRIu64
              " orders: p50 %s  p90 %s  p99 %s  "
              "max %s\n",
              opt.orders, pct(0.50).c_str(), pct(0.90).c_str(), pct(0.99).c_str(),
              pct(1.0).c_str());
  std::printf(
      "{\"mode\":\"lag\",\"store\":\"%s\",\"orders\":%" PRIu64
      ",\"spread_s\":%.0f,"
      "\"flagged\":%zu,\"lag_p50_ms\":%.1f,\"lag_p90_ms\":%.1f,\"lag_p99_ms\":%.1f,"
      "\"lag_max_ms\":%.1f,\"build_s\":%.1f,\"apply_orders_per_s\":%.0f,"
      "\"cpu_us_per_flag\":%.1f,\"deferred_at_end\":%zu,\"settle_left\":%zu,\"settle_s\":%.1f,"
      "\"load_start\":\"%s\",\"load_end\":\"%s\"}\n",
      opt.store.c_str(), opt.orders, static_cast<double>(opt.spread_ns) / 1e9, flagged,
      pct_ms(0.50), pct_ms(0.90), pct_ms(0.99), pct_ms(1.0), wall_s, n / apply_s,
      flagged ? cpu_s * 1e6 / static_cast<double>(flagged) : 0.0, deferred_at_end, settle_left,
      settle_s, load_start.c_str(), load_end.c_str());
  if (timed_out) {
    std::fflush(stdout);
    if (g_cleanup) g_cleanup();
    std::_Exit(1);
  }
  return 0;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Rewrites the last 4 hex digits of `id` with pass `pass` mixed in (--fresh): a new id of the
// same shape, the same in every span that names it (parents stay parents).
void Freshen(std::string* id, uint64_t pass) {
  if (id->size() < 4) return;
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t m = Mix(pass);
  for (size_t i = 0; i < 4; ++i) {
    char& c = (*id)[id->size() - 1 - i];
    const int v = c <= '9' ? c - '0' : c - 'a' + 10;
    c = kHex[(v ^ static_cast<int>((m >> (4 * i)) & 0xf)) & 0xf];
  }
}

int RunIngest(const Options& opt, jr::JourneyStore& store) {
  ordertrace::SystemClock clock;
  auto rules = std::make_shared<const jr::Rules>(jr::DefaultRules());
  jr::Engine engine(rules, store, clock, nullptr);
  const jr::FactExtractor extractor(rules);
  // bench/ingest_bench.cc's workload: the same seed and span times from now.
  std::mt19937_64 rng(42);
  const Nanos base_ns = clock.Now();
  std::vector<std::shared_ptr<const ordertrace::otlp::SpanBatch>> batches;
  for (int i = 0; i < opt.distinct; ++i) {
    auto decoded = ordertrace::otlp::DecodeExportRequest(
        ordertrace::bench::MakeRequest(rng, i, static_cast<uint64_t>(base_ns)).SerializeAsString(),
        ordertrace::otlp::Protocol::kHttpProtobuf, ordertrace::otlp::Limits{});
    if (!decoded.ok()) {
      std::fprintf(stderr, "decode: %s\n", decoded.status().ToString().c_str());
      return 1;
    }
    batches.push_back(std::move(decoded).value());
  }
  const uint64_t per_pass =
      static_cast<uint64_t>(opt.distinct) * ordertrace::bench::kSpansPerRequest;
  std::printf("ingest: %d distinct requests (%" PRIu64 " spans), %" PRIu64
              " spans in Apply batches of %" PRIu64 "%s\n",
              opt.distinct, per_pass, opt.spans, opt.batch,
              opt.fresh ? ", fresh ids every pass" : ", passes after the first repeat spans");

  uint64_t fed = 0, kept = 0, sends = 0, applies = 0;
  size_t next = 0;  // request index, cycling
  double extract_cpu = 0, apply_cpu = 0, apply_wall = 0;
  const double cpu0 = CpuSeconds();
  const auto start = Steady::now();
  auto last_report = start;
  std::vector<SpanRecord> facts;
  while (fed < opt.spans) {
    const double e0 = ThreadCpuSeconds();
    facts.clear();
    facts.reserve(opt.batch + ordertrace::bench::kSpansPerRequest);
    while (facts.size() < opt.batch && fed < opt.spans) {
      const uint64_t pass = next / static_cast<size_t>(opt.distinct);
      const size_t first = facts.size();
      extractor.Extract(*batches[next % static_cast<size_t>(opt.distinct)], &facts);
      fed += ordertrace::bench::kSpansPerRequest;
      ++next;
      for (size_t k = first; k < facts.size(); ++k) {
        SpanRecord& r = facts[k];
        if (opt.fresh && pass > 0) {
          Freshen(&r.span_id, pass);
          Freshen(&r.trace_id, pass);
          Freshen(&r.parent_span_id, pass);
        }
        if (r.hop == jr::HopRole::kSend) ++sends;
      }
    }
    kept += facts.size();
    const double e1 = ThreadCpuSeconds();
    const auto w0 = Steady::now();
    const auto st = engine.Apply(std::move(facts));
    facts = {};
    const auto w1 = Steady::now();
    const double e2 = ThreadCpuSeconds();
    extract_cpu += e1 - e0;
    apply_cpu += e2 - e1;
    apply_wall += Seconds(w1 - w0);
    ++applies;
    if (!st.ok()) {
      std::fprintf(stderr, "apply: %s\n", st.ToString().c_str());
      return 1;
    }
    if (w1 - last_report > std::chrono::seconds(5)) {
      std::fprintf(stderr, "  ingest: %9" PRIu64 " spans  %6.1f s  %7.0f spans/s  load %s\n", fed,
                   Seconds(w1 - start), static_cast<double>(fed) / Seconds(w1 - start),
                   LoadAvg().c_str());
      last_report = w1;
    }
  }
  const double wall = Seconds(Steady::now() - start);
  const double cpu = CpuSeconds() - cpu0;
  const auto n = static_cast<double>(kept);
  std::printf("fed %" PRIu64 " spans, %" PRIu64 " records (%" PRIu64
              " send spans), %zu active orders, %" PRIu64 " Apply calls, load %s\n",
              fed, kept, sends, engine.active_orders(), applies, LoadAvg().c_str());
  std::printf(
      "%.0f spans/s (wall %.2f s), %.0f spans/s in Apply; CPU %.2f us/span: extract %.2f, "
      "Apply %.2f (engine + store)\n",
      n / wall, wall, n / apply_wall, cpu * 1e6 / n, extract_cpu * 1e6 / n, apply_cpu * 1e6 / n);
  std::printf("{\"mode\":\"ingest\",\"store\":\"%s\",\"spans\":%" PRIu64
              ",\"distinct\":%d,\"fresh\":%s,\"batch\":%" PRIu64
              ",\"spans_per_s\":%.0f,\"apply_spans_per_s\":%.0f,\"cpu_us_per_span\":%.2f,"
              "\"extract_us_per_span\":%.2f,\"apply_us_per_span\":%.2f,\"load\":\"%s\"}\n",
              opt.store.c_str(), kept, opt.distinct, opt.fresh ? "true" : "false", opt.batch,
              n / wall, n / apply_wall, cpu * 1e6 / n, extract_cpu * 1e6 / n, apply_cpu * 1e6 / n,
              LoadAvg().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s (--memory | --lag | --ingest) [--orders N] [--batch N] [--spans N] "
                 "[--distinct N] [--fresh] [--store sqlite|memory] "
                 "[--cache-mb 64] [--spread 60s] [--lead SECONDS] [--timeout SECONDS] "
                 "[--settle-timeout SECONDS] "
                 "[--dir DIR] [--keep]\n",
                 argv[0]);
    return 2;
  }
  ordertrace::log::Init("warn", ordertrace::log::Format::kLogfmt);
  namespace fs = std::filesystem;
  fs::path dir;
  std::unique_ptr<jr::JourneyStore> store;
  std::string path;
  if (opt.store == "sqlite") {
    if (opt.dir.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "ordertrace-journey-bench-XXXXXX").string();
      if (mkdtemp(tmpl.data()) == nullptr) {
        std::perror("mkdtemp");
        return 1;
      }
      dir = tmpl;
    } else {
      fs::create_directories(opt.dir);
    }
    path = ((dir.empty() ? fs::path(opt.dir) : dir) / "journeys.db").string();
    jr::SqliteStoreOptions so;
    so.path = path;
    so.cache_mb = opt.cache_mb;
    auto opened = jr::OpenSqliteStore(so);
    if (!opened.ok()) {
      std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
      return 1;
    }
    store = std::move(opened).value();
    if (!dir.empty() && !opt.keep) {
      g_cleanup = [dir] {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      };
    }
  } else {
    store = jr::NewMemoryStore();
  }
  std::printf("journey bench: %s, %" PRIu64 " orders in batches of %" PRIu64
              ", store %s%s%s, "
              "load %s\n",
              opt.memory ? "memory"
              : opt.lag  ? "lag"
                         : "ingest",
              opt.orders, opt.batch, opt.store.c_str(), path.empty() ? "" : " ", path.c_str(),
              LoadAvg().c_str());
  std::fflush(stdout);
  const int rc = opt.memory ? RunMemory(opt, *store)
                 : opt.lag  ? RunLag(opt, *store)
                            : RunIngest(opt, *store);
  if (!path.empty()) {
    std::error_code ec;
    auto stats = store->Stats();
    if (stats.ok()) {
      std::printf("store: %" PRIu64 " orders, %" PRIu64 " spans, %.1f MB on disk\n", stats->orders,
                  stats->spans, static_cast<double>(stats->bytes) / 1e6);
    }
  }
  store.reset();
  if (!dir.empty() && !opt.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else if (!path.empty()) {
    std::printf("kept %s\n", path.c_str());
  }
  return rc;
}
