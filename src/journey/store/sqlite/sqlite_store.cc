#include "journey/store/sqlite/sqlite_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/thread_annotations.h"
#include "journey/store/semantics.h"
#include "journey/store/sqlite/db.h"
#include "journey/store/sqlite/schema.h"
#include "journey/store/sqlite/verdict_log.h"

namespace ordertrace::journey {
namespace {

using sqlite::Cols;
using sqlite::Db;
using sqlite::ForEachRow;
using sqlite::kHopCols;
using sqlite::kMilestoneCols;
using sqlite::kOrderCols;
using sqlite::kSpanCols;
using sqlite::Stmt;

constexpr size_t kStreamPage = 1000;  // rows per ForEach page
// Verdict log entries folded per transaction when a reader needs them folded (FoldUpTo): the
// writer is released between, so the detector's appends go on meanwhile.
constexpr size_t kFoldChunk = 8192;
// Entries the verdict log may hold before a Write() folds the oldest itself (the engine's
// verdict writer folds them when idle; without it, or when it never idles, this bounds the
// log's disk: ~100 bytes an entry).  A burst of 1M flags appends 2M (a verdict and an episode
// each).
constexpr int64_t kMaxDeferred = int64_t{1} << 22;
constexpr size_t kRetentionOrders = 1000;  // orders deleted per transaction
constexpr int kRetentionRows = 10000;      // spans / hops deleted per transaction

const std::string& SelectOrderSql() {
  static const std::string sql = Cols("SELECT ", kOrderCols) + " FROM orders WHERE order_id = ?1";
  return sql;
}
const std::string& SelectHopSql() {
  static const std::string sql = Cols("SELECT ", kHopCols) + " FROM hops WHERE send_span_id = ?1";
  return sql;
}

// Row count changes of one transaction, added to the counters table in the same transaction.
struct Deltas {
  int64_t orders = 0;
  int64_t spans = 0;
  int64_t hops = 0;
};

Status AddCounters(Db& db, const Deltas& d) {
  static const std::string sql = "UPDATE counters SET value = value + ?2 WHERE name = ?1";
  const std::pair<const char*, int64_t> all[] = {
      {"orders", d.orders}, {"spans", d.spans}, {"hops", d.hops}};
  for (const auto& [name, delta] : all) {
    if (delta == 0) continue;
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    s.Text(1, name);
    s.Int(2, delta);
    RETURN_IF_ERROR(s.Run());
  }
  return Status::Ok();
}

Result<std::optional<Hop>> ReadHopById(Db& db, std::string_view send_span_id) {
  ASSIGN_OR_RETURN(Stmt s, db.Statement(SelectHopSql()));
  s.Id(1, send_span_id);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return std::optional<Hop>();
  return std::optional<Hop>(sqlite::ReadHop(s));
}

Result<std::optional<OrderRow>> ReadOrderRow(Db& db, std::string_view order_id) {
  ASSIGN_OR_RETURN(Stmt s, db.Statement(SelectOrderSql()));
  s.Text(1, order_id);
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return std::optional<OrderRow>();
  OrderRow o;
  RETURN_IF_ERROR(sqlite::ReadOrder(db, s, &o));
  return std::optional<OrderRow>(std::move(o));
}

// Inserts `hop`, or merges it into its stored row (semantics.h MergeHop).  A new hop (the send
// side of a message, by far the most) is one INSERT: its conflict on hops_send is the existence
// check, so the row is read only when it exists.
Status PutHop(Db& db, const Hop& hop, Deltas* d) {
  {
    static const std::string sql =
        Cols("INSERT INTO hops (", kHopCols) +
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    sqlite::BindHop(s, hop);
    RETURN_IF_ERROR(s.Run());
    if (db.Changes() > 0) {
      ++d->hops;
      return Status::Ok();
    }
  }
  ASSIGN_OR_RETURN(const std::optional<Hop> stored, ReadHopById(db, hop.send_span_id));
  if (stored.has_value()) {
    Hop merged = *stored;
    MergeHop(merged, hop);
    if (merged == *stored) return Status::Ok();
    static const std::string sql =
        "UPDATE hops SET order_id = ?2, send_trace_id = ?3, send_service = ?4, "
        "message_id = ?5, exchange = ?6, routing_key = ?7, queue = ?8, published_ns = ?9, "
        "processed_ns = ?10, process_service = ?11, process_span_id = ?12, "
        "process_trace_id = ?13 WHERE send_span_id = ?1";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    sqlite::BindHop(s, merged);
    return s.Run();
  }
  // Neither inserted nor found: a conflict on another unique key (none exists) or a bug.
  return Status::Internal("sqlite " + db.path() + ": hop neither inserted nor found");
}

// Writes order rows (replaced whole, the partner merged: semantics.h KeepPartner).  SQLite
// rewrites the entry of every index whose column an UPDATE sets, changed or not (4 index entries
// deleted and inserted per row when every column is set), so the common update sets only the
// columns no index holds, and RETURNING gives the stored values of those an index holds; only
// when one of these changes (a new stage, closed, stuck, an earlier first span, a partner that
// wins, last_ns into a new bucket) is the whole row set again.  A row not stored is inserted.
Status PutOrders(Db& db, const std::vector<OrderRow>& orders, Deltas* d) {
  static const std::string touch =
      "UPDATE orders SET stage_start_ns = ?2, last_ns = ?3, last_heartbeat_ns = ?4, "
      "services = ?5, last_service = ?6, spans = ?7, open_hops = ?8, deadline_ns = ?9, "
      "expected_service = ?10, summary = ?11 WHERE order_id = ?1 RETURNING stage, stage_ns, "
      "first_ns, last_bucket, closed, stuck, stuck_since_ns, partner, partner_ns";
  // KeepPartner (semantics.h) in SQL: the row's partner replaces the stored one only when it
  // wins (PartnerEarlier); the right-hand sides see the row as it was before the update.
  static const std::string partner_wins =
      "?18 <> '' AND (partner = '' OR ?19 < partner_ns OR (?19 = partner_ns AND ?18 < partner))";
  static const std::string update =
      "UPDATE orders SET stage = ?2, stage_start_ns = ?3, stage_ns = ?4, first_ns = ?5, "
      "last_ns = ?6, last_heartbeat_ns = ?7, services = ?8, last_service = ?9, spans = ?10, "
      "open_hops = ?11, closed = ?12, stuck = ?13, stuck_since_ns = ?14, deadline_ns = ?15, "
      "expected_service = ?16, summary = ?17, partner = CASE WHEN " +
      partner_wins + " THEN ?18 ELSE partner END, partner_ns = CASE WHEN " + partner_wins +
      " THEN ?19 ELSE partner_ns END, last_bucket = ?20 WHERE order_id = ?1";
  static const std::string insert = Cols("INSERT INTO orders (", kOrderCols) +
                                    ", last_bucket) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                    "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";
  ASSIGN_OR_RETURN(Stmt t, db.Statement(touch));
  for (const OrderRow& o : orders) {
    const std::string services = FormatServices(o.services);
    t.Text(1, o.order_id);
    t.Int(2, o.stage_start_ns);
    t.Int(3, o.last_ns);
    t.Int(4, o.last_heartbeat_ns);
    t.Text(5, services);
    t.Text(6, o.last_service);
    t.Int(7, o.spans);
    t.Int(8, o.open_hops);
    t.Int(9, o.deadline_ns);
    t.Text(10, o.expected_service);
    t.Text(11, o.summary);
    ASSIGN_OR_RETURN(const bool stored, t.Step());
    bool whole = !stored;
    if (stored) {
      // The stored values of the indexed columns (RETURNING sees the row after the UPDATE, which
      // set none of them).
      whole = t.ColText(0) != o.stage || t.ColInt(1) != o.stage_ns || t.ColInt(2) != o.first_ns ||
              t.ColInt(3) != sqlite::LastBucket(o.last_ns) || (t.ColInt(4) != 0) != o.closed ||
              t.ColInt(5) != static_cast<int64_t>(o.stuck) || t.ColInt(6) != o.stuck_since_ns ||
              PartnerEarlier(o.partner, o.partner_ns, t.ColText(7), t.ColInt(8));
    }
    t.Reset();
    if (!whole) continue;
    ASSIGN_OR_RETURN(Stmt w, db.Statement(stored ? update : insert));
    sqlite::BindOrder(w, o);
    w.Int(20, sqlite::LastBucket(o.last_ns));
    RETURN_IF_ERROR(w.Run());
    if (!stored) ++d->orders;
  }
  return Status::Ok();
}

// The rows of one Write(), inside its transaction.  The verdicts and episodes are appended to
// the verdict log (verdict_log.h); `deferred`: the log may hold entries, and an order whose
// whole row is written gets its own folded first.  `logged` and `folded` count the log's rows.
Status ApplyBatch(Db& db, const WriteBatch& batch, bool deferred, Deltas* d, int64_t* logged,
                  int64_t* folded) {
  if (!batch.spans.empty()) {
    static const std::string sql = Cols("INSERT INTO spans (", kSpanCols) +
                                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                   "?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    for (const auto& span : batch.spans) {
      sqlite::BindSpan(s, span);
      RETURN_IF_ERROR(s.Run());
      d->spans += db.Changes();
      s.Reset();
    }
  }
  if (!batch.milestones.empty()) {
    // MilestoneEarlier (semantics.h) in SQL: the earliest at_ns, then the smallest span_id.
    static const std::string sql =
        Cols("INSERT INTO milestones (", kMilestoneCols) +
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (order_id, stage) DO UPDATE SET "
        "at_ns = excluded.at_ns, service = excluded.service, trace_id = excluded.trace_id, "
        "span_id = excluded.span_id WHERE excluded.at_ns < milestones.at_ns OR "
        "(excluded.at_ns = milestones.at_ns AND excluded.span_id < milestones.span_id)";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    for (const auto& m : batch.milestones) {
      sqlite::BindMilestone(s, m);
      RETURN_IF_ERROR(s.Run());
      s.Reset();
    }
  }
  for (const auto& hop : batch.hops) RETURN_IF_ERROR(PutHop(db, hop, d));
  if (deferred && !batch.orders.empty()) {
    std::vector<const std::string*> ids;
    ids.reserve(batch.orders.size());
    for (const OrderRow& o : batch.orders) ids.push_back(&o.order_id);
    std::sort(ids.begin(), ids.end(), [](const auto* a, const auto* b) { return *a < *b; });
    ids.erase(
        std::unique(ids.begin(), ids.end(), [](const auto* a, const auto* b) { return *a == *b; }),
        ids.end());
    ASSIGN_OR_RETURN(*folded, sqlite::FoldOrders(db, ids));
  }
  if (!batch.orders.empty()) RETURN_IF_ERROR(PutOrders(db, batch.orders, d));
  ASSIGN_OR_RETURN(*logged, sqlite::LogVerdicts(db, batch.verdicts, batch.episodes));
  return Status::Ok();
}

// The journey of one order, inside the reader's transaction.
Result<std::optional<Journey>> ReadJourney(Db& db, std::string_view order_id, size_t max_spans) {
  ASSIGN_OR_RETURN(std::optional<OrderRow> order, ReadOrderRow(db, order_id));
  if (!order.has_value()) return std::optional<Journey>();
  Journey j;
  j.order = std::move(*order);
  {
    static const std::string sql = Cols("SELECT ", kMilestoneCols) +
                                   " FROM milestones WHERE order_id = ?1 ORDER BY at_ns, stage";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    s.Text(1, order_id);
    RETURN_IF_ERROR(ForEachRow(
        s, [&](const Stmt& row) { j.milestones.push_back(sqlite::ReadMilestone(row)); }));
  }
  {
    // The latest `max_spans` (one more tells that there are more).
    static const std::string sql =
        Cols("SELECT ", kSpanCols) +
        " FROM spans WHERE order_id = ?1 ORDER BY start_ns DESC, span_id DESC LIMIT ?2";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    s.Text(1, order_id);
    const size_t limit = std::min<size_t>(max_spans, size_t{1} << 40);
    s.Int(2, static_cast<int64_t>(limit) + 1);
    RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) {
      if (j.spans.size() == limit) {
        j.spans_truncated = true;
      } else {
        j.spans.push_back(sqlite::ReadSpan(row));
      }
    }));
    std::reverse(j.spans.begin(), j.spans.end());
  }
  {
    static const std::string sql =
        Cols("SELECT ", kHopCols) +
        " FROM hops WHERE order_id = ?1 ORDER BY published_ns, send_span_id";
    ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
    s.Text(1, order_id);
    RETURN_IF_ERROR(
        ForEachRow(s, [&](const Stmt& row) { j.hops.push_back(sqlite::ReadHop(row)); }));
  }
  return std::optional<Journey>(std::move(j));
}

// ---------------------------------------------------------------------------------------------

// A scan's row reader: the order row, with its verdict log entries overlaid when the log may
// hold any (read on the page's connection, within the page statement's snapshot).
struct OverlaidRow {
  bool overlay = false;
  Status operator()(Db& db, const Stmt& s, OrderRow* o) const {
    RETURN_IF_ERROR(sqlite::ReadOrder(db, s, o));
    return overlay ? sqlite::OverlayVerdicts(db, o) : Status::Ok();
  }
};

class SqliteStore final : public JourneyStore {
 public:
  SqliteStore(std::unique_ptr<Db> writer, std::unique_ptr<Db> reader, int64_t deferred)
      : path_(reader->path()),
        writer_(std::move(writer)),
        reader_(std::move(reader)),
        deferred_(deferred),
        deferred_hint_(deferred) {}

  Status Write(const WriteBatch& batch) override {
    if (batch.empty()) return Status::Ok();
    MutexLock lock(writer_mu_);
    Db& db = *writer_;
    int64_t logged = 0, folded = 0;
    const bool deferred = deferred_ > 0;  // read under the lock (the lambda is not analysed so)
    RETURN_IF_ERROR(db.Transaction(true, [&] {
      Deltas d;
      logged = folded = 0;
      RETURN_IF_ERROR(ApplyBatch(db, batch, deferred, &d, &logged, &folded));
      return AddCounters(db, d);
    }));
    SetDeferred(deferred_ + logged - folded);
    // Nobody settles the log (no verdict writer, or one never idle): fold the oldest here.
    while (deferred_ > kMaxDeferred) RETURN_IF_ERROR(FoldChunk(db, 0).status());
    return Status::Ok();
  }

  Result<size_t> Settle(size_t max) override {
    MutexLock lock(writer_mu_);
    if (deferred_ > 0 && max > 0) RETURN_IF_ERROR(FoldChunk(*writer_, 0, max).status());
    return static_cast<size_t>(deferred_);
  }

  Result<std::optional<Journey>> GetJourney(std::string_view order_id, size_t max_spans) override {
    const bool overlay = MayDefer();
    MutexLock lock(reader_mu_);
    Db& db = *reader_;
    Result<std::optional<Journey>> journey = std::optional<Journey>();
    RETURN_IF_ERROR(db.Transaction(false, [&] {
      journey = ReadJourney(db, order_id, max_spans);
      if (!journey.ok() || !overlay || !journey->has_value()) return journey.status();
      return sqlite::OverlayVerdicts(db, &(*journey)->order);
    }));
    return journey;
  }

  Result<std::optional<OrderRow>> GetOrder(std::string_view order_id) override {
    const bool overlay = MayDefer();
    MutexLock lock(reader_mu_);
    Db& db = *reader_;
    if (!overlay) return ReadOrderRow(db, order_id);
    Result<std::optional<OrderRow>> row = std::optional<OrderRow>();
    RETURN_IF_ERROR(db.Transaction(false, [&] {
      row = ReadOrderRow(db, order_id);
      if (!row.ok() || !row->has_value()) return row.status();
      return sqlite::OverlayVerdicts(db, &**row);
    }));
    return row;
  }

  Result<OrderPage> ListOrders(const OrderQuery& query) override {
    ASSIGN_OR_RETURN(const int64_t unsettled, FoldUpTo(query.settle_wait));
    const size_t limit = PageLimit(query.limit);
    const std::string sql = sqlite::ListOrdersSql(query);
    const std::string count_sql = query.count_total ? sqlite::CountOrdersSql(query) : "";
    MutexLock lock(reader_mu_);
    Db& db = *reader_;
    OrderPage page;
    // One read transaction: the page, its count and its hops are one snapshot.
    RETURN_IF_ERROR(db.Transaction(false, [&]() -> Status {
      ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
      sqlite::BindOrderQuery(s, query);
      // One row more than a page tells that there is a next page.
      s.Int(s.Param(":limit"), static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)) + 1);
      RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) -> Status {
        if (page.orders.size() == limit) {
          page.next_cursor = page.orders.back().order_id;
          page.next_key = OrderSortKey(page.orders.back(), query.sort);
          return Status::Ok();
        }
        OrderRow o;
        RETURN_IF_ERROR(sqlite::ReadOrder(db, row, &o));
        page.orders.push_back(std::move(o));
        return Status::Ok();
      }));
      // Past the wait: the rows as GetOrder gives them, and a row whose logged verdict no longer
      // passes the row's filters (semantics.h OrderMatches) leaves the page (the cursor above
      // keeps the stored row's sort key: the next page's query continues from there).
      if (unsettled > 0) {
        for (OrderRow& o : page.orders) RETURN_IF_ERROR(sqlite::OverlayVerdicts(db, &o));
        std::erase_if(page.orders, [&query](const OrderRow& o) { return !OrderMatches(o, query); });
        page.unsettled = static_cast<uint64_t>(unsettled);
      }
      if (query.count_total) {
        ASSIGN_OR_RETURN(Stmt c, db.Statement(count_sql));
        sqlite::BindOrderQuery(c, query);
        ASSIGN_OR_RETURN(const bool row, c.Step());
        page.total = row ? static_cast<uint64_t>(std::max<int64_t>(0, c.ColInt(0))) : 0;
      }
      if (query.with_open_hop) {
        static const std::string oldest =
            Cols("SELECT ", kHopCols) +
            " FROM hops WHERE order_id = ?1 AND published_ns <> 0 AND processed_ns = 0 "
            "ORDER BY published_ns, send_span_id LIMIT 1";
        for (const OrderRow& o : page.orders) {
          ASSIGN_OR_RETURN(Stmt h, db.Statement(oldest));
          h.Text(1, o.order_id);
          ASSIGN_OR_RETURN(const bool row, h.Step());
          page.open_hop.push_back(row ? std::optional<Hop>(sqlite::ReadHop(h)) : std::nullopt);
        }
      }
      return Status::Ok();
    }));
    return page;
  }

  Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) override {
    // The engine's recovery at start: each row overlaid (an index probe when the log holds
    // entries), not the log folded first, so a restart after a burst of flags does not wait
    // for minutes of folding.
    static const std::string sql =
        Cols("SELECT ", kOrderCols) +
        " FROM orders WHERE closed = 0 AND order_id > ?1 ORDER BY order_id LIMIT ?2";
    return StreamPages<OrderRow>(
        sql, [](Stmt& s, const std::string& cursor) { s.Text(1, cursor); }, ReadOverlaid(),
        [](const OrderRow& o) { return o.order_id; }, fn);
  }

  Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) override {
    // In publish order (hops_open), so a retried publish comes after the earlier one as it did
    // in memory.  The cursor is "published_ns send_span_id" (the id has no space: 16 hex).
    static const std::string sql =
        Cols("SELECT ", kHopCols) +
        " FROM hops INDEXED BY hops_open WHERE published_ns <> 0 AND processed_ns = 0 AND "
        "(published_ns, send_span_id) > (?1, ?3) ORDER BY published_ns, send_span_id LIMIT ?2";
    return StreamPages<Hop>(
        sql,
        [](Stmt& s, const std::string& cursor) {
          if (cursor.empty()) {
            s.Int(1, INT64_MIN);
            s.Text(3, "");
            return;
          }
          const size_t sp = cursor.find(' ');
          s.Int(1, std::strtoll(cursor.c_str(), nullptr, 10));
          s.Id(3, std::string_view(cursor).substr(sp + 1));
        },
        [](const Db&, const Stmt& s, Hop* h) {
          *h = sqlite::ReadHop(s);
          return Status::Ok();
        },
        [](const Hop& h) { return std::to_string(h.published_ns) + ' ' + h.send_span_id; }, fn);
  }

  Status ForEachOrderId(const std::function<void(std::string_view)>& fn) override {
    static const std::string sql =
        "SELECT order_id FROM orders WHERE order_id > ?1 ORDER BY order_id LIMIT ?2";
    return StreamPages<std::string>(
        sql, [](Stmt& s, const std::string& cursor) { s.Text(1, cursor); },
        [](const Db&, const Stmt& s, std::string* id) {
          *id = s.ColText(0);
          return Status::Ok();
        },
        [](const std::string& id) { return id; }, fn);
  }

  Status ForEachRecentSpan(size_t limit,
                           const std::function<void(std::string_view, std::string_view,
                                                    std::string_view)>& fn) override {
    struct Row {
      std::string trace_id, span_id, order_id;
    };
    std::vector<Row> rows;
    {
      MutexLock lock(reader_mu_);
      // spans_end serves the order; the ids are read as the store writes them.
      static const std::string sql =
          "SELECT trace_id, span_id, order_id FROM spans ORDER BY end_ns DESC LIMIT ?1";
      ASSIGN_OR_RETURN(Stmt s, reader_->Statement(sql));
      s.Int(1, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
      for (;;) {
        ASSIGN_OR_RETURN(const bool row, s.Step());
        if (!row) break;
        rows.push_back({s.ColId(0), s.ColId(1), s.ColText(2)});
      }
    }
    for (const Row& r : rows) fn(r.trace_id, r.span_id, r.order_id);
    return Status::Ok();
  }

  Result<std::optional<Hop>> FindHop(std::string_view send_span_id,
                                     std::string_view message_id) override {
    MutexLock lock(reader_mu_);
    Db& db = *reader_;
    if (!send_span_id.empty()) {
      auto h = ReadHopById(db, send_span_id);
      if (!h.ok() || h->has_value()) return h;
    }
    if (!message_id.empty()) {
      static const std::string sql = Cols("SELECT ", kHopCols) +
                                     " FROM hops WHERE message_id = ?1 AND message_id <> '' "
                                     "ORDER BY published_ns, send_span_id LIMIT 1";
      ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
      s.Text(1, message_id);
      ASSIGN_OR_RETURN(const bool row, s.Step());
      if (row) return std::optional<Hop>(sqlite::ReadHop(s));
    }
    return std::optional<Hop>();
  }

  Result<RetentionResult> EnforceRetention(Nanos now, const Retention& retention) override {
    RETURN_IF_ERROR(FoldUpTo().status());
    RetentionResult result;
    if (const auto cutoff = RetentionCutoff(now, retention.closed_orders)) {
      static const std::string sql = "SELECT order_id FROM orders WHERE " +
                                     sqlite::LastBucketAtMost("?1") +
                                     " AND last_ns < ?1 AND closed <> 0 LIMIT ?2";
      RETURN_IF_ERROR(RemoveOrders(sql, *cutoff, &result));
    }
    if (const auto cutoff = RetentionCutoff(now, retention.inactive_orders)) {
      static const std::string sql = "SELECT order_id FROM orders WHERE " +
                                     sqlite::LastBucketAtMost("?1") + " AND last_ns < ?1 LIMIT ?2";
      RETURN_IF_ERROR(RemoveOrders(sql, *cutoff, &result));
      // Hops that never got an order.
      static const std::string orphans =
          "DELETE FROM hops WHERE rowid IN (SELECT rowid FROM hops WHERE "
          "order_id = '' AND max(published_ns, processed_ns) < ?1 LIMIT ?2)";
      RETURN_IF_ERROR(DeleteInChunks(orphans, *cutoff, nullptr));
    }
    if (const auto cutoff = RetentionCutoff(now, retention.closed_orders)) {
      // Ended stuck episodes (ongoing ones go with their order).
      static const std::string sql =
          "DELETE FROM episodes WHERE (order_id, flagged_ns) IN (SELECT order_id, flagged_ns FROM "
          "episodes WHERE cleared_ns <> 0 AND cleared_ns < ?1 LIMIT ?2)";
      RETURN_IF_ERROR(DeleteInChunks(sql, *cutoff, nullptr, /*counted=*/false));
    }
    if (const auto cutoff = RetentionCutoff(now, retention.spans)) {
      static const std::string sql =
          "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans WHERE end_ns < ?1 LIMIT ?2)";
      RETURN_IF_ERROR(DeleteInChunks(sql, *cutoff, &result.spans_removed));
    }
    return result;
  }

  Result<StoreStats> Stats() override {
    StoreStats stats;
    {
      MutexLock lock(reader_mu_);
      static const std::string sql = "SELECT name, value FROM counters";
      ASSIGN_OR_RETURN(Stmt s, reader_->Statement(sql));
      RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) {
        const std::string name = row.ColText(0);
        const auto value = static_cast<uint64_t>(std::max<int64_t>(0, row.ColInt(1)));
        if (name == "orders") stats.orders = value;
        if (name == "spans") stats.spans = value;
        if (name == "hops") stats.hops = value;
      }));
    }
    std::error_code ec;
    const auto db = std::filesystem::file_size(path_, ec);
    if (!ec) stats.bytes += db;
    const auto wal = std::filesystem::file_size(path_ + "-wal", ec);
    if (!ec) stats.bytes += wal;
    return stats;
  }

  Status ForEachOrderSince(Nanos since, const std::function<void(const OrderRow&)>& fn) override {
    // Keyset pages on orders_first, whose entries are (first_ns, order_id); rows overlaid.
    static const std::string sql = Cols("SELECT ", kOrderCols) +
                                   " FROM orders INDEXED BY orders_first WHERE (first_ns, "
                                   "order_id) > (?1, ?2) ORDER BY first_ns, order_id LIMIT ?3";
    return StreamSince<OrderRow>(
        sql, 3, since,
        [](Stmt& s, const OrderRow* last, Nanos since) {
          s.Int(1, last != nullptr ? last->first_ns : since);
          s.Text(2, last != nullptr ? std::string_view(last->order_id) : std::string_view());
        },
        ReadOverlaid(), fn);
  }

  Status ForEachMilestoneSince(Nanos since,
                               const std::function<void(const Milestone&)>& fn) override {
    static const std::string sql =
        Cols("SELECT ", kMilestoneCols) +
        " FROM milestones INDEXED BY milestones_at WHERE (at_ns, order_id, stage) > (?1, ?2, ?3) "
        "ORDER BY at_ns, order_id, stage LIMIT ?4";
    return StreamSince<Milestone>(
        sql, 4, since,
        [](Stmt& s, const Milestone* last, Nanos since) {
          s.Int(1, last != nullptr ? last->at_ns : since);
          s.Text(2, last != nullptr ? std::string_view(last->order_id) : std::string_view());
          s.Text(3, last != nullptr ? std::string_view(last->stage) : std::string_view());
        },
        [](const Db&, const Stmt& s, Milestone* m) {
          *m = sqlite::ReadMilestone(s);
          return Status::Ok();
        },
        fn);
  }

  Status ForEachHopSince(Nanos since, const std::function<void(const Hop&)>& fn) override {
    // hops has a rowid: hops_published's entries are (published_ns, rowid).
    struct Row {
      Hop hop;
      int64_t rowid = 0;
    };
    static const std::string sql = Cols("SELECT ", kHopCols) +
                                   ", rowid FROM hops INDEXED BY hops_published WHERE "
                                   "(published_ns, rowid) > (?1, ?2) AND published_ns <> 0 "
                                   "ORDER BY published_ns, rowid LIMIT ?3";
    return StreamSince<Row>(
        sql, 3, since,
        [](Stmt& s, const Row* last, Nanos since) {
          s.Int(1, last != nullptr ? last->hop.published_ns : since);
          s.Int(2, last != nullptr ? last->rowid : -1);
        },
        [](const Db&, const Stmt& s, Row* r) {
          r->hop = sqlite::ReadHop(s);
          r->rowid = s.ColInt(13);
          return Status::Ok();
        },
        [&fn](const Row& r) { fn(r.hop); });
  }

  Status ForEachEpisodeSince(Nanos since,
                             const std::function<void(const StuckEpisode&)>& fn) override {
    // Episodes are few (one per flag): read at once, each of the three conditions by its index
    // (episodes_flagged, episodes_ended, episodes_open: schema version 4); UNION drops the rows
    // two of them find.  The verdict log's flags and clears are overlaid, not folded: after a
    // burst of flags a fold would hold the KPIs for as long as it takes.
    static const std::string sql =
        Cols("SELECT ", sqlite::kEpisodeCols) + " FROM episodes WHERE flagged_ns >= ?1 UNION " +
        Cols("SELECT ", sqlite::kEpisodeCols) +
        " FROM episodes WHERE cleared_ns <> 0 AND cleared_ns >= ?1 UNION " +
        Cols("SELECT ", sqlite::kEpisodeCols) + " FROM episodes WHERE cleared_ns = 0";
    const bool overlay = MayDefer();
    std::vector<StuckEpisode> rows;
    {
      MutexLock lock(reader_mu_);
      Db& db = *reader_;
      RETURN_IF_ERROR(db.Transaction(false, [&]() -> Status {
        ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
        s.Int(1, since);
        RETURN_IF_ERROR(
            ForEachRow(s, [&](const Stmt& row) { rows.push_back(sqlite::ReadEpisode(row)); }));
        return overlay ? sqlite::OverlayEpisodes(db, since, &rows) : Status::Ok();
      }));
    }
    for (const StuckEpisode& e : rows) fn(e);
    return Status::Ok();
  }

 private:
  // Whether the verdict log may hold entries (the hint, read without the writer's lock).
  bool MayDefer() const { return deferred_hint_.load(std::memory_order_acquire) > 0; }

  // A scan's row reader (OverlaidRow) for the log as it is now.
  OverlaidRow ReadOverlaid() const { return OverlaidRow{MayDefer()}; }

  void SetDeferred(int64_t n) REQUIRES(writer_mu_) {
    deferred_ = std::max<int64_t>(0, n);
    deferred_hint_.store(deferred_, std::memory_order_release);
  }

  // Folds the oldest verdict log entries (at most `max`, none after `up_to_seq`, 0 no bound)
  // in one transaction.  Returns how many.
  Result<int64_t> FoldChunk(Db& db, int64_t up_to_seq, size_t max = kFoldChunk)
      REQUIRES(writer_mu_) {
    int64_t n = 0;
    RETURN_IF_ERROR(db.Transaction(true, [&]() -> Status {
      ASSIGN_OR_RETURN(n, sqlite::FoldOldest(db, max, up_to_seq));
      return Status::Ok();
    }));
    // An empty chunk with entries counted: the count was off (it never is; recount).
    if (n == 0 && up_to_seq == 0) {
      ASSIGN_OR_RETURN(const int64_t left, sqlite::CountEntries(db));
      SetDeferred(left);
    } else {
      SetDeferred(deferred_ - n);
    }
    return n;
  }

  // Folds every verdict log entry written before this call (readers whose answer depends on the
  // verdict columns or the episodes), in chunks with the writer released between.  With `wait`,
  // stops once that has passed (checked before each chunk: a wait of 0 folds nothing) and returns
  // how many entries the log still holds, newer ones included; 0 when it folded them all.
  Result<int64_t> FoldUpTo(std::optional<Duration> wait = std::nullopt) EXCLUDES(writer_mu_) {
    if (!MayDefer()) return int64_t{0};
    const auto deadline = std::chrono::steady_clock::now() + wait.value_or(Duration(0));
    int64_t bound = 0;
    {
      MutexLock lock(writer_mu_);
      if (deferred_ == 0) return int64_t{0};
      ASSIGN_OR_RETURN(bound, sqlite::LastSeq(*writer_));
    }
    for (;;) {
      MutexLock lock(writer_mu_);
      if (deferred_ == 0) return int64_t{0};
      if (wait.has_value() && std::chrono::steady_clock::now() >= deadline) return deferred_;
      ASSIGN_OR_RETURN(const int64_t n, FoldChunk(*writer_, bound));
      if (n == 0) return int64_t{0};
    }
  }

  // Streams a time-keyed scan in pages of kStreamPage rows, like StreamPages: `bind` binds the
  // key after the previous page's last row (null: the first page, from `since`), parameter
  // `limit_param` is the page size.  Each page is read under the reader lock, `fn` runs without it.
  template <typename Row, typename Bind, typename Read, typename Fn>
  Status StreamSince(const std::string& sql, int limit_param, Nanos since, Bind bind, Read read,
                     const Fn& fn) EXCLUDES(reader_mu_) {
    std::vector<Row> page;
    std::optional<Row> last;
    do {
      page.clear();
      {
        MutexLock lock(reader_mu_);
        Db& db = *reader_;
        ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
        bind(s, last ? &*last : nullptr, since);
        s.Int(limit_param, static_cast<int64_t>(kStreamPage));
        RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) -> Status {
          Row r;
          RETURN_IF_ERROR(read(db, row, &r));
          page.push_back(std::move(r));
          return Status::Ok();
        }));
      }
      for (const auto& r : page) fn(r);
      if (!page.empty()) last = std::move(page.back());
    } while (page.size() == kStreamPage);
    return Status::Ok();
  }

  // Streams a keyset-paged query (?1: the key of the previous page's last row, bound by
  // `bind`; ?2: the page size) in pages of kStreamPage rows, each row by `read`.  Each page is read
  // under the reader lock and handed to `fn` without it, so `fn` never holds up the store.
  template <typename Row, typename Bind, typename Read, typename Key, typename Fn>
  Status StreamPages(const std::string& sql, Bind bind, Read read, Key key, const Fn& fn)
      EXCLUDES(reader_mu_) {
    std::string cursor;
    std::vector<Row> page;
    do {
      page.clear();
      {
        MutexLock lock(reader_mu_);
        Db& db = *reader_;
        ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
        bind(s, cursor);
        s.Int(2, static_cast<int64_t>(kStreamPage));
        RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) -> Status {
          Row r;
          RETURN_IF_ERROR(read(db, row, &r));
          page.push_back(std::move(r));
          return Status::Ok();
        }));
      }
      for (const auto& r : page) fn(r);
      if (!page.empty()) cursor = key(page.back());
    } while (page.size() == kStreamPage);
    return Status::Ok();
  }

  // Removes the orders `select_sql` (?1 cutoff, ?2 limit) returns, with their spans,
  // milestones and hops, kRetentionOrders per transaction (the writer is released between).
  Status RemoveOrders(const std::string& select_sql, Nanos cutoff, RetentionResult* result)
      EXCLUDES(writer_mu_) {
    static const std::string del_spans = "DELETE FROM spans WHERE order_id = ?1";
    static const std::string del_milestones = "DELETE FROM milestones WHERE order_id = ?1";
    static const std::string del_hops = "DELETE FROM hops WHERE order_id = ?1";
    static const std::string del_order = "DELETE FROM orders WHERE order_id = ?1";
    static const std::string del_episodes = "DELETE FROM episodes WHERE order_id = ?1";
    // Entries logged since the fold that began retention (verdict_log.h): none outlives its order.
    static const std::string del_logged = "DELETE FROM verdict_log WHERE order_id = ?1";
    while (true) {
      MutexLock lock(writer_mu_);
      Db& db = *writer_;
      std::vector<std::string> ids;
      Deltas d;
      int64_t unlogged = 0;
      const bool logged = deferred_ > 0;  // read under the lock, outside the lambda
      RETURN_IF_ERROR(db.Transaction(true, [&]() -> Status {
        {
          ASSIGN_OR_RETURN(Stmt s, db.Statement(select_sql));
          s.Int(1, cutoff);
          s.Int(2, static_cast<int64_t>(kRetentionOrders));
          RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) { ids.push_back(row.ColText(0)); }));
        }
        for (const auto& id : ids) {
          for (const std::string* sql :
               {&del_spans, &del_milestones, &del_hops, &del_episodes, &del_logged, &del_order}) {
            if (sql == &del_logged && !logged) continue;
            ASSIGN_OR_RETURN(Stmt s, db.Statement(*sql));
            s.Text(1, id);
            RETURN_IF_ERROR(s.Run());
            if (sql == &del_spans) d.spans -= db.Changes();
            if (sql == &del_hops) d.hops -= db.Changes();
            if (sql == &del_order) d.orders -= db.Changes();
            if (sql == &del_logged) unlogged += db.Changes();
          }
        }
        return AddCounters(db, d);
      }));
      if (unlogged > 0) SetDeferred(deferred_ - unlogged);
      result->orders_removed += static_cast<uint64_t>(-d.orders);
      result->spans_removed += static_cast<uint64_t>(-d.spans);
      if (ids.size() < kRetentionOrders) return Status::Ok();
    }
  }

  // Runs `delete_sql` (?1 cutoff, ?2 limit) until it deletes fewer than kRetentionRows rows,
  // one transaction each.  `spans_removed` non-null: span rows, else hop rows (`counted`
  // false: rows of no counter, episodes).
  Status DeleteInChunks(const std::string& delete_sql, Nanos cutoff, uint64_t* spans_removed,
                        bool counted = true) EXCLUDES(writer_mu_) {
    while (true) {
      MutexLock lock(writer_mu_);
      Db& db = *writer_;
      int64_t n = 0;
      RETURN_IF_ERROR(db.Transaction(true, [&]() -> Status {
        {
          ASSIGN_OR_RETURN(Stmt s, db.Statement(delete_sql));
          s.Int(1, cutoff);
          s.Int(2, kRetentionRows);
          RETURN_IF_ERROR(s.Run());
          n = db.Changes();
        }
        Deltas d;
        if (counted) (spans_removed != nullptr ? d.spans : d.hops) = -n;
        return AddCounters(db, d);
      }));
      if (spans_removed != nullptr) *spans_removed += static_cast<uint64_t>(n);
      if (n < kRetentionRows) return Status::Ok();
    }
  }

  const std::string path_;
  Mutex writer_mu_;
  std::unique_ptr<Db> writer_ PT_GUARDED_BY(writer_mu_);  // Write, EnforceRetention
  Mutex reader_mu_;
  std::unique_ptr<Db> reader_ PT_GUARDED_BY(reader_mu_);  // everything else
  // Entries in the verdict log (verdict_log.h); the hint, read without the writer's lock, tells
  // readers whether an overlay or a fold may be needed (an entry is counted after its commit).
  int64_t deferred_ GUARDED_BY(writer_mu_) = 0;
  std::atomic<int64_t> deferred_hint_{0};
};

Status Configure(Db& db, const SqliteStoreOptions& options, int cache_mb) {
  RETURN_IF_ERROR(db.Exec("PRAGMA busy_timeout = " + std::to_string(options.busy_timeout_ms)));
  RETURN_IF_ERROR(db.Exec(std::string("PRAGMA synchronous = ") +
                          (options.synchronous_full ? "FULL" : "NORMAL")));
  RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = " + std::to_string(-1024 * cache_mb)));
  RETURN_IF_ERROR(db.Exec("PRAGMA temp_store = MEMORY"));
  // Checkpoint every 64 MB of WAL rather than 4 MB: pages rewritten by consecutive batches
  // (the tails of the append-mostly indexes) are copied once; the WAL is cut back to 64 MB.
  RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint = 16384"));
  RETURN_IF_ERROR(db.Exec("PRAGMA journal_size_limit = 67108864"));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<JourneyStore>> OpenSqliteStore(const SqliteStoreOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("sqlite store: empty path");
  auto writer = std::make_unique<Db>(options.path);
  RETURN_IF_ERROR(writer->Open());
  RETURN_IF_ERROR(Configure(*writer, options, std::max(1, options.cache_mb)));
  bool created = false;
  RETURN_IF_ERROR(sqlite::PrepareSchema(*writer, &created));
  {
    ASSIGN_OR_RETURN(Stmt s, writer->Statement("PRAGMA journal_mode = WAL"));
    ASSIGN_OR_RETURN(const bool row, s.Step());
    const std::string got = row ? s.ColText(0) : "";
    if (got != "wal") {
      return Status::Internal("sqlite " + options.path + ": cannot use WAL mode (journal_mode " +
                              got + ")");
    }
  }
  // The first read of the schema catches a file that is not a database, the checks below a
  // damaged one: cheap, not a full integrity check.
  RETURN_IF_ERROR(writer->QueryInt("SELECT value FROM counters WHERE name = 'orders'").status());

  auto reader = std::make_unique<Db>(options.path);
  RETURN_IF_ERROR(reader->Open());
  RETURN_IF_ERROR(Configure(*reader, options, std::max(1, options.cache_mb / 2)));
  RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = 1"));

  ASSIGN_OR_RETURN(const int64_t deferred, sqlite::CountEntries(*writer));
  log::Info(created ? "journey store created" : "journey store opened",
            {{"path", options.path},
             {"schema_version", sqlite::kSchemaVersion},
             {"verdict_log_entries", deferred}});
  return std::unique_ptr<JourneyStore>(
      std::make_unique<SqliteStore>(std::move(writer), std::move(reader), deferred));
}

}  // namespace ordertrace::journey
