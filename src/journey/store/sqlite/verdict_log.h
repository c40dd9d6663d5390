// The verdict log (schema version 5): the detector's verdicts (store.h OrderVerdict) and the
// stuck episodes' flags and clears, appended to a table of their own in the order they are
// written, and folded into `orders` and `episodes` later.
//
// Why: with a million orders the orders table is larger than any page cache, and a verdict
// written in place rewrites one random page of it (and of `episodes`), in the WAL and again
// at the checkpoint: ~7 page writes per flag, which held the detector at 9-13 thousand flags a
// second against a burst of 16.7 thousand due a second (docs/benchmarks.md, "The detector").
// Appended, a flag costs one row at the end of the log and one entry of its narrow order_id
// index; the rewrite of the order's page happens when the writer has nothing else to do
// (SqliteStore::Settle), in the log's order.
//
// What readers see does not change (store_contract_test.cc checks it):
//   - GetOrder, GetJourney and the scans of order rows (ForEachActiveOrder: the engine's
//     recovery; ForEachOrderSince) overlay the order's entries not yet folded (OverlayVerdicts);
//   - the scan of the episodes (ForEachEpisodeSince) overlays the log's flags and clears on the
//     episodes it read (OverlayEpisodes);
//   - ListOrders folds the log up to the moment it is called before it reads
//     (SqliteStore::FoldUpTo; within OrderQuery::settle_wait, past it overlaying its rows);
//   - a write of an order's whole row folds that order's entries first (FoldOrders), so the
//     row replaces them as it replaced the verdict columns before;
//   - retention folds everything first, so no entry outlives its order.
//
// A log row: entry 1, a verdict: stuck, since_ns = stuck_since_ns, at_ns = deadline_ns,
// expected_service, text = summary; entry 2, an episode: stuck = kind, since_ns = due_ns,
// at_ns = flagged_ns (0: a clear), cleared_ns, expected_service, text = stage.
//
// Thread-safety: none; each function runs on the connection it is given, inside the caller's
// transaction (the writer's for Log*/Fold*, a reader's for Overlay*).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "journey/store/sqlite/db.h"
#include "journey/store/store.h"
#include "journey/types.h"

namespace ordertrace::journey::sqlite {

// Appends the verdicts, then the episodes, each in the given order.  Returns the rows added.
Result<int64_t> LogVerdicts(Db& db, const std::vector<OrderVerdict>& verdicts,
                            const std::vector<StuckEpisode>& episodes);

// Folds every entry of these orders (each id once), in the log's order, and removes them.
// Returns the rows folded.
Result<int64_t> FoldOrders(Db& db, const std::vector<const std::string*>& order_ids);

// Folds the oldest entries, at most `max`, none after `up_to_seq` (0: no bound), and removes
// them.  Returns the rows folded (0: none left up to the bound).
Result<int64_t> FoldOldest(Db& db, size_t max, int64_t up_to_seq);

// The last entry's seq (0 when the log is empty) and the number of entries.
Result<int64_t> LastSeq(Db& db);
Result<int64_t> CountEntries(Db& db);

// Applies the order's verdicts not yet folded to `row` (read in the same transaction).
Status OverlayVerdicts(Db& db, OrderRow* row);

// Applies the log's episode entries, in the log's order, to `episodes` (every episode of the
// table flagged or cleared at or after `since` and every ongoing one, read in the same
// transaction) as the fold would write them: a flag is added unless its (order, flagged_ns) is
// there, a clear ends the order's ongoing ones.  Then keeps those the scan's condition (store.h
// ForEachEpisodeSince) still selects.
Status OverlayEpisodes(Db& db, Nanos since, std::vector<StuckEpisode>* episodes);

// Writes verdicts and episodes where they live (the fold's targets, and the direct path of
// a store that logs nothing): a verdict updates the order's verdict columns (no row: nothing
// changes); a flag inserts its episode (the first write of a key wins), a clear ends the
// order's open ones.
Status PutVerdict(Db& db, const OrderVerdict& v);
Status PutEpisode(Db& db, const StuckEpisode& e);

}  // namespace ordertrace::journey::sqlite
