#include "journey/store/sqlite/verdict_log.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "journey/store/semantics.h"
#include "journey/store/sqlite/schema.h"

namespace ordertrace::journey::sqlite {
namespace {

constexpr int64_t kVerdictEntry = 1;
constexpr int64_t kEpisodeEntry = 2;

constexpr const char* kEntryCols =
    "seq, order_id, entry, stuck, since_ns, at_ns, cleared_ns, expected_service, text";

// One log row, read back.
struct Entry {
  int64_t seq = 0;
  std::string order_id;
  int64_t entry = 0;
  int64_t stuck = 0;
  Nanos since_ns = 0;
  Nanos at_ns = 0;
  Nanos cleared_ns = 0;
  std::string expected_service;
  std::string text;
};

Entry ReadEntry(const Stmt& s) {
  Entry e;
  e.seq = s.ColInt(0);
  e.order_id = s.ColText(1);
  e.entry = s.ColInt(2);
  e.stuck = s.ColInt(3);
  e.since_ns = s.ColInt(4);
  e.at_ns = s.ColInt(5);
  e.cleared_ns = s.ColInt(6);
  e.expected_service = s.ColText(7);
  e.text = s.ColText(8);
  return e;
}

// A stored stuck kind; an unknown value (a damaged or foreign row) is an error, not a kind.
Result<StuckKind> KindOf(int64_t v) {
  if (v < 0 || v > static_cast<int64_t>(StuckKind::kMessageUnprocessed)) {
    return Status::Internal("sqlite verdict log: unknown stuck kind " + std::to_string(v));
  }
  return static_cast<StuckKind>(v);
}

// An episode entry as the episode it logged (the layout of the file comment, verdict_log.h).
Result<StuckEpisode> EpisodeOf(const Entry& e) {
  ASSIGN_OR_RETURN(const StuckKind kind, KindOf(e.stuck));
  return StuckEpisode{e.order_id, e.text,  kind,        e.expected_service,
                      e.since_ns, e.at_ns, e.cleared_ns};
}

Status Apply(Db& db, const Entry& e) {
  if (e.entry == kVerdictEntry) {
    ASSIGN_OR_RETURN(const StuckKind kind, KindOf(e.stuck));
    return PutVerdict(db, {e.order_id, kind, e.since_ns, e.at_ns, e.expected_service, e.text});
  }
  if (e.entry == kEpisodeEntry) {
    ASSIGN_OR_RETURN(const StuckEpisode episode, EpisodeOf(e));
    return PutEpisode(db, episode);
  }
  return Status::Internal("sqlite " + db.path() + ": verdict log entry " + std::to_string(e.seq) +
                          " of unknown type " + std::to_string(e.entry));
}

}  // namespace

Status PutVerdict(Db& db, const OrderVerdict& v) {
  static const std::string sql =
      "UPDATE orders SET stuck = ?2, stuck_since_ns = ?3, deadline_ns = ?4, "
      "expected_service = ?5, summary = ?6 WHERE order_id = ?1";
  if (v.order_id.empty()) return Status::InvalidArgument("verdict without an order_id");
  ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
  s.Text(1, v.order_id);
  s.Int(2, static_cast<int64_t>(v.stuck));
  s.Int(3, v.stuck_since_ns);
  s.Int(4, v.deadline_ns);
  s.Text(5, v.expected_service);
  s.Text(6, v.summary);
  return s.Run();
}

Status PutEpisode(Db& db, const StuckEpisode& e) {
  static const std::string insert = Cols("INSERT INTO episodes (", kEpisodeCols) +
                                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
  static const std::string clear =
      "UPDATE episodes SET cleared_ns = ?2 WHERE order_id = ?1 AND cleared_ns = 0";
  ASSIGN_OR_RETURN(Stmt s, db.Statement(e.flagged_ns != 0 ? insert : clear));
  if (e.flagged_ns != 0) {
    BindEpisode(s, e);
  } else {
    s.Text(1, e.order_id);
    s.Int(2, e.cleared_ns);
  }
  return s.Run();
}

Result<int64_t> LogVerdicts(Db& db, const std::vector<OrderVerdict>& verdicts,
                            const std::vector<StuckEpisode>& episodes) {
  static const std::string sql = Cols("INSERT INTO verdict_log (", kEntryCols) +
                                 ") VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
  if (verdicts.empty() && episodes.empty()) return int64_t{0};
  ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
  // One row in the layout of the file comment (verdict_log.h), columns after seq.
  auto append = [&s](const std::string& order_id, int64_t entry, StuckKind stuck, Nanos since_ns,
                     Nanos at_ns, Nanos cleared_ns, const std::string& expected_service,
                     const std::string& text) {
    s.Text(1, order_id);
    s.Int(2, entry);
    s.Int(3, static_cast<int64_t>(stuck));
    s.Int(4, since_ns);
    s.Int(5, at_ns);
    s.Int(6, cleared_ns);
    s.Text(7, expected_service);
    s.Text(8, text);
    const Status run = s.Run();
    s.Reset();
    return run;
  };
  for (const OrderVerdict& v : verdicts) {
    if (v.order_id.empty()) return Status::InvalidArgument("verdict without an order_id");
    RETURN_IF_ERROR(append(v.order_id, kVerdictEntry, v.stuck, v.stuck_since_ns, v.deadline_ns, 0,
                           v.expected_service, v.summary));
  }
  for (const StuckEpisode& e : episodes) {
    if (e.order_id.empty()) return Status::InvalidArgument("stuck episode without an order_id");
    RETURN_IF_ERROR(append(e.order_id, kEpisodeEntry, e.kind, e.due_ns, e.flagged_ns, e.cleared_ns,
                           e.expected_service, e.stage));
  }
  return static_cast<int64_t>(verdicts.size() + episodes.size());
}

Result<int64_t> FoldOrders(Db& db, const std::vector<const std::string*>& order_ids) {
  static const std::string select =
      Cols("SELECT ", kEntryCols) + " FROM verdict_log WHERE order_id = ?1 ORDER BY seq";
  static const std::string del = "DELETE FROM verdict_log WHERE order_id = ?1";
  int64_t folded = 0;
  std::vector<Entry> entries;
  for (const std::string* id : order_ids) {
    entries.clear();
    {
      ASSIGN_OR_RETURN(Stmt s, db.Statement(select));
      s.Text(1, *id);
      RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) { entries.push_back(ReadEntry(row)); }));
    }
    if (entries.empty()) continue;
    for (const Entry& e : entries) RETURN_IF_ERROR(Apply(db, e));
    ASSIGN_OR_RETURN(Stmt d, db.Statement(del));
    d.Text(1, *id);
    RETURN_IF_ERROR(d.Run());
    folded += static_cast<int64_t>(entries.size());
  }
  return folded;
}

Result<int64_t> FoldOldest(Db& db, size_t max, int64_t up_to_seq) {
  static const std::string select =
      Cols("SELECT ", kEntryCols) + " FROM verdict_log WHERE seq <= ?1 ORDER BY seq LIMIT ?2";
  static const std::string del = "DELETE FROM verdict_log WHERE seq <= ?1";
  std::vector<Entry> entries;
  {
    ASSIGN_OR_RETURN(Stmt s, db.Statement(select));
    s.Int(1, up_to_seq > 0 ? up_to_seq : INT64_MAX);
    s.Int(2, static_cast<int64_t>(std::min<size_t>(max, size_t{1} << 30)));
    RETURN_IF_ERROR(ForEachRow(s, [&](const Stmt& row) { entries.push_back(ReadEntry(row)); }));
  }
  if (entries.empty()) return int64_t{0};
  const int64_t last = entries.back().seq;
  // By order id (stable: an order's entries keep the log's order), so consecutive updates fall
  // on the same or neighbouring pages of orders and episodes.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.order_id < b.order_id; });
  for (const Entry& e : entries) RETURN_IF_ERROR(Apply(db, e));
  ASSIGN_OR_RETURN(Stmt d, db.Statement(del));
  d.Int(1, last);
  RETURN_IF_ERROR(d.Run());
  return static_cast<int64_t>(entries.size());
}

Result<int64_t> LastSeq(Db& db) {
  return db.QueryInt("SELECT coalesce(max(seq), 0) FROM verdict_log");
}

Result<int64_t> CountEntries(Db& db) { return db.QueryInt("SELECT count(*) FROM verdict_log"); }

Status OverlayVerdicts(Db& db, OrderRow* row) {
  static const std::string sql =
      "SELECT stuck, since_ns, at_ns, expected_service, text FROM verdict_log "
      "WHERE order_id = ?1 AND entry = 1 ORDER BY seq DESC LIMIT 1";
  ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
  s.Text(1, row->order_id);
  ASSIGN_OR_RETURN(const bool found, s.Step());
  if (!found) return Status::Ok();
  ASSIGN_OR_RETURN(row->stuck, KindOf(s.ColInt(0)));
  row->stuck_since_ns = s.ColInt(1);
  row->deadline_ns = s.ColInt(2);
  row->expected_service = s.ColText(3);
  row->summary = s.ColText(4);
  return Status::Ok();
}

Status OverlayEpisodes(Db& db, Nanos since, std::vector<StuckEpisode>* episodes) {
  static const std::string sql = Cols("SELECT ", kEntryCols) + " FROM verdict_log WHERE entry = " +
                                 std::to_string(kEpisodeEntry) + " ORDER BY seq";
  EpisodeMap all;
  for (StuckEpisode& e : *episodes) {
    std::pair<std::string, Nanos> key{e.order_id, e.flagged_ns};
    all.try_emplace(std::move(key), std::move(e));
  }
  ASSIGN_OR_RETURN(Stmt s, db.Statement(sql));
  RETURN_IF_ERROR(ForEachRow(s, [&all](const Stmt& row) -> Status {
    ASSIGN_OR_RETURN(const StuckEpisode e, EpisodeOf(ReadEntry(row)));
    journey::PutEpisode(all, e);  // as the fold writes it (semantics.h)
    return Status::Ok();
  }));
  episodes->clear();
  for (auto& [key, e] : all) {
    if (EpisodeSince(e, since)) episodes->push_back(std::move(e));
  }
  return Status::Ok();
}

}  // namespace ordertrace::journey::sqlite
