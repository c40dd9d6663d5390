#include "journey/store/sqlite/db.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace ordertrace::journey::sqlite {
namespace {

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Db.

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status Db::Open() {
  const int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return Error("open", rc);
  sqlite3_extended_result_codes(db_, 1);
  return Status::Ok();
}

Status Db::Error(std::string_view what, int rc) const {
  std::string msg = "sqlite " + path_ + ": " + std::string(what) + ": ";
  if (db_ != nullptr && sqlite3_errcode(db_) != SQLITE_OK) {
    msg += sqlite3_errmsg(db_);
  } else {
    msg += sqlite3_errstr(rc);
  }
  return Status::Internal(std::move(msg));
}

Status Db::Exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return Status::Internal("sqlite " + path_ + ": " + msg);
}

Result<Stmt> Db::Statement(const std::string& sql) {
  const auto it = cache_.find(sql);
  if (it != cache_.end()) return Stmt(*this, it->second);
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size() + 1),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Error("prepare", rc);
  }
  // The order list's filters make many shapes of one query: past the bound, a statement is used
  // once (finalized by its Stmt) rather than kept.
  if (cache_.size() >= kMaxCachedStatements) return Stmt(*this, stmt, /*owned=*/true);
  cache_.emplace(sql, stmt);
  return Stmt(*this, stmt);
}

Status Db::Begin(bool write) {
  static const std::string kWrite = "BEGIN IMMEDIATE", kRead = "BEGIN";
  ASSIGN_OR_RETURN(Stmt s, Statement(write ? kWrite : kRead));
  return s.Run();
}

Status Db::Commit() {
  static const std::string kCommit = "COMMIT";
  ASSIGN_OR_RETURN(Stmt s, Statement(kCommit));
  return s.Run();
}

void Db::Rollback() {
  if (!InTransaction()) return;
  static const std::string kRollback = "ROLLBACK";
  auto s = Statement(kRollback);
  if (!s.ok()) return;
  const Status st = s->Run();
  if (!st.ok()) log::Error("journey store rollback failed", {{"error", st.message()}});
}

Status Db::Transaction(bool write, const std::function<Status()>& body) {
  RETURN_IF_ERROR(Begin(write));
  Status s = body();
  if (s.ok()) s = Commit();
  if (!s.ok()) Rollback();
  return s;
}

Result<int64_t> Db::QueryInt(const std::string& sql) {
  ASSIGN_OR_RETURN(Stmt s, Statement(sql));
  ASSIGN_OR_RETURN(const bool row, s.Step());
  if (!row) return Error(sql, SQLITE_ERROR);
  return s.ColInt(0);
}

// ---------------------------------------------------------------------------------------------
// Stmt.

Stmt::~Stmt() {
  if (owned_ && s_ != nullptr) {
    sqlite3_finalize(s_);
  } else {
    Reset();
  }
}

void Stmt::Reset() {
  if (s_ == nullptr) return;
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
  bind_rc_ = SQLITE_OK;
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_),
      s_(std::exchange(other.s_, nullptr)),
      owned_(other.owned_),
      bind_rc_(other.bind_rc_) {}

void Stmt::Text(int i, std::string_view v) {
  Check(sqlite3_bind_text(s_, i, v.data() != nullptr ? v.data() : "", static_cast<int>(v.size()),
                          SQLITE_STATIC));
}

void Stmt::TextCopy(int i, const std::string& v) {
  Check(sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
}

void Stmt::Int(int i, int64_t v) { Check(sqlite3_bind_int64(s_, i, v)); }

void Stmt::Null(int i) { Check(sqlite3_bind_null(s_, i)); }

void Stmt::Id(int i, std::string_view v) {
  if (IsLowerHex(v)) {
    // Trace, span and parent ids (16 and 8 bytes) convert on the stack: a span's write binds
    // three, a hop's four, and a heap string each was a malloc per id on the write path.
    unsigned char buf[64];
    if (v.size() / 2 <= sizeof buf) {
      const size_t n = v.size() / 2;
      for (size_t k = 0; k < n; ++k) {
        buf[k] = static_cast<unsigned char>(Nibble(v[2 * k]) << 4 | Nibble(v[2 * k + 1]));
      }
      Check(sqlite3_bind_blob(s_, i, buf, static_cast<int>(n), SQLITE_TRANSIENT));
      return;
    }
    const std::string bytes = HexToBytes(v);
    Check(sqlite3_bind_blob(s_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
  } else {
    Text(i, v);
  }
}

Result<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) return db_->Error("bind", bind_rc_);
  const int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error("step", rc);
}

Status Stmt::Run() {
  auto r = Step();
  return r.ok() ? Status::Ok() : r.status();
}

std::string Stmt::ColText(int i) const {
  const auto* p = sqlite3_column_text(s_, i);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(s_, i)));
}

std::string Stmt::ColId(int i) const {
  if (sqlite3_column_type(s_, i) == SQLITE_BLOB) {
    const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(s_, i));
    return BytesToHex(p, sqlite3_column_bytes(s_, i));
  }
  return ColText(i);
}

}  // namespace ordertrace::journey::sqlite
