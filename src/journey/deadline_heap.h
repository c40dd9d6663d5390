// DeadlineHeap: an indexed binary min-heap of hash-map entries keyed by their deadline, the
// engine's schedule of what to look at next (active orders; open hops).  An entry is a map's
// value_type (`std::pair<const Key, Value>`) whose Value has `Nanos deadline_ns` (the key)
// and `uint32_t heap_pos` (its slot, kNoHeapPos when not in the heap).  Entries know their
// slot, so an update or a removal is O(log n) and the heap holds one pointer per entry; the
// map must not move its entries (std::unordered_map does not), and an entry must leave the
// heap (Remove) before it leaves the map.
//
// Thread-safety: none; the owner serialises every call.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "common/clock.h"

namespace ordertrace::journey {

inline constexpr Nanos kNoDeadline = std::numeric_limits<Nanos>::max();
inline constexpr uint32_t kNoHeapPos = 0xffffffffu;

template <typename E>
class DeadlineHeap {
 public:
  size_t size() const { return v_.size(); }
  // The entry with the earliest deadline, null when empty.
  E* top() const { return v_.empty() ? nullptr : v_[0]; }

  // Puts `e` where its deadline says: inserted, moved, or removed when it is kNoDeadline.
  void Update(E* e) {
    auto& s = e->second;
    if (s.deadline_ns == kNoDeadline) {
      Remove(e);
      return;
    }
    if (s.heap_pos == kNoHeapPos) {
      s.heap_pos = static_cast<uint32_t>(v_.size());
      v_.push_back(e);
    }
    SiftDown(SiftUp(s.heap_pos));
  }

  // Takes `e` out (a no-op when it is not in).
  void Remove(E* e) {
    uint32_t i = e->second.heap_pos;
    if (i == kNoHeapPos) return;
    e->second.heap_pos = kNoHeapPos;
    E* last = v_.back();
    v_.pop_back();
    if (last == e) return;
    v_[i] = last;
    last->second.heap_pos = i;
    SiftDown(SiftUp(i));
  }

  void Clear() {
    for (E* e : v_) e->second.heap_pos = kNoHeapPos;
    v_.clear();
  }

 private:
  static Nanos Key(const E* e) { return e->second.deadline_ns; }
  void Place(uint32_t i, E* e) {
    v_[i] = e;
    e->second.heap_pos = i;
  }
  uint32_t SiftUp(uint32_t i) {
    E* e = v_[i];
    while (i > 0) {
      uint32_t parent = (i - 1) / 2;
      if (Key(v_[parent]) <= Key(e)) break;
      Place(i, v_[parent]);
      i = parent;
    }
    Place(i, e);
    return i;
  }
  uint32_t SiftDown(uint32_t i) {
    E* e = v_[i];
    const uint32_t n = static_cast<uint32_t>(v_.size());
    for (;;) {
      uint32_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && Key(v_[c + 1]) < Key(v_[c])) ++c;
      if (Key(v_[c]) >= Key(e)) break;
      Place(i, v_[c]);
      i = c;
    }
    Place(i, e);
    return i;
  }

  std::vector<E*> v_;
};

}  // namespace ordertrace::journey
