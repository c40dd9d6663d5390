#include "journey/store/sqlite/schema.h"

#include <vector>

#include "common/log.h"
#include "journey/store/semantics.h"

namespace ordertrace::journey::sqlite {
namespace {

// Version 4's spans: a rowid table, rows appended in arrival order (the table's pages are
// written at its end, not at random places of a B-tree clustered by order), and one narrow
// unique index (order_id, span_id) that keys them (the first write of a span wins), finds an
// order's spans for GetJourney and deduplicates.  Before version 4 the table was WITHOUT ROWID,
// clustered by (order_id, span_id), with a second index (order_id, start_ns): two random-place
// inserts of a wide row and a key per span (docs/benchmarks.md, "The journeys write path").
// %s is the table's name (the migration builds the new table beside the old one).
constexpr const char* kSpansTable = R"sql(
CREATE TABLE %s (
  order_id TEXT NOT NULL,
  span_id NOT NULL,
  trace_id NOT NULL,
  parent_span_id NOT NULL,
  service TEXT NOT NULL,
  name TEXT NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  error TEXT NOT NULL,
  stage TEXT NOT NULL,
  message_id TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  queue TEXT NOT NULL,
  links TEXT
);
)sql";

// Version 4's indexes of the spans and the open hops, on a new file and after the migration.
//   spans_key  UNIQUE (order_id, span_id): the key (ON CONFLICT DO NOTHING) and GetJourney's.
//   spans_end  (end_ns): retention and ForEachRecentSpan; appended (spans end about in order).
//   hops_open  (published_ns, send_span_id) WHERE open: ForEachOpenHop (Recover) in publish
//              order; appended, where the version-3 form (send_span_id) took a random place.
constexpr const char* kVersion4Indexes = R"sql(
CREATE UNIQUE INDEX IF NOT EXISTS spans_key ON spans (order_id, span_id);
CREATE INDEX IF NOT EXISTS spans_end ON spans (end_ns);
CREATE INDEX IF NOT EXISTS hops_open ON hops (published_ns, send_span_id)
  WHERE published_ns <> 0 AND processed_ns = 0;
)sql";

// Version 3 to 4: the spans table rebuilt as a rowid table (its rows copied in key order, so an
// order's existing spans stay together), the open hops' indexes in their appended forms
// (hops_open here, hops_open_queue by AddListIndexes below), orders_last on last_bucket
// (schema.h LastBucket).  One pass over the spans and one over the orders: on a large store the
// upgrade takes a while (logged), once.  (34 is kLastBucketShift.)
constexpr const char* kAddLastBucket = R"sql(
ALTER TABLE orders ADD COLUMN last_bucket INTEGER NOT NULL DEFAULT 0;
)sql";
static_assert(kLastBucketShift == 34, "kMigrateTo4 computes last_bucket with 34");
constexpr const char* kMigrateTo4 = R"sql(
DROP INDEX IF EXISTS orders_last;
UPDATE orders SET last_bucket = last_ns >> 34;
CREATE INDEX orders_last ON orders (last_bucket);
INSERT INTO spans_v4 SELECT order_id, span_id, trace_id, parent_span_id, service, name, start_ns,
  end_ns, flags, error, stage, message_id, exchange, routing_key, queue, links FROM spans;
DROP TABLE spans;
ALTER TABLE spans_v4 RENAME TO spans;
DROP INDEX IF EXISTS hops_open;
DROP INDEX IF EXISTS hops_open_queue;
)sql";

std::string SpansTable(const char* name) {
  std::string sql = kSpansTable;
  const size_t at = sql.find("%s");
  return sql.replace(at, 2, name);
}

constexpr const char* kSchema = R"sql(
CREATE TABLE orders (
  order_id TEXT NOT NULL PRIMARY KEY CHECK (order_id <> ''),
  stage TEXT NOT NULL,
  stage_start_ns INTEGER NOT NULL,
  stage_ns INTEGER NOT NULL,
  first_ns INTEGER NOT NULL,
  last_ns INTEGER NOT NULL,
  last_heartbeat_ns INTEGER NOT NULL,
  services TEXT NOT NULL,
  last_service TEXT NOT NULL,
  spans INTEGER NOT NULL,
  open_hops INTEGER NOT NULL,
  closed INTEGER NOT NULL,
  stuck INTEGER NOT NULL,
  stuck_since_ns INTEGER NOT NULL,
  deadline_ns INTEGER NOT NULL,
  expected_service TEXT NOT NULL,
  summary TEXT NOT NULL,
  partner TEXT NOT NULL DEFAULT '',
  partner_ns INTEGER NOT NULL DEFAULT 0,
  last_bucket INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX orders_stuck ON orders (order_id) WHERE stuck <> 0;
CREATE INDEX orders_active ON orders (order_id) WHERE closed = 0;
CREATE INDEX orders_stage ON orders (stage, order_id);
CREATE INDEX orders_last ON orders (last_bucket);
CREATE INDEX orders_partner ON orders (partner, order_id) WHERE partner <> '';


CREATE TABLE milestones (
  order_id TEXT NOT NULL,
  stage TEXT NOT NULL,
  at_ns INTEGER NOT NULL,
  service TEXT NOT NULL,
  trace_id NOT NULL,
  span_id NOT NULL,
  PRIMARY KEY (order_id, stage)
) WITHOUT ROWID;

CREATE TABLE hops (
  send_span_id NOT NULL,
  order_id TEXT NOT NULL,
  send_trace_id NOT NULL,
  send_service TEXT NOT NULL,
  message_id TEXT NOT NULL,
  exchange TEXT NOT NULL,
  routing_key TEXT NOT NULL,
  queue TEXT NOT NULL,
  published_ns INTEGER NOT NULL,
  processed_ns INTEGER NOT NULL,
  process_service TEXT NOT NULL,
  process_span_id NOT NULL,
  process_trace_id NOT NULL
);
CREATE UNIQUE INDEX hops_send ON hops (send_span_id);
CREATE INDEX hops_message ON hops (message_id, published_ns) WHERE message_id <> '';
CREATE INDEX hops_order ON hops (order_id);

CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('orders', 0), ('spans', 0), ('hops', 0);
)sql";

// Version 1 to 2: the order's partner (OrderRow::partner) and its index.  Adding a column with
// a constant default rewrites no row; the index is built by one scan of the orders (every
// partner is '' then, so the partial index starts empty).
constexpr const char* kMigrateTo2 = R"sql(
ALTER TABLE orders ADD COLUMN partner TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN partner_ns INTEGER NOT NULL DEFAULT 0;
CREATE INDEX orders_partner ON orders (partner, order_id) WHERE partner <> '';
)sql";

// Added in version 3, to a new file and to an older one alike: the stuck episodes (types.h
// StuckEpisode) and the time indexes of the flow and KPI scans (store.h ForEach...Since).  On an
// older file each index is built by one scan of its table.
constexpr const char* kVersion3 = R"sql(
CREATE INDEX IF NOT EXISTS orders_first ON orders (first_ns);
CREATE INDEX IF NOT EXISTS milestones_at ON milestones (at_ns);
CREATE INDEX IF NOT EXISTS hops_published ON hops (published_ns);
CREATE TABLE IF NOT EXISTS episodes (
  order_id TEXT NOT NULL,
  flagged_ns INTEGER NOT NULL,
  stage TEXT NOT NULL,
  kind INTEGER NOT NULL,
  expected_service TEXT NOT NULL,
  due_ns INTEGER NOT NULL,
  cleared_ns INTEGER NOT NULL,
  PRIMARY KEY (order_id, flagged_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS episodes_flagged ON episodes (flagged_ns);
CREATE INDEX IF NOT EXISTS episodes_cleared ON episodes (cleared_ns);
)sql";

// Version 3 to 4 (the detector's migration, "episodes by state"): the stuck episodes' index on
// cleared_ns held every ongoing episode under the key 0, so each flag inserted an entry at a
// random place among them (ordered by order_id): one more page of the WAL per flag, in a burst of
// thousands of flags a second.  Now ended episodes are indexed by the time they ended
// (appended as clears come) and ongoing ones by the time they were flagged (appended as flags
// come); the scan (ForEachEpisodeSince) reads the three conditions by these and
// episodes_flagged.  Both indexes are built by one scan of the episodes.
constexpr const char* kVersion4Episodes = R"sql(
DROP INDEX IF EXISTS episodes_cleared;
CREATE INDEX IF NOT EXISTS episodes_ended ON episodes (cleared_ns) WHERE cleared_ns <> 0;
CREATE INDEX IF NOT EXISTS episodes_open ON episodes (flagged_ns) WHERE cleared_ns = 0;
)sql";

// Version 5: the verdict log (verdict_log.h): the detector's verdicts and the stuck episodes'
// flags and clears, appended (seq, the rowid, in write order) and folded into orders and
// episodes later; verdict_log_order finds an order's entries (GetOrder's overlay, the fold of
// one order before its row is written).  Empty when created: the upgrade costs nothing.  An
// older build refuses a version-5 file (it would not see the entries not yet folded).
constexpr const char* kVersion5 = R"sql(
CREATE TABLE IF NOT EXISTS verdict_log (
  seq INTEGER PRIMARY KEY,
  order_id TEXT NOT NULL,
  entry INTEGER NOT NULL,
  stuck INTEGER NOT NULL,
  since_ns INTEGER NOT NULL,
  at_ns INTEGER NOT NULL,
  cleared_ns INTEGER NOT NULL,
  expected_service TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verdict_log_order ON verdict_log (order_id);
)sql";

// Indexes added after version 2, to every file when it is opened (IF NOT EXISTS: a file that has
// them is unchanged; one that has not gets them in one pass over its rows, logged; an older
// build opens a file with them as before).  They serve the order list's sorts and filters:
//   orders_stuck_since    ?sort=stuck_since|-stuck_since (stuck orders only)
//   orders_stuck_stage    the same with ?stage=
//   orders_stuck_stage_ns ?stuck=true&sort=stage_since|-stage_since
//   spans_trace           ?trace_id=
//   hops_open_queue       ?queue= (the queue of an open hop); (queue, published_ns) from version
//                         4 on, appended within a queue, where (queue, order_id) took a
//                         random place
// The stuck ones hold `stuck` too: the count of a stuck list (`total`) reads the index alone.
// Without it SQLite looks every entry up in the orders table to test "stuck <> 0" (the partial
// index's own condition): 50k random reads of a table of 1M orders, hundreds of milliseconds.
constexpr const char* kListIndexes = R"sql(
CREATE INDEX IF NOT EXISTS orders_stuck_since ON orders (stuck_since_ns, order_id, stuck)
  WHERE stuck <> 0;
CREATE INDEX IF NOT EXISTS orders_stuck_stage ON orders (stage, stuck_since_ns, order_id, stuck)
  WHERE stuck <> 0;
CREATE INDEX IF NOT EXISTS orders_stuck_stage_ns ON orders (stage_ns, order_id, stuck)
  WHERE stuck <> 0;
CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS hops_open_queue ON hops (queue, published_ns)
  WHERE published_ns <> 0 AND processed_ns = 0;
)sql";

// `upgrade`: an existing file (the indexes are news worth a log line); false for a new one.
Status AddListIndexes(Db& db, bool upgrade) {
  ASSIGN_OR_RETURN(const int64_t missing,
                   db.QueryInt("SELECT 5 - count(*) FROM sqlite_schema WHERE type = 'index' AND "
                               "name IN ('orders_stuck_since', 'orders_stuck_stage', "
                               "'orders_stuck_stage_ns', 'spans_trace', 'hops_open_queue')"));
  if (missing == 0) return Status::Ok();
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  Status s = db.Exec(kListIndexes);
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok()) {
    (void)db.Exec("ROLLBACK");
    return Status(s.code(),
                  "sqlite " + db.path() + ": adding the order list's indexes: " + s.message());
  }
  if (upgrade) {
    log::Info("journey store indexes added", {{"path", db.path()}, {"indexes", missing}});
  }
  return Status::Ok();
}

// Links: NULL for none, else the ids joined by ',' ('%' and ',' percent-encoded).
std::string JoinLinks(const std::vector<std::string>& links) {
  std::string out;
  for (size_t i = 0; i < links.size(); ++i) {
    if (i > 0) out.push_back(',');
    for (char c : links[i]) {
      if (c == '%') {
        out += "%25";
      } else if (c == ',') {
        out += "%2C";
      } else {
        out.push_back(c);
      }
    }
  }
  return out;
}

std::vector<std::string> SplitLinks(std::string_view text) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ',') {
      out.emplace_back();
    } else if (text[i] == '%' && text.substr(i, 3) == "%25") {
      out.back().push_back('%');
      i += 2;
    } else if (text[i] == '%' && text.substr(i, 3) == "%2C") {
      out.back().push_back(',');
      i += 2;
    } else {
      out.back().push_back(text[i]);
    }
  }
  return out;
}

int64_t PackFlags(const SpanRecord& s) {
  return int64_t{s.otel_status} | int64_t{static_cast<uint8_t>(s.step)} << 8 |
         int64_t{static_cast<uint8_t>(s.hop)} << 16 | int64_t{s.heartbeat ? 1 : 0} << 24;
}

void UnpackFlags(int64_t f, SpanRecord* s) {
  s->otel_status = static_cast<uint8_t>(f & 0xff);
  s->step = static_cast<StepStatus>((f >> 8) & 0xff);
  s->hop = static_cast<HopRole>((f >> 16) & 0xff);
  s->heartbeat = ((f >> 24) & 1) != 0;
}

// Upgrades from version `from` to from + 1 by `sql` (and the version number), in one
// transaction.
Status Migrate(Db& db, const char* sql, int from) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  Status s = db.Exec(sql);
  if (s.ok()) s = db.Exec("PRAGMA user_version = " + std::to_string(from + 1));
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok()) {
    (void)db.Exec("ROLLBACK");
    return Status(s.code(), "sqlite " + db.path() +
                                ": upgrading the journey store schema from version " +
                                std::to_string(from) + " to " + std::to_string(from + 1) + ": " +
                                s.message());
  }
  log::Info("journey store schema upgraded",
            {{"path", db.path()}, {"from", from}, {"to", from + 1}});
  return Status::Ok();
}

}  // namespace

Status PrepareSchema(Db& db, bool* created) {
  ASSIGN_OR_RETURN(const int64_t app_id, db.QueryInt("PRAGMA application_id"));
  ASSIGN_OR_RETURN(const int64_t version, db.QueryInt("PRAGMA user_version"));
  ASSIGN_OR_RETURN(const int64_t objects, db.QueryInt("SELECT count(*) FROM sqlite_schema"));

  *created = false;
  if (app_id == 0 && version == 0 && objects == 0) {
    RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode = WAL"));
    RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status s = db.Exec(kSchema);
    if (s.ok()) s = db.Exec(SpansTable("spans"));
    if (s.ok()) s = db.Exec(kVersion4Indexes);
    if (s.ok()) s = db.Exec(kVersion3);
    if (s.ok()) s = db.Exec(kVersion4Episodes);
    if (s.ok()) s = db.Exec(kVersion5);
    if (s.ok()) s = db.Exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    if (s.ok()) s = db.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s;
    }
    *created = true;
    return AddListIndexes(db, /*upgrade=*/false);
  }
  if (app_id != kApplicationId) {
    return Status::Internal("sqlite " + db.path() +
                            ": not an ordertrace journey store (application_id " +
                            std::to_string(app_id) + ", " + std::to_string(objects) +
                            " schema objects); refusing to use it");
  }
  if (version > kSchemaVersion) {
    return Status::Internal("sqlite " + db.path() + ": journey store schema version " +
                            std::to_string(version) + " is newer than this build's (" +
                            std::to_string(kSchemaVersion) +
                            "); run a newer ordertrace or use another data directory");
  }
  if (version < 1) {
    return Status::Internal("sqlite " + db.path() + ": journey store schema version " +
                            std::to_string(version) + " is unknown");
  }
  if (version == 1) RETURN_IF_ERROR(Migrate(db, kMigrateTo2, 1));
  if (version <= 2) RETURN_IF_ERROR(Migrate(db, kVersion3, 2));
  if (version <= 3) {
    // (A file a test made older by lowering user_version may have the column already.)
    ASSIGN_OR_RETURN(const int64_t has_bucket,
                     db.QueryInt("SELECT count(*) FROM pragma_table_info('orders') WHERE name = "
                                 "'last_bucket'"));
    const std::string sql = (has_bucket != 0 ? "" : kAddLastBucket) + SpansTable("spans_v4") +
                            kMigrateTo4 + kVersion4Indexes + kVersion4Episodes;
    RETURN_IF_ERROR(Migrate(db, sql.c_str(), 3));
  }
  if (version <= 4) RETURN_IF_ERROR(Migrate(db, kVersion5, 4));
  return AddListIndexes(db, /*upgrade=*/true);
}

namespace {

// ":p0, :p1, ..." for n parameters named `prefix` 0.., or "= :p0" for one.
std::string InList(const char* prefix, size_t n) {
  if (n == 1) return std::string(" = :") + prefix + "0";
  std::string out = " IN (";
  for (size_t i = 0; i < n; ++i) out += (i == 0 ? ":" : ", :") + (prefix + std::to_string(i));
  return out + ")";
}

const char* SortColumn(OrderSort sort) {
  switch (sort) {
    case OrderSort::kStuckSince:
    case OrderSort::kStuckSinceDesc:
      return "stuck_since_ns";
    case OrderSort::kStageSince:
    case OrderSort::kStageSinceDesc:
      return "stage_ns";
    case OrderSort::kOrderId:
      break;
  }
  return "order_id";
}

// FROM and WHERE of ListOrders (and of its count, without the cursor).
std::string ListOrdersFrom(const OrderQuery& query, bool with_cursor) {
  std::string sql = " FROM orders";
  if (!query.partners.empty()) sql += " INDEXED BY orders_partner";
  std::vector<std::string> where;
  if (query.sort == OrderSort::kOrderId) {
    if (with_cursor) where.emplace_back("order_id > :cursor");
  } else if (with_cursor && !query.cursor.empty()) {
    where.push_back(std::string("(") + SortColumn(query.sort) + ", order_id) " +
                    (OrderSortDescending(query.sort) ? "<" : ">") + " (:key, :cursor)");
  }
  // "stuck <> 0" is the stuck indexes' condition: the planner may use one only when the query
  // says it in these words.
  if ((query.stuck.has_value() && *query.stuck) || !query.kinds.empty() ||
      OrderSortStuckOnly(query.sort)) {
    where.emplace_back("stuck <> 0");
  }
  if (query.stuck.has_value() && !*query.stuck) where.emplace_back("stuck = 0");
  if (!query.kinds.empty()) {
    std::string in = "stuck IN (";
    for (size_t i = 0; i < query.kinds.size(); ++i) {
      in += (i == 0 ? "" : ", ") + std::to_string(static_cast<int>(query.kinds[i]));
    }
    where.push_back(in + ")");
  }
  if (!query.stages.empty()) where.push_back("stage" + InList("s", query.stages.size()));
  if (!query.services.empty()) {
    const std::string in = InList("v", query.services.size());
    where.push_back("(expected_service" + in + " OR last_service" + in + ")");
  }
  if (!query.include_closed) where.emplace_back("closed = 0");
  if (!query.partners.empty()) {
    // "partner <> ''" is the partial index's condition, as above.
    where.push_back("partner <> '' AND partner" + InList("p", query.partners.size()));
  }
  if (!query.queues.empty()) {
    where.push_back(
        "order_id IN (SELECT order_id FROM hops WHERE published_ns <> 0 AND processed_ns = 0 AND "
        "queue" +
        InList("q", query.queues.size()) + ")");
  }
  if (!query.trace_id.empty()) {
    where.emplace_back("order_id IN (SELECT order_id FROM spans WHERE trace_id = :trace)");
  }
  if (!query.message_id.empty()) {
    where.emplace_back(
        "order_id IN (SELECT order_id FROM hops WHERE message_id = :message AND message_id <> "
        "'')");
  }
  for (size_t i = 0; i < where.size(); ++i) sql += (i == 0 ? " WHERE " : " AND ") + where[i];
  return sql;
}

}  // namespace

std::string ListOrdersSql(const OrderQuery& query) {
  std::string sql = Cols("SELECT ", kOrderCols) + ListOrdersFrom(query, true);
  if (query.sort == OrderSort::kOrderId) return sql + " ORDER BY order_id LIMIT :limit";
  const char* dir = OrderSortDescending(query.sort) ? " DESC" : "";
  return sql + " ORDER BY " + SortColumn(query.sort) + dir + ", order_id" + dir + " LIMIT :limit";
}

std::string CountOrdersSql(const OrderQuery& query) {
  return "SELECT count(*)" + ListOrdersFrom(query, false);
}

void BindOrderQuery(Stmt& s, const OrderQuery& query) {
  auto bind = [&s](const std::string& name, std::string_view value) {
    if (const int i = s.Param(name.c_str()); i > 0) s.Text(i, value);
  };
  bind(":cursor", query.cursor);
  if (const int i = s.Param(":key"); i > 0) s.Int(i, query.cursor_key);
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {{":s", &query.stages},
                                                                           {":v", &query.services},
                                                                           {":p", &query.partners},
                                                                           {":q", &query.queues}};
  for (const auto& [prefix, values] : lists) {
    for (size_t i = 0; i < values->size(); ++i) bind(prefix + std::to_string(i), (*values)[i]);
  }
  if (const int i = s.Param(":trace"); i > 0) s.Id(i, query.trace_id);
  bind(":message", query.message_id);
}

// ---------------------------------------------------------------------------------------------
// Rows.

void BindOrder(Stmt& s, const OrderRow& o) {
  s.Text(1, o.order_id);
  s.Text(2, o.stage);
  s.Int(3, o.stage_start_ns);
  s.Int(4, o.stage_ns);
  s.Int(5, o.first_ns);
  s.Int(6, o.last_ns);
  s.Int(7, o.last_heartbeat_ns);
  s.TextCopy(8, FormatServices(o.services));
  s.Text(9, o.last_service);
  s.Int(10, o.spans);
  s.Int(11, o.open_hops);
  s.Int(12, o.closed ? 1 : 0);
  s.Int(13, static_cast<int64_t>(o.stuck));
  s.Int(14, o.stuck_since_ns);
  s.Int(15, o.deadline_ns);
  s.Text(16, o.expected_service);
  s.Text(17, o.summary);
  s.Text(18, o.partner);
  s.Int(19, o.partner_ns);
}

Status ReadOrder(const Db& db, const Stmt& s, OrderRow* o) {
  o->order_id = s.ColText(0);
  o->stage = s.ColText(1);
  o->stage_start_ns = s.ColInt(2);
  o->stage_ns = s.ColInt(3);
  o->first_ns = s.ColInt(4);
  o->last_ns = s.ColInt(5);
  o->last_heartbeat_ns = s.ColInt(6);
  if (!ParseServices(s.ColText(7), &o->services)) {
    return Status::Internal("sqlite " + db.path() + ": order " + o->order_id +
                            ": malformed services column");
  }
  o->last_service = s.ColText(8);
  o->spans = static_cast<uint32_t>(s.ColInt(9));
  o->open_hops = static_cast<uint32_t>(s.ColInt(10));
  o->closed = s.ColInt(11) != 0;
  o->stuck = static_cast<StuckKind>(s.ColInt(12));
  o->stuck_since_ns = s.ColInt(13);
  o->deadline_ns = s.ColInt(14);
  o->expected_service = s.ColText(15);
  o->summary = s.ColText(16);
  o->partner = s.ColText(17);
  o->partner_ns = s.ColInt(18);
  return Status::Ok();
}

void BindSpan(Stmt& s, const SpanRecord& r) {
  s.Text(1, r.order_id);
  s.Id(2, r.span_id);
  s.Id(3, r.trace_id);
  s.Id(4, r.parent_span_id);
  s.Text(5, r.service);
  s.Text(6, r.name);
  s.Int(7, r.start_ns);
  s.Int(8, r.end_ns);
  s.Int(9, PackFlags(r));
  s.Text(10, r.error);
  s.Text(11, r.stage);
  s.Text(12, r.message_id);
  s.Text(13, r.exchange);
  s.Text(14, r.routing_key);
  s.Text(15, r.queue);
  if (r.links.empty()) {
    s.Null(16);
  } else {
    s.TextCopy(16, JoinLinks(r.links));
  }
}

SpanRecord ReadSpan(const Stmt& s) {
  SpanRecord r;
  r.order_id = s.ColText(0);
  r.span_id = s.ColId(1);
  r.trace_id = s.ColId(2);
  r.parent_span_id = s.ColId(3);
  r.service = s.ColText(4);
  r.name = s.ColText(5);
  r.start_ns = s.ColInt(6);
  r.end_ns = s.ColInt(7);
  UnpackFlags(s.ColInt(8), &r);
  r.error = s.ColText(9);
  r.stage = s.ColText(10);
  r.message_id = s.ColText(11);
  r.exchange = s.ColText(12);
  r.routing_key = s.ColText(13);
  r.queue = s.ColText(14);
  if (!s.ColNull(15)) r.links = SplitLinks(s.ColText(15));
  return r;
}

void BindMilestone(Stmt& s, const Milestone& m) {
  s.Text(1, m.order_id);
  s.Text(2, m.stage);
  s.Int(3, m.at_ns);
  s.Text(4, m.service);
  s.Id(5, m.trace_id);
  s.Id(6, m.span_id);
}

Milestone ReadMilestone(const Stmt& s) {
  Milestone m;
  m.order_id = s.ColText(0);
  m.stage = s.ColText(1);
  m.at_ns = s.ColInt(2);
  m.service = s.ColText(3);
  m.trace_id = s.ColId(4);
  m.span_id = s.ColId(5);
  return m;
}

void BindHop(Stmt& s, const Hop& h) {
  s.Id(1, h.send_span_id);
  s.Text(2, h.order_id);
  s.Id(3, h.send_trace_id);
  s.Text(4, h.send_service);
  s.Text(5, h.message_id);
  s.Text(6, h.exchange);
  s.Text(7, h.routing_key);
  s.Text(8, h.queue);
  s.Int(9, h.published_ns);
  s.Int(10, h.processed_ns);
  s.Text(11, h.process_service);
  s.Id(12, h.process_span_id);
  s.Id(13, h.process_trace_id);
}

Hop ReadHop(const Stmt& s) {
  Hop h;
  h.send_span_id = s.ColId(0);
  h.order_id = s.ColText(1);
  h.send_trace_id = s.ColId(2);
  h.send_service = s.ColText(3);
  h.message_id = s.ColText(4);
  h.exchange = s.ColText(5);
  h.routing_key = s.ColText(6);
  h.queue = s.ColText(7);
  h.published_ns = s.ColInt(8);
  h.processed_ns = s.ColInt(9);
  h.process_service = s.ColText(10);
  h.process_span_id = s.ColId(11);
  h.process_trace_id = s.ColId(12);
  return h;
}

void BindEpisode(Stmt& s, const StuckEpisode& e) {
  s.Text(1, e.order_id);
  s.Int(2, e.flagged_ns);
  s.Text(3, e.stage);
  s.Int(4, static_cast<int64_t>(e.kind));
  s.Text(5, e.expected_service);
  s.Int(6, e.due_ns);
  s.Int(7, e.cleared_ns);
}

StuckEpisode ReadEpisode(const Stmt& s) {
  StuckEpisode e;
  e.order_id = s.ColText(0);
  e.flagged_ns = s.ColInt(1);
  e.stage = s.ColText(2);
  e.kind = static_cast<StuckKind>(s.ColInt(3));
  e.expected_service = s.ColText(4);
  e.due_ns = s.ColInt(5);
  e.cleared_ns = s.ColInt(6);
  return e;
}

}  // namespace ordertrace::journey::sqlite
