// GenerationalTable<Slot>: "remember the latest N keys" in bounded memory, the structure under
// RecentSpans (recent_spans.h: fingerprints of the spans applied lately) and RecentOrders
// (attribution/recent_orders.h: span or trace key → order).
//
// Two generations of an open-addressing table of 64-bit keys (linear probing, load at most 1/2,
// no deletion).  Inserts go to the current generation; when it holds `capacity / 2` keys it
// becomes the previous one, and the old previous one is emptied (its memory reused) to be the
// new current one.  Lookups see both, the current one first, so at least the last capacity/2
// keys are always found and never more than `capacity` are held.
//
// A generation's table is allocated at its first insert with `initial_slots` (a power of two)
// and doubles whenever it would pass half full; a fresh generation starts at the size the last
// one reached (it will fill as far).
//
// Slot: a trivially copyable struct whose first member is `uint64_t key` (0: empty; callers
// never insert key 0), the rest being the caller's payload.  A caller that keeps storage per
// generation (RecentOrders interns order ids there) indexes it by the slot index Find() reports
// and current_index(); Insert() says when it rotated, so that the caller drops what it kept
// for the index that became current again.
//
// Written here, not with std::unordered_map: a node map costs ~60 bytes and an allocation per
// key, this 16–24 bytes per key and none (attribution/recent_orders.h has the measurement).
//
// Thread-safety: none; the owners guard it with their locks.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace ordertrace::journey {

template <typename Slot>
class GenerationalTable {
  static_assert(std::is_trivially_copyable_v<Slot>);
  static_assert(std::is_same_v<decltype(Slot::key), uint64_t>);

 public:
  // Where Find() found a key: `slot` null when absent; `index` the generation's index (0 or 1,
  // as current_index() names them).
  struct Found {
    const Slot* slot = nullptr;
    int index = 0;
  };

  // `capacity`: keys held at most (capacity/2 per generation; 0 holds none: Insert() returns
  // null).  `initial_slots`: a power of two.
  GenerationalTable(size_t capacity, size_t initial_slots)
      : per_generation_(capacity / 2), initial_slots_(std::bit_ceil(initial_slots)) {}

  // `key` in the current generation, then in the previous one.
  Found Find(uint64_t key) const {
    for (const int g : {current_, 1 - current_}) {
      if (const Slot* s = FindIn(gens_[g], key)) return {s, g};
    }
    return {};
  }
  // `key` in the previous generation only.
  const Slot* FindInPrevious(uint64_t key) const { return FindIn(gens_[1 - current_], key); }

  // The current generation's slot for `key`: the one holding it (*inserted = false) or a new
  // one with only the key set (*inserted = true: the caller fills the payload).  *rotated: this
  // call turned the generations over (current_index() changed) before inserting.  Null when the
  // capacity is 0.  The pointer is valid until the next Insert() or Clear().
  Slot* Insert(uint64_t key, bool* inserted, bool* rotated) {
    *inserted = false;
    *rotated = false;
    if (per_generation_ == 0) return nullptr;
    Generation* gen = &gens_[current_];
    if (gen->slots.empty()) gen->slots.assign(initial_slots_, Slot{});
    size_t i = Probe(*gen, key);
    if (gen->slots[i].key == key) return &gen->slots[i];
    if (gen->count >= per_generation_) {
      const size_t n = gen->slots.size();
      current_ = 1 - current_;
      gen = &gens_[current_];
      gen->slots.assign(n, Slot{});  // the old previous generation's memory, emptied
      gen->count = 0;
      *rotated = true;
      i = Probe(*gen, key);
    } else if ((gen->count + 1) * 2 > gen->slots.size()) {
      Grow(gen);
      i = Probe(*gen, key);
    }
    gen->slots[i] = Slot{};
    gen->slots[i].key = key;
    ++gen->count;
    *inserted = true;
    return &gen->slots[i];
  }

  int current_index() const { return current_; }

  void Clear() {
    for (Generation& g : gens_) {
      g.slots.assign(g.slots.size(), Slot{});
      g.count = 0;
    }
  }

  size_t size() const { return gens_[0].count + gens_[1].count; }
  size_t bytes() const {
    return (gens_[0].slots.capacity() + gens_[1].slots.capacity()) * sizeof(Slot);
  }

 private:
  struct Generation {
    std::vector<Slot> slots;  // a power of two in size, or empty
    size_t count = 0;
  };

  // Where `key` is, or the empty slot where it would go.  `g.slots` must not be empty.
  static size_t Probe(const Generation& g, uint64_t key) {
    const size_t mask = g.slots.size() - 1;
    size_t i = static_cast<size_t>(key) & mask;
    while (g.slots[i].key != 0 && g.slots[i].key != key) i = (i + 1) & mask;
    return i;
  }
  static const Slot* FindIn(const Generation& g, uint64_t key) {
    if (g.count == 0) return nullptr;
    const Slot& s = g.slots[Probe(g, key)];
    return s.key == key ? &s : nullptr;
  }
  static void Grow(Generation* g) {
    std::vector<Slot> bigger(g->slots.size() * 2, Slot{});
    Generation next{std::move(bigger), g->count};
    for (const Slot& s : g->slots) {
      if (s.key != 0) next.slots[Probe(next, s.key)] = s;
    }
    *g = std::move(next);
  }

  const size_t per_generation_;  // keys before the generation turns
  const size_t initial_slots_;
  Generation gens_[2];
  int current_ = 0;
};

}  // namespace ordertrace::journey
