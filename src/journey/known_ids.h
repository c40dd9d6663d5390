// KnownIds: a filter of the order ids the journey store holds, so that a span of a brand-new
// order costs no store read (the engine asks the store only when the filter says "maybe").
//
// A scalable Bloom filter: a chain of classic Bloom filters, each twice the capacity of the one
// before, with 10 bits and 7 probes per id (about 1% false positives per filter; a false
// positive only costs the store read the filter saves otherwise).  Written here because Debian
// packages no maintained C++ Bloom filter; it is ~60 lines over std::hash.
//
// Thread-safety: none; the engine guards it with its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/mix64.h"

namespace ordertrace::journey {

class KnownIds {
 public:
  explicit KnownIds(size_t initial_capacity = size_t{1} << 20) { Grow(initial_capacity); }

  void Add(std::string_view id) {
    Filter& f = filters_.back();
    if (f.count >= f.capacity) {
      Grow(f.capacity * 2);
      return Add(id);
    }
    const uint64_t h1 = std::hash<std::string_view>{}(id);
    const uint64_t h2 = Mix(h1) | 1;
    Filter& g = filters_.back();
    for (uint64_t i = 0; i < kProbes; ++i) {
      const uint64_t bit = (h1 + i * h2) % g.bits.size();
      g.bits[bit] = true;
    }
    ++g.count;
  }

  bool MayContain(std::string_view id) const {
    const uint64_t h1 = std::hash<std::string_view>{}(id);
    const uint64_t h2 = Mix(h1) | 1;
    for (const Filter& f : filters_) {
      bool all = true;
      for (uint64_t i = 0; i < kProbes && all; ++i) all = f.bits[(h1 + i * h2) % f.bits.size()];
      if (all) return true;
    }
    return false;
  }

  size_t bytes() const {
    size_t n = 0;
    for (const Filter& f : filters_) n += f.bits.size() / 8;
    return n;
  }

 private:
  static constexpr uint64_t kProbes = 7;
  static constexpr uint64_t kBitsPerId = 10;
  struct Filter {
    std::vector<bool> bits;
    size_t capacity = 0;
    size_t count = 0;
  };
  static uint64_t Mix(uint64_t x) { return Mix64(x); }  // a second, independent hash
  void Grow(size_t capacity) {
    Filter f;
    f.capacity = capacity;
    f.bits.assign(capacity * kBitsPerId, false);
    filters_.push_back(std::move(f));
  }
  std::vector<Filter> filters_;
};

// The last `capacity` ids added (by 64-bit hash), oldest forgotten first.
class RecentIds {
 public:
  explicit RecentIds(size_t capacity) : ring_(capacity, 0) {}
  void Add(std::string_view id) {
    const uint64_t h = std::hash<std::string_view>{}(id);
    if (set_.size() == ring_.size()) set_.erase(set_.find(ring_[next_]));  // one copy only
    ring_[next_] = h;
    set_.insert(h);
    next_ = (next_ + 1) % ring_.size();
  }
  bool Contains(std::string_view id) const {
    return set_.count(std::hash<std::string_view>{}(id)) > 0;
  }

 private:
  std::vector<uint64_t> ring_;
  std::unordered_multiset<uint64_t> set_;
  size_t next_ = 0;
};

}  // namespace ordertrace::journey
