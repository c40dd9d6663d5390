// The merge rules every JourneyStore keeps (store.h), made exact, as functions each store
// calls so they cannot drift apart: MemoryStore applies them to its maps, SqliteStore to the
// rows it reads back (or in SQL where the rule is one comparison), and a PostgreSQL store
// would do the same.  store_contract_test.cc checks the result on every store.
//
//   - spans are keyed by (order_id, span_id): the first written is kept;
//   - a milestone replaces the stored one of its (order_id, stage) only when it is earlier:
//     a smaller at_ns, or the same at_ns and a smaller span_id (MilestoneEarlier), so any
//     write order gives the same result;
//   - hops merge field by field (MergeHop);
//   - an order row replaces the stored one whole except for its partner, which merges
//     (KeepPartner): the partner of the earliest span that carried one, so any write order gives
//     the same result and a row written without a partner keeps the stored one;
//   - an order row with an empty order_id is an invalid batch: the Write() fails, nothing of
//     the batch is applied.
// Orders: GetJourney returns nullopt for an order without an order row (its spans, if any,
// stay until retention).  Spans age by end_ns.  Open hops are those published (published_ns
// != 0) and not processed (processed_ns == 0).  FindHop by message id returns the earliest
// published hop carrying it (ties: smallest send_span_id).  Retention of inactive orders also
// removes hops without an order (order_id "") whose latest time is older than the same limit
// (RetentionCutoff).  Span retention leaves the order row (including its `spans` count) as the
// engine wrote it.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "journey/store/store.h"
#include "journey/types.h"

namespace ordertrace::journey {

// Merges `later` into the stored hop `into` (same send_span_id):
//   - a string field empty in `into` takes `later`'s;
//   - published_ns: the non-zero one, the earliest when both are;
//   - processed_ns: the non-zero one, the earliest when both are; when `later` is processed
//     strictly earlier than `into`, its non-empty process fields (process_service,
//     process_span_id, process_trace_id) replace `into`'s (they describe the same processing).
// The result does not depend on the order in which the sides arrive.
void MergeHop(Hop& into, const Hop& later);

// Whether milestone `a` wins over `b` for the same (order_id, stage): earlier at_ns, then
// smaller span_id.
bool MilestoneEarlier(const Milestone& a, const Milestone& b);

// Whether partner `a` (seen on a span starting at `a_ns`) wins over `b` for the same order: a
// non-empty partner over an empty one; else the smaller time, then the smaller value.
bool PartnerEarlier(std::string_view a, Nanos a_ns, std::string_view b, Nanos b_ns);

// `row` is about to replace `stored` (same order_id): it takes `stored`'s partner (and
// partner_ns) unless its own wins (PartnerEarlier).
void KeepPartner(OrderRow& row, const OrderRow& stored);

// The verdict's fields (store.h OrderVerdict) into `row`; the others stay.
void ApplyVerdict(OrderRow& row, const OrderVerdict& verdict);

// Whether `row` passes the list's filters on the row itself (stuck, kinds and the stuck-only
// sorts, stages, services, closed, partners); the filters on spans and hops (trace_id, queues,
// message_id) are the store's to check.
bool OrderMatches(const OrderRow& row, const OrderQuery& query);

// The stuck episodes, keyed by (order_id, flagged_ns).  PutEpisode writes one as every store
// does: a flag inserts its episode (the first write of a key wins); a clear ({order_id,
// cleared_ns}, flagged_ns 0) ends the order's open episodes.
using EpisodeMap = std::map<std::pair<std::string, Nanos>, StuckEpisode>;
void PutEpisode(EpisodeMap& episodes, const StuckEpisode& e);

// Whether ForEachEpisodeSince(since) gives `e`: flagged or cleared at or after `since`, or
// still ongoing.
bool EpisodeSince(const StuckEpisode& e, Nanos since);

// Orders in ListOrders pages: what a page holds at most (limit 0 counts as 1).
inline size_t PageLimit(size_t limit) { return limit == 0 ? 1 : limit; }

// OrderSort (store.h) as ListOrders applies it: the key an order sorts by (0 for kOrderId),
// whether the order is descending (the key, then order_id), whether the sort lists stuck orders
// only, and whether order `a` comes before `b`.
Nanos OrderSortKey(const OrderRow& o, OrderSort sort);
bool OrderSortDescending(OrderSort sort);
bool OrderSortStuckOnly(OrderSort sort);
bool OrderSortBefore(OrderSort sort, Nanos a_key, std::string_view a_id, Nanos b_key,
                     std::string_view b_id);
// The name in GET /api/v1/orders?sort= ("order_id", "stuck_since", "-stuck_since",
// "stage_since", "-stage_since"), and back (false for another name).
const char* OrderSortName(OrderSort sort);
bool ParseOrderSort(std::string_view name, OrderSort* out);

// "svc=ns;svc=ns": OrderRow.services as stored text; '%', '=' and ';' in names are
// percent-encoded.  ParseServices returns false on malformed text.
std::string FormatServices(const std::vector<std::pair<std::string, Nanos>>& services);
bool ParseServices(std::string_view text, std::vector<std::pair<std::string, Nanos>>* out);

// A retention limit as an absolute cutoff: data older than the returned time expires;
// nullopt when `keep` is 0 (keep forever).
std::optional<Nanos> RetentionCutoff(Nanos now, Duration keep);

}  // namespace ordertrace::journey
