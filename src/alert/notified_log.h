// NotifiedLog: the dispatcher's record of what the sinks that do not resend (the webhook) have
// been told, so that a restart does not tell them again (docs/alerting.md, "Restarts").
//
// One small append-only text file, `<data_dir>/alerts-notified.log`, one record per line,
// fields separated by one space and percent-encoded (an order id may hold any byte; "-" is
// the empty string):
//
//   # ordertrace alert marks v1                      a comment (written at the top by Rewrite)
//   W <fingerprint>                                  the sinks the records are about (Rewrite)
//   F <stuck_since_ns> <order_id> <stage> <service>  an episode was notified as firing
//   R <stuck_since_ns> <order_id>                    ... and as resolved: it is forgotten
//   S <starts_at_ns> <count> <stage> <service>       a storm was notified (with this count)
//   E <starts_at_ns> <stage> <service>               ... and as over: it is forgotten
//
// A record is appended with one write() right after the delivery it records (a SIGKILL keeps
// what write() returned; a machine crash may lose the last records, and a notification is then
// repeated, never lost).  The file is rewritten whole (a temporary file, fsync, rename) with the
// live records only when the dispatcher asks (at a rebuild, and when it has grown).
//
// The file is read as untrusted input: a line longer than kMaxLine, a torn last line (no
// newline) or a line that does not parse is skipped and counted; what it said is then treated as
// not notified (at worst a notification is repeated).
//
// Thread-safety: not thread-safe: one owner (the dispatcher's sender thread).  ParseNotified is a
// pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace ordertrace::alert {

// One stuck episode of one order the non-resending sinks heard of as firing.
struct NotifiedEpisode {
  std::string order_id;
  Nanos stuck_since = 0;
  std::string stage, service;  // the alert's labels, for the resolved notification
};

// A storm (OrderStuckStorm of one stage and service) the non-resending sinks heard of.
struct NotifiedStorm {
  std::string stage, service;
  Nanos starts_at = 0;
  uint64_t count = 0;  // the count they were last told
};

// What the records of a file say, once replayed in order.
struct NotifiedState {
  // Which sinks were told (a digest of their URLs; "" unknown): told of nothing when they
  // change.
  std::string sinks;
  std::map<std::pair<std::string, Nanos>, NotifiedEpisode> episodes;    // (order id, stuck_since)
  std::map<std::pair<std::string, std::string>, NotifiedStorm> storms;  // (stage, service)
};

struct NotifiedParseStats {
  size_t records = 0;       // lines that parsed (comments and blank lines not counted)
  size_t skipped = 0;       // lines that did not, a torn last line included
  size_t first_bad = 0;     // the line number (from 1) of the first skipped one; 0 none
  std::string first_error;  // what was wrong with it
};

// Replays `text` (a whole file's content) into `*state`; never fails: bad lines are counted in
// `*stats`.
void ParseNotified(std::string_view text, NotifiedState* state, NotifiedParseStats* stats);
// The file's content holding `state`'s records only (what Rewrite writes).
std::string SerializeNotified(const NotifiedState& state);

class NotifiedLog {
 public:
  static constexpr size_t kMaxLine = 4096;  // bytes, newline excluded
  // Larger files are read up to this much; the rest counts as one skipped line.
  static constexpr size_t kMaxFileBytes = size_t{256} << 20;

  explicit NotifiedLog(std::string path);
  // The fingerprint of the sinks `urls` (NotifiedState::sinks): a keyed SHA-256 digest, so a
  // URL holding a token is not written out.
  static std::string Fingerprint(const std::vector<std::string>& urls);
  ~NotifiedLog();
  NotifiedLog(const NotifiedLog&) = delete;
  NotifiedLog& operator=(const NotifiedLog&) = delete;

  const std::string& path() const { return path_; }

  // Reads the file into `*state` (empty when the file does not exist).  An error only when the
  // file exists but cannot be read.
  Status Load(NotifiedState* state, NotifiedParseStats* stats);
  // Replaces the file by one holding `state`'s records only.
  Status Rewrite(const NotifiedState& state);

  Status AppendFiring(const NotifiedEpisode& e);
  Status AppendResolved(const NotifiedEpisode& e);
  Status AppendStorm(const NotifiedStorm& s);
  Status AppendStormEnded(const NotifiedStorm& s);

  // Records in the file: those of the last Load/Rewrite plus those appended since.
  size_t records() const { return records_; }

  static std::string FiringRecord(const NotifiedEpisode& e);
  static std::string ResolvedRecord(const NotifiedEpisode& e);
  static std::string StormRecord(const NotifiedStorm& s);
  static std::string StormEndedRecord(const NotifiedStorm& s);

 private:
  Status Append(const std::string& line);
  void Close();

  std::string path_;
  int fd_ = -1;  // opened for appending on first use
  size_t records_ = 0;
};

}  // namespace ordertrace::alert
