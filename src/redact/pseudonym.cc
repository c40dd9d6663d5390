// SHA256_Init/Update/Final (Prepare says why); declared deprecated in OpenSSL 3.0.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "redact/pseudonym.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/base64.h"

namespace ordertrace::redact {
namespace {

constexpr size_t kPseudonymBytes = 16;
constexpr size_t kPseudonymChars = 22;  // base64url of 16 bytes, unpadded

bool IsKeyIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::string ReadAll(int fd) {
  std::string data;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > (1 << 16)) break;  // a key file is small; stop reading a huge one
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return data;
}

// The SHA-256 state after absorbing the key XOR `pad` (RFC 2104: keys longer than the block are
// hashed first), as a SHA256_CTX.
//
// Why OpenSSL's low-level SHA256_* and not EVP: an HMAC over a short value is three or four
// compressions, and through EVP (a state copied with EVP_MD_CTX_copy_ex, EVP_DigestFinal_ex
// through the provider) one pseudonym took about 6,600 instructions (callgrind,
// bench/redact_bench.cc) against about 1,000 with SHA256_CTX copied as a struct; the same SHA-NI
// code computes both.  They are deprecated in OpenSSL 3.0 but present in every 3.x; the
// pseudonym tests check the result against Python's hmac, so a change would be caught.
std::shared_ptr<void> Prepare(const std::string& secret, unsigned char pad) {
  unsigned char block[SHA256_CBLOCK] = {};
  if (secret.size() > sizeof block) {
    SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), block);
  } else {
    std::memcpy(block, secret.data(), secret.size());
  }
  for (unsigned char& b : block) b ^= pad;
  std::shared_ptr<SHA256_CTX> ctx(new SHA256_CTX, [](SHA256_CTX* c) {
    OPENSSL_cleanse(c, sizeof *c);
    delete c;
  });
  const bool ok = SHA256_Init(ctx.get()) == 1 && SHA256_Update(ctx.get(), block, sizeof block) == 1;
  OPENSSL_cleanse(block, sizeof block);
  if (!ok) return nullptr;
  return ctx;
}

}  // namespace

Status ValidateKeyId(std::string_view id) {
  if (id.empty() || id.size() > 32) {
    return Status::InvalidArgument("a key id has 1 to 32 characters");
  }
  for (char c : id) {
    if (!IsKeyIdChar(c)) {
      return Status::InvalidArgument("key id '" + std::string(id) +
                                     "': use only letters, digits, '_' and '-'");
    }
  }
  return Status::Ok();
}

Result<PseudonymKey> LoadKey(const std::string& id, const std::string& path) {
  if (Status s = ValidateKeyId(id); !s.ok()) return s;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::InvalidArgument("cannot read the key file '" + path + "' (key " + id +
                                   "): " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument("key file '" + path + "' (key " + id + ") is not a file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return Status::InvalidArgument("key file '" + path + "' (key " + id +
                                   ") is readable by others: chmod 600 it");
  }
  PseudonymKey key;
  key.id = id;
  key.secret = ReadAll(fd);
  ::close(fd);
  // A text key written with a trailing newline keeps working.
  while (!key.secret.empty() && (key.secret.back() == '\n' || key.secret.back() == '\r')) {
    key.secret.pop_back();
  }
  if (key.secret.size() < kMinKeyBytes) {
    OPENSSL_cleanse(key.secret.data(), key.secret.size());
    return Status::InvalidArgument("key file '" + path + "' (key " + id + ") holds fewer than " +
                                   std::to_string(kMinKeyBytes) + " bytes");
  }
  return key;
}

Result<PseudonymKey> LoadOrCreateKey(const std::string& id, const std::string& path,
                                     bool* created) {
  *created = false;
  if (Status s = ValidateKeyId(id); !s.ok()) return s;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno != EEXIST) {
    return Status::InvalidArgument("cannot create the key file '" + path +
                                   "': " + std::strerror(errno));
  }
  if (fd >= 0) {
    // 32 random bytes written as 43 base64url characters, used as they are: a raw byte string
    // could end in '\n' or '\r', which LoadKey trims from a text key (1 key in 128 refused).
    unsigned char random[kMinKeyBytes];
    if (RAND_bytes(random, sizeof random) != 1) {
      ::close(fd);
      ::unlink(path.c_str());
      return Status::Unavailable("the random number generator failed (OpenSSL RAND_bytes)");
    }
    std::string secret;
    Base64UrlAppend(std::string_view(reinterpret_cast<const char*>(random), sizeof random),
                    &secret);
    OPENSSL_cleanse(random, sizeof random);
    const ssize_t n = ::write(fd, secret.data(), secret.size());
    OPENSSL_cleanse(secret.data(), secret.size());
    const bool synced = n == static_cast<ssize_t>(secret.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!synced) {
      ::unlink(path.c_str());
      return Status::Unavailable("cannot write the key file '" + path + "'");
    }
    *created = true;
  }
  return LoadKey(id, path);
}

Result<std::shared_ptr<const Pseudonymizer>> Pseudonymizer::Create(std::vector<PseudonymKey> keys) {
  if (keys.empty()) return Status::InvalidArgument("no pseudonymisation key");
  std::set<std::string> ids;
  for (const PseudonymKey& k : keys) {
    if (Status s = ValidateKeyId(k.id); !s.ok()) return s;
    if (!ids.insert(k.id).second) {
      return Status::InvalidArgument("key id '" + k.id + "' is used twice");
    }
    if (k.secret.size() < kMinKeyBytes) {
      return Status::InvalidArgument("key '" + k.id + "' has fewer than " +
                                     std::to_string(kMinKeyBytes) + " bytes");
    }
  }
  std::vector<PreparedKey> prepared;
  for (PseudonymKey& k : keys) {
    PreparedKey p;
    auto inner = Prepare(k.secret, 0x36);
    auto outer = Prepare(k.secret, 0x5c);
    if (!inner || !outer) return Status::Internal("OpenSSL cannot set up SHA-256");
    p.key = std::move(k);
    p.inner = std::move(inner);
    p.outer = std::move(outer);
    prepared.push_back(std::move(p));
  }
  return std::shared_ptr<const Pseudonymizer>(new Pseudonymizer(std::move(prepared)));
}

void Pseudonymizer::Make(const PreparedKey& key, std::string_view label,
                         std::string_view normalised, std::string* out) {
  unsigned char inner[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
  static constexpr unsigned char kSeparator = 0x1f;
  SHA256_CTX ctx = *static_cast<const SHA256_CTX*>(key.inner.get());
  const bool ok = SHA256_Update(&ctx, label.data(), label.size()) == 1 &&
                  SHA256_Update(&ctx, &kSeparator, 1) == 1 &&
                  SHA256_Update(&ctx, normalised.data(), normalised.size()) == 1 &&
                  SHA256_Final(inner, &ctx) == 1 &&
                  (ctx = *static_cast<const SHA256_CTX*>(key.outer.get()), true) &&
                  SHA256_Update(&ctx, inner, sizeof inner) == 1 && SHA256_Final(mac, &ctx) == 1;
  // `ctx` is not cleansed: it is a copy of a prepared state that stays in memory for the key's
  // life anyway, and OPENSSL_cleanse cost a sixth of a pseudonym.
  if (!ok) std::abort();  // SHA-256 cannot fail once set up; a pseudonym must never be skipped
  out->append("pse:");
  out->append(key.key.id);
  out->push_back(':');
  Base64UrlAppend(std::string_view(reinterpret_cast<const char*>(mac), kPseudonymBytes), out);
}

std::string Pseudonymizer::Pseudonym(std::string_view label, std::string_view normalised) const {
  std::string out;
  AppendPseudonym(label, normalised, &out);
  return out;
}

void Pseudonymizer::AppendPseudonym(std::string_view label, std::string_view normalised,
                                    std::string* out) const {
  Make(keys_.front(), label, normalised, out);
}

std::vector<std::string> Pseudonymizer::AllPseudonyms(std::string_view label,
                                                      std::string_view normalised) const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const PreparedKey& k : keys_) {
    out.emplace_back();
    Make(k, label, normalised, &out.back());
  }
  return out;
}

bool HasPseudonymShape(std::string_view value) {
  if (value.substr(0, 4) != "pse:") return false;
  const size_t colon = value.find(':', 4);
  if (colon == std::string_view::npos || value.size() - colon - 1 != kPseudonymChars) return false;
  if (!ValidateKeyId(value.substr(4, colon - 4)).ok()) return false;
  for (char c : value.substr(colon + 1)) {
    if (!IsKeyIdChar(c)) return false;  // the base64url alphabet is the key id alphabet
  }
  return true;
}

std::vector<std::string> Pseudonymizer::key_ids() const {
  std::vector<std::string> ids;
  for (const PreparedKey& k : keys_) ids.push_back(k.key.id);
  return ids;
}

bool Pseudonymizer::IsPseudonym(std::string_view value) const {
  if (!HasPseudonymShape(value)) return false;
  const std::string_view id = value.substr(4, value.find(':', 4) - 4);
  for (const PreparedKey& k : keys_) {
    if (k.key.id == id) return true;
  }
  return false;
}

}  // namespace ordertrace::redact
