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
// What fired is counted (RedactionCounters, by action and detector, never a value) and, for the
// debug mode, told to an optional observer with the carrier (SetCarrier) and the attribute key,
// never the
// value (RuleFired; DebugLogObserver writes it to the log, rate-limited).
//
// Thread-safety: immutable after construction; Redact* may run concurrently.  Counters are
// atomic; the observer must be thread-safe (DebugLogObserver is).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
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

// Counts by action and detector, never values.  Made with a registry, they are
// ordertrace_redaction_values_total{action="pseudonymised|masked|dropped",
// detector="key|email|phone|card|iban|jwt|bearer"} and ordertrace_redaction_truncated_values_total
// on /metrics.  One set is shared by the redactors that replace each other on a key rotation
// (ValueRedactor::Create's `counters`), so the totals never go backwards.
//
// Thread-safety: the counters are atomic; every method may be called from any thread.
class RedactionCounters {
 public:
  // Counters of their own, on no registry (tests, tools).
  RedactionCounters();
  // Registered in `registry` (once per registry: make one and share it).
  explicit RedactionCounters(metrics::Registry& registry);
  RedactionCounters(const RedactionCounters&) = delete;
  RedactionCounters& operator=(const RedactionCounters&) = delete;

  // action="pseudonymised", detector="key": a value of a pseudonymise_keys key.
  metrics::Counter& pseudonymised_by_key() const { return *pseudonymised_by_key_; }
  // action="dropped", detector="key": an attribute of a drop_keys key.
  metrics::Counter& dropped_by_key() const { return *dropped_by_key_; }
  // A datum the detector found in free text (pseudonymised: email, phone, iban; masked: card,
  // jwt, bearer).
  metrics::Counter& by_detector(Detector d) const { return *by_detector_[static_cast<size_t>(d)]; }
  // Values cut at the attribute limit whose last bytes were cut off too.
  metrics::Counter& truncation_tails() const { return *truncation_tails_; }

 private:
  std::vector<std::unique_ptr<metrics::Counter>> owned_;
  metrics::Counter* pseudonymised_by_key_ = nullptr;
  metrics::Counter* dropped_by_key_ = nullptr;
  std::array<metrics::Counter*, 6> by_detector_{};  // indexed by Detector
  metrics::Counter* truncation_tails_ = nullptr;
};

// Where a value sits in a span: which attributes, or which free text.  For the debug log only.
enum class Carrier : uint8_t {
  kUnknown,
  kResourceAttribute,
  kScopeAttribute,
  kSpanAttribute,
  kEventAttribute,
  kLinkAttribute,
  kSpanName,
  kEventName,
  kStatusMessage,
};
// "resource_attribute", "scope_attribute", "span_attribute", "event_attribute",
// "link_attribute", "span_name", "event_name", "status_message", "unknown".
const char* CarrierName(Carrier c);

// Where the values redacted on this thread sit, for the observer only: whoever walks a request
// (wire_redactor.cc) sets it before it redacts a message's free text or attributes
// (SetCarrier).  A thread-local rather than an argument of every Redact* call, so that the hot
// path's calls stay as they are; nothing reads it unless an observer is installed.
inline thread_local Carrier current_carrier = Carrier::kUnknown;
inline void SetCarrier(Carrier c) { current_carrier = c; }

// One rule that fired on one value: never the value nor any part of it.
struct RuleFired {
  Carrier carrier = Carrier::kUnknown;
  // The attribute's key ("" for free text).  Untrusted when `rule` is kScan (a key the
  // sender chose): whoever logs it must check it (DebugLogObserver does).
  std::string_view key;
  // kPseudonymise or kDrop: the key rule fired; kScan: `detector` found a datum in the text.
  KeyRule rule = KeyRule::kScan;
  Detector detector = Detector::kEmail;
};
// Called for every rule that fired, on the redacting thread: keep it cheap and thread-safe.
using RedactionObserver = std::function<void(const RuleFired&)>;

// An observer that logs each rule that fired at debug level ("redaction rule fired", with
// carrier, rule, detector and key), at most `lines_per_second` lines a second; the next line
// written says how many were left out (not_logged).  A key that is not a configured one is
// logged only when it looks like an attribute name ([A-Za-z0-9._:/-], at most 64 bytes, no run
// of 6 or more digits, nothing a detector finds); otherwise it is written as "(withheld)".
RedactionObserver DebugLogObserver(int lines_per_second = 20);

class ValueRedactor {
 public:
  // InvalidArgument when `entity_key` is among the pseudonymised or dropped keys (lookups by id
  // would break) or a key is listed under two rules (the message names the rules' lists, e.g.
  // "pseudonymise_keys and safe_keys").  `counters`: shared with the redactor this one replaces
  // (null: counters of its own).  `observer`: told of every rule that fired (null: nobody).
  static Result<std::unique_ptr<ValueRedactor>> Create(
      RedactionRules rules, std::string entity_key,
      std::shared_ptr<const Pseudonymizer> pseudonymizer,
      std::shared_ptr<RedactionCounters> counters = nullptr, RedactionObserver observer = nullptr);

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

  const RedactionCounters& counters() const { return *counters_; }
  const Pseudonymizer& pseudonymizer() const { return *pseudonymizer_; }

 private:
  ValueRedactor() = default;
  Action RedactFreeText(std::string_view text, bool truncated, std::string* out,
                        std::string_view key) const;
  void Fired(std::string_view key, KeyRule rule, Detector detector) const {
    if (observer_) observer_(RuleFired{current_carrier, key, rule, detector});
  }

  KeyRuleTable rule_of_key_;
  RedactionRules rules_;
  std::shared_ptr<const Pseudonymizer> pseudonymizer_;
  std::shared_ptr<RedactionCounters> counters_;
  RedactionObserver observer_;
};

// Bytes cut from the end of a truncated value (longer than any datum a detector finds).
inline constexpr size_t kTruncationTailBytes = 64;

// The label a pseudonymised key's value is hashed under ("partner.id" → "partner").
std::string LabelOfKey(std::string_view key);

// What a value under a pseudonymised key is hashed as: an e-mail-like value as "email",
// lower-cased (so the same address in free text gives the same pseudonym), anything else under
// LabelOfKey(key) as it is.  `normalised` may point into *buffer.  Used by the redaction and by
// lookups of a clear value (the API's partner lookup), so both always agree.
struct PseudonymInput {
  std::string_view label;
  std::string_view normalised;
};
PseudonymInput PseudonymInputOf(std::string_view key, std::string_view value, std::string* buffer);

}  // namespace ordertrace::redact
