// FlatIndex: a 64-bit key → 64-bit value hash table with open addressing (linear probing,
// tombstones), for the attributor's pending set, where every waiting span costs an insert and
// an erase: std::unordered_map allocates a node for each (measured: the pending path cost
// 1.3 µs per span with node maps, docs/benchmarks.md "Attribution").
//
// Keys must not be 0 or UINT64_MAX (SpanKey never returns them).
//
// Thread-safety: none; the Attributor guards it with its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ordertrace::journey {

class FlatIndex {
 public:
  FlatIndex() { Rehash(64); }

  // The value of `key`, null when absent.  Valid until the next Put.
  uint64_t* Find(uint64_t key) {
    const size_t mask = keys_.size() - 1;
    for (size_t i = static_cast<size_t>(key) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

  // Inserts or overwrites.
  void Put(uint64_t key, uint64_t value) {
    if (uint64_t* v = Find(key)) {
      *v = value;
      return;
    }
    if ((used_ + 1) * 2 > keys_.size())
      Rehash(count_ * 4 > keys_.size() ? keys_.size() * 2 : keys_.size());
    const size_t mask = keys_.size() - 1;
    size_t i = static_cast<size_t>(key) & mask;
    while (keys_[i] != kEmpty && keys_[i] != kTombstone) i = (i + 1) & mask;
    if (keys_[i] == kEmpty) ++used_;
    keys_[i] = key;
    values_[i] = value;
    ++count_;
  }

  bool Erase(uint64_t key) {
    const size_t mask = keys_.size() - 1;
    for (size_t i = static_cast<size_t>(key) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == key) {
        keys_[i] = kTombstone;
        --count_;
        return true;
      }
      if (keys_[i] == kEmpty) return false;
    }
  }

  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kTombstone = UINT64_MAX;

  // Re-inserts the live keys into `slots` slots (a power of two), dropping tombstones.
  void Rehash(size_t slots) {
    std::vector<uint64_t> keys(slots, kEmpty), values(slots, 0);
    const size_t mask = slots - 1;
    for (size_t s = 0; s < keys_.size(); ++s) {
      if (keys_[s] == kEmpty || keys_[s] == kTombstone) continue;
      size_t i = static_cast<size_t>(keys_[s]) & mask;
      while (keys[i] != kEmpty) i = (i + 1) & mask;
      keys[i] = keys_[s];
      values[i] = values_[s];
    }
    keys_.swap(keys);
    values_.swap(values);
    used_ = count_;
  }

  std::vector<uint64_t> keys_, values_;
  size_t count_ = 0;  // live keys
  size_t used_ = 0;   // live keys and tombstones
};

}  // namespace ordertrace::journey
