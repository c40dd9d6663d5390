#include "redact/wire_redactor.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "otlp/wire.h"

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
    uint64_t v = body;
    char* p = out_->data() + at_;
    while (v >= 0x80) {
      *p++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *p = static_cast<char>(v);
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
  bool changed = false;
  const char* error = nullptr;
  std::string scratch;
  Carrier carrier = Carrier::kUnknown;  // of the attributes being rewritten (debug observer)
};

bool RewriteMessage(Ctx& ctx, Msg msg, std::string_view in, std::string* out, int depth);
bool RewriteKeyValue(Ctx& ctx, uint32_t field, std::string_view in, std::string_view forced_key,
                     std::string* out, int depth);
bool RewriteAnyValue(Ctx& ctx, std::string_view key, KeyRule rule, std::string_view in,
                     std::string* out, int depth);

// Writes string field `field` holding `value` under `rule` for `key`.
void WriteString(Ctx& ctx, uint32_t field, KeyRule rule, std::string_view key,
                 std::string_view value, std::string* out) {
  const Action a = ctx.redactor.RedactAttribute(rule, key, value, &ctx.scratch, ctx.carrier);
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

// Writes KeyValue `in` as field `field` of *out: dropped (nothing written), copied, or with its
// value rewritten.  `forced_key`: inside a value of a pseudonymised key, whose rule applies to
// everything nested.
bool RewriteKeyValue(Ctx& ctx, uint32_t field, std::string_view in, std::string_view forced_key,
                     std::string* out, int depth) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  std::string_view key, value;
  bool has_value = false, unknown = false;
  while (p < end) {
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) return (ctx.error = "truncated tag"), false;
    if (tag == wire::Tag(1, wire::kLengthDelimited) ||
        tag == wire::Tag(2, wire::kLengthDelimited)) {
      const uint8_t* d;
      uint32_t n;
      if (!wire::ReadLengthDelimited(p, end, &d, &n)) return (ctx.error = "bad length"), false;
      if ((tag >> 3) == 1) {
        key = View(d, n);
      } else {
        value = View(d, n);
        has_value = true;
      }
    } else {
      if (const char* err = wire::SkipField(tag, p, end)) return (ctx.error = err), false;
      unknown = true;
    }
  }
  const bool forced = !forced_key.empty();
  const KeyRule rule = forced ? KeyRule::kPseudonymise : ctx.redactor.RuleOfKey(key);
  if (rule == KeyRule::kDrop) {
    ctx.redactor.RedactAttribute(rule, key, "", &ctx.scratch, ctx.carrier);  // counted as dropped
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

FieldRule RuleOf(Msg msg, uint32_t field, uint32_t wire_type) {
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

bool RewriteMessage(Ctx& ctx, Msg msg, std::string_view in, std::string* out, int depth) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  while (p < end) {
    const uint8_t* field_start = p;
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) return (ctx.error = "truncated tag"), false;
    const FieldRule rule = RuleOf(msg, tag >> 3, tag & 7);
    if (rule.kind == FieldRule::kCopy || rule.kind == FieldRule::kUnknown) {
      if (const char* err = wire::SkipField(tag, p, end)) return (ctx.error = err), false;
      if (rule.kind == FieldRule::kCopy) {
        out->append(View(field_start, p - field_start));
      } else {
        ctx.changed = true;
      }
      continue;
    }
    const uint8_t* d;
    uint32_t n;
    if (!wire::ReadLengthDelimited(p, end, &d, &n)) return (ctx.error = "bad length"), false;
    const std::string_view body = View(d, n);
    switch (rule.kind) {
      case FieldRule::kMessage: {
        NestedField child(out, tag >> 3, n);
        if (!RewriteMessage(ctx, rule.child, body, out, depth + 1)) return false;
        child.End();
        break;
      }
      case FieldRule::kText: {
        const Carrier carrier = msg == Msg::kSpan    ? Carrier::kSpanName
                                : msg == Msg::kEvent ? Carrier::kEventName
                                                     : Carrier::kStatusMessage;
        const Action a = ctx.redactor.RedactText(body, false, &ctx.scratch, carrier);
        if (a == Action::kKept) {
          AppendBytesField(out, tag >> 3, body);
        } else {
          ctx.changed = true;
          AppendBytesField(out, tag >> 3, ctx.scratch);
        }
        break;
      }
      case FieldRule::kAttributes:
        ctx.carrier = msg == Msg::kResource ? Carrier::kResourceAttribute
                      : msg == Msg::kScope  ? Carrier::kScopeAttribute
                      : msg == Msg::kSpan   ? Carrier::kSpanAttribute
                      : msg == Msg::kEvent  ? Carrier::kEventAttribute
                                            : Carrier::kLinkAttribute;
        if (!RewriteKeyValue(ctx, tag >> 3, body, std::string_view(), out, depth + 1)) {
          return false;
        }
        break;
      default:
        break;
    }
  }
  return true;
}

}  // namespace

Result<std::optional<std::string>> RedactExportRequest(std::string_view wire,
                                                       const ValueRedactor& redactor) {
  Ctx ctx(redactor);
  std::string out;
  out.reserve(wire.size() + wire.size() / 8);
  if (!RewriteMessage(ctx, Msg::kRequest, wire, &out, 0)) {
    return Status::InvalidArgument(std::string("redaction: malformed request (") + ctx.error + ")");
  }
  if (!ctx.changed) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

}  // namespace ordertrace::redact
