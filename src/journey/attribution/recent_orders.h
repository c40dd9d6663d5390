// RecentOrders: which order a recently seen span (or trace) belongs to, by a 64-bit key, in a
// bounded amount of memory.
//
// A GenerationalTable (journey/generational_table.h): two generations of an open-addressing
// table of keys; at least the last capacity/2 keys are always found and never more than
// `capacity` are kept.  Order ids are stored per generation, one copy per run of consecutive
// keys with the same order (a request's or a trace's spans), not per key, and dropped with
// their generation.
//
// Not std::unordered_map: a node map costs about 60 bytes per entry (node, key, value,
// allocator header, bucket), and the attribution budget is 64 bytes per tracked span for
// everything; this table costs 12 bytes per slot at a load of at most 1/2, so 24 bytes per key
// plus the order ids.  absl's flat_hash_map would do as well but is not a dependency of the
// project.
//
// Keys are 64-bit hashes (0 and UINT64_MAX are reserved; SpanKey/TraceKey never return them).  A
// collision of two keys is a 2^-64 event per pair.
//
// Thread-safety: none; the Attributor guards it with its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "journey/generational_table.h"
#include "otlp/span_batch.h"

namespace ordertrace::journey {

// A span's key: its trace id and span id hashed together (the same span id in another trace
// is another span).  Never 0 or UINT64_MAX.
uint64_t SpanKey(const otlp::TraceId& trace, const otlp::SpanId& span);
// A trace's key.  Never 0 or UINT64_MAX.
uint64_t TraceKey(const otlp::TraceId& trace);

class RecentOrders {
 public:
  // What Find returns for a key whose inserts named more than one order (MarkOrMerge).
  static constexpr std::string_view kAmbiguous = "\x01";

  explicit RecentOrders(size_t capacity);

  // The order of `key`, "" when unknown.  The view lives until the next Insert/Merge.
  std::string_view Find(uint64_t key) const;

  // Remembers `key` → `order` (a key already in the current generation keeps its order).
  void Insert(uint64_t key, std::string_view order);

  // For traces: remembers `key` → `order`, or kAmbiguous when the key is known with another
  // order.  Returns false when it became ambiguous by this call.
  bool Merge(uint64_t key, std::string_view order);

  size_t size() const;   // keys held
  size_t bytes() const;  // memory held (tables and interned ids)

 private:
#pragma pack(push, 4)
  // Key and order side by side: one cache miss per probe, 12 bytes a slot.
  struct Slot {
    uint64_t key;  // 0: empty
    uint32_t ref;  // index into the generation's orders
  };
#pragma pack(pop)
  static_assert(sizeof(Slot) == 12);
  // The order ids of one generation of the table (by its index).
  struct Orders {
    std::deque<std::string> ids;  // a deque: views handed out stay valid as it grows
    size_t bytes = 0;
    uint32_t last_ref = UINT32_MAX;  // the last id stored: consecutive spans share it
    uint32_t Intern(std::string_view order);
  };
  void Put(uint64_t key, std::string_view order, bool overwrite);

  GenerationalTable<Slot> table_;
  Orders orders_[2];
};

}  // namespace ordertrace::journey
