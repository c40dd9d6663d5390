#include "journey/recent_spans.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "common/mix64.h"

namespace ordertrace::journey {
namespace {

// A 64-bit streaming hash: 8 bytes at a time, each word mixed in by multiply and rotate, every
// field prefixed by its length so that ("ab", "c") and ("a", "bc") differ.
class Hasher {
 public:
  void Int(uint64_t v) { h_ = std::rotl((h_ ^ Mix64(v + kStep)) * kMul, 29); }
  void Text(std::string_view s) {
    Int(s.size());
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      Int(w);
    }
    if (i < s.size()) {
      uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      Int(w);
    }
  }
  uint64_t Done() const { return Mix64(h_); }

 private:
  static constexpr uint64_t kStep = 0x9e3779b97f4a7c15ULL;
  static constexpr uint64_t kMul = 0xff51afd7ed558ccdULL;
  uint64_t h_ = 0x243f6a8885a308d3ULL;
};

}  // namespace

RecentSpans::RecentSpans(size_t capacity) : per_generation_(capacity / 2) {}

uint64_t RecentSpans::Fingerprint(const SpanRecord& r) {
  Hasher h;
  for (const std::string* s :
       {&r.order_id, &r.trace_id, &r.span_id, &r.parent_span_id, &r.service, &r.name, &r.error,
        &r.stage, &r.message_id, &r.exchange, &r.routing_key, &r.queue, &r.partner}) {
    h.Text(*s);
  }
  h.Int(static_cast<uint64_t>(r.start_ns));
  h.Int(static_cast<uint64_t>(r.end_ns));
  h.Int(uint64_t{r.otel_status} | uint64_t{static_cast<uint8_t>(r.step)} << 8 |
        uint64_t{static_cast<uint8_t>(r.hop)} << 16 | uint64_t{r.heartbeat ? 1u : 0u} << 24);
  h.Int(r.links.size());
  for (const std::string& l : r.links) h.Text(l);
  const uint64_t f = h.Done();
  return f == 0 ? 1 : f;
}

bool RecentSpans::Find(const Table& t, uint64_t fingerprint) {
  if (t.slots.empty()) return false;
  const size_t mask = t.slots.size() - 1;
  for (size_t i = fingerprint & mask;; i = (i + 1) & mask) {
    if (t.slots[i] == fingerprint) return true;
    if (t.slots[i] == 0) return false;
  }
}

void RecentSpans::Insert(Table& t, uint64_t fingerprint) {
  const size_t mask = t.slots.size() - 1;
  for (size_t i = fingerprint & mask;; i = (i + 1) & mask) {
    if (t.slots[i] == fingerprint) return;
    if (t.slots[i] == 0) {
      t.slots[i] = fingerprint;
      ++t.count;
      return;
    }
  }
}

bool RecentSpans::Contains(uint64_t fingerprint) const {
  return Find(generations_[0], fingerprint) || Find(generations_[1], fingerprint);
}

void RecentSpans::Add(uint64_t fingerprint) {
  if (per_generation_ == 0 || Contains(fingerprint)) return;
  Table& current = generations_[0];
  if (current.slots.empty()) {
    // At most half full: a probe ends within a few slots.  Allocated at the first span, so an
    // engine that never applies one (tests, a gateway without journeys) costs nothing.
    current.slots.assign(std::bit_ceil(per_generation_ * 2), 0);
  }
  if (current.count >= per_generation_) {
    std::swap(generations_[0], generations_[1]);
    Table& fresh = generations_[0];
    if (fresh.slots.empty()) {
      fresh.slots.assign(std::bit_ceil(per_generation_ * 2), 0);
    } else {
      std::fill(fresh.slots.begin(), fresh.slots.end(), 0);
    }
    fresh.count = 0;
  }
  Insert(generations_[0], fingerprint);
}

void RecentSpans::Clear() {
  for (Table& t : generations_) {
    std::fill(t.slots.begin(), t.slots.end(), 0);
    t.count = 0;
  }
}

size_t RecentSpans::bytes() const {
  return (generations_[0].slots.capacity() + generations_[1].slots.capacity()) * sizeof(uint64_t);
}

}  // namespace ordertrace::journey
