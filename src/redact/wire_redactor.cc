#include "redact/wire_redactor.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "otlp/wire.h"
#include "redact/short_hash.h"

namespace ordertrace::redact {
namespace {

namespace wire = otlp::wire;

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendBytesField(std::string* out, uint32_t field, std::string_view bytes) {
  AppendVarint(out, wire::Tag(field, wire::kLengthDelimited));
  AppendVarint(out, bytes.size());
  out->append(bytes);
}

// Writes v at w (room for VarintSize(v) bytes); returns the end.
char* PutVarint(char* w, uint64_t v) {
  while (v >= 0x80) {
    *w++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *w++ = static_cast<char>(v);
  return w;
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// A length-delimited field written in place: the tag, room for the length sized for
// `expected` (the input's length: a rewritten message is usually the same size class), then the
// body appended by the caller; End() writes the length, moving the body only when its varint
// needs another size.  No temporary buffer per nested message.
class NestedField {
 public:
  NestedField(std::string* out, uint32_t field, size_t expected) : out_(out) {
    AppendVarint(out, wire::Tag(field, wire::kLengthDelimited));
    at_ = out->size();
    width_ = VarintSize(expected);
    out->append(width_, '\0');
  }
  void End() {
    const size_t body = out_->size() - at_ - width_;
    const size_t need = VarintSize(body);
    if (need < width_) {
      out_->erase(at_, width_ - need);
    } else if (need > width_) {
      out_->insert(at_, need - width_, '\0');
    }
    PutVarint(out_->data() + at_, body);
  }

 private:
  std::string* out_;
  size_t at_ = 0, width_ = 0;
};

std::string_view View(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

// Which message a length-delimited field holds, per the OTLP trace protos.
enum class Msg {
  kRequest,
  kResourceSpans,
  kResource,
  kScopeSpans,
  kScope,
  kSpan,
  kEvent,
  kLink,
  kStatus,
};

struct Ctx {
  explicit Ctx(const ValueRedactor& r) : redactor(r) {}
  const ValueRedactor& redactor;
  bool changed = false;  // the rebuild of one attribute (RewriteKeyValue) changed it
  const char* error = nullptr;
  std::string scratch;
  uint32_t max_value_bytes = 0;  // RedactExportRequest's; 0: none
};

bool RewriteKeyValue(Ctx& ctx, uint32_t field, std::string_view in, std::string_view forced_key,
                     std::string* out, int depth);
bool RewriteAnyValue(Ctx& ctx, std::string_view key, KeyRule rule, std::string_view in,
                     std::string* out, int depth);

// A string under `rule` for `key` (free text: kScan, no key); the new value, if any, in
// ctx.scratch.  A scanned string longer than the value limit is cut to it here, with its tail
// (ValueRedactor::RedactText): the decoder would cut it where the detectors could not see the
// whole of a datum.
Action RedactString(Ctx& ctx, KeyRule rule, std::string_view key, std::string_view value) {
  if (rule == KeyRule::kScan && ctx.max_value_bytes != 0 && value.size() > ctx.max_value_bytes) {
    return ctx.redactor.RedactText(value.substr(0, ctx.max_value_bytes), true, &ctx.scratch);
  }
  return ctx.redactor.RedactAttribute(rule, key, value, &ctx.scratch);
}

// Writes string field `field` holding `value` under `rule` for `key`.
void WriteString(Ctx& ctx, uint32_t field, KeyRule rule, std::string_view key,
                 std::string_view value, std::string* out) {
  const Action a = RedactString(ctx, rule, key, value);
  if (a == Action::kKept) {
    AppendBytesField(out, field, value);
    return;
  }
  ctx.changed = true;
  AppendBytesField(out, field, a == Action::kDropped ? std::string_view() : ctx.scratch);
}

bool RewriteAnyValue(Ctx& ctx, std::string_view key, KeyRule rule, std::string_view in,
                     std::string* out, int depth) {
  if (depth > kMaxRewriteDepth) {
    ctx.changed = true;  // an empty AnyValue
    return true;
  }
  const bool forced = rule == KeyRule::kPseudonymise;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  while (p < end) {
    const uint8_t* field_start = p;
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) return (ctx.error = "truncated tag"), false;
    const uint32_t field = tag >> 3;
    const bool ld = (tag & 7) == wire::kLengthDelimited;
    const uint8_t* value_start = p;
    if (ld && (field == 1 || field == 5 || field == 6 || field == 7)) {
      const uint8_t* d;
      uint32_t n;
      if (!wire::ReadLengthDelimited(p, end, &d, &n)) return (ctx.error = "bad length"), false;
      const std::string_view v = View(d, n);
      if (field == 1) {  // string_value
        WriteString(ctx, 1, rule, key, v, out);
      } else if (field == 7) {  // bytes_value: raw bytes can hold text too
        if (rule == KeyRule::kSafe) {
          out->append(View(field_start, p - field_start));
        } else if (forced) {
          static constexpr char kHex[] = "0123456789abcdef";
          std::string hex;
          for (unsigned char c : v) {
            hex += kHex[c >> 4];
            hex += kHex[c & 15];
          }
          WriteString(ctx, 1, rule, key, hex, out);
          ctx.changed = true;
        } else {
          WriteString(ctx, 7, rule, key, v, out);
        }
      } else {  // 5: ArrayValue{1: AnyValue}, 6: KeyValueList{1: KeyValue}
        NestedField list(out, field, n);
        const uint8_t* q = d;
        const uint8_t* qend = d + n;
        while (q < qend) {
          uint32_t t;
          if (!wire::ReadTag(q, qend, &t)) return (ctx.error = "truncated tag"), false;
          if (t != wire::Tag(1, wire::kLengthDelimited)) {
            if (const char* err = wire::SkipField(t, q, qend)) return (ctx.error = err), false;
            ctx.changed = true;  // unknown field dropped
            continue;
          }
          const uint8_t* ed;
          uint32_t en;
          if (!wire::ReadLengthDelimited(q, qend, &ed, &en)) {
            return (ctx.error = "bad length"), false;
          }
          if (field == 5) {
            NestedField elem(out, 1, en);
            if (!RewriteAnyValue(ctx, key, rule, View(ed, en), out, depth + 1)) return false;
            elem.End();
          } else if (!RewriteKeyValue(ctx, 1, View(ed, en), forced ? key : std::string_view(), out,
                                      depth + 1)) {
            return false;
          }
        }
        list.End();
      }
      continue;
    }
    if (const char* err = wire::SkipField(tag, p, end)) return (ctx.error = err), false;
    if (forced && !ld && (field == 3 || field == 4)) {
      // int_value (varint) or double_value (fixed64) under a pseudonymised key: an id is an id
      // whatever its type, so it becomes the pseudonym of its decimal text.
      const uint8_t* q = value_start;
      std::string text;
      if (field == 3 && (tag & 7) == wire::kVarint) {
        uint64_t v = 0;
        wire::ReadVarint(q, end, &v);
        text = std::to_string(static_cast<int64_t>(v));
      } else if (field == 4 && (tag & 7) == wire::kFixed64) {
        uint64_t bits = 0;
        wire::ReadFixed64(q, end, &bits);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", d);
        text = buf;
      }
      if (!text.empty()) {
        WriteString(ctx, 1, rule, key, text, out);
        ctx.changed = true;
        continue;
      }
    }
    if (field >= 2 && field <= 4 && !ld) {
      out->append(View(field_start, p - field_start));  // bool, int, double
    } else {
      ctx.changed = true;  // unknown: dropped
    }
  }
  return true;
}

// A KeyValue message's parts: its key, its value (an AnyValue; `has_value` when present), and
// whether it had fields OTLP does not define.
struct KeyValueParts {
  std::string_view key, value;
  bool has_value = false, unknown = false;
};

bool ReadKeyValue(Ctx& ctx, std::string_view in, KeyValueParts* kv) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  while (p < end) {
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) return (ctx.error = "truncated tag"), false;
    if (tag == wire::Tag(1, wire::kLengthDelimited) ||
        tag == wire::Tag(2, wire::kLengthDelimited)) {
      const uint8_t* d;
      uint32_t n;
      if (!wire::ReadLengthDelimited(p, end, &d, &n)) return (ctx.error = "bad length"), false;
      if ((tag >> 3) == 1) {
        kv->key = View(d, n);
      } else {
        kv->value = View(d, n);
        kv->has_value = true;
      }
    } else {
      if (const char* err = wire::SkipField(tag, p, end)) return (ctx.error = err), false;
      kv->unknown = true;
    }
  }
  return true;
}

// Writes KeyValue `in` as field `field` of *out: dropped (nothing written), copied, or with its
// value rewritten.  `forced_key`: inside a value of a pseudonymised key, whose rule applies to
// everything nested.
bool RewriteKeyValue(Ctx& ctx, uint32_t field, std::string_view in, std::string_view forced_key,
                     std::string* out, int depth) {
  KeyValueParts parts;
  if (!ReadKeyValue(ctx, in, &parts)) return false;
  const auto& [key, value, has_value, unknown] = parts;
  const bool forced = !forced_key.empty();
  const KeyRule rule = forced ? KeyRule::kPseudonymise : ctx.redactor.RuleOfKey(key);
  if (rule == KeyRule::kDrop) {
    ctx.redactor.RedactAttribute(rule, key, "", &ctx.scratch);  // counted as dropped
    ctx.changed = true;
    return true;
  }
  if (rule == KeyRule::kSafe && !unknown) {
    AppendBytesField(out, field, in);
    return true;
  }
  if (unknown) ctx.changed = true;
  NestedField kv(out, field, in.size());
  AppendBytesField(out, 1, key);
  if (has_value) {
    if (rule == KeyRule::kSafe) {
      AppendBytesField(out, 2, value);
    } else {
      NestedField v(out, 2, value.size());
      if (!RewriteAnyValue(ctx, forced ? forced_key : key, rule, value, out, depth + 1)) {
        return false;
      }
      v.End();
    }
  }
  kv.End();
  return true;
}

// The fields of `msg` that hold messages (descended into), free text (redacted) or key-values;
// everything else it knows is copied.
struct FieldRule {
  enum Kind { kCopy, kMessage, kText, kAttributes, kUnknown } kind;
  Msg child;
};

constexpr FieldRule RuleOf(Msg msg, uint32_t field, uint32_t wire_type) {
  const bool ld = wire_type == wire::kLengthDelimited;
  auto copy_if = [](bool known) {
    return FieldRule{known ? FieldRule::kCopy : FieldRule::kUnknown, Msg::kRequest};
  };
  switch (msg) {
    case Msg::kRequest:
      if (field == 1 && ld) return {FieldRule::kMessage, Msg::kResourceSpans};
      return copy_if(false);
    case Msg::kResourceSpans:
      if (field == 1 && ld) return {FieldRule::kMessage, Msg::kResource};
      if (field == 2 && ld) return {FieldRule::kMessage, Msg::kScopeSpans};
      return copy_if(field == 3 && ld);  // schema_url
    case Msg::kResource:
      if (field == 1 && ld) return {FieldRule::kAttributes, Msg::kRequest};
      return copy_if(field == 2 && !ld);  // dropped_attributes_count
    case Msg::kScopeSpans:
      if (field == 1 && ld) return {FieldRule::kMessage, Msg::kScope};
      if (field == 2 && ld) return {FieldRule::kMessage, Msg::kSpan};
      return copy_if(field == 3 && ld);
    case Msg::kScope:
      if (field == 3 && ld) return {FieldRule::kAttributes, Msg::kRequest};
      return copy_if(((field == 1 || field == 2) && ld) || (field == 4 && !ld));
    case Msg::kSpan:
      if (field == 5 && ld) return {FieldRule::kText, Msg::kRequest};
      if (field == 9 && ld) return {FieldRule::kAttributes, Msg::kRequest};
      if (field == 11 && ld) return {FieldRule::kMessage, Msg::kEvent};
      if (field == 13 && ld) return {FieldRule::kMessage, Msg::kLink};
      if (field == 15 && ld) return {FieldRule::kMessage, Msg::kStatus};
      return copy_if(((field >= 1 && field <= 4) && ld) || ((field >= 6 && field <= 8) && !ld) ||
                     ((field == 10 || field == 12 || field == 14 || field == 16) && !ld));
    case Msg::kEvent:
      if (field == 2 && ld) return {FieldRule::kText, Msg::kRequest};
      if (field == 3 && ld) return {FieldRule::kAttributes, Msg::kRequest};
      return copy_if((field == 1 || field == 4) && !ld);
    case Msg::kLink:
      if (field == 4 && ld) return {FieldRule::kAttributes, Msg::kRequest};
      return copy_if(((field >= 1 && field <= 3) && ld) || ((field == 5 || field == 6) && !ld));
    case Msg::kStatus:
      if (field == 2 && ld) return {FieldRule::kText, Msg::kRequest};
      return copy_if((field == 1 || field == 3) && !ld);
  }
  return copy_if(false);
}

// RuleOf for every one-byte tag (fields 1-15), computed at compile time: one load a field
// instead of the switch.
struct RuleTable {
  FieldRule of[static_cast<int>(Msg::kStatus) + 1][128] = {};
  constexpr RuleTable() {
    for (int m = 0; m <= static_cast<int>(Msg::kStatus); ++m) {
      for (uint32_t tag = 0; tag < 128; ++tag)
        of[m][tag] = RuleOf(static_cast<Msg>(m), tag >> 3, tag & 7);
    }
  }
};
constexpr RuleTable kRules;

FieldRule RuleOfTag(Msg msg, uint32_t tag) {
  return tag < 128 ? kRules.of[static_cast<int>(msg)][tag] : RuleOf(msg, tag >> 3, tag & 7);
}

// What this request already showed to be clean: the bytes of attributes (key and value) and of
// free texts that redaction kept as they were.  Spans of one request repeat most of them
// ("messaging.system" = "rabbitmq", the same span names, routes and methods), and a repeat costs
// a hash and a comparison instead of the key's rule, the value's read and the detectors' scan.
// Only what was kept is remembered (nothing redacted, no clear value), for this request only,
// as views into its bytes.  A collision costs a comparison, never a wrong answer.
class CleanMemo {
 public:
  static constexpr size_t kMaxBytes = 256;  // longer values seldom repeat
  enum Kind : uint64_t { kAttribute = 1, kText = 2 };

  static uint64_t Hash(Kind kind, std::string_view bytes) { return ShortHash(bytes, kind); }
  bool Contains(uint64_t hash, std::string_view bytes) const {
    for (size_t i = 0, s = hash & (kSlots - 1); i < kProbes; ++i, s = (s + 1) & (kSlots - 1)) {
      const Slot& slot = slots_[s];
      if (slot.data == nullptr) return false;
      if (slot.hash == hash && slot.size == bytes.size() &&
          std::memcmp(slot.data, bytes.data(), bytes.size()) == 0) {
        return true;
      }
    }
    return false;
  }
  void Add(uint64_t hash, std::string_view bytes) {
    for (size_t i = 0, s = hash & (kSlots - 1); i < kProbes; ++i, s = (s + 1) & (kSlots - 1)) {
      Slot& slot = slots_[s];
      if (slot.data == nullptr) {
        slot.hash = hash;
        slot.data = bytes.data();
        slot.size = static_cast<uint32_t>(bytes.size());
        return;
      }
    }
    // Full around here: not remembered (the memo only saves time).
  }

 private:
  static constexpr size_t kSlots = 1024, kProbes = 4;
  struct Slot {
    uint64_t hash = 0;
    const char* data = nullptr;
    uint32_t size = 0;
  };
  std::array<Slot, kSlots> slots_{};
};

// The edit walk.  Most of a request passes redaction unchanged (ids, times, safe keys, clean
// values), so instead of rewriting every field the walk records edits in input order: a field
// replaced or removed, and the length prefix of every message around it that changed size.  The
// output is then the input with the edits applied, in one pass: bytes that do not change are
// copied in runs, and a request without any edit is not copied at all.
struct Edit {
  uint32_t begin = 0, end = 0;  // the input bytes replaced, [begin, end)
  uint32_t repl = 0, len = 0;   // the replacement, in Walker::arena_
  bool noop = false;            // a length prefix whose message kept its size
};

class Walker {
 public:
  Walker(Ctx& ctx, std::string_view wire)
      : ctx_(ctx), base_(reinterpret_cast<const uint8_t*>(wire.data())) {
    // Sized for a request where most spans change (one edit and a few dozen bytes a span, a span
    // being a few hundred bytes), so the vectors rarely grow while walking.
    edits_.reserve(wire.size() / 128);
    arena_.reserve(wire.size() / 16);
  }

  // Walks the body of message `msg` at [p, end); adds its size change to *delta.
  bool Message(Msg msg, const uint8_t* p, const uint8_t* end, int64_t* delta);

  const std::vector<Edit>& edits() const { return edits_; }
  const std::string& arena() const { return arena_; }

 private:
  uint32_t Offset(const uint8_t* p) const { return static_cast<uint32_t>(p - base_); }
  // Replaces the input's [begin, end) with what the caller appended to arena_ since `mark`.
  void Replace(const uint8_t* begin, const uint8_t* end, size_t mark, int64_t* delta) {
    Edit e;
    e.begin = Offset(begin);
    e.end = Offset(end);
    e.repl = static_cast<uint32_t>(mark);
    e.len = static_cast<uint32_t>(arena_.size() - mark);
    edits_.push_back(e);
    *delta += static_cast<int64_t>(e.len) - (end - begin);
  }
  bool Attribute(uint32_t field, const uint8_t* field_start, const uint8_t* body,
                 const uint8_t* end, int64_t* delta);
  bool AttributeOnce(uint32_t field, const uint8_t* field_start, const uint8_t* body,
                     const uint8_t* end, int64_t* delta);
  void Text(uint32_t field, const uint8_t* field_start, std::string_view body, const uint8_t* end,
            int64_t* delta);

  Ctx& ctx_;
  const uint8_t* base_;
  std::vector<Edit> edits_;
  std::string arena_;
  CleanMemo memo_;
};

// Free text: a span name, an event name, a status message.
void Walker::Text(uint32_t field, const uint8_t* field_start, std::string_view body,
                  const uint8_t* end, int64_t* delta) {
  const bool memo = body.size() <= CleanMemo::kMaxBytes;
  const uint64_t hash = memo ? CleanMemo::Hash(CleanMemo::kText, body) : 0;
  if (memo && memo_.Contains(hash, body)) return;
  if (RedactString(ctx_, KeyRule::kScan, std::string_view(), body) == Action::kKept) {
    if (memo) memo_.Add(hash, body);
    return;
  }
  const size_t mark = arena_.size();
  AppendBytesField(&arena_, field, ctx_.scratch);
  Replace(field_start, end, mark, delta);
}

// One KeyValue field (an attribute of a resource, scope, span, event or link) at
// [field_start, end), its body at [body, end).
bool Walker::Attribute(uint32_t field, const uint8_t* field_start, const uint8_t* body,
                       const uint8_t* end, int64_t* delta) {
  const std::string_view bytes = View(body, end - body);
  if (bytes.size() > CleanMemo::kMaxBytes) {
    return AttributeOnce(field, field_start, body, end, delta);
  }
  const uint64_t hash = CleanMemo::Hash(CleanMemo::kAttribute, bytes);
  if (memo_.Contains(hash, bytes)) return true;
  const size_t edits = edits_.size();
  if (!AttributeOnce(field, field_start, body, end, delta)) return false;
  if (edits_.size() == edits) memo_.Add(hash, bytes);
  return true;
}

bool Walker::AttributeOnce(uint32_t field, const uint8_t* field_start, const uint8_t* body,
                           const uint8_t* end, int64_t* delta) {
  // The common case, read here without building anything: a key and a value that is one string.
  KeyValueParts parts;
  if (!ReadKeyValue(ctx_, View(body, end - body), &parts)) return false;
  const auto& [key, value, has_value, unknown] = parts;
  std::string_view str;
  const KeyRule rule = ctx_.redactor.RuleOfKey(key);
  if (rule == KeyRule::kDrop) {
    ctx_.redactor.RedactAttribute(rule, key, "", &ctx_.scratch);  // counted as dropped
    Replace(field_start, end, arena_.size(), delta);
    return true;
  }
  if (rule == KeyRule::kSafe && !unknown) return true;
  if (!unknown && !has_value) return true;  // a key without a value
  if (!unknown) {
    // AnyValue: one string_value and nothing else (the usual attribute), or one scalar.
    const uint8_t* q = reinterpret_cast<const uint8_t*>(value.data());
    const uint8_t* qend = q + value.size();
    uint32_t tag = 0;
    bool simple = false;
    if (q == qend) return true;  // an empty AnyValue
    if (wire::ReadTag(q, qend, &tag) && tag == wire::Tag(1, wire::kLengthDelimited)) {
      const uint8_t* d;
      uint32_t n;
      simple = wire::ReadLengthDelimited(q, qend, &d, &n) && q == qend;
      if (simple) str = View(d, n);
    } else if (rule != KeyRule::kPseudonymise &&
               (tag == wire::Tag(2, wire::kVarint) || tag == wire::Tag(3, wire::kVarint) ||
                tag == wire::Tag(4, wire::kFixed64))) {
      // A bool, int or double needs nothing (unless the key is pseudonymised: below).
      if (wire::SkipField(tag, q, qend) == nullptr && q == qend) return true;
    }
    if (simple) {
      const Action a = RedactString(ctx_, rule, key, str);
      if (a == Action::kKept) return true;
      // The new KeyValue: key, then AnyValue{string_value}.
      const size_t mark = arena_.size();
      const std::string_view v = a == Action::kDropped ? std::string_view() : ctx_.scratch;
      const size_t any = 1 + VarintSize(v.size()) + v.size();
      const size_t kv = 1 + VarintSize(key.size()) + key.size() + 1 + VarintSize(any) + any;
      const uint32_t field_tag = wire::Tag(field, wire::kLengthDelimited);
      arena_.resize(mark + VarintSize(field_tag) + VarintSize(kv) + kv);  // one growth, exact
      char* w = arena_.data() + mark;
      w = PutVarint(w, field_tag);
      w = PutVarint(w, kv);
      *w++ = static_cast<char>(wire::Tag(1, wire::kLengthDelimited));
      w = PutVarint(w, key.size());
      w = std::copy(key.begin(), key.end(), w);
      *w++ = static_cast<char>(wire::Tag(2, wire::kLengthDelimited));
      w = PutVarint(w, any);
      *w++ = static_cast<char>(wire::Tag(1, wire::kLengthDelimited));
      w = PutVarint(w, v.size());
      std::copy(v.begin(), v.end(), w);
      Replace(field_start, end, mark, delta);
      return true;
    }
  }
  // Anything else (arrays, key-value lists, bytes, a scalar under a pseudonymised key, unknown
  // fields): rebuilt whole, and replaced when the rebuild changed anything.
  ctx_.changed = false;  // set by the rebuild when it changed anything
  const size_t mark = arena_.size();
  if (!RewriteKeyValue(ctx_, field, View(body, end - body), std::string_view(), &arena_, 1)) {
    return false;
  }
  if (ctx_.changed) {
    Replace(field_start, end, mark, delta);
  } else {
    arena_.resize(mark);
  }
  return true;
}

// Where the free text or the attributes of `msg` sit, for the debug observer (RuleFired).
Carrier CarrierOf(Msg msg, FieldRule::Kind kind) {
  const bool text = kind == FieldRule::kText;
  switch (msg) {
    case Msg::kResource:
      return Carrier::kResourceAttribute;
    case Msg::kScope:
      return Carrier::kScopeAttribute;
    case Msg::kSpan:
      return text ? Carrier::kSpanName : Carrier::kSpanAttribute;
    case Msg::kEvent:
      return text ? Carrier::kEventName : Carrier::kEventAttribute;
    case Msg::kLink:
      return Carrier::kLinkAttribute;
    case Msg::kStatus:
      return Carrier::kStatusMessage;
    default:
      return Carrier::kUnknown;
  }
}

bool Walker::Message(Msg msg, const uint8_t* p, const uint8_t* end, int64_t* delta) {
  const Carrier text_carrier = CarrierOf(msg, FieldRule::kText);
  const Carrier attributes_carrier = CarrierOf(msg, FieldRule::kAttributes);
  while (p < end) {
    const uint8_t* field_start = p;
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) return (ctx_.error = "truncated tag"), false;
    const FieldRule rule = RuleOfTag(msg, tag);
    if (rule.kind == FieldRule::kCopy || rule.kind == FieldRule::kUnknown) {
      if (const char* err = wire::SkipField(tag, p, end)) return (ctx_.error = err), false;
      if (rule.kind == FieldRule::kUnknown) Replace(field_start, p, arena_.size(), delta);
      continue;
    }
    const uint8_t* length_at = p;
    const uint8_t* d;
    uint32_t n;
    if (!wire::ReadLengthDelimited(p, end, &d, &n)) return (ctx_.error = "bad length"), false;
    switch (rule.kind) {
      case FieldRule::kMessage: {
        // The length prefix's edit goes before the edits inside, so that edits stay in input
        // order; it is dropped again when nothing inside changed.
        const size_t slot = edits_.size();
        edits_.emplace_back();
        int64_t inner = 0;
        if (!Message(rule.child, d, d + n, &inner)) return false;
        if (inner == 0) {
          if (edits_.size() == slot + 1) {
            edits_.pop_back();
          } else {
            edits_[slot].noop = true;
          }
          break;
        }
        const uint64_t length = static_cast<uint64_t>(static_cast<int64_t>(n) + inner);
        Edit& e = edits_[slot];
        e.begin = Offset(length_at);
        e.end = Offset(d);
        e.repl = static_cast<uint32_t>(arena_.size());
        AppendVarint(&arena_, length);
        e.len = static_cast<uint32_t>(arena_.size() - e.repl);
        *delta += inner + static_cast<int64_t>(e.len) - (d - length_at);
        break;
      }
      case FieldRule::kText:
        SetCarrier(text_carrier);  // for the debug observer only
        Text(tag >> 3, field_start, View(d, n), p, delta);
        break;
      case FieldRule::kAttributes:
        SetCarrier(attributes_carrier);
        if (!Attribute(tag >> 3, field_start, d, p, delta)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

Result<std::optional<std::string>> RedactExportRequest(std::string_view wire,
                                                       const ValueRedactor& redactor,
                                                       uint32_t max_value_bytes) {
  if (wire.size() >= (uint64_t{1} << 32)) {
    return Status::InvalidArgument("redaction: request larger than 4 GiB");
  }
  Ctx ctx(redactor);
  ctx.max_value_bytes = max_value_bytes;
  Walker walker(ctx, wire);
  int64_t delta = 0;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(wire.data());
  if (!walker.Message(Msg::kRequest, p, p + wire.size(), &delta)) {
    return Status::InvalidArgument(std::string("redaction: malformed request (") + ctx.error + ")");
  }
  const std::vector<Edit>& edits = walker.edits();
  if (edits.empty()) return std::optional<std::string>();
  std::string out;
  out.reserve(static_cast<size_t>(static_cast<int64_t>(wire.size()) + delta));
  size_t pos = 0;
  for (const Edit& e : edits) {
    if (e.noop) continue;
    out.append(wire.substr(pos, e.begin - pos));
    out.append(walker.arena(), e.repl, e.len);
    pos = e.end;
  }
  out.append(wire.substr(pos));
  return std::optional<std::string>(std::move(out));
}

}  // namespace ordertrace::redact
