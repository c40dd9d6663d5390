// Pseudonyms for personal data: `pse:<key id>:<base64url of the first 16 bytes of
// HMAC-SHA256(key, label 0x1F normalised value)>`.  Keyed, so that a small space of values (partner
// ids, phone numbers) cannot be reversed by hashing every candidate; stable under one key, so one
// partner keeps one pseudonym and its orders can still be grouped and searched; the key id shows
// which key made it.  Rotation starts a new pseudonym space: the first key is current, the others
// are kept only to recognise their pseudonyms and to look a clear value up under each.
//
// Keys are files of at least 32 random bytes (raw, or text that is used as it is); without a
// configured key the gateway creates one in its data directory, 0600 (LoadOrCreateKey).
//
// Thread-safety: a Pseudonymizer is immutable; share it (std::shared_ptr<const>) and swap the
// pointer on a reload.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::redact {

struct PseudonymKey {
  std::string id;      // [A-Za-z0-9_-]{1,32}; appears in every pseudonym it makes
  std::string secret;  // >= 32 bytes; never logged
};

inline constexpr size_t kMinKeyBytes = 32;

// Reads a key file; errors name the file and the problem (never its contents): unreadable, too
// short, or readable by others than its owner.
Result<PseudonymKey> LoadKey(const std::string& id, const std::string& path);

// The key at `path`, created with 32 random bytes (mode 0600) when the file does not exist; sets
// *created when it did so.
Result<PseudonymKey> LoadOrCreateKey(const std::string& id, const std::string& path, bool* created);

// A key id: 1-32 characters of [A-Za-z0-9_-].
Status ValidateKeyId(std::string_view id);

// Whether `value` has the shape of a pseudonym (`pse:<valid key id>:<22 base64url characters>`)
// under any key id, known here or not (Pseudonymizer::IsPseudonym also wants the key).
bool HasPseudonymShape(std::string_view value);

class Pseudonymizer {
 public:
  // `keys` non-empty, ids unique and valid, secrets >= kMinKeyBytes (InvalidArgument naming the
  // id otherwise).  The first is current.
  static Result<std::shared_ptr<const Pseudonymizer>> Create(std::vector<PseudonymKey> keys);

  // The pseudonym of `normalised` under the current key; `label` keeps classes apart ("partner",
  // "user", "email", "phone", "iban").
  std::string Pseudonym(std::string_view label, std::string_view normalised) const;
  // The same, appended to *out, without an allocation when *out has room.  (No cache of recent
  // values: measured in the gateway, a lookup that missed the CPU's caches cost more than the
  // HMAC's two SHA-256 compressions; and so no clear value outlives its request.)
  void AppendPseudonym(std::string_view label, std::string_view normalised, std::string* out) const;

  // The pseudonyms of `normalised` under every key, current first (a lookup by a clear value).
  std::vector<std::string> AllPseudonyms(std::string_view label, std::string_view normalised) const;

  // Whether `value` is a pseudonym made under one of the keys here (its shape and key id): such
  // a value passes a second gateway unchanged.
  bool IsPseudonym(std::string_view value) const;

  const std::string& current_key_id() const { return keys_.front().key.id; }
  // The ids of the keys, the current first.
  std::vector<std::string> key_ids() const;

 private:
  // HMAC-SHA256 (RFC 2104) with the key's inner and outer hash states prepared once: OpenSSL 3's
  // one-shot HMAC() fetches the digest and schedules the key on every call (1.3 us here); a
  // prepared state copied as a struct costs a small part of that (pseudonym.cc, Prepare).
  struct PreparedKey {
    PseudonymKey key;
    std::shared_ptr<void> inner, outer;  // SHA256_CTX after key^ipad, key^opad
  };
  explicit Pseudonymizer(std::vector<PreparedKey> keys) : keys_(std::move(keys)) {}
  static void Make(const PreparedKey& key, std::string_view label, std::string_view normalised,
                   std::string* out);
  std::vector<PreparedKey> keys_;
};

}  // namespace ordertrace::redact
