// DeadlineHeap (deadline_heap.h): random inserts, key changes and removals against a sorted
// reference; the top is always the earliest deadline and every entry knows its slot.
#include "journey/deadline_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_map>

namespace ordertrace::journey {
namespace {

struct Value {
  Nanos deadline_ns = kNoDeadline;
  uint32_t heap_pos = kNoHeapPos;
};
using Map = std::unordered_map<int, Value>;
using Entry = Map::value_type;

TEST(DeadlineHeapTest, TopIsTheEarliestUnderRandomChanges) {
  Map map;
  DeadlineHeap<Entry> heap;
  std::mt19937_64 rng(18);
  for (int i = 0; i < 2000; ++i) map.try_emplace(i);
  for (int step = 0; step < 50000; ++step) {
    Entry& e = *map.find(static_cast<int>(rng() % map.size()));
    switch (rng() % 4) {
      case 0:
      case 1:  // insert or move (earlier or later)
        e.second.deadline_ns = static_cast<Nanos>(rng() % 100000);
        heap.Update(&e);
        break;
      case 2:  // kNoDeadline takes it out
        e.second.deadline_ns = kNoDeadline;
        heap.Update(&e);
        break;
      default:
        heap.Remove(&e);
        e.second.deadline_ns = kNoDeadline;
        break;
    }
    if (step % 97 == 0 || step == 49999) {
      Nanos min = kNoDeadline;
      size_t in = 0;
      for (const auto& [k, v] : map) {
        if (v.heap_pos == kNoHeapPos) continue;
        ++in;
        min = std::min(min, v.deadline_ns);
      }
      ASSERT_EQ(heap.size(), in);
      if (in == 0) {
        ASSERT_EQ(heap.top(), nullptr);
      } else {
        ASSERT_EQ(heap.top()->second.deadline_ns, min);
      }
    }
  }
  // Draining gives the deadlines in order.
  Nanos last = 0;
  while (Entry* e = heap.top()) {
    ASSERT_GE(e->second.deadline_ns, last);
    last = e->second.deadline_ns;
    heap.Remove(e);
    ASSERT_EQ(e->second.heap_pos, kNoHeapPos);
  }
  heap.Clear();
  EXPECT_EQ(heap.size(), 0u);
}

}  // namespace
}  // namespace ordertrace::journey
