#include "redact/value_redactor.h"

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "common/rate_limit.h"
#include "common/text_format.h"

namespace ordertrace::redact {
namespace {

bool LooksLikeEmail(std::string_view v) {
  const size_t at = v.find('@');
  return at != std::string_view::npos && at > 0 && v.find('.', at) != std::string_view::npos;
}

// `v` lower-cased (ASCII), in *buffer when it has upper-case letters (most addresses do not, and
// are used as they are).
std::string_view Lowered(std::string_view v, std::string* buffer) {
  if (std::none_of(v.begin(), v.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return v;
  *buffer = AsciiLower(v);
  return *buffer;
}

// LabelOfKey without a copy: a view of a literal or of `key`.
std::string_view LabelOf(std::string_view key) {
  if (key.substr(0, 8) == "partner.") return "partner";
  if (key.substr(0, 5) == "user." || key.substr(0, 8) == "enduser.") return "user";
  return key.substr(0, key.find('.'));
}

// The longest prefix of `text` of at most `n` bytes that does not split a UTF-8 sequence.
size_t Utf8Prefix(std::string_view text, size_t n) {
  if (n >= text.size()) return text.size();
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

std::string LabelOfKey(std::string_view key) { return std::string(LabelOf(key)); }

PseudonymInput PseudonymInputOf(std::string_view key, std::string_view value, std::string* buffer) {
  if (LooksLikeEmail(value)) return PseudonymInput{"email", Lowered(value, buffer)};
  return PseudonymInput{LabelOf(key), value};
}

RedactionCounters::RedactionCounters() {
  auto own = [this] { return owned_.emplace_back(std::make_unique<metrics::Counter>()).get(); };
  pseudonymised_by_key_ = own();
  dropped_by_key_ = own();
  for (metrics::Counter*& c : by_detector_) c = own();
  truncation_tails_ = own();
}

RedactionCounters::RedactionCounters(metrics::Registry& registry) {
  auto& values = registry.AddCounter(
      "ordertrace_redaction_values_total",
      "Values redacted, by what was done (pseudonymised, masked, dropped) and what found them "
      "(key: a configured key; else the detector).  Never a value.",
      {"action", "detector"});
  pseudonymised_by_key_ = &values.With({"pseudonymised", "key"});
  dropped_by_key_ = &values.With({"dropped", "key"});
  for (Detector d : {Detector::kEmail, Detector::kPhone, Detector::kIban, Detector::kCard,
                     Detector::kJwt, Detector::kBearer}) {
    const bool masked = d == Detector::kCard || d == Detector::kJwt || d == Detector::kBearer;
    by_detector_[static_cast<size_t>(d)] =
        &values.With({masked ? "masked" : "pseudonymised", DetectorName(d)});
  }
  truncation_tails_ =
      &registry
           .AddCounter("ordertrace_redaction_truncated_values_total",
                       "Values cut at the attribute limit whose last bytes were cut off too "
                       "(they could hold part of a datum no detector recognises any more).")
           .With({});
}

const char* CarrierName(Carrier c) {
  switch (c) {
    case Carrier::kResourceAttribute:
      return "resource_attribute";
    case Carrier::kScopeAttribute:
      return "scope_attribute";
    case Carrier::kSpanAttribute:
      return "span_attribute";
    case Carrier::kEventAttribute:
      return "event_attribute";
    case Carrier::kLinkAttribute:
      return "link_attribute";
    case Carrier::kSpanName:
      return "span_name";
    case Carrier::kEventName:
      return "event_name";
    case Carrier::kStatusMessage:
      return "status_message";
    case Carrier::kUnknown:
      break;
  }
  return "unknown";
}

namespace {

// Whether a key the sender chose may be written to the log: it looks like an attribute name and
// holds nothing a detector finds (a sender could put personal data in a key).
bool LoggableKey(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  int digits = 0;
  for (char c : key) {
    const bool digit = c >= '0' && c <= '9';
    digits = digit ? digits + 1 : 0;
    if (digits >= 6) return false;
    const bool ok = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                    c == '_' || c == '-' || c == ':' || c == '/';
    if (!ok) return false;
  }
  return Scan(key, ScanOptions{}).empty();
}

// Rate-limited debug lines; shared by the copies of the observer (std::function copies it).
class DebugLog {
 public:
  explicit DebugLog(int per_second) : limit_(per_second) {}

  void Write(const RuleFired& f) {
    if (!log::Enabled(log::Level::kDebug)) return;
    uint64_t not_logged = 0;
    if (!limit_.Admit(&not_logged)) return;
    const bool by_key = f.rule != KeyRule::kScan;
    const char* rule = f.rule == KeyRule::kPseudonymise ? "pseudonymise_key"
                       : f.rule == KeyRule::kDrop       ? "drop_key"
                                                        : "detector";
    const char* detector = by_key ? "key" : DetectorName(f.detector);
    // A configured key (a key rule fired) is the operator's own text; any other key is the
    // sender's.
    const std::string_view key =
        f.key.empty() ? std::string_view("-")
                      : (by_key || LoggableKey(f.key) ? f.key : std::string_view("(withheld)"));
    log::Debug("redaction rule fired", {{"carrier", CarrierName(f.carrier)},
                                        {"rule", rule},
                                        {"detector", detector},
                                        {"key", key},
                                        {"not_logged", not_logged}});
  }

 private:
  PerSecondLimit limit_;
};

}  // namespace

RedactionObserver DebugLogObserver(int lines_per_second) {
  auto debug_log = std::make_shared<DebugLog>(lines_per_second);
  return [debug_log](const RuleFired& f) { debug_log->Write(f); };
}

Result<std::unique_ptr<ValueRedactor>> ValueRedactor::Create(
    RedactionRules rules, std::string entity_key,
    std::shared_ptr<const Pseudonymizer> pseudonymizer, std::shared_ptr<RedactionCounters> counters,
    RedactionObserver observer) {
  if (!pseudonymizer) return Status::InvalidArgument("no pseudonymisation key");
  std::unique_ptr<ValueRedactor> r(new ValueRedactor());
  auto list_of = [](KeyRule rule) {
    return rule == KeyRule::kPseudonymise ? "pseudonymise_keys"
           : rule == KeyRule::kDrop       ? "drop_keys"
                                          : "safe_keys";
  };
  auto add = [&r, &list_of](const std::string& key, KeyRule rule) -> Status {
    const KeyRule before = r->rule_of_key_.Set(key, rule);
    if (before != KeyRule::kScan && before != rule) {
      return Status::InvalidArgument("redaction: '" + key + "' is listed under both " +
                                     list_of(before) + " and " + list_of(rule) +
                                     " (the built-in defaults count too); list it once");
    }
    return Status::Ok();
  };
  for (const std::string& k : rules.pseudonymise_keys) {
    if (k == entity_key) {
      return Status::InvalidArgument(
          "redaction: the entity key '" + entity_key +
          "' cannot be pseudonymised or dropped: orders are found by it (journeys.entity_key)");
    }
    if (Status s = add(k, KeyRule::kPseudonymise); !s.ok()) return s;
  }
  for (const std::string& k : rules.drop_keys) {
    if (k == entity_key) {
      return Status::InvalidArgument(
          "redaction: the entity key '" + entity_key +
          "' cannot be pseudonymised or dropped: orders are found by it (journeys.entity_key)");
    }
    if (Status s = add(k, KeyRule::kDrop); !s.ok()) return s;
  }
  for (const std::string& k : rules.safe_keys) {
    if (Status s = add(k, KeyRule::kSafe); !s.ok()) return s;
  }
  r->rule_of_key_.Set(entity_key, KeyRule::kSafe);
  r->rules_ = std::move(rules);
  r->pseudonymizer_ = std::move(pseudonymizer);
  r->counters_ = counters ? std::move(counters) : std::make_shared<RedactionCounters>();
  r->observer_ = std::move(observer);
  return r;
}

KeyRule ValueRedactor::RuleOfKey(std::string_view key) const { return rule_of_key_.Find(key); }

bool ValueRedactor::DropsKey(std::string_view key) const {
  return RuleOfKey(key) == KeyRule::kDrop;
}
bool ValueRedactor::IsSafeKey(std::string_view key) const {
  return RuleOfKey(key) == KeyRule::kSafe;
}
bool ValueRedactor::PseudonymisesKey(std::string_view key) const {
  return RuleOfKey(key) == KeyRule::kPseudonymise;
}

Action ValueRedactor::RedactAttribute(KeyRule rule, std::string_view key, std::string_view value,
                                      std::string* out) const {
  switch (rule) {
    case KeyRule::kSafe:
      return Action::kKept;
    case KeyRule::kDrop:
      counters_->dropped_by_key().Inc();
      Fired(key, rule, Detector::kEmail);
      return Action::kDropped;
    case KeyRule::kPseudonymise: {
      if (value.empty() || pseudonymizer_->IsPseudonym(value)) return Action::kKept;
      std::string buffer;
      const PseudonymInput in = PseudonymInputOf(key, value, &buffer);
      out->clear();
      pseudonymizer_->AppendPseudonym(in.label, in.normalised, out);
      counters_->pseudonymised_by_key().Inc();
      Fired(key, rule, Detector::kEmail);
      return Action::kChanged;
    }
    case KeyRule::kScan:
      break;
  }
  return RedactFreeText(value, false, out, key);
}

Action ValueRedactor::RedactText(std::string_view text, bool truncated, std::string* out) const {
  return RedactFreeText(text, truncated, out, std::string_view());
}

Action ValueRedactor::RedactFreeText(std::string_view text, bool truncated, std::string* out,
                                     std::string_view key) const {
  std::string_view scanned = text;
  if (truncated && !text.empty()) {
    scanned = text.substr(
        0, Utf8Prefix(text,
                      text.size() > kTruncationTailBytes ? text.size() - kTruncationTailBytes : 0));
    counters_->truncation_tails().Inc();
  }
  if (scanned.empty() && !truncated) return Action::kKept;
  if (pseudonymizer_->IsPseudonym(scanned)) {
    if (!truncated) return Action::kKept;
    *out = std::string(scanned);
    return Action::kChanged;
  }
  const std::vector<Finding> findings = Scan(scanned, rules_.scan);
  if (findings.empty() && !truncated) return Action::kKept;
  out->clear();
  out->reserve(scanned.size() + findings.size() * 16);
  size_t pos = 0;
  for (const Finding& f : findings) {
    out->append(scanned.substr(pos, f.begin - pos));
    counters_->by_detector(f.detector).Inc();
    Fired(key, KeyRule::kScan, f.detector);
    switch (f.detector) {
      case Detector::kEmail:
      case Detector::kPhone:
      case Detector::kIban:
        pseudonymizer_->AppendPseudonym(DetectorName(f.detector), f.normalised, out);
        break;
      case Detector::kCard:
        out->append("[card:redacted]");
        break;
      case Detector::kJwt:
      case Detector::kBearer:
        out->append("[token:redacted]");
        break;
    }
    pos = f.end;
  }
  out->append(scanned.substr(pos));
  if (truncated) out->append("[truncated]");
  return Action::kChanged;
}

}  // namespace ordertrace::redact
