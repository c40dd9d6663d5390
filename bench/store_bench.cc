// Journey store benchmark: fills an SQLite journey store with N orders, then times GetJourney
// for random orders.
//
// Workload: each order has one order row, 3 milestones, 6 spans (hex trace/span ids, one
// publish and one process span with message fields, stage on 3 spans) and 2 hops (one
// processed, one open); orders are written in batches of --batch orders per Write() (the
// engine's batching), order ids "ord-<10 digits>" in increasing order (or hashed with
// --random-ids).  Then --lookups GetJourney calls (max_spans 1000) for uniformly random
// stored orders, one thread, right after the fill (the OS page cache is warm, SQLite's own
// cache is --cache-mb, 64 MB by default as in the store).
//
// Usage: ordertrace-bench-store [--orders 10000000] [--batch 1000] [--lookups 20000]
//          [--path FILE] [--keep] [--random-ids] [--synchronous-full] [--cache-mb 64]
// Without --path the store goes to a fresh directory under $TMPDIR, removed at the end unless
// --keep.  The last line of output is one JSON object with the figures.
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench_ids.h"
#include "journey/store/sqlite/sqlite_store.h"

namespace {

using ordertrace::Nanos;
using ordertrace::journey::HopRole;
using ordertrace::journey::Milestone;
using ordertrace::journey::OrderRow;
using ordertrace::journey::SpanRecord;
using ordertrace::journey::StuckKind;
using ordertrace::journey::WriteBatch;
using Clock = std::chrono::steady_clock;

constexpr Nanos kBase = 1'750'000'000'000'000'000;  // ~2025-06
constexpr Nanos kMs = 1'000'000;

using ordertrace::bench::Hex;
using ordertrace::bench::Mix;

struct Options {
  uint64_t orders = 10'000'000;
  uint64_t batch = 1000;
  uint64_t lookups = 20'000;
  std::string path;
  bool keep = false;
  bool random_ids = false;
  bool synchronous_full = false;
  int cache_mb = 64;
};

std::string OrderId(const Options& o, uint64_t i) {
  char buf[32];
  if (o.random_ids) {
    std::snprintf(buf, sizeof buf, "ord-%016" PRIx64, Mix(i));
  } else {
    std::snprintf(buf, sizeof buf, "ord-%010" PRIu64, i);
  }
  return buf;
}

void AddOrder(const Options& opt, uint64_t i, WriteBatch* b) {
  const std::string id = OrderId(opt, i);
  const Nanos t0 = kBase + static_cast<Nanos>(i) * 10 * kMs;  // one order every 10 ms
  const std::string trace = Hex(Mix(i * 2 + 1)) + Hex(Mix(i * 2 + 2));
  const uint64_t sid = Mix(i) & ~uint64_t{0xf};
  static const char* kServices[] = {"checkout",  "orders",   "billing",
                                    "warehouse", "shipping", "notifications"};
  static const char* kNames[] = {"POST /orders", "orders publish",    "billing process",
                                 "charge card",  "warehouse reserve", "shipping create-label"};
  for (uint64_t k = 0; k < 6; ++k) {
    SpanRecord s;
    s.order_id = id;
    s.trace_id = trace;
    s.span_id = Hex(sid + k);
    if (k > 0) s.parent_span_id = Hex(sid + k - 1);
    s.service = kServices[k];
    s.name = kNames[k];
    s.start_ns = t0 + static_cast<Nanos>(k) * 50 * kMs;
    s.end_ns = s.start_ns + 30 * kMs;
    s.otel_status = 1;
    if (k == 0) s.stage = "created";
    if (k == 3) s.stage = "paid";
    if (k == 5) s.stage = "shipped";
    if (k == 1 || k == 2) {
      s.hop = k == 1 ? HopRole::kSend : HopRole::kProcess;
      s.message_id = "msg-" + Hex(Mix(i + 7));
      s.exchange = "orders";
      s.routing_key = "order.created";
      if (k == 2) {
        s.queue = "billing.orders";
        s.links = {Hex(sid + 1)};
      }
    }
    b->spans.push_back(std::move(s));
  }
  const char* stages[] = {"created", "paid", "shipped"};
  const uint64_t stage_span[] = {0, 3, 5};
  for (int m = 0; m < 3; ++m) {
    Milestone ms;
    ms.order_id = id;
    ms.stage = stages[m];
    ms.at_ns = t0 + static_cast<Nanos>(stage_span[m]) * 50 * kMs + 30 * kMs;
    ms.service = kServices[stage_span[m]];
    ms.trace_id = trace;
    ms.span_id = Hex(sid + stage_span[m]);
    b->milestones.push_back(std::move(ms));
  }
  for (int h = 0; h < 2; ++h) {
    ordertrace::journey::Hop hop;
    hop.order_id = id;
    hop.send_span_id = Hex(sid + 1 + static_cast<uint64_t>(h) * 8);
    hop.send_trace_id = trace;
    hop.send_service = "orders";
    hop.message_id = "msg-" + Hex(Mix(i + 7 + static_cast<uint64_t>(h)));
    hop.exchange = "orders";
    hop.routing_key = h == 0 ? "order.created" : "order.shipped";
    hop.queue = h == 0 ? "billing.orders" : "notifications.orders";
    hop.published_ns = t0 + (h == 0 ? 80 : 280) * kMs;
    if (h == 0) {
      hop.processed_ns = t0 + 120 * kMs;
      hop.process_service = "billing";
      hop.process_span_id = Hex(sid + 2);
      hop.process_trace_id = trace;
    }
    b->hops.push_back(std::move(hop));
  }
  OrderRow o;
  o.order_id = id;
  o.stage = "shipped";
  o.stage_start_ns = t0 + 250 * kMs;
  o.stage_ns = t0 + 280 * kMs;
  o.first_ns = t0;
  o.last_ns = t0 + 280 * kMs;
  for (uint64_t k = 0; k < 6; ++k) {
    o.services.emplace_back(kServices[k], t0 + static_cast<Nanos>(k) * 50 * kMs);
  }
  o.last_service = "shipping";
  o.spans = 6;
  o.open_hops = 1;
  if (i % 50 == 0) {
    o.stuck = StuckKind::kMessageUnprocessed;
    o.stuck_since_ns = t0 + 10'000 * kMs;
    o.expected_service = "notifications";
    o.summary = "notifications did not process order.shipped within 5m";
  }
  b->orders.push_back(std::move(o));
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--orders" || a == "--batch" || a == "--lookups") {
      const char* v = next();
      if (v == nullptr) return false;
      const uint64_t n = std::strtoull(v, nullptr, 10);
      (a == "--orders" ? o->orders : a == "--batch" ? o->batch : o->lookups) = n;
    } else if (a == "--cache-mb") {
      const char* v = next();
      if (v == nullptr) return false;
      o->cache_mb = std::atoi(v);
    } else if (a == "--path") {
      const char* v = next();
      if (v == nullptr) return false;
      o->path = v;
    } else if (a == "--keep") {
      o->keep = true;
    } else if (a == "--random-ids") {
      o->random_ids = true;
    } else if (a == "--synchronous-full") {
      o->synchronous_full = true;
    } else {
      return false;
    }
  }
  return o->orders > 0 && o->batch > 0;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s [--orders N] [--batch N] [--lookups N] [--path FILE] [--keep] "
                 "[--random-ids] [--synchronous-full] [--cache-mb 64]\n",
                 argv[0]);
    return 2;
  }
  namespace fs = std::filesystem;
  fs::path dir;
  if (opt.path.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-store-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    opt.path = (dir / "journeys.db").string();
  }
  ordertrace::journey::SqliteStoreOptions so;
  so.path = opt.path;
  so.synchronous_full = opt.synchronous_full;
  so.cache_mb = opt.cache_mb;
  auto opened = ordertrace::journey::OpenSqliteStore(so);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto store = std::move(opened).value();
  std::printf("store %s: %" PRIu64 " orders in batches of %" PRIu64 "%s, cache %d MB\n",
              opt.path.c_str(), opt.orders, opt.batch, opt.random_ids ? " (random ids)" : "",
              opt.cache_mb);

  // Fill.
  const auto fill_start = Clock::now();
  auto last_report = fill_start;
  uint64_t last_i = 0;
  uint64_t spans = 0;
  Clock::duration write_time{};
  for (uint64_t i = 0; i < opt.orders;) {
    WriteBatch b;
    const uint64_t end = std::min(opt.orders, i + opt.batch);
    for (; i < end; ++i) AddOrder(opt, i, &b);
    spans += b.spans.size();
    const auto w0 = Clock::now();
    const auto st = store->Write(b);
    write_time += Clock::now() - w0;
    if (!st.ok()) {
      std::fprintf(stderr, "write: %s\n", st.ToString().c_str());
      return 1;
    }
    if (i % 1'000'000 == 0 || i == opt.orders) {
      const auto now = Clock::now();
      std::printf("  %10" PRIu64 " orders  %7.1f s  %8.0f orders/s since the last line\n", i,
                  Seconds(now - fill_start),
                  static_cast<double>(i - last_i) / Seconds(now - last_report));
      std::fflush(stdout);
      last_report = now;
      last_i = i;
    }
  }
  const double fill_s = Seconds(Clock::now() - fill_start);
  const double write_s = Seconds(write_time);
  auto stats = store->Stats();
  if (!stats.ok()) {
    std::fprintf(stderr, "stats: %s\n", stats.status().ToString().c_str());
    return 1;
  }

  // Lookups.
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> pick(0, opt.orders - 1);
  std::vector<double> us;
  us.reserve(opt.lookups);
  uint64_t missing = 0;
  size_t spans_seen = 0;
  for (uint64_t n = 0; n < opt.lookups; ++n) {
    const std::string id = OrderId(opt, pick(rng));
    const auto t0 = Clock::now();
    auto j = store->GetJourney(id, 1000);
    const auto t1 = Clock::now();
    if (!j.ok()) {
      std::fprintf(stderr, "get: %s\n", j.status().ToString().c_str());
      return 1;
    }
    if (!j->has_value()) {
      ++missing;
    } else {
      spans_seen += (*j)->spans.size();
    }
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    if (us.empty()) return 0.0;
    return us[std::min(us.size() - 1, static_cast<size_t>(p * static_cast<double>(us.size())))];
  };

  const double orders_s = static_cast<double>(opt.orders) / write_s;
  const double spans_s = static_cast<double>(spans) / write_s;
  const double bytes_per_order =
      static_cast<double>(stats->bytes) / static_cast<double>(opt.orders);
  std::error_code ec;
  const auto db_bytes = fs::file_size(opt.path, ec);
  const auto wal_bytes = fs::file_size(opt.path + "-wal", ec);
  std::printf("files: db %.1f MB, wal %.1f MB\n", static_cast<double>(db_bytes) / 1e6,
              ec ? 0.0 : static_cast<double>(wal_bytes) / 1e6);
  std::printf("fill: %.1f s wall, %.1f s in Write(): %.0f orders/s, %.0f spans/s\n", fill_s,
              write_s, orders_s, spans_s);
  std::printf("store: %" PRIu64 " orders, %" PRIu64 " spans, %" PRIu64
              " hops, %.1f MB (db + wal), %.0f bytes/order\n",
              stats->orders, stats->spans, stats->hops, static_cast<double>(stats->bytes) / 1e6,
              bytes_per_order);
  std::printf("GetJourney x%" PRIu64 " (%" PRIu64
              " missing, %zu spans): p50 %.0f us  p90 %.0f us"
              "  p99 %.0f us  max %.0f us\n",
              opt.lookups, missing, spans_seen, pct(0.50), pct(0.90), pct(0.99),
              us.empty() ? 0.0 : us.back());
  std::printf(
      "{\"orders\":%" PRIu64 ",\"batch\":%" PRIu64
      ",\"random_ids\":%s,\"fill_s\":%.1f,"
      "\"write_s\":%.1f,\"orders_per_s\":%.0f,\"spans_per_s\":%.0f,\"bytes\":%" PRIu64
      ",\"bytes_per_order\":%.0f,\"get_p50_us\":%.0f,\"get_p90_us\":%.0f,\"get_p99_us\":%.0f,"
      "\"get_max_us\":%.0f}\n",
      opt.orders, opt.batch, opt.random_ids ? "true" : "false", fill_s, write_s, orders_s, spans_s,
      stats->bytes, bytes_per_order, pct(0.50), pct(0.90), pct(0.99), us.empty() ? 0.0 : us.back());

  store.reset();
  if (!dir.empty() && !opt.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  } else {
    std::printf("kept %s\n", opt.path.c_str());
  }
  return missing == 0 ? 0 : 1;
}
