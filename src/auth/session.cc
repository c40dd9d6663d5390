#include "auth/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <vector>

#include "common/base64.h"

namespace ordertrace::auth {
namespace {

std::array<unsigned char, SHA256_DIGEST_LENGTH> Sha256(std::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

Nanos ToNanos(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Result<std::string> RandomUrlToken(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    return Status::Unavailable("the random number generator failed (OpenSSL RAND_bytes)");
  }
  std::string token =
      Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
  OPENSSL_cleanse(buf.data(), buf.size());
  return token;
}

std::string PkceChallengeS256(std::string_view verifier) {
  const auto digest = Sha256(verifier);
  return Base64UrlEncode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto digest = Sha256(data);
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char c : digest) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string_view> CookieValue(std::string_view header, std::string_view name) {
  std::optional<std::string_view> found;
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view pair = header.substr(pos, end - pos);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      if (found) return std::nullopt;  // twice: ambiguous
      std::string_view value = pair.substr(eq + 1);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      found = value;
    }
    pos = end + 1;
  }
  return found;
}

std::string HostCookie(std::string_view name, std::string_view value,
                       std::chrono::seconds max_age) {
  std::string out;
  out.append(name).append("=").append(value);
  out += "; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=";
  out += std::to_string(std::max<int64_t>(0, max_age.count()));
  return out;
}

std::string SafeReturnPath(std::string_view r) {
  if (r.empty() || r.size() > 2048 || r[0] != '/') return "/";
  if (r.size() > 1 && (r[1] == '/' || r[1] == '\\')) return "/";
  for (char c : r) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return "/";
  }
  return std::string(r);
}

// ---- PendingLogins ----

PendingLogins::PendingLogins(const Clock& clock, PendingLoginOptions options)
    : clock_(clock), options_(options) {}

void PendingLogins::DropExpiredLocked(Nanos now) {
  const Nanos lifetime = ToNanos(options_.lifetime);
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    it = now - it->second.created >= lifetime ? by_hash_.erase(it) : std::next(it);
  }
}

Result<PendingLogins::Started> PendingLogins::Start(std::string_view return_to) {
  Started s;
  for (std::string* field : {&s.cookie, &s.login.state, &s.login.nonce, &s.login.code_verifier}) {
    auto token = RandomUrlToken(32);
    if (!token.ok()) return token.status();
    *field = std::move(token).value();
  }
  s.login.return_to = SafeReturnPath(return_to);
  const Nanos now = clock_.Now();
  s.login.created = now;
  MutexLock lock(mu_);
  if (by_hash_.size() >= options_.max_entries) {
    DropExpiredLocked(now);
    while (by_hash_.size() >= options_.max_entries) {
      auto oldest = std::min_element(
          by_hash_.begin(), by_hash_.end(),
          [](const auto& a, const auto& b) { return a.second.created < b.second.created; });
      by_hash_.erase(oldest);
    }
  }
  by_hash_[Sha256Hex(s.cookie)] = s.login;
  return s;
}

Result<PendingLogin> PendingLogins::Finish(std::string_view cookie, std::string_view state) {
  const std::string key = Sha256Hex(cookie);
  PendingLogin login;
  {
    MutexLock lock(mu_);
    auto it = by_hash_.find(key);
    if (it == by_hash_.end()) return Status::NotFound("no sign-in in progress for this browser");
    login = std::move(it->second);
    by_hash_.erase(it);
  }
  if (clock_.Now() - login.created >= ToNanos(options_.lifetime)) {
    return Status::NotFound("the sign-in took too long; start again");
  }
  if (!ConstantTimeEqual(login.state, state)) {
    return Status::InvalidArgument("the state returned by the identity provider does not match");
  }
  return login;
}

size_t PendingLogins::size() const {
  MutexLock lock(mu_);
  return by_hash_.size();
}

// ---- SessionStore ----

SessionStore::SessionStore(const Clock& clock, SessionOptions options)
    : clock_(clock), options_(options) {}

bool SessionStore::ExpiredLocked(const Session& s, Nanos now) const {
  return now - s.last_seen >= ToNanos(options_.idle_timeout) ||
         now - s.created >= ToNanos(options_.absolute_timeout);
}

Result<std::string> SessionStore::Create(Session session) {
  auto id = RandomUrlToken(32);
  if (!id.ok()) return id.status();
  const Nanos now = clock_.Now();
  session.created = now;
  session.last_seen = now;
  MutexLock lock(mu_);
  if (by_hash_.size() >= options_.max_sessions) {
    for (auto it = by_hash_.begin(); it != by_hash_.end();) {
      it = ExpiredLocked(it->second, now) ? by_hash_.erase(it) : std::next(it);
    }
    while (by_hash_.size() >= options_.max_sessions) {
      auto first = std::min_element(
          by_hash_.begin(), by_hash_.end(),
          [](const auto& a, const auto& b) { return a.second.created < b.second.created; });
      by_hash_.erase(first);
    }
  }
  by_hash_[Sha256Hex(*id)] = std::move(session);
  return id;
}

SessionStore::Touched SessionStore::Touch(std::string_view cookie) {
  const std::string key = Sha256Hex(cookie);
  const Nanos now = clock_.Now();
  Touched t;
  MutexLock lock(mu_);
  auto it = by_hash_.find(key);
  if (it == by_hash_.end()) return t;
  if (ExpiredLocked(it->second, now)) {
    by_hash_.erase(it);
    t.expired = true;
    return t;
  }
  it->second.last_seen = now;
  t.session = it->second;
  return t;
}

bool SessionStore::Update(std::string_view cookie_hash, const Session& session) {
  MutexLock lock(mu_);
  auto it = by_hash_.find(std::string(cookie_hash));
  if (it == by_hash_.end()) return false;
  const Nanos created = it->second.created, last_seen = it->second.last_seen;
  it->second = session;
  it->second.created = created;
  it->second.last_seen = last_seen;
  return true;
}

std::optional<Session> SessionStore::Remove(std::string_view cookie) {
  const std::string key = Sha256Hex(cookie);
  MutexLock lock(mu_);
  auto it = by_hash_.find(key);
  if (it == by_hash_.end()) return std::nullopt;
  Session s = std::move(it->second);
  by_hash_.erase(it);
  return s;
}

std::vector<SessionStore::Due> SessionStore::RefreshDue(Nanos before) const {
  std::vector<Due> due;
  const Nanos now = clock_.Now();
  MutexLock lock(mu_);
  for (const auto& [hash, s] : by_hash_) {
    if (s.access_expires != 0 && s.access_expires < before && !ExpiredLocked(s, now)) {
      due.push_back(Due{hash, s});
    }
  }
  return due;
}

void SessionStore::RemoveByHash(std::string_view cookie_hash) {
  MutexLock lock(mu_);
  by_hash_.erase(std::string(cookie_hash));
}

size_t SessionStore::Expire() {
  const Nanos now = clock_.Now();
  MutexLock lock(mu_);
  size_t removed = 0;
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    if (ExpiredLocked(it->second, now)) {
      it = by_hash_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

size_t SessionStore::size() const {
  MutexLock lock(mu_);
  return by_hash_.size();
}

}  // namespace ordertrace::auth
