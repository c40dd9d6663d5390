// JourneyStore: where order journeys live.  One interface, one folder per implementation:
//   memory/  MemoryStore  unit tests, and a reference for the others' semantics
//   sqlite/  SqliteStore  the embedded default: one WAL file under --data
// A PostgreSQL store (postgres/, not written yet) is planned for several gateways sharing
// state; it would implement this interface, call semantics.h, join store_contract_test.cc
// with one line, and no caller would change.
//
// The engine is the only writer (one thread); readers (API, CLI through the API) call from
// any thread.  Semantics every implementation keeps (semantics.h has them exact, and
// store_contract_test.cc checks them on each one):
//   - spans are keyed by span_id: writing a span twice keeps the first (exporter retries);
//   - milestones are keyed by (order_id, stage): the earliest at_ns wins;
//   - hops are keyed by send_span_id and merged: a non-empty/non-zero field written later
//     fills an empty/zero one (the send and process sides arrive separately, either first);
//   - order rows are replaced whole (the engine computes them), except for the partner, which
//     merges (semantics.h KeepPartner: the earliest span's partner wins);
//   - a Write() is atomic: all of it or, on error, none of it.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "journey/types.h"

namespace ordertrace::journey {

// The detector's verdict on an order whose other fields did not change (Engine::Tick flags,
// clears, moves its deadline): only these fields of the stored row are replaced, so the store
// writes the few columns (and the indexes on them) that change, not the whole row with every
// index.  The other fields, the partner included, stay as stored.
struct OrderVerdict {
  std::string order_id;
  StuckKind stuck = StuckKind::kNone;
  Nanos stuck_since_ns = 0;
  Nanos deadline_ns = 0;
  std::string expected_service;
  std::string summary;
};

struct WriteBatch {
  std::vector<SpanRecord> spans;  // spans with order_id != "" (the order's own spans)
  std::vector<Milestone> milestones;
  std::vector<Hop> hops;
  std::vector<OrderRow> orders;
  // Stuck episodes (types.h StuckEpisode): flags insert one, a clear ends the order's open ones.
  std::vector<StuckEpisode> episodes;
  // Applied after `orders` (an order has a row or a verdict in one batch, not both).
  std::vector<OrderVerdict> verdicts;
  bool empty() const {
    return spans.empty() && milestones.empty() && hops.empty() && orders.empty() &&
           episodes.empty() && verdicts.empty();
  }
};

// The orders of a list, in what order (GET /api/v1/orders?sort=).  Every order is by a key,
// then by order_id in the key's direction, so (key, order_id) is a position pages resume from.
enum class OrderSort : uint8_t {
  kOrderId,         // by order_id (no key)
  kStuckSince,      // stuck orders only, the longest stuck first: stuck_since_ns ascending
  kStuckSinceDesc,  // stuck orders only, the latest stuck first
  kStageSince,      // the longest in their stage first: stage_ns ascending (0, no milestone, first)
  kStageSinceDesc,  // the latest to enter their stage first
};

// GET /api/v1/orders filters: each non-empty list is "any of these", and every filter given must
// hold.
struct OrderQuery {
  std::optional<bool> stuck;          // only stuck (true) / only not stuck (false)
  std::vector<std::string> stages;    // exact stage names
  std::vector<std::string> services;  // matches expected_service or last_service
  std::vector<StuckKind> kinds;       // stuck with one of these kinds (kNone never matches)
  std::vector<std::string> queues;    // an open hop (published, not processed) names the queue
  std::string trace_id;               // a span of the order is in this trace; "" any
  std::string message_id;             // a hop of the order carries this message id; "" any
  bool include_closed = true;         // false: only orders not closed
  // Orders whose partner is any of these (a clear id's pseudonyms under every retained key);
  // empty: any partner, or none.
  std::vector<std::string> partners;
  OrderSort sort = OrderSort::kOrderId;
  size_t limit = 100;
  // Where the page starts: after the order (cursor_key, cursor) in the sort's order, i.e. the
  // previous page's OrderPage::next_key and next_cursor; cursor "" for the first page.  The key
  // is unused by kOrderId.
  std::string cursor;
  Nanos cursor_key = 0;
  bool count_total = false;    // fill OrderPage::total
  bool with_open_hop = false;  // fill OrderPage::open_hop
  // How long the list may wait for verdicts the store has accepted but not yet brought into
  // its filters and sort keys (the SQLite store's verdict log, verdict_log.h: after a burst of
  // flags, folding them all takes seconds to minutes).  Past it the list answers: its rows
  // are current (each overlaid as GetOrder is), but which orders match, their order and
  // `total` are as of the folded part, and OrderPage::unsettled says how many entries are
  // left.  Unset: the list waits for all (the alert dispatcher's list).
  std::optional<Duration> settle_wait;
};

struct OrderPage {
  std::vector<OrderRow> orders;
  std::string next_cursor;  // the last order's id when there is a further page, else ""
  Nanos next_key = 0;       // with next_cursor: the last order's sort key (OrderSortKey)
  // count_total: the orders matching the filters, on every page (the cursor aside).
  std::optional<uint64_t> total;
  // with_open_hop: per order (same index), its oldest open hop (by published_ns, then
  // send_span_id), nullopt when it has none.
  std::vector<std::optional<Hop>> open_hop;
  // With OrderQuery::settle_wait: verdict log entries the filters and the sort did not see yet
  // (0: the page is exact).
  uint64_t unsettled = 0;
};

// What retention removes, per kind of data.  0 keeps forever.
struct Retention {
  // Closed orders (with their spans, milestones, hops) whose last span ended this long ago.
  Duration closed_orders{std::chrono::hours(24 * 30)};
  // Any order (closed or not) with no span for this long: abandoned journeys.
  Duration inactive_orders{std::chrono::hours(24 * 90)};
  // Spans older than this are removed even from open orders; milestones, hops and the order
  // row stay (the journey keeps its shape, the detail ages out).
  Duration spans{std::chrono::hours(24 * 14)};
};

struct RetentionResult {
  uint64_t orders_removed = 0;
  uint64_t spans_removed = 0;
};

struct StoreStats {
  uint64_t orders = 0;
  uint64_t spans = 0;
  uint64_t hops = 0;
  uint64_t bytes = 0;  // on disk (SQLite: the database and its WAL), or an estimate in memory
};

class JourneyStore {
 public:
  virtual ~JourneyStore() = default;

  // Applies a batch atomically (see the file comment for the merge rules).
  virtual Status Write(const WriteBatch& batch) = 0;

  // The order's journey, nullopt when the order is unknown.  At most `max_spans` spans, the
  // latest by start time (spans_truncated says when more exist).
  virtual Result<std::optional<Journey>> GetJourney(std::string_view order_id,
                                                    size_t max_spans = 1000) = 0;

  // One order row, nullopt when unknown.
  virtual Result<std::optional<OrderRow>> GetOrder(std::string_view order_id) = 0;

  virtual Result<OrderPage> ListOrders(const OrderQuery& query) = 0;

  // Every order not closed, and every open hop (published, not processed): the engine rebuilds
  // its in-memory deadlines from them after a restart.  `fn` is called without store locks
  // the engine could contend on; it must not call back into the store.
  virtual Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) = 0;
  virtual Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) = 0;

  // Every order id in the store (active or closed), in no particular order: the engine fills
  // its filter of known orders from it at start, so that a span of a brand-new order costs no
  // store read.  The ids are those of the order rows (GetOrder finds them); ids that only
  // spans or hops carry are not included.  Each id once; like ForEachActiveOrder, `fn` runs
  // without store locks, and a write committed meanwhile may or may not be seen.  `fn` must
  // not call back into the store.
  virtual Status ForEachOrderId(const std::function<void(std::string_view)>& fn) = 0;

  // The `limit` spans that ended last (newest first), as (trace id, span id, order id): the
  // attributor remembers them at start, so that a restart does not forget which order a
  // recent span belongs to.  Like ForEachOrderId, `fn` runs without store locks and must not
  // call back into the store.
  virtual Status ForEachRecentSpan(
      size_t limit, const std::function<void(std::string_view trace_id, std::string_view span_id,
                                             std::string_view order_id)>& fn) = 0;

  // A hop by the message id, or by the send span id: the engine's lookup for a process span
  // whose open hop is no longer in memory.  nullopt when unknown.
  virtual Result<std::optional<Hop>> FindHop(std::string_view send_span_id,
                                             std::string_view message_id) = 0;

  // Deletes what `retention` says has expired at `now`.  Stuck episodes go with their order,
  // and ended ones also once cleared longer than `closed_orders` ago.
  virtual Result<RetentionResult> EnforceRetention(Nanos now, const Retention& retention) = 0;

  virtual Result<StoreStats> Stats() = 0;

  // Work the store deferred to keep writes fast (SQLite: the verdict log, sqlite/verdict_log.h),
  // done in steps of at most `max` records when the writer has nothing else to do (the engine's
  // verdict writer calls it when its queue is empty).  Returns how many records stay deferred:
  // 0 when done.  Readers never see the difference: deferred records are overlaid or applied
  // before a read that needs them.  A store that defers nothing returns 0.
  virtual Result<size_t> Settle(size_t max) {
    (void)max;
    return size_t{0};
  }

  // Read-only scans by time for the flow map and the KPIs (api/flow_api.h, api/kpi_api.h),
  // each bounded by `since` (an index on the time column in SQLite).  Like ForEachActiveOrder,
  // `fn` runs without store locks (rows are read in pages), a write committed meanwhile may or
  // may not be seen, and `fn` must not call back into the store.  Rows come in no promised order.
  //   orders whose first span started at or after `since` (first_ns >= since);
  virtual Status ForEachOrderSince(Nanos since, const std::function<void(const OrderRow&)>& fn) = 0;
  //   milestones reached at or after `since` (at_ns >= since);
  virtual Status ForEachMilestoneSince(Nanos since,
                                       const std::function<void(const Milestone&)>& fn) = 0;
  //   hops published at or after `since` (published_ns >= since; process-only hops are not);
  virtual Status ForEachHopSince(Nanos since, const std::function<void(const Hop&)>& fn) = 0;
  //   stuck episodes flagged or cleared at or after `since`, and every one still ongoing.
  virtual Status ForEachEpisodeSince(Nanos since,
                                     const std::function<void(const StuckEpisode&)>& fn) = 0;
};

}  // namespace ordertrace::journey
