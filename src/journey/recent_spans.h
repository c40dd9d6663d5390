// RecentSpans: the fingerprints of the spans the engine applied lately, so that an exact
// repeat (an exporter retrying a request, the durable log replaying a record) is skipped before
// it costs the engine and the store anything.
//
// Why a repeat may be skipped: the engine folds facts commutatively and idempotently (engine.h)
// and the store's merge rules make a repeat a no-op (semantics.h: a span's first write wins, a
// milestone's earliest, a hop merges the same fields to the same row), so applying a span a
// second time changes nothing but costs a full pass (its order row rewritten, its span key
// looked up).  The fingerprint covers every field of the SpanRecord, not just its key: a span
// that comes back under the same (order, span id) with different content (another end time,
// stage or status: a buggy exporter, or a span re-sent after an SDK change) is not a repeat and
// goes through as before (the spans table keeps the first content, the order and milestones
// fold the new one in).
//
// A fingerprint is 64 bits: two different spans share one with probability ~n / 2^64 per lookup
// (n = fingerprints held), about 1 in 10^13 with a million held; the cost of such a collision is
// one span not applied.
//
// Bounded: a GenerationalTable (generational_table.h) of `capacity` fingerprints, so the last
// capacity/2 to capacity spans are remembered, in 16 bytes per span of capacity (capacity
// 524,288: 8 MiB, allocated at the first Add).  Capacity 0 disables it (Contains() is always
// false).
//
// Thread-safety: none; the engine guards it with its writer lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "journey/generational_table.h"
#include "journey/types.h"

namespace ordertrace::journey {

class RecentSpans {
 public:
  explicit RecentSpans(size_t capacity);

  // The fingerprint of every field of `r` (never 0).
  static uint64_t Fingerprint(const SpanRecord& r);

  bool Contains(uint64_t fingerprint) const;
  void Add(uint64_t fingerprint);
  void Clear();

  size_t size() const { return table_.size(); }
  size_t bytes() const { return table_.bytes(); }

 private:
  struct Slot {
    uint64_t key;  // the fingerprint
  };
  GenerationalTable<Slot> table_;
};

}  // namespace ordertrace::journey
