// The rules applied to one attribute or one free-text string: by key first (pseudonymise, drop,
// or never touch), then by value (the detectors of detect.h on every other string).
//
//   key in pseudonymise_keys   the whole value becomes a pseudonym with the key's label
//                              ("partner" for partner.id, "user" for the user.* and enduser.*
//                              keys; e-mail-like values are lower-cased first)
//   key in drop_keys           the attribute is removed
//   key in safe_keys           kept as it is (the entity key, ids, service.name)
//   anything else              e-mails, phones and IBANs become pseudonyms in place; cards,
//                              JWTs and bearer tokens are masked
//
// A value that already is a pseudonym under a known key passes unchanged, so a chain of two
// gateways does not hash twice.
//
// Thread-safety: immutable after construction; Redact* may run concurrently.  Counters are
// atomic.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "redact/detect.h"
#include "redact/key_rules.h"
#include "redact/pseudonym.h"

namespace ordertrace::redact {

struct RedactionRules {
  std::vector<std::string> pseudonymise_keys = {"partner.id", "enduser.id", "user.id",
                                                "user.email", "user.name",  "user.full_name"};
  std::vector<std::string> drop_keys = {"http.request.header.authorization",
                                        "http.request.header.cookie",
                                        "http.response.header.set-cookie", "client.address"};
  // Never touched; the entity key is added by the caller.
  std::vector<std::string> safe_keys = {"order.id",
                                        "order.stage",
                                        "order.step.status",
                                        "service.name",
                                        "messaging.message.id",
                                        "messaging.message.conversation_id",
                                        "messaging.rabbitmq.destination.routing_key",
                                        "messaging.destination.name",
                                        "trace_id",
                                        "span_id"};
  ScanOptions scan;
};

// What happened to a value.
enum class Action { kKept, kChanged, kDropped };

// Counts by action and detector, never values.
struct RedactionCounters {
  std::atomic<uint64_t> pseudonymised_by_key{0};
  std::atomic<uint64_t> dropped_by_key{0};
  std::array<std::atomic<uint64_t>, 6> by_detector{};  // indexed by Detector
  std::atomic<uint64_t> truncation_tails{0};           // tails cut after a truncated value
};

class ValueRedactor {
 public:
  // InvalidArgument when `entity_key` is among the pseudonymised or dropped keys (lookups by id
  // would break) or a key is listed under two rules.
  static Result<std::unique_ptr<ValueRedactor>> Create(
      RedactionRules rules, std::string entity_key,
      std::shared_ptr<const Pseudonymizer> pseudonymizer);

  // An attribute's string value under `key`.  kChanged: *out holds the new value.
  Action RedactAttribute(std::string_view key, std::string_view value, std::string* out) const {
    return RedactAttribute(RuleOfKey(key), key, value, out);
  }
  // The same with the key's rule looked up already (one lookup per attribute on the hot path).
  Action RedactAttribute(KeyRule rule, std::string_view key, std::string_view value,
                         std::string* out) const;
  KeyRule RuleOfKey(std::string_view key) const;
  // Whether an attribute with `key` is dropped whatever its value (for non-string values too).
  bool DropsKey(std::string_view key) const;
  // Whether `key` is never touched (its array and kvlist values included).
  bool IsSafeKey(std::string_view key) const;
  // Whether `key`'s value becomes a pseudonym whatever it holds (nested values included).
  bool PseudonymisesKey(std::string_view key) const;
  // Free text (span and event names, status messages, other string values).  `truncated`: the
  // value was cut at the attribute limit, so its last bytes may hold part of a datum the
  // detectors cannot recognise any more: they are cut off too (kTruncationTailBytes).
  Action RedactText(std::string_view text, bool truncated, std::string* out) const;

  const RedactionCounters& counters() const { return counters_; }
  const Pseudonymizer& pseudonymizer() const { return *pseudonymizer_; }

 private:
  ValueRedactor() = default;
  KeyRuleTable rule_of_key_;
  RedactionRules rules_;
  std::shared_ptr<const Pseudonymizer> pseudonymizer_;
  mutable RedactionCounters counters_;
};

// Bytes cut from the end of a truncated value (longer than any datum a detector finds).
inline constexpr size_t kTruncationTailBytes = 64;

// The label a pseudonymised key's value is hashed under ("partner.id" → "partner").
std::string LabelOfKey(std::string_view key);

}  // namespace ordertrace::redact
