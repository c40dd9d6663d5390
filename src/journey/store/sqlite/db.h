// Db and Stmt: a thin wrapper over one SQLite connection, its cached prepared statements and
// their use, with every SQLite error turned into a Status naming the file and SQLite's
// message.  Nothing here knows about journeys; schema.h and sqlite_store.cc do.
//
//   ASSIGN_OR_RETURN(Stmt s, db.Statement("SELECT a, b FROM t WHERE k = ?1"));
//   s.Text(1, key);
//   RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) { out.push_back(row.ColInt(0)); }));
//
// Ids (trace, span, parent span) that are lowercase hex of even length are bound as blobs of
// their bytes (half the space) and read back as the same hex; anything else stays text.
//
// Thread-safety: none.  A Db (with the Stmts made from it) is used by one thread at a time;
// the store puts each connection behind its own mutex.
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "common/status.h"

namespace ordertrace::journey::sqlite {

class Stmt;

// One connection with its statement cache.
class Db {
 public:
  explicit Db(std::string path) : path_(std::move(path)) {}
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Opens (or creates) the file, without SQLite's own mutex (the caller serialises).
  Status Open();

  // Runs statements that return no rows (uncached).
  Status Exec(const std::string& sql);

  // A cached prepared statement, ready to bind; it is reset when the Stmt goes away.  At most
  // kMaxCachedStatements are cached; beyond, a statement is prepared for one use.
  static constexpr size_t kMaxCachedStatements = 256;
  Result<Stmt> Statement(const std::string& sql);

  // Transactions: BEGIN IMMEDIATE for a writer (`write`), a deferred BEGIN for a reader.
  // Transaction() runs `body` inside one: committed when it returns ok, rolled back when it
  // (or the commit) fails; the first error is returned.
  Status Begin(bool write);
  Status Commit();
  void Rollback();  // logged when it fails; no-op outside a transaction
  Status Transaction(bool write, const std::function<Status()>& body);

  // The first column of the first row of `sql` as an integer (an error when there is none).
  Result<int64_t> QueryInt(const std::string& sql);

  Status Error(std::string_view what, int rc) const;
  int64_t Changes() const { return sqlite3_changes64(db_); }
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// One use of a cached statement: binds, steps, reads; reset on destruction.  Bind errors are
// kept and reported by the next Step().
class Stmt {
 public:
  // `owned`: finalized on destruction (not cached), else reset.
  Stmt(Db& db, sqlite3_stmt* stmt, bool owned = false) : db_(&db), s_(stmt), owned_(owned) {}
  ~Stmt();
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based.  Text() does not copy: `v` must outlive the Stmt's use.
  void Text(int i, std::string_view v);
  void TextCopy(int i, const std::string& v);
  void Int(int i, int64_t v);
  void Null(int i);
  void Id(int i, std::string_view v);
  // By name (":name"); parameters absent from the statement are skipped.
  int Param(const char* name) const { return sqlite3_bind_parameter_index(s_, name); }

  // True: a row is ready; false: done.
  Result<bool> Step();
  // Steps once, for statements that return no rows.
  Status Run();
  // Makes the statement ready for its next row (reset, bindings cleared), as the destructor
  // does: a loop over a batch's rows binds and runs one Stmt, looked up once per batch.
  void Reset();

  // Columns are 0-based.
  int64_t ColInt(int i) const { return sqlite3_column_int64(s_, i); }
  std::string ColText(int i) const;
  std::string ColId(int i) const;
  bool ColNull(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  Db* db_;
  sqlite3_stmt* s_;  // null once moved from
  bool owned_ = false;
  int bind_rc_ = SQLITE_OK;
};

// Steps `s` through all its rows and calls `fn(s)` on each; `fn` returns void or a Status
// (the first error stops the loop).  Returns the first error from SQLite or from `fn`.  To
// stop early, put a LIMIT in the query.
template <typename Fn>
Status ForEachRow(Stmt& s, Fn&& fn) {
  while (true) {
    ASSIGN_OR_RETURN(const bool row, s.Step());
    if (!row) return Status::Ok();
    if constexpr (std::is_void_v<std::invoke_result_t<Fn&, const Stmt&>>) {
      fn(static_cast<const Stmt&>(s));
    } else {
      RETURN_IF_ERROR(fn(static_cast<const Stmt&>(s)));
    }
  }
}

}  // namespace ordertrace::journey::sqlite
