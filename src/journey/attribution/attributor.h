// Attributor: the order of a span that does not carry one, found through trace context.
//
// Instrumentation libraries (amqplib's, pika's, the Java agent's, .NET RabbitMQ.Client's) record
// RabbitMQ publish and consume spans without knowing the order; only an application span above
// them says which order it is.  The attributor gives such a span the order of:
//   1. its parent (same trace), when the parent's order is known;
//   2. else a span it links to (consumers that start a new trace per delivery link to the
//      publish span), applied transitively along the chain: an attributed span is an ancestor
//      like any other;
//   3. else, when its wait ends: for a span that processes a message, the order of the message
//      its parent or link published, as the engine knows it (open in memory, or in the journey
//      store: published before a restart, or so long ago the span is no longer tracked); then
//      its trace, when the trace's spans with an order (carried or attributed) have exactly one.
// An attributed span becomes a SpanRecord exactly as if it carried the order id (hops, mappings,
// received_by/processed_by, errors).  A span whose parent or links are not known yet waits in
// the pending set, bounded by count, by the bytes of the requests it holds, and by time (`wait`,
// shorter than the rules' grace): it is attributed the moment its ancestor arrives, so any
// arrival order gives what in-order arrival gives.  A process span (a consumer) that waits also
// goes to the engine at once without an order id, for the engine's message-id match, so that
// waiting never delays a message processed just in time into a false flag (the engine folds a
// later attributed copy idempotently).  A span still unattributed when its wait ends is given
// up; a span whose parent is itself still waiting follows its parent.
//
// Precedence and limits (docs/attribution.md): the parent wins over links when both are known
// at once; when the first ancestor to be known is a link, its order is taken.  The trace rule
// is applied only when a span's wait ends, with the spans that arrived by then.
//
// Memory: RecentOrders for tracked spans (span → order) and traces (trace → order, or
// ambiguous), both bounded; the pending set holds a reference to each request it waits on
// (counted once per request in pending bytes).  docs/benchmarks.md has the cost per span and the
// bytes per tracked span.
//
// Thread-safety: every public method takes the attributor's own lock; Process() runs on the
// ingest worker and Expire() on the journey stage's timer thread.  The lookup callback is
// called with the lock held and must not call back into the attributor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/thread_annotations.h"
#include "journey/attribution/flat_index.h"
#include "journey/attribution/recent_orders.h"
#include "journey/facts.h"
#include "otlp/span_batch.h"

namespace ordertrace::journey {

struct AttributionOptions {
  bool enabled = true;
  // How long a span waits for its ancestor; it covers exporters' batch delays (the SDKs' batch
  // processors export every 5 s) and must be shorter than the rules' grace.
  Duration wait{10000};
  size_t max_pending_spans = 200000;
  uint64_t max_pending_bytes = uint64_t{64} << 20;  // the requests pending spans hold
  size_t max_tracked_spans = 1000000;               // span → order (RecentOrders)
  size_t max_tracked_traces = 500000;               // trace → order
};

// How a span's order was found (the `via` label of ordertrace_attribution_spans_total).
enum class AttributedVia : uint8_t { kCarried, kParent, kLink, kPublish, kTrace, kCount };
const char* AttributedViaName(AttributedVia v);

struct AttributionStats {
  uint64_t attributed[static_cast<int>(AttributedVia::kCount)] = {};
  uint64_t waited = 0;         // spans that entered the pending set
  uint64_t given_up = 0;       // wait ended without an order
  uint64_t overflow = 0;       // pending spans whose wait was cut short by the bounds
  uint64_t ambiguous = 0;      // given up: their trace carries more than one order id
  uint64_t conflicts = 0;      // parent and link (or two links) name different orders
  size_t pending_spans = 0;    // now
  uint64_t pending_bytes = 0;  // now
  size_t tracked_spans = 0;    // now
  size_t tracked_traces = 0;   // now
  uint64_t tracked_bytes = 0;  // now (spans and traces)
};

class Attributor {
 public:
  // The order of the message a send span (16 hex) published, "" when unknown: the engine's
  // open hops, else the journey store's hops (Engine::PublishOrder).
  using PublishLookup = std::function<std::string(std::string_view send_span_id)>;

  // `registry` may be null (tests); it must outlive the attributor.
  Attributor(AttributionOptions options, metrics::Registry* registry);
  ~Attributor();
  Attributor(const Attributor&) = delete;
  Attributor& operator=(const Attributor&) = delete;

  void SetPublishLookup(PublishLookup lookup) EXCLUDES(mu_);

  // Appends to `out` the records of the batch's spans that carry an order or are attributed
  // now, and of pending spans they resolve; the others wait (the batch is held while they do).
  // `now` is the clock (the wait is counted in arrival time, not span time).
  void Process(const std::shared_ptr<const otlp::SpanBatch>& batch, const FactExtractor& extractor,
               Nanos now, std::vector<SpanRecord>* out, ExtractStats* stats) EXCLUDES(mu_);

  // Ends the wait of every pending span whose wait is over by `now` (kForever: all of them,
  // at shutdown): attributed through the published messages or the trace, or given up.
  static constexpr Nanos kForever = INT64_MAX;
  void Expire(Nanos now, const FactExtractor& extractor, std::vector<SpanRecord>* out)
      EXCLUDES(mu_);

  // When the earliest wait ends, kForever when nothing waits.
  Nanos NextExpiry() const EXCLUDES(mu_);

  // Remembers a span's order without a record (after a restart, from the journey store).
  void Remember(const otlp::TraceId& trace, const otlp::SpanId& span, std::string_view order)
      EXCLUDES(mu_);

  AttributionStats stats() const EXCLUDES(mu_);
  const AttributionOptions& options() const { return options_; }

 private:
  // A span waiting for its ancestor.  Kept in arrival order in a slab (ids are consecutive), so
  // the wait ends in id order and no entry costs an allocation of its own.
  struct PendingSpan {
    uint64_t batch = 0;  // id in held_
    uint32_t span_index = 0;
    bool process_hop = false;
    bool deferred = false;   // its wait ended while its parent still waited
    bool done = true;        // attributed or given up (the slot is free)
    bool has_links = false;  // its links are in links_
    uint64_t key = 0, parent_key = 0, trace_key = 0;
    otlp::SpanId parent{};
    Nanos expires = 0;
  };
  // A request pending spans hold.
  struct HeldBatch {
    std::shared_ptr<const otlp::SpanBatch> batch;
    uint32_t live = 0;  // pending spans in it
  };
  // The links of a pending span that has any (rare: consumers that start a trace per message).
  struct PendingLinks {
    std::vector<uint64_t> keys;
    std::vector<otlp::SpanId> ids;  // for the open-publish lookup
  };
  // The pending spans of one trace.  A span's parent is in its own trace, so the spans a new
  // ancestor resolves are found in its trace's group: one lookup per trace (and none for the
  // next spans of the same trace), where an index per span cost a cache miss per span.  Large
  // groups get indexes of their own.
  struct Group {
    std::vector<uint64_t> ids;  // pending ids in arrival order (finished ones are skipped)
    size_t live = 0;
    std::unique_ptr<FlatIndex> by_key;                                       // span key → id
    std::unique_ptr<std::unordered_multimap<uint64_t, uint64_t>> by_parent;  // → child ids
  };
  // A group is indexed once it holds more pending spans than this.
  static constexpr size_t kIndexedGroup = 32;
  // A resolved or given-up span, to look for its waiting descendants.
  struct Resolved {
    uint64_t key;
    uint64_t trace_key;
  };

  PendingSpan* Pending(uint64_t id) REQUIRES(mu_);  // null when not pending
  Group* FindGroup(uint64_t trace_key) REQUIRES(mu_);
  // The pending span of the group with this key, 0 when none.
  uint64_t PendingByKey(Group* g, uint64_t key) REQUIRES(mu_);
  // The pending spans of the group whose parent is `parent_key`.
  void ChildrenOf(Group* g, uint64_t parent_key, std::vector<uint64_t>* ids) REQUIRES(mu_);
  // A span got `order`: its key and its trace tracked, then the pending spans waiting on it.
  void Track(uint64_t key, uint64_t trace_key, std::string_view order, AttributedVia via,
             const FactExtractor& extractor, std::vector<SpanRecord>* out) REQUIRES(mu_);
  // Its trace: merged once for consecutive spans of one trace and order.
  void TrackTrace(uint64_t trace_key, std::string_view order) REQUIRES(mu_);
  void ResolveWaiters(Resolved first, const FactExtractor& extractor, std::vector<SpanRecord>* out)
      REQUIRES(mu_);
  // The order of a span's parent or links among the tracked spans ("" none).
  std::string_view Lookup(uint64_t parent_key, const std::vector<uint64_t>& links,
                          AttributedVia* via) REQUIRES(mu_);
  void AddPending(uint64_t batch, const otlp::SpanRef& span, uint32_t index, uint64_t key,
                  uint64_t trace_key, bool process_hop, const std::vector<uint64_t>& links,
                  Nanos now) REQUIRES(mu_);
  // The end of one pending span's wait (expired or overflowed).
  void EndWait(uint64_t id, const FactExtractor& extractor, std::vector<SpanRecord>* out)
      REQUIRES(mu_);
  void Finish(uint64_t id) REQUIRES(mu_);  // out of the pending set
  void Publish() REQUIRES(mu_);            // gauges

  const AttributionOptions options_;
  mutable Mutex mu_;
  PublishLookup publish_ GUARDED_BY(mu_);
  RecentOrders spans_ GUARDED_BY(mu_);   // span → order
  RecentOrders traces_ GUARDED_BY(mu_);  // trace → the order of its tracked spans (or ambiguous)
  uint64_t last_trace_key_ GUARDED_BY(mu_) = 0;  // the trace merged last, and its order
  std::string last_trace_order_ GUARDED_BY(mu_);

  // Pending spans by id: slab_[head_] has id slab_base_, the next one slab_base_ + 1, ...  A
  // vector rather than a deque: libstdc++'s deque allocates a block per 512 bytes (every few
  // entries here); the vector drops its finished front in one move now and then.
  std::vector<PendingSpan> slab_ GUARDED_BY(mu_);
  size_t head_ GUARDED_BY(mu_) = 0;
  uint64_t slab_base_ GUARDED_BY(mu_) = 1;
  uint64_t wait_cursor_ GUARDED_BY(mu_) = 1;  // spans below it have ended their wait
  size_t live_ GUARDED_BY(mu_) = 0;           // pending spans
  std::unordered_map<uint64_t, Group> groups_ GUARDED_BY(mu_);  // by trace key
  uint64_t cached_trace_ GUARDED_BY(mu_) = 0;                   // FindGroup's last answer
  Group* cached_group_ GUARDED_BY(mu_) = nullptr;
  std::unordered_map<uint64_t, PendingLinks> links_ GUARDED_BY(mu_);          // by pending id
  std::unordered_multimap<uint64_t, uint64_t> link_waiters_ GUARDED_BY(mu_);  // link → id
  std::deque<HeldBatch> held_ GUARDED_BY(mu_);                                // ids held_base_, ...
  uint64_t held_base_ GUARDED_BY(mu_) = 1;
  AttributionStats stats_ GUARDED_BY(mu_);

  struct Metrics;
  std::unique_ptr<Metrics> metrics_;  // null without a registry
};

}  // namespace ordertrace::journey
