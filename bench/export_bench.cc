// libordertrace exporter throughput: how many spans per second the library's batch processor
// and OTLP/HTTP exporter deliver to a real `ordertrace serve`, and how many it drops.
//
//   ordertrace-bench-export --url http://127.0.0.1:4318/v1/traces [--pid GATEWAY_PID]
//       [--spans N] [--threads T] [--queue Q] [--batch B] [--rate SPANS_PER_S]
//
// T caller threads end N spans in total (each: start, 5 attributes as in lib_bench.cc, end) as
// fast as they can, or paced at --rate spans/s over all threads; then Shutdown() flushes the
// queue.  Delivered/s is the spans the gateway accepted divided by the time from the first
// span to the end of the flush: the rate the exporter sustained.  Dropped: queue full
// (callers outran the exporter: never blocked, counted) and export failures.  With --pid, the
// gateway's CPU time (utime + stime from /proc) over the same interval.  Drain/s: the spans
// still queued when the callers stopped, divided by the time Shutdown() took to send them (the
// exporter alone, not competing with callers for the CPU).
// Prints one JSON object per run on stdout.
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ordertrace/tracer.h"

namespace {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OwnCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void OneSpan(ordertrace::TracerProvider& p, uint64_t i) {
  ordertrace::Span span(p, "GET /orders/{id}");
  span.SetAttribute("order.id", "ORD-2026-000042");
  span.SetAttribute("http.response.status_code", static_cast<int64_t>(200));
  span.SetAttribute("price", 1234.5 + static_cast<double>(i % 100));
  span.SetAttribute("ordertrace.heartbeat", false);
  span.SetAttribute("order.stage", "PRICE_CALCULATED");
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  int pid = 0, threads = 1;
  uint64_t spans = 200000;
  size_t queue = 2048, batch = 512;
  double rate = 0;  // spans/s over all threads; 0: as fast as possible
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--url")
      url = v;
    else if (k == "--pid")
      pid = std::atoi(v.c_str());
    else if (k == "--spans")
      spans = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--threads")
      threads = std::atoi(v.c_str());
    else if (k == "--queue")
      queue = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--batch")
      batch = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--rate")
      rate = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (url.empty() || threads < 1 || spans == 0 || queue == 0 || batch == 0) {
    std::fprintf(stderr,
                 "usage: %s --url http://HOST:PORT/v1/traces [--pid GATEWAY_PID] [--spans N] "
                 "[--threads T] [--queue Q] [--batch B] [--rate SPANS_PER_S]\n",
                 argv[0]);
    return 2;
  }

  ordertrace::TracerOptions o;
  o.service_name = "bench-export";
  o.exporter.endpoint = url;
  o.max_queue_size = queue;
  o.max_export_batch_size = batch;
  ordertrace::TracerProvider provider(o);

  const double gw_cpu0 = pid > 0 ? ProcessCpuSeconds(pid) : 0;
  const double own_cpu0 = OwnCpuSeconds();
  const auto t0 = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const uint64_t mine = spans / static_cast<uint64_t>(threads) +
                            (static_cast<uint64_t>(t) < spans % threads ? 1 : 0);
      const double per_thread_rate = rate / threads;
      for (uint64_t i = 0; i < mine; ++i) {
        if (per_thread_rate > 0) {
          const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(i / per_thread_rate));
          if (Clock::now() < due) std::this_thread::sleep_until(due);
        }
        OneSpan(provider, i);
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto t_offered = Clock::now();
  const uint64_t exported_while_offering = provider.stats().exported;
  provider.Shutdown(std::chrono::seconds(60));
  const auto t_done = Clock::now();
  const double own_cpu = OwnCpuSeconds() - own_cpu0;
  const double gw_cpu = pid > 0 ? ProcessCpuSeconds(pid) - gw_cpu0 : 0;

  const ordertrace::TracerStats s = provider.stats();
  const double offer_s = std::chrono::duration<double>(t_offered - t0).count();
  const double total_s = std::chrono::duration<double>(t_done - t0).count();
  const double drain_s = std::chrono::duration<double>(t_done - t_offered).count();
  std::printf(
      "{\"spans\":%llu,\"threads\":%d,\"queue\":%zu,\"batch\":%zu,\"rate\":%.0f,"
      "\"offered_per_s\":%.0f,\"delivered\":%llu,\"delivered_per_s\":%.0f,"
      "\"dropped_queue_full\":%llu,\"dropped_export_failed\":%llu,\"drain_per_s\":%.0f,"
      "\"offer_s\":%.3f,"
      "\"total_s\":%.3f,\"bench_cpu_s\":%.3f,\"gateway_cpu_s\":%.3f,"
      "\"gateway_cpu_us_per_span\":%.2f,\"cores\":%ld}\n",
      static_cast<unsigned long long>(spans), threads, queue, batch, rate,
      static_cast<double>(spans) / offer_s, static_cast<unsigned long long>(s.exported),
      static_cast<double>(s.exported) / total_s,
      static_cast<unsigned long long>(s.dropped_queue_full),
      static_cast<unsigned long long>(s.dropped_export_failed),
      drain_s > 0 ? static_cast<double>(s.exported - exported_while_offering) / drain_s : 0.0,
      offer_s, total_s, own_cpu, gw_cpu,
      s.exported > 0 ? gw_cpu * 1e6 / static_cast<double>(s.exported) : 0.0,
      sysconf(_SC_NPROCESSORS_ONLN));
  return s.dropped_export_failed == 0 ? 0 : 1;
}
