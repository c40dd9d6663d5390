#include "redact/value_redactor.h"

namespace ordertrace::redact {
namespace {

bool LooksLikeEmail(std::string_view v) {
  const size_t at = v.find('@');
  return at != std::string_view::npos && at > 0 && v.find('.', at) != std::string_view::npos;
}

// `v` lower-cased (ASCII), in *buffer when it has upper-case letters (most addresses do not, and
// are used as they are).
std::string_view Lowered(std::string_view v, std::string* buffer) {
  size_t i = 0;
  while (i < v.size() && !(v[i] >= 'A' && v[i] <= 'Z')) ++i;
  if (i == v.size()) return v;
  buffer->assign(v);
  for (; i < buffer->size(); ++i) {
    char& c = (*buffer)[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
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

Result<std::unique_ptr<ValueRedactor>> ValueRedactor::Create(
    RedactionRules rules, std::string entity_key,
    std::shared_ptr<const Pseudonymizer> pseudonymizer) {
  if (!pseudonymizer) return Status::InvalidArgument("no pseudonymisation key");
  std::unique_ptr<ValueRedactor> r(new ValueRedactor());
  auto add = [&r](const std::string& key, KeyRule rule) -> Status {
    const KeyRule before = r->rule_of_key_.Set(key, rule);
    if (before != KeyRule::kScan && before != rule) {
      return Status::InvalidArgument("redaction: '" + key +
                                     "' is listed under two rules (pseudonymise, drop, safe); "
                                     "list it once");
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
      counters_.dropped_by_key.fetch_add(1, std::memory_order_relaxed);
      return Action::kDropped;
    case KeyRule::kPseudonymise: {
      if (value.empty() || pseudonymizer_->IsPseudonym(value)) return Action::kKept;
      const bool email = LooksLikeEmail(value);
      std::string buffer;
      out->clear();
      pseudonymizer_->AppendPseudonym(email ? "email" : LabelOf(key),
                                      email ? Lowered(value, &buffer) : value, out);
      counters_.pseudonymised_by_key.fetch_add(1, std::memory_order_relaxed);
      return Action::kChanged;
    }
    case KeyRule::kScan:
      break;
  }
  return RedactText(value, false, out);
}

Action ValueRedactor::RedactText(std::string_view text, bool truncated, std::string* out) const {
  std::string_view scanned = text;
  if (truncated && !text.empty()) {
    scanned = text.substr(
        0, Utf8Prefix(text,
                      text.size() > kTruncationTailBytes ? text.size() - kTruncationTailBytes : 0));
    counters_.truncation_tails.fetch_add(1, std::memory_order_relaxed);
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
    counters_.by_detector[static_cast<size_t>(f.detector)].fetch_add(1, std::memory_order_relaxed);
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
