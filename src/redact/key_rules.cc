#include "redact/key_rules.h"

#include <cstring>

#include "redact/short_hash.h"

namespace ordertrace::redact {
// Equality of two strings of the same size, in 8-byte words (keys are short: a libc memcmp call
// cost more than the comparison).
namespace {

bool SameBytes(const char* a, const char* b, size_t n) {
  if (n < 8) {
    for (size_t i = 0; i < n; ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }
  uint64_t x, y;
  for (size_t i = 0; i + 8 < n; i += 8) {
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return false;
  }
  std::memcpy(&x, a + n - 8, 8);  // the last 8 bytes, overlapping the words before
  std::memcpy(&y, b + n - 8, 8);
  return x == y;
}

}  // namespace

void KeyRuleTable::Rehash(size_t slots) {
  slots_.assign(slots, Slot{});
  for (uint32_t i = 0; i < entries_.size(); ++i) {
    const uint64_t h = ShortHash(entries_[i].key);
    size_t s = h & (slots - 1);
    while (slots_[s].entry != 0) s = (s + 1) & (slots - 1);
    slots_[s].hash = h;
    slots_[s].entry = i + 1;
    slots_[s].size = static_cast<uint32_t>(entries_[i].key.size());
  }
}

KeyRule KeyRuleTable::Set(std::string_view key, KeyRule rule) {
  const uint64_t h = ShortHash(key);
  if (!slots_.empty()) {
    const size_t mask = slots_.size() - 1;
    for (size_t s = h & mask; slots_[s].entry != 0; s = (s + 1) & mask) {
      Entry& e = entries_[slots_[s].entry - 1];
      if (slots_[s].hash == h && e.key == key) {
        const KeyRule before = e.rule;
        e.rule = rule;
        return before;
      }
    }
  }
  entries_.push_back(Entry{std::string(key), rule});
  if (key.size() < 64) {
    sizes_ |= uint64_t{1} << key.size();
  } else {
    long_keys_ = true;
  }
  size_t slots = slots_.empty() ? 16 : slots_.size();
  while (slots < (entries_.size() + 1) * 2) slots *= 2;
  Rehash(slots);
  return KeyRule::kScan;
}

KeyRule KeyRuleTable::Find(std::string_view key) const {
  const size_t n = key.size();
  if (n < 64 ? (sizes_ & (uint64_t{1} << n)) == 0 : !long_keys_) return KeyRule::kScan;
  const uint64_t h = ShortHash(key);
  const size_t mask = slots_.size() - 1;
  for (size_t s = h & mask; slots_[s].entry != 0; s = (s + 1) & mask) {
    const Slot& slot = slots_[s];
    if (slot.hash != h || slot.size != n) continue;
    const Entry& e = entries_[slot.entry - 1];
    if (SameBytes(e.key.data(), key.data(), n)) return e.rule;
  }
  return KeyRule::kScan;
}

}  // namespace ordertrace::redact
