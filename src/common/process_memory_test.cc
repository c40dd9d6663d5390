#include "common/process_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"

namespace ordertrace {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerAllocator = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif
#else
constexpr bool kSanitizerAllocator = false;
#endif

TEST(ProcessMemoryTest, HeapStatsSeeWhatIsAllocated) {
  // A sanitizer's allocator replaces glibc's, whose statistics then miss the blocks.
  if (kSanitizerAllocator) GTEST_SKIP() << "glibc's statistics do not see a sanitizer's heap";
  const HeapStats before = ReadHeapStats();
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 64; ++i) {
    blocks.emplace_back(new char[64 << 10]);
    std::memset(blocks.back().get(), 1, 64 << 10);  // touched, as a request buffer is
  }
  const HeapStats held = ReadHeapStats();
  EXPECT_GE(held.in_use, before.in_use + (uint64_t{4} << 20) - (uint64_t{64} << 10));
}

TEST(ProcessMemoryTest, TrimmerRunsOnlyAboveItsThresholdAndCountsIt) {
  metrics::Registry registry;
  HeapTrimmer::Options o;
  o.min_free = ~uint64_t{0};  // never enough free memory
  HeapTrimmer never(o, &registry);
  EXPECT_FALSE(never.TrimOnce());

  metrics::Registry registry2;
  o.min_free = 0;
  HeapTrimmer always(o, &registry2);
  EXPECT_TRUE(always.TrimOnce());
  EXPECT_NE(registry2.Serialize().find("ordertrace_process_heap_trims_total 1\n"),
            std::string::npos);
}

TEST(ProcessMemoryTest, MetricsNameEveryKind) {
  metrics::Registry registry;
  RegisterHeapMetrics(registry, [] { return 1234.0; });
  const std::string text = registry.Serialize();
  for (const char* kind : {"in_use", "free", "mmapped"}) {
    EXPECT_NE(text.find(std::string("ordertrace_process_heap_bytes{kind=\"") + kind + "\"}"),
              std::string::npos)
        << kind;
  }
  EXPECT_NE(text.find("ordertrace_sqlite_memory_bytes 1234\n"), std::string::npos) << text;

  metrics::Registry without_sqlite;
  RegisterHeapMetrics(without_sqlite, nullptr);
  EXPECT_EQ(without_sqlite.Serialize().find("ordertrace_sqlite_memory_bytes"), std::string::npos);
}

TEST(ProcessMemoryTest, TrimmerStartsAndStops) {
  HeapTrimmer::Options o;
  o.interval = std::chrono::milliseconds(1);
  HeapTrimmer t(o, nullptr);
  t.Start();
  t.Stop();
  t.Stop();  // idempotent
}

}  // namespace
}  // namespace ordertrace
