#include "common/process_memory.h"

#include <malloc.h>

#include <utility>

namespace ordertrace {

HeapStats ReadHeapStats() {
  const struct mallinfo2 m = mallinfo2();
  HeapStats s;
  s.in_use = m.uordblks + m.hblkhd;
  s.free = m.fordblks;
  s.mmapped = m.hblkhd;
  return s;
}

void TuneMallocForServing(int arena_max) {
  // OTLP requests are large (hundreds of KiB) and short-lived.  glibc serves blocks that size
  // with fresh mmap()s, or trims the heap after they are freed, so every request paid page
  // faults and zeroed pages: 14% of the gateway's CPU in the ingest benchmark (perf, see
  // docs/benchmarks.md).  Keeping them on the heap and not trimming on free() removes that;
  // HeapTrimmer gives the free pages back every few seconds instead, so the resident size
  // does not stay at the largest burst's high-water mark.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  if (arena_max > 0) mallopt(M_ARENA_MAX, arena_max);
}

void RegisterHeapMetrics(metrics::Registry& registry, std::function<double()> sqlite_bytes) {
  registry.AddCallbackGauge(
      "ordertrace_process_heap_bytes",
      "What the allocator (glibc malloc, every arena) holds: in_use = handed out, free = free "
      "chunks kept for reuse (their whole pages go back to the kernel every 10 s, so not all "
      "of it is resident), mmapped = blocks with a mapping of their own (part of in_use).",
      "kind", [] {
        const HeapStats s = ReadHeapStats();
        return std::vector<std::pair<std::string, double>>{
            {"in_use", static_cast<double>(s.in_use)},
            {"free", static_cast<double>(s.free)},
            {"mmapped", static_cast<double>(s.mmapped)}};
      });
  if (sqlite_bytes) {
    registry.AddCallbackGauge("ordertrace_sqlite_memory_bytes",
                              "Heap memory SQLite uses (sqlite3_memory_used): page caches of the "
                              "journey store's connections, statements, schema.",
                              std::move(sqlite_bytes));
  }
}

HeapTrimmer::HeapTrimmer(Options options, metrics::Registry* registry) : options_(options) {
  if (registry != nullptr) {
    trims_ = &registry
                  ->AddCounter("ordertrace_process_heap_trims_total",
                               "Times the gateway gave the allocator's free pages back to the "
                               "kernel (malloc_trim).")
                  .With({});
  }
}

void HeapTrimmer::Start() {
  worker_.Start("heap-trim", options_.interval, [this] { TrimOnce(); });
}

bool HeapTrimmer::TrimOnce() {
  if (ReadHeapStats().free < options_.min_free) return false;
  malloc_trim(0);
  if (trims_ != nullptr) trims_->Inc();
  return true;
}

}  // namespace ordertrace
