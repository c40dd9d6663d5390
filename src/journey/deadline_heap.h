// DeadlineHeap: an indexed 4-ary min-heap of hash-map entries keyed by their deadline, the
// engine's schedule of what to look at next (active orders; open hops).  An entry is a map's
// value_type (`std::pair<const Key, Value>`) whose Value has `Nanos deadline_ns` (the key)
// and `uint32_t heap_pos` (its slot, kNoHeapPos when not in the heap).  Entries know their
// slot, so an update or a removal is O(log n); the map must not move its entries
// (std::unordered_map does not), and an entry must leave the heap (Remove) before it leaves the
// map.  The heap keeps each entry's key beside its pointer, and four children per node: a sift
// compares keys in the heap's own array (the four children share a cache line or two) instead
// of following a pointer per comparison into the map's scattered nodes.  The detector takes
// the top off once per flag, 16,000 times a second in a burst over 1M orders, where the binary
// heap of pointers spent 11% of the detector's time in those cache misses.  A key change
// must be followed by Update() (the cached key is refreshed there).
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
  E* top() const { return v_.empty() ? nullptr : v_[0].e; }

  // Puts `e` where its deadline says: inserted, moved, or removed when it is kNoDeadline.
  void Update(E* e) {
    auto& s = e->second;
    if (s.deadline_ns == kNoDeadline) {
      Remove(e);
      return;
    }
    if (s.heap_pos == kNoHeapPos) {
      s.heap_pos = static_cast<uint32_t>(v_.size());
      v_.push_back({s.deadline_ns, e});
      SiftUp(s.heap_pos);
      return;
    }
    Slot& slot = v_[s.heap_pos];
    const Nanos old = slot.key;
    slot.key = s.deadline_ns;
    if (slot.key < old) {
      SiftUp(s.heap_pos);
    } else if (slot.key > old) {
      SiftDown(s.heap_pos);
    }
  }

  // Takes `e` out (a no-op when it is not in).
  void Remove(E* e) {
    const uint32_t i = e->second.heap_pos;
    if (i == kNoHeapPos) return;
    e->second.heap_pos = kNoHeapPos;
    const Slot last = v_.back();
    v_.pop_back();
    if (last.e == e) return;
    Place(i, last);
    SiftDown(SiftUp(i));
  }

  void Clear() {
    for (const Slot& s : v_) s.e->second.heap_pos = kNoHeapPos;
    v_.clear();
  }

 private:
  static constexpr uint32_t kArity = 4;
  struct Slot {
    Nanos key;
    E* e;
  };
  void Place(uint32_t i, const Slot& s) {
    v_[i] = s;
    s.e->second.heap_pos = i;
  }
  uint32_t SiftUp(uint32_t i) {
    const Slot x = v_[i];
    while (i > 0) {
      const uint32_t parent = (i - 1) / kArity;
      if (v_[parent].key <= x.key) break;
      Place(i, v_[parent]);
      i = parent;
    }
    Place(i, x);
    return i;
  }
  uint32_t SiftDown(uint32_t i) {
    const Slot x = v_[i];
    const auto n = static_cast<uint32_t>(v_.size());
    for (;;) {
      const uint64_t first = uint64_t{kArity} * i + 1;
      if (first >= n) break;
      auto c = static_cast<uint32_t>(first);
      const uint32_t end = first + kArity < n ? c + kArity : n;
      for (uint32_t j = c + 1; j < end; ++j) {
        if (v_[j].key < v_[c].key) c = j;
      }
      if (v_[c].key >= x.key) break;
      Place(i, v_[c]);
      i = c;
    }
    Place(i, x);
    return i;
  }

  std::vector<Slot> v_;
};

}  // namespace ordertrace::journey
