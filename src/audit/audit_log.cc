#include "audit/audit_log.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/thread_annotations.h"

namespace ordertrace::audit {
namespace {

using Json = nlohmann::ordered_json;

std::string Rfc3339Millis(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t seconds = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

// A random (version 4) UUID.
std::string NewUuid() {
  unsigned char b[16] = {};
  if (RAND_bytes(b, sizeof b) != 1) return "";
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

int OpenForAppend(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::fchmod(fd, 0600);  // an existing file keeps no wider mode
  return fd;
}

}  // namespace

AuditEvent::Source SourceOf(const std::string& peer, std::string forwarded_for) {
  AuditEvent::Source source;
  source.forwarded_for = std::move(forwarded_for);
  const size_t colon = peer.rfind(':');
  if (colon == std::string::npos) {
    source.ip = peer;
    return source;
  }
  std::string ip = peer.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  source.ip = std::move(ip);
  const unsigned long port = std::strtoul(peer.c_str() + colon + 1, nullptr, 10);
  source.port = port <= 65535 ? static_cast<uint16_t>(port) : 0;
  return source;
}

struct AuditLog::Impl {
  std::string path;
  metrics::Counter* write_errors = nullptr;
  Mutex mu;
  int fd GUARDED_BY(mu) = -1;
  bool failing GUARDED_BY(mu) = false;  // a write failed; logged once until one succeeds
};

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                 metrics::Registry* registry) {
  const int fd = OpenForAppend(path);
  if (fd < 0) {
    return Status::Unavailable("audit log (audit.file): cannot open '" + path +
                               "': " + std::strerror(errno));
  }
  std::unique_ptr<AuditLog> log(new AuditLog());
  log->impl_ = std::make_unique<Impl>();
  log->impl_->path = path;
  if (registry != nullptr) {
    log->impl_->write_errors =
        &registry
             ->AddCounter("ordertrace_audit_write_errors_total",
                          "Access audit lines that could not be written (audit.file).")
             .With({});
  }
  MutexLock lock(log->impl_->mu);
  log->impl_->fd = fd;
  return log;
}

AuditLog::~AuditLog() {
  if (!impl_) return;
  MutexLock lock(impl_->mu);
  if (impl_->fd >= 0) ::close(impl_->fd);
  impl_->fd = -1;
}

std::string AuditLog::Format(const AuditEvent& e, std::chrono::system_clock::time_point now) {
  Json line;
  line["ts"] = Rfc3339Millis(now);
  line["audit_id"] = e.request_id.empty() ? NewUuid() : e.request_id;
  line["event"] = e.event;
  line["outcome"] = e.outcome;
  line["reason"] = e.reason;
  Json actor;
  actor["sub"] = e.actor.sub;
  actor["iss"] = e.actor.iss;
  actor["name"] = e.actor.name;
  actor["roles"] = e.actor.roles;
  actor["auth"] = e.actor.method;
  actor["client_id"] = e.actor.client_id;
  line["actor"] = std::move(actor);
  Json source;
  source["ip"] = e.source.ip;
  source["port"] = e.source.port;
  source["forwarded_for"] = e.source.forwarded_for;
  line["source"] = std::move(source);
  if (!e.http.method.empty()) {
    Json http;
    http["method"] = e.http.method;
    http["route"] = e.http.route;
    http["status"] = e.http.status;
    http["latency_ms"] = e.http.latency_ms;
    line["http"] = std::move(http);
  }
  Json resource = Json::object();
  for (const auto& [key, value] : e.resource) resource[key] = value;
  line["resource"] = std::move(resource);
  line["user_agent"] = e.user_agent.substr(0, kMaxUserAgentBytes);
  // Invalid UTF-8 (a cut user agent, hostile input) becomes U+FFFD instead of an exception.
  return line.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void AuditLog::Record(const AuditEvent& event) {
  std::string line;
  try {
    line = Format(event, std::chrono::system_clock::now());
  } catch (const std::exception& e) {
    log::Error("audit line not formatted", {{"error", e.what()}});
    if (impl_->write_errors) impl_->write_errors->Inc();
    return;
  }
  line += '\n';
  MutexLock lock(impl_->mu);
  size_t done = 0;
  int err = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(impl_->fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0) {
    if (impl_->failing) log::Info("audit log writes again", {{"file", impl_->path}});
    impl_->failing = false;
    return;
  }
  if (impl_->write_errors) impl_->write_errors->Inc();
  if (!impl_->failing) {
    log::Error("audit log write failed; lines are lost until it works again",
               {{"file", impl_->path}, {"error", std::strerror(err)}});
  }
  impl_->failing = true;
}

Status AuditLog::Reopen() {
  const int fd = OpenForAppend(impl_->path);
  if (fd < 0) {
    return Status::Unavailable("audit log (audit.file): cannot reopen '" + impl_->path +
                               "': " + std::strerror(errno));
  }
  int old = -1;
  {
    MutexLock lock(impl_->mu);
    old = impl_->fd;
    impl_->fd = fd;
  }
  if (old >= 0) ::close(old);
  return Status::Ok();
}

}  // namespace ordertrace::audit
