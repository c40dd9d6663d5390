#include "journey/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "journey/memory_store.h"

namespace ordertrace::journey {
namespace {

constexpr int kSchemaVersion = 1;
constexpr int32_t kApplicationId = 0x4F544A53;  // "OTJS"
constexpr size_t kStreamPage = 1000;            // rows per ForEach page
constexpr size_t kRetentionOrders = 1000;       // orders deleted per transaction
constexpr int kRetentionRows = 10000;           // spans / hops deleted per transaction

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
  summary TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX orders_stuck ON orders (order_id) WHERE stuck <> 0;
CREATE INDEX orders_active ON orders (order_id) WHERE closed = 0;
CREATE INDEX orders_stage ON orders (stage, order_id);
CREATE INDEX orders_last ON orders (last_ns);

CREATE TABLE spans (
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
  links TEXT,
  PRIMARY KEY (order_id, span_id)
) WITHOUT ROWID;
CREATE INDEX spans_start ON spans (order_id, start_ns);
CREATE INDEX spans_end ON spans (end_ns);

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
CREATE INDEX hops_open ON hops (send_span_id) WHERE published_ns <> 0 AND processed_ns = 0;

CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('orders', 0), ('spans', 0), ('hops', 0);
)sql";

constexpr const char* kOrderCols =
    "order_id, stage, stage_start_ns, stage_ns, first_ns, last_ns, last_heartbeat_ns, services, "
    "last_service, spans, open_hops, closed, stuck, stuck_since_ns, deadline_ns, "
    "expected_service, summary";
constexpr const char* kSpanCols =
    "order_id, span_id, trace_id, parent_span_id, service, name, start_ns, end_ns, flags, error, "
    "stage, message_id, exchange, routing_key, queue, links";
constexpr const char* kMilestoneCols = "order_id, stage, at_ns, service, trace_id, span_id";
constexpr const char* kHopCols =
    "send_span_id, order_id, send_trace_id, send_service, message_id, exchange, routing_key, "
    "queue, published_ns, processed_ns, process_service, process_span_id, process_trace_id";

std::string Cols(std::string_view prefix, const char* cols) { return std::string(prefix) + cols; }

// ---------------------------------------------------------------------------------------------
// Ids: lowercase hex of even length is stored as a blob of its bytes, anything else as text.

bool IsLowerHex(std::string_view s) {
  if (s.empty() || s.size() % 2 != 0) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

int Nibble(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

std::string HexToBytes(std::string_view hex) {
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(Nibble(hex[2 * i]) << 4 | Nibble(hex[2 * i + 1]));
  }
  return out;
}

std::string BytesToHex(const unsigned char* p, int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(n) * 2, '\0');
  for (int i = 0; i < n; ++i) {
    out[2 * static_cast<size_t>(i)] = kHex[p[i] >> 4];
    out[2 * static_cast<size_t>(i) + 1] = kHex[p[i] & 0xf];
  }
  return out;
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

// ---------------------------------------------------------------------------------------------
// A connection with its cached statements.

class Db {
 public:
  explicit Db(std::string path) : path_(std::move(path)) {}
  ~Db() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Open() {
    const int rc =
        sqlite3_open_v2(path_.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) return Error("open", rc);
    sqlite3_extended_result_codes(db_, 1);
    return Status::Ok();
  }

  Status Error(std::string_view what, int rc) const {
    std::string msg = "sqlite " + path_ + ": " + std::string(what) + ": ";
    if (db_ != nullptr && sqlite3_errcode(db_) != SQLITE_OK) {
      msg += sqlite3_errmsg(db_);
    } else {
      msg += sqlite3_errstr(rc);
    }
    return Status::Internal(std::move(msg));
  }

  // Runs statements that return no rows (uncached).
  Status Exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    if (rc == SQLITE_OK) return Status::Ok();
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return Status::Internal("sqlite " + path_ + ": " + msg);
  }

  Result<sqlite3_stmt*> Prepare(const std::string& sql) {
    const auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size() + 1),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return Error("prepare", rc);
    }
    cache_.emplace(sql, stmt);
    return stmt;
  }

  int64_t Changes() const { return sqlite3_changes64(db_); }
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One use of a cached statement: binds, steps, reads; reset on destruction.
class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* stmt) : db_(db), s_(stmt) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  void Text(int i, std::string_view v) {
    Check(sqlite3_bind_text(s_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                            SQLITE_STATIC));
  }
  void TextCopy(int i, const std::string& v) {
    Check(sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  void Int(int i, int64_t v) { Check(sqlite3_bind_int64(s_, i, v)); }
  void Null(int i) { Check(sqlite3_bind_null(s_, i)); }
  void Id(int i, std::string_view v) {
    if (IsLowerHex(v)) {
      const std::string bytes = HexToBytes(v);
      Check(
          sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
    } else {
      Text(i, v);
    }
  }
  // By name (":name"); parameters absent from the statement are skipped.
  int Param(const char* name) const { return sqlite3_bind_parameter_index(s_, name); }

  // True: a row is ready; false: done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return db_.Error("bind", bind_rc_);
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return db_.Error("step", rc);
  }
  Status Run() {
    auto r = Step();
    return r.ok() ? Status::Ok() : r.status();
  }

  int64_t ColInt(int i) const { return sqlite3_column_int64(s_, i); }
  std::string ColText(int i) const {
    const auto* p = sqlite3_column_text(s_, i);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(s_, i)));
  }
  std::string ColId(int i) const {
    if (sqlite3_column_type(s_, i) == SQLITE_BLOB) {
      const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(s_, i));
      return BytesToHex(p, sqlite3_column_bytes(s_, i));
    }
    return ColText(i);
  }
  bool ColNull(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  Db& db_;
  sqlite3_stmt* s_;
  int bind_rc_ = SQLITE_OK;
};

#define OT_ASSIGN_STMT(var, db, sql)                \
  auto var##_prep = (db).Prepare(sql);              \
  if (!var##_prep.ok()) return var##_prep.status(); \
  Stmt var((db), *var##_prep)

#define OT_RETURN_IF_ERROR(expr) \
  do {                           \
    Status _st = (expr);         \
    if (!_st.ok()) return _st;   \
  } while (0)

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

const std::string& SelectOrderSql() {
  static const std::string sql = Cols("SELECT ", kOrderCols) + " FROM orders WHERE order_id = ?1";
  return sql;
}
const std::string& SelectHopSql() {
  static const std::string sql = Cols("SELECT ", kHopCols) + " FROM hops WHERE send_span_id = ?1";
  return sql;
}

struct Deltas {
  int64_t orders = 0;
  int64_t spans = 0;
  int64_t hops = 0;
};

// ---------------------------------------------------------------------------------------------

class SqliteStore final : public JourneyStore {
 public:
  SqliteStore(std::unique_ptr<Db> writer, std::unique_ptr<Db> reader)
      : writer_(std::move(writer)), reader_(std::move(reader)) {}

  Status Write(const WriteBatch& batch) override {
    if (batch.empty()) return Status::Ok();
    std::lock_guard lock(writer_mu_);
    OT_RETURN_IF_ERROR(Begin(*writer_, true));
    Deltas d;
    Status s = Apply(batch, &d);
    if (s.ok()) s = AddCounters(d);
    if (s.ok()) s = Commit(*writer_);
    if (!s.ok()) Rollback(*writer_);
    return s;
  }

  Result<std::optional<Journey>> GetJourney(std::string_view order_id, size_t max_spans) override {
    std::lock_guard lock(reader_mu_);
    OT_RETURN_IF_ERROR(Begin(*reader_, false));
    auto r = ReadJourney(order_id, max_spans);
    const Status end = Commit(*reader_);
    if (!end.ok()) Rollback(*reader_);
    if (!r.ok()) return r;
    if (!end.ok()) return end;
    return r;
  }

  Result<std::optional<OrderRow>> GetOrder(std::string_view order_id) override {
    std::lock_guard lock(reader_mu_);
    return ReadOrderRow(order_id);
  }

  Result<OrderPage> ListOrders(const OrderQuery& query) override {
    const size_t limit = PageLimit(query.limit);
    std::string sql = Cols("SELECT ", kOrderCols) + " FROM orders WHERE order_id > :cursor";
    if (query.stuck.has_value()) sql += *query.stuck ? " AND stuck <> 0" : " AND stuck = 0";
    if (!query.stage.empty()) sql += " AND stage = :stage";
    if (!query.service.empty()) {
      sql += " AND (expected_service = :service OR last_service = :service)";
    }
    if (!query.include_closed) sql += " AND closed = 0";
    sql += " ORDER BY order_id LIMIT :limit";

    std::lock_guard lock(reader_mu_);
    OT_ASSIGN_STMT(s, *reader_, sql);
    s.Text(s.Param(":cursor"), query.cursor);
    if (!query.stage.empty()) s.Text(s.Param(":stage"), query.stage);
    if (!query.service.empty()) s.Text(s.Param(":service"), query.service);
    s.Int(s.Param(":limit"), static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)) + 1);
    OrderPage page;
    while (true) {
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (page.orders.size() == limit) {
        page.next_cursor = page.orders.back().order_id;
        break;
      }
      OrderRow o;
      OT_RETURN_IF_ERROR(ReadOrder(*reader_, s, &o));
      page.orders.push_back(std::move(o));
    }
    return page;
  }

  Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) override {
    static const std::string sql =
        Cols("SELECT ", kOrderCols) +
        " FROM orders WHERE closed = 0 AND order_id > ?1 ORDER BY order_id LIMIT ?2";
    return StreamPages<OrderRow>(
        sql, [](Stmt& s, const std::string& cursor) { s.Text(1, cursor); },
        [this](const Stmt& s, OrderRow* o) { return ReadOrder(*reader_, s, o); },
        [](const OrderRow& o) { return o.order_id; }, fn);
  }

  Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) override {
    static const std::string sql = Cols("SELECT ", kHopCols) +
                                   " FROM hops WHERE published_ns <> 0 AND processed_ns = 0 AND "
                                   "send_span_id > ?1 ORDER BY send_span_id LIMIT ?2";
    return StreamPages<Hop>(
        sql, [](Stmt& s, const std::string& cursor) { s.Id(1, cursor); },
        [](const Stmt& s, Hop* h) {
          *h = ReadHop(s);
          return Status::Ok();
        },
        [](const Hop& h) { return h.send_span_id; }, fn);
  }

  Status ForEachOrderId(const std::function<void(std::string_view)>& fn) override {
    static const std::string sql =
        "SELECT order_id FROM orders WHERE order_id > ?1 ORDER BY order_id LIMIT ?2";
    return StreamPages<std::string>(
        sql, [](Stmt& s, const std::string& cursor) { s.Text(1, cursor); },
        [](const Stmt& s, std::string* id) {
          *id = s.ColText(0);
          return Status::Ok();
        },
        [](const std::string& id) { return id; }, fn);
  }

  // Streams a keyset-paged query (?1: the key of the previous page's last row, bound by
  // `bind`; ?2: the page size) in pages of kStreamPage rows.  Each page is read under the
  // reader lock and handed to `fn` without it, so `fn` never holds up the store.
  template <typename Row, typename Bind, typename Read, typename Key, typename Fn>
  Status StreamPages(const std::string& sql, Bind bind, Read read, Key key, const Fn& fn) {
    std::string cursor;
    std::vector<Row> page;
    do {
      page.clear();
      {
        std::lock_guard lock(reader_mu_);
        OT_ASSIGN_STMT(s, *reader_, sql);
        bind(s, cursor);
        s.Int(2, static_cast<int64_t>(kStreamPage));
        while (true) {
          auto row = s.Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          Row r;
          OT_RETURN_IF_ERROR(read(s, &r));
          page.push_back(std::move(r));
        }
      }
      for (const auto& r : page) fn(r);
      if (!page.empty()) cursor = key(page.back());
    } while (page.size() == kStreamPage);
    return Status::Ok();
  }

  Result<std::optional<Hop>> FindHop(std::string_view send_span_id,
                                     std::string_view message_id) override {
    std::lock_guard lock(reader_mu_);
    if (!send_span_id.empty()) {
      auto h = ReadHopById(*reader_, send_span_id);
      if (!h.ok() || h->has_value()) return h;
    }
    if (!message_id.empty()) {
      static const std::string sql = Cols("SELECT ", kHopCols) +
                                     " FROM hops WHERE message_id = ?1 AND message_id <> '' "
                                     "ORDER BY published_ns, send_span_id LIMIT 1";
      OT_ASSIGN_STMT(s, *reader_, sql);
      s.Text(1, message_id);
      auto row = s.Step();
      if (!row.ok()) return row.status();
      if (*row) return std::optional<Hop>(ReadHop(s));
    }
    return std::optional<Hop>();
  }

  Result<RetentionResult> EnforceRetention(Nanos now, const Retention& retention) override {
    RetentionResult result;
    if (const auto cutoff = RetentionCutoff(now, retention.closed_orders)) {
      static const std::string sql =
          "SELECT order_id FROM orders WHERE last_ns < ?1 AND closed <> 0 LIMIT ?2";
      OT_RETURN_IF_ERROR(RemoveOrders(sql, *cutoff, &result));
    }
    if (const auto cutoff = RetentionCutoff(now, retention.inactive_orders)) {
      static const std::string sql = "SELECT order_id FROM orders WHERE last_ns < ?1 LIMIT ?2";
      OT_RETURN_IF_ERROR(RemoveOrders(sql, *cutoff, &result));
      // Hops that never got an order.
      static const std::string orphans =
          "DELETE FROM hops WHERE rowid IN (SELECT rowid FROM hops WHERE "
          "order_id = '' AND max(published_ns, processed_ns) < ?1 LIMIT ?2)";
      OT_RETURN_IF_ERROR(DeleteInChunks(orphans, *cutoff, nullptr));
    }
    if (const auto cutoff = RetentionCutoff(now, retention.spans)) {
      static const std::string sql =
          "DELETE FROM spans WHERE (order_id, span_id) IN (SELECT order_id, span_id FROM spans "
          "WHERE end_ns < ?1 LIMIT ?2)";
      OT_RETURN_IF_ERROR(DeleteInChunks(sql, *cutoff, &result.spans_removed));
    }
    return result;
  }

  Result<StoreStats> Stats() override {
    StoreStats stats;
    {
      std::lock_guard lock(reader_mu_);
      static const std::string sql = "SELECT name, value FROM counters";
      OT_ASSIGN_STMT(s, *reader_, sql);
      while (true) {
        auto row = s.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        const std::string name = s.ColText(0);
        const auto value = static_cast<uint64_t>(std::max<int64_t>(0, s.ColInt(1)));
        if (name == "orders") stats.orders = value;
        if (name == "spans") stats.spans = value;
        if (name == "hops") stats.hops = value;
      }
    }
    std::error_code ec;
    const auto db = std::filesystem::file_size(reader_->path(), ec);
    if (!ec) stats.bytes += db;
    const auto wal = std::filesystem::file_size(reader_->path() + "-wal", ec);
    if (!ec) stats.bytes += wal;
    return stats;
  }

 private:
  static Status Begin(Db& db, bool write) {
    OT_ASSIGN_STMT(s, db, write ? std::string("BEGIN IMMEDIATE") : std::string("BEGIN"));
    return s.Run();
  }
  static Status Commit(Db& db) {
    OT_ASSIGN_STMT(s, db, std::string("COMMIT"));
    return s.Run();
  }
  static void Rollback(Db& db) {
    if (!db.InTransaction()) return;
    auto prep = db.Prepare("ROLLBACK");
    if (!prep.ok()) return;
    Stmt s(db, *prep);
    const Status st = s.Run();
    if (!st.ok()) log::Error("journey store rollback failed", {{"error", st.message()}});
  }

  Status Apply(const WriteBatch& batch, Deltas* d) {
    Db& db = *writer_;
    if (!batch.spans.empty()) {
      static const std::string sql = Cols("INSERT INTO spans (", kSpanCols) +
                                     ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                     "?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING";
      auto prep = db.Prepare(sql);
      if (!prep.ok()) return prep.status();
      for (const auto& span : batch.spans) {
        Stmt s(db, *prep);
        BindSpan(s, span);
        OT_RETURN_IF_ERROR(s.Run());
        d->spans += db.Changes();
      }
    }
    if (!batch.milestones.empty()) {
      static const std::string sql =
          Cols("INSERT INTO milestones (", kMilestoneCols) +
          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (order_id, stage) DO UPDATE SET "
          "at_ns = excluded.at_ns, service = excluded.service, trace_id = excluded.trace_id, "
          "span_id = excluded.span_id WHERE excluded.at_ns < milestones.at_ns OR "
          "(excluded.at_ns = milestones.at_ns AND excluded.span_id < milestones.span_id)";
      auto prep = db.Prepare(sql);
      if (!prep.ok()) return prep.status();
      for (const auto& m : batch.milestones) {
        Stmt s(db, *prep);
        s.Text(1, m.order_id);
        s.Text(2, m.stage);
        s.Int(3, m.at_ns);
        s.Text(4, m.service);
        s.Id(5, m.trace_id);
        s.Id(6, m.span_id);
        OT_RETURN_IF_ERROR(s.Run());
      }
    }
    for (const auto& hop : batch.hops) OT_RETURN_IF_ERROR(PutHop(hop, d));
    if (!batch.orders.empty()) {
      static const std::string update =
          "UPDATE orders SET stage = ?2, stage_start_ns = ?3, stage_ns = ?4, first_ns = ?5, "
          "last_ns = ?6, last_heartbeat_ns = ?7, services = ?8, last_service = ?9, spans = ?10, "
          "open_hops = ?11, closed = ?12, stuck = ?13, stuck_since_ns = ?14, deadline_ns = ?15, "
          "expected_service = ?16, summary = ?17 WHERE order_id = ?1";
      static const std::string insert =
          Cols("INSERT INTO orders (", kOrderCols) +
          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
      auto up = db.Prepare(update);
      if (!up.ok()) return up.status();
      auto in = db.Prepare(insert);
      if (!in.ok()) return in.status();
      for (const auto& o : batch.orders) {
        {
          Stmt s(db, *up);
          BindOrder(s, o);
          OT_RETURN_IF_ERROR(s.Run());
          if (db.Changes() > 0) continue;
        }
        Stmt s(db, *in);
        BindOrder(s, o);
        OT_RETURN_IF_ERROR(s.Run());
        ++d->orders;
      }
    }
    return Status::Ok();
  }

  Status PutHop(const Hop& hop, Deltas* d) {
    Db& db = *writer_;
    auto stored = ReadHopById(db, hop.send_span_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) {
      Hop merged = **stored;
      MergeHop(merged, hop);
      if (merged == **stored) return Status::Ok();
      static const std::string sql =
          "UPDATE hops SET order_id = ?2, send_trace_id = ?3, send_service = ?4, "
          "message_id = ?5, exchange = ?6, routing_key = ?7, queue = ?8, published_ns = ?9, "
          "processed_ns = ?10, process_service = ?11, process_span_id = ?12, "
          "process_trace_id = ?13 WHERE send_span_id = ?1";
      OT_ASSIGN_STMT(s, db, sql);
      BindHop(s, merged);
      return s.Run();
    }
    static const std::string sql =
        Cols("INSERT INTO hops (", kHopCols) +
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    OT_ASSIGN_STMT(s, db, sql);
    BindHop(s, hop);
    OT_RETURN_IF_ERROR(s.Run());
    ++d->hops;
    return Status::Ok();
  }

  Status AddCounters(const Deltas& d) {
    static const std::string sql = "UPDATE counters SET value = value + ?2 WHERE name = ?1";
    const std::pair<const char*, int64_t> all[] = {
        {"orders", d.orders}, {"spans", d.spans}, {"hops", d.hops}};
    for (const auto& [name, delta] : all) {
      if (delta == 0) continue;
      OT_ASSIGN_STMT(s, *writer_, sql);
      s.Text(1, name);
      s.Int(2, delta);
      OT_RETURN_IF_ERROR(s.Run());
    }
    return Status::Ok();
  }

  static Result<std::optional<Hop>> ReadHopById(Db& db, std::string_view send_span_id) {
    OT_ASSIGN_STMT(s, db, SelectHopSql());
    s.Id(1, send_span_id);
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<Hop>();
    return std::optional<Hop>(ReadHop(s));
  }

  Result<std::optional<OrderRow>> ReadOrderRow(std::string_view order_id) {
    OT_ASSIGN_STMT(s, *reader_, SelectOrderSql());
    s.Text(1, order_id);
    auto row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<OrderRow>();
    OrderRow o;
    OT_RETURN_IF_ERROR(ReadOrder(*reader_, s, &o));
    return std::optional<OrderRow>(std::move(o));
  }

  // Inside the reader's transaction.
  Result<std::optional<Journey>> ReadJourney(std::string_view order_id, size_t max_spans) {
    auto order = ReadOrderRow(order_id);
    if (!order.ok()) return order.status();
    if (!order->has_value()) return std::optional<Journey>();
    Journey j;
    j.order = std::move(**order);
    Db& db = *reader_;
    {
      static const std::string sql = Cols("SELECT ", kMilestoneCols) +
                                     " FROM milestones WHERE order_id = ?1 ORDER BY at_ns, stage";
      OT_ASSIGN_STMT(s, db, sql);
      s.Text(1, order_id);
      while (true) {
        auto row = s.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        j.milestones.push_back(ReadMilestone(s));
      }
    }
    {
      static const std::string sql =
          Cols("SELECT ", kSpanCols) +
          " FROM spans WHERE order_id = ?1 ORDER BY start_ns DESC, span_id DESC LIMIT ?2";
      OT_ASSIGN_STMT(s, db, sql);
      s.Text(1, order_id);
      const size_t limit = std::min<size_t>(max_spans, size_t{1} << 40);
      s.Int(2, static_cast<int64_t>(limit) + 1);
      while (true) {
        auto row = s.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (j.spans.size() == limit) {
          j.spans_truncated = true;
          break;
        }
        j.spans.push_back(ReadSpan(s));
      }
      std::reverse(j.spans.begin(), j.spans.end());
    }
    {
      static const std::string sql =
          Cols("SELECT ", kHopCols) +
          " FROM hops WHERE order_id = ?1 ORDER BY published_ns, send_span_id";
      OT_ASSIGN_STMT(s, db, sql);
      s.Text(1, order_id);
      while (true) {
        auto row = s.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        j.hops.push_back(ReadHop(s));
      }
    }
    return std::optional<Journey>(std::move(j));
  }

  // Removes the orders `select_sql` (?1 cutoff, ?2 limit) returns, with their spans,
  // milestones and hops, kRetentionOrders per transaction.
  Status RemoveOrders(const std::string& select_sql, Nanos cutoff, RetentionResult* result) {
    static const std::string del_spans = "DELETE FROM spans WHERE order_id = ?1";
    static const std::string del_milestones = "DELETE FROM milestones WHERE order_id = ?1";
    static const std::string del_hops = "DELETE FROM hops WHERE order_id = ?1";
    static const std::string del_order = "DELETE FROM orders WHERE order_id = ?1";
    while (true) {
      std::lock_guard lock(writer_mu_);
      Db& db = *writer_;
      OT_RETURN_IF_ERROR(Begin(db, true));
      std::vector<std::string> ids;
      Deltas d;
      Status st = [&]() -> Status {
        {
          OT_ASSIGN_STMT(s, db, select_sql);
          s.Int(1, cutoff);
          s.Int(2, static_cast<int64_t>(kRetentionOrders));
          while (true) {
            auto row = s.Step();
            if (!row.ok()) return row.status();
            if (!*row) break;
            ids.push_back(s.ColText(0));
          }
        }
        for (const auto& id : ids) {
          for (const std::string* sql : {&del_spans, &del_milestones, &del_hops, &del_order}) {
            OT_ASSIGN_STMT(s, db, *sql);
            s.Text(1, id);
            OT_RETURN_IF_ERROR(s.Run());
            if (sql == &del_spans) d.spans -= db.Changes();
            if (sql == &del_hops) d.hops -= db.Changes();
            if (sql == &del_order) d.orders -= db.Changes();
          }
        }
        OT_RETURN_IF_ERROR(AddCounters(d));
        return Commit(db);
      }();
      if (!st.ok()) {
        Rollback(db);
        return st;
      }
      result->orders_removed += static_cast<uint64_t>(-d.orders);
      result->spans_removed += static_cast<uint64_t>(-d.spans);
      if (ids.size() < kRetentionOrders) return Status::Ok();
    }
  }

  // Runs `delete_sql` (?1 cutoff, ?2 limit) until it deletes fewer than kRetentionRows rows,
  // one transaction each.  `spans_removed` non-null: span rows, else hop rows.
  Status DeleteInChunks(const std::string& delete_sql, Nanos cutoff, uint64_t* spans_removed) {
    while (true) {
      std::lock_guard lock(writer_mu_);
      Db& db = *writer_;
      OT_RETURN_IF_ERROR(Begin(db, true));
      int64_t n = 0;
      Status st = [&]() -> Status {
        {
          OT_ASSIGN_STMT(s, db, delete_sql);
          s.Int(1, cutoff);
          s.Int(2, kRetentionRows);
          OT_RETURN_IF_ERROR(s.Run());
          n = db.Changes();
        }
        Deltas d;
        (spans_removed != nullptr ? d.spans : d.hops) = -n;
        OT_RETURN_IF_ERROR(AddCounters(d));
        return Commit(db);
      }();
      if (!st.ok()) {
        Rollback(db);
        return st;
      }
      if (spans_removed != nullptr) *spans_removed += static_cast<uint64_t>(n);
      if (n < kRetentionRows) return Status::Ok();
    }
  }

  std::mutex writer_mu_;
  std::unique_ptr<Db> writer_;
  std::mutex reader_mu_;
  std::unique_ptr<Db> reader_;
};

Result<int64_t> QueryInt(Db& db, const std::string& sql) {
  OT_ASSIGN_STMT(s, db, sql);
  auto row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return db.Error(sql, SQLITE_ERROR);
  return s.ColInt(0);
}

Status Configure(Db& db, const SqliteStoreOptions& options, int cache_mb) {
  OT_RETURN_IF_ERROR(db.Exec("PRAGMA busy_timeout = " + std::to_string(options.busy_timeout_ms)));
  OT_RETURN_IF_ERROR(db.Exec(std::string("PRAGMA synchronous = ") +
                             (options.synchronous_full ? "FULL" : "NORMAL")));
  OT_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = " + std::to_string(-1024 * cache_mb)));
  OT_RETURN_IF_ERROR(db.Exec("PRAGMA temp_store = MEMORY"));
  // Checkpoint every 64 MB of WAL rather than 4 MB: pages rewritten by consecutive batches
  // (the tails of the append-mostly indexes) are copied once; the WAL is cut back to 64 MB.
  OT_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint = 16384"));
  OT_RETURN_IF_ERROR(db.Exec("PRAGMA journal_size_limit = 67108864"));
  return Status::Ok();
}

// Checks the file is ours (or empty: creates the schema) and at a version this build reads.
Status PrepareSchema(Db& db, bool* created) {
  auto app_id = QueryInt(db, "PRAGMA application_id");
  if (!app_id.ok()) return app_id.status();
  auto version = QueryInt(db, "PRAGMA user_version");
  if (!version.ok()) return version.status();
  auto objects = QueryInt(db, "SELECT count(*) FROM sqlite_schema");
  if (!objects.ok()) return objects.status();

  *created = false;
  if (*app_id == 0 && *version == 0 && *objects == 0) {
    OT_RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode = WAL"));
    OT_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status s = db.Exec(kSchema);
    if (s.ok()) s = db.Exec("PRAGMA application_id = " + std::to_string(kApplicationId));
    if (s.ok()) s = db.Exec("PRAGMA user_version = " + std::to_string(kSchemaVersion));
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s;
    }
    *created = true;
    return Status::Ok();
  }
  if (*app_id != kApplicationId) {
    return Status::Internal("sqlite " + db.path() +
                            ": not an ordertrace journey store (application_id " +
                            std::to_string(*app_id) + ", " + std::to_string(*objects) +
                            " schema objects); refusing to use it");
  }
  if (*version > kSchemaVersion) {
    return Status::Internal("sqlite " + db.path() + ": journey store schema version " +
                            std::to_string(*version) + " is newer than this build's (" +
                            std::to_string(kSchemaVersion) +
                            "); run a newer ordertrace or use another data directory");
  }
  if (*version < 1) {
    return Status::Internal("sqlite " + db.path() + ": journey store schema version " +
                            std::to_string(*version) + " is unknown");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<JourneyStore>> OpenSqliteStore(const SqliteStoreOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("sqlite store: empty path");
  auto writer = std::make_unique<Db>(options.path);
  OT_RETURN_IF_ERROR(writer->Open());
  OT_RETURN_IF_ERROR(Configure(*writer, options, std::max(1, options.cache_mb)));
  bool created = false;
  OT_RETURN_IF_ERROR(PrepareSchema(*writer, &created));
  auto mode = writer->Prepare("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  {
    Stmt s(*writer, *mode);
    auto row = s.Step();
    if (!row.ok()) return row.status();
    const std::string got = *row ? s.ColText(0) : "";
    if (got != "wal") {
      return Status::Internal("sqlite " + options.path + ": cannot use WAL mode (journal_mode " +
                              got + ")");
    }
  }
  // The first read of the schema catches a file that is not a database, the checks below a
  // damaged one: cheap, not a full integrity check.
  {
    auto orders = QueryInt(*writer, "SELECT value FROM counters WHERE name = 'orders'");
    if (!orders.ok()) return orders.status();
  }

  auto reader = std::make_unique<Db>(options.path);
  OT_RETURN_IF_ERROR(reader->Open());
  OT_RETURN_IF_ERROR(Configure(*reader, options, std::max(1, options.cache_mb / 2)));
  OT_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = 1"));

  log::Info(created ? "journey store created" : "journey store opened",
            {{"path", options.path}, {"schema_version", kSchemaVersion}});
  return std::unique_ptr<JourneyStore>(
      std::make_unique<SqliteStore>(std::move(writer), std::move(reader)));
}

}  // namespace ordertrace::journey
