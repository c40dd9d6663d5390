#include "redact/pseudonym.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace ordertrace::redact {
namespace {

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kPseudonymBytes = 16;
constexpr size_t kPseudonymChars = 22;  // base64url of 16 bytes, unpadded

std::string Base64Url(const unsigned char* data, size_t n) {
  std::string out;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += kBase64Url[(v >> s) & 63];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{data[i]} << 16;
    out += kBase64Url[(v >> 18) & 63];
    out += kBase64Url[(v >> 12) & 63];
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out += kBase64Url[(v >> 18) & 63];
    out += kBase64Url[(v >> 12) & 63];
    out += kBase64Url[(v >> 6) & 63];
  }
  return out;
}

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
    unsigned char secret[kMinKeyBytes];
    if (RAND_bytes(secret, sizeof secret) != 1) {
      ::close(fd);
      ::unlink(path.c_str());
      return Status::Unavailable("the random number generator failed (OpenSSL RAND_bytes)");
    }
    const ssize_t n = ::write(fd, secret, sizeof secret);
    OPENSSL_cleanse(secret, sizeof secret);
    const bool synced = n == static_cast<ssize_t>(sizeof secret) && ::fsync(fd) == 0;
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
  return std::shared_ptr<const Pseudonymizer>(new Pseudonymizer(std::move(keys)));
}

std::string Pseudonymizer::Make(const PseudonymKey& key, std::string_view label,
                                std::string_view normalised) {
  std::string message;
  message.reserve(label.size() + 1 + normalised.size());
  message.append(label).push_back('\x1f');
  message.append(normalised);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  OPENSSL_cleanse(message.data(), message.size());
  return "pse:" + key.id + ":" + Base64Url(mac, kPseudonymBytes);
}

std::string Pseudonymizer::Pseudonym(std::string_view label, std::string_view normalised) const {
  return Make(keys_.front(), label, normalised);
}

std::vector<std::string> Pseudonymizer::AllPseudonyms(std::string_view label,
                                                      std::string_view normalised) const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const PseudonymKey& k : keys_) out.push_back(Make(k, label, normalised));
  return out;
}

bool Pseudonymizer::IsPseudonym(std::string_view value) const {
  if (value.substr(0, 4) != "pse:") return false;
  const size_t colon = value.find(':', 4);
  if (colon == std::string_view::npos || value.size() - colon - 1 != kPseudonymChars) return false;
  const std::string_view id = value.substr(4, colon - 4);
  for (char c : value.substr(colon + 1)) {
    if (!IsKeyIdChar(c)) return false;  // the base64url alphabet is the key id alphabet
  }
  for (const PseudonymKey& k : keys_) {
    if (k.id == id) return true;
  }
  return false;
}

}  // namespace ordertrace::redact
