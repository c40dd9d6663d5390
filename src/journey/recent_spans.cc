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

// Allocated whole at the first Add (at most half full: a probe ends within a few slots), so an
// engine that never applies a span (tests, a gateway without journeys) costs nothing.
RecentSpans::RecentSpans(size_t capacity) : table_(capacity, std::max<size_t>(capacity, 2)) {}

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

bool RecentSpans::Contains(uint64_t fingerprint) const {
  return table_.Find(fingerprint).slot != nullptr;
}

void RecentSpans::Add(uint64_t fingerprint) {
  // One probe per generation: the previous one here, the current one in Insert() (which finds
  // the fingerprint there too).  One held by the previous generation is not copied into the
  // current one: it is forgotten one rotation sooner, never wrongly.
  if (table_.FindInPrevious(fingerprint) != nullptr) return;
  bool inserted = false, rotated = false;
  table_.Insert(fingerprint, &inserted, &rotated);
}

void RecentSpans::Clear() { table_.Clear(); }

}  // namespace ordertrace::journey
