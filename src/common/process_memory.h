// What the process's allocator holds, for the memory metrics (docs/benchmarks.md, "Memory
// under sustained load") and for giving freed memory back to the kernel.
//
// glibc keeps what a program frees: in its main heap and in one arena per thread that
// allocated while the others were busy, and with `ordertrace serve`'s settings
// (TuneMallocForServing) it does not trim them on free().  HeapTrimmer hands the free pages
// back every few seconds with malloc_trim(), so the resident size follows what is live, not
// the high-water mark of the largest burst.
//
// Thread-safety: ReadHeapStats() and RegisterHeapMetrics()'s callbacks from any thread;
// HeapTrimmer's Start()/Stop() from the owning thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "common/metrics.h"
#include "common/worker.h"

namespace ordertrace {

// mallinfo2(): every arena, the main heap and the mmap()ed blocks.
struct HeapStats {
  uint64_t in_use = 0;   // handed out to the program (uordblks + hblkhd)
  uint64_t free = 0;     // free chunks the allocator keeps (fordblks); trimming returns their pages
  uint64_t mmapped = 0;  // blocks above M_MMAP_THRESHOLD, each its own mapping (hblkhd)
};
HeapStats ReadHeapStats();

// The malloc settings of `ordertrace serve` (src/cli/main.cc): called once, before threads
// start.  `arena_max` 0 keeps glibc's default (8 per core).
void TuneMallocForServing(int arena_max);

// ordertrace_process_heap_bytes{kind="in_use"|"free"|"mmapped"} and, when `sqlite_bytes` is
// given, ordertrace_sqlite_memory_bytes (sqlite3_memory_used(): page caches, statements).
void RegisterHeapMetrics(metrics::Registry& registry, std::function<double()> sqlite_bytes);

// Calls malloc_trim(0) every `interval` when the allocator keeps more than `min_free` bytes
// free, and counts what it gave back (ordertrace_process_heap_trimmed_total).
class HeapTrimmer {
 public:
  struct Options {
    std::chrono::milliseconds interval{std::chrono::seconds(10)};
    uint64_t min_free = uint64_t{8} << 20;
  };
  HeapTrimmer(Options options, metrics::Registry* registry);
  ~HeapTrimmer() { Stop(); }
  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

  void Start();
  void Stop() { worker_.Stop(); }

  // One pass (the worker's body; also for tests): true when malloc_trim() ran.
  bool TrimOnce();

 private:
  const Options options_;
  metrics::Counter* trims_ = nullptr;  // registry-owned; null without a registry
  Worker worker_;
};

}  // namespace ordertrace
