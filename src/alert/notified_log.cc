#include "alert/notified_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "alert/alert.h"
#include "common/url.h"

namespace ordertrace::alert {
namespace {

constexpr char kHeader[] = "# ordertrace alert marks v1\n";

std::string Errno(const std::string& what, const std::string& path, int err) {
  return what + " '" + path + "': " + std::strerror(err);
}

// Splits `line` on single spaces.
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t at = 0;
  for (;;) {
    const size_t sp = line.find(' ', at);
    out.push_back(line.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
    if (sp == std::string_view::npos) return out;
    at = sp + 1;
  }
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A text field: percent-encoded, "-" for the empty string (a stage not known yet).
std::string Encode(std::string_view s) {
  if (s.empty()) return "-";
  if (s == "-") return "%2D";
  return url::PercentEncode(s);
}

bool ParseText(std::string_view s, std::string* out) {
  out->clear();
  if (s == "-") return true;
  return !s.empty() && url::PercentDecode(s, out);
}

// One record applied to `state`; "" when it parsed, else what is wrong.
std::string ParseLine(std::string_view line, NotifiedState* state) {
  const std::vector<std::string_view> f = Fields(line);
  if (f[0].size() != 1) return "unknown record type";
  const char type = f[0][0];
  int64_t time = 0;
  if (type == 'W') {
    if (f.size() != 2 || f[1].empty() || f[1].size() > 64) return "bad fingerprint";
    state->sinks = std::string(f[1]);
    return "";
  }
  if (type == 'F' || type == 'R') {
    NotifiedEpisode e;
    if (f.size() != (type == 'F' ? 5u : 3u)) return "wrong number of fields";
    if (!ParseInt(f[1], &time) || time <= 0) return "bad stuck_since";
    e.stuck_since = time;
    if (!ParseText(f[2], &e.order_id) || e.order_id.empty()) return "bad order id";
    const auto key = std::make_pair(e.order_id, e.stuck_since);
    if (type == 'R') {
      state->episodes.erase(key);
      return "";
    }
    if (!ParseText(f[3], &e.stage) || !ParseText(f[4], &e.service)) return "bad stage or service";
    state->episodes[key] = std::move(e);
    return "";
  }
  if (type == 'S' || type == 'E') {
    NotifiedStorm s;
    if (f.size() != (type == 'S' ? 5u : 4u)) return "wrong number of fields";
    if (!ParseInt(f[1], &time) || time <= 0) return "bad starts_at";
    s.starts_at = time;
    size_t next = 2;
    if (type == 'S') {
      int64_t count = 0;
      if (!ParseInt(f[2], &count) || count < 0) return "bad count";
      s.count = static_cast<uint64_t>(count);
      next = 3;
    }
    if (!ParseText(f[next], &s.stage) || !ParseText(f[next + 1], &s.service)) {
      return "bad stage or service";
    }
    const auto key = std::make_pair(s.stage, s.service);
    if (type == 'E') {
      // Only the storm that ended: a later one of the same group has its own starts_at.
      if (auto it = state->storms.find(key);
          it != state->storms.end() && it->second.starts_at == s.starts_at) {
        state->storms.erase(it);
      }
      return "";
    }
    state->storms[key] = std::move(s);
    return "";
  }
  return "unknown record type";
}

}  // namespace

void ParseNotified(std::string_view text, NotifiedState* state, NotifiedParseStats* stats) {
  size_t number = 0;
  auto skip = [&](const std::string& why) {
    ++stats->skipped;
    if (stats->first_bad == 0) {
      stats->first_bad = number;
      stats->first_error = why;
    }
  };
  size_t at = 0;
  while (at < text.size()) {
    ++number;
    const size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) {  // a write cut short by a crash
      skip("torn last line (no newline)");
      break;
    }
    const std::string_view line = text.substr(at, nl - at);
    at = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.size() > NotifiedLog::kMaxLine) {
      skip("line longer than " + std::to_string(NotifiedLog::kMaxLine) + " bytes");
      continue;
    }
    if (std::string why = ParseLine(line, state); !why.empty()) {
      skip(why);
      continue;
    }
    ++stats->records;
  }
}

NotifiedLog::NotifiedLog(std::string path) : path_(std::move(path)) {}

std::string NotifiedLog::Fingerprint(const std::vector<std::string>& urls) {
  std::string joined;
  for (const std::string& u : urls) joined += u + "\n";
  return HmacSha256Hex("ordertrace alert marks", joined).substr(0, 32);
}

NotifiedLog::~NotifiedLog() { Close(); }

void NotifiedLog::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status NotifiedLog::Load(NotifiedState* state, NotifiedParseStats* stats) {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Internal(Errno("cannot open", path_, errno));
  }
  std::string text;
  char buf[64 * 1024];
  bool cut = false;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::Internal(Errno("cannot read", path_, err));
    }
    if (n == 0) break;
    const size_t room = kMaxFileBytes - text.size();
    text.append(buf, std::min(room, static_cast<size_t>(n)));
    if (static_cast<size_t>(n) > room) {
      cut = true;
      break;
    }
  }
  ::close(fd);
  if (cut) {  // the part read ends at the last newline; the rest is one skipped "line"
    text.resize(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  }
  ParseNotified(text, state, stats);
  if (cut) {
    ++stats->skipped;
    if (stats->first_bad == 0) stats->first_error = "file larger than 256 MiB: the rest is unread";
  }
  records_ = stats->records;
  return Status::Ok();
}

std::string SerializeNotified(const NotifiedState& state) {
  std::string text = kHeader;
  if (!state.sinks.empty()) text += "W " + state.sinks + "\n";
  for (const auto& [key, s] : state.storms) text += NotifiedLog::StormRecord(s);
  for (const auto& [key, e] : state.episodes) text += NotifiedLog::FiringRecord(e);
  return text;
}

Status NotifiedLog::Rewrite(const NotifiedState& state) {
  const std::string text = SerializeNotified(state);
  const size_t records = state.storms.size() + state.episodes.size();
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Internal(Errno("cannot create", tmp, errno));
  size_t done = 0;
  int err = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    done += static_cast<size_t>(n);
  }
  // Synced before the rename: after a machine crash the file is the old one or the new one.
  while (err == 0 && ::fsync(fd) != 0) {
    if (errno != EINTR) err = errno;
  }
  ::close(fd);
  if (err == 0 && ::rename(tmp.c_str(), path_.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return Status::Internal(Errno("cannot rewrite", path_, err));
  }
  Close();  // appends go to the new file
  records_ = records;
  return Status::Ok();
}

Status NotifiedLog::Append(const std::string& line) {
  if (line.size() > kMaxLine + 1) {
    return Status::InvalidArgument("record longer than " + std::to_string(kMaxLine) + " bytes");
  }
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return Status::Internal(Errno("cannot open", path_, errno));
  }
  // One write(): the record is in the file, whole, once it returns (a short write of a few
  // hundred bytes to a regular file only happens when the disk is full).
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Internal(Errno("cannot append to", path_, errno));
    done += static_cast<size_t>(n);
  }
  ++records_;
  return Status::Ok();
}

std::string NotifiedLog::FiringRecord(const NotifiedEpisode& e) {
  return "F " + std::to_string(e.stuck_since) + " " + Encode(e.order_id) + " " + Encode(e.stage) +
         " " + Encode(e.service) + "\n";
}

std::string NotifiedLog::ResolvedRecord(const NotifiedEpisode& e) {
  return "R " + std::to_string(e.stuck_since) + " " + Encode(e.order_id) + "\n";
}

std::string NotifiedLog::StormRecord(const NotifiedStorm& s) {
  return "S " + std::to_string(s.starts_at) + " " + std::to_string(s.count) + " " +
         Encode(s.stage) + " " + Encode(s.service) + "\n";
}

std::string NotifiedLog::StormEndedRecord(const NotifiedStorm& s) {
  return "E " + std::to_string(s.starts_at) + " " + Encode(s.stage) + " " + Encode(s.service) +
         "\n";
}

Status NotifiedLog::AppendFiring(const NotifiedEpisode& e) { return Append(FiringRecord(e)); }
Status NotifiedLog::AppendResolved(const NotifiedEpisode& e) { return Append(ResolvedRecord(e)); }
Status NotifiedLog::AppendStorm(const NotifiedStorm& s) { return Append(StormRecord(s)); }
Status NotifiedLog::AppendStormEnded(const NotifiedStorm& s) { return Append(StormEndedRecord(s)); }

}  // namespace ordertrace::alert
