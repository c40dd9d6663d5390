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
  const ValueRedactor& redactor;
  bool changed = false;
  const char* error = nullptr;
};

bool RewriteMessage(Ctx& ctx, Msg msg, std::string_view in, std::string* out, int depth);
bool RewriteKeyValue(Ctx& ctx, std::string_view in, std::string_view forced_key, std::string* out,
                     bool* drop, int depth);
bool RewriteAnyValue(Ctx& ctx, std::string_view key, bool forced, std::string_view in,
                     std::string* out, int depth);

// A string under the rules for `key` (forced: the key is a pseudonymised one and every nested
// value follows it).  Returns the bytes to write.
std::string_view RedactString(Ctx& ctx, std::string_view key, std::string_view value,
                              std::string* scratch) {
  const Action a = ctx.redactor.RedactAttribute(key, value, scratch);
  if (a == Action::kKept) return value;
  ctx.changed = true;
  if (a == Action::kDropped) {
    scratch->clear();
    return *scratch;
  }
  return *scratch;
}

bool RewriteAnyValue(Ctx& ctx, std::string_view key, bool forced, std::string_view in,
                     std::string* out, int depth) {
  if (depth > kMaxRewriteDepth) {
    ctx.changed = true;  // an empty AnyValue
    return true;
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  std::string scratch;
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
        AppendBytesField(out, 1, RedactString(ctx, key, v, &scratch));
      } else if (field == 7) {  // bytes_value: raw bytes can hold text too
        if (forced) {
          static constexpr char kHex[] = "0123456789abcdef";
          std::string hex;
          for (unsigned char c : v) {
            hex += kHex[c >> 4];
            hex += kHex[c & 15];
          }
          AppendBytesField(out, 1, RedactString(ctx, key, hex, &scratch));
          ctx.changed = true;
        } else if (ctx.redactor.IsSafeKey(key)) {
          out->append(View(field_start, p - field_start));
        } else {
          std::string_view kept = RedactString(ctx, key, v, &scratch);
          AppendBytesField(out, 7, kept);
        }
      } else if (field == 5) {  // array_value: ArrayValue{1: AnyValue}
        std::string arr;
        const uint8_t* q = d;
        const uint8_t* qend = d + n;
        while (q < qend) {
          const uint8_t* elem_start = q;
          uint32_t t;
          if (!wire::ReadTag(q, qend, &t)) return (ctx.error = "truncated tag"), false;
          if (t == wire::Tag(1, wire::kLengthDelimited)) {
            const uint8_t* ed;
            uint32_t en;
            if (!wire::ReadLengthDelimited(q, qend, &ed, &en)) {
              return (ctx.error = "bad length"), false;
            }
            std::string elem;
            if (!RewriteAnyValue(ctx, key, forced, View(ed, en), &elem, depth + 1)) return false;
            AppendBytesField(&arr, 1, elem);
          } else {
            if (const char* err = wire::SkipField(t, q, qend)) return (ctx.error = err), false;
            (void)elem_start;
            ctx.changed = true;  // unknown field dropped
          }
        }
        AppendBytesField(out, 5, arr);
      } else {  // kvlist_value: KeyValueList{1: KeyValue}
        std::string list;
        const uint8_t* q = d;
        const uint8_t* qend = d + n;
        while (q < qend) {
          uint32_t t;
          if (!wire::ReadTag(q, qend, &t)) return (ctx.error = "truncated tag"), false;
          if (t == wire::Tag(1, wire::kLengthDelimited)) {
            const uint8_t* ed;
            uint32_t en;
            if (!wire::ReadLengthDelimited(q, qend, &ed, &en)) {
              return (ctx.error = "bad length"), false;
            }
            std::string kv;
            bool drop = false;
            if (!RewriteKeyValue(ctx, View(ed, en), forced ? key : std::string_view(), &kv, &drop,
                                 depth + 1)) {
              return false;
            }
            if (!drop) AppendBytesField(&list, 1, kv);
          } else {
            if (const char* err = wire::SkipField(t, q, qend)) return (ctx.error = err), false;
            ctx.changed = true;
          }
        }
        AppendBytesField(out, 6, list);
      }
      continue;
    }
    if (const char* err = wire::SkipField(tag, p, end)) return (ctx.error = err), false;
    if (forced && (field == 3 || field == 4) && !ld) {
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
        AppendBytesField(out, 1, RedactString(ctx, key, text, &scratch));
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

// A KeyValue: dropped (*drop), copied, or its value rewritten.  `forced_key`: inside a value of
// a pseudonymised key, whose rule applies to everything nested.
bool RewriteKeyValue(Ctx& ctx, std::string_view in, std::string_view forced_key, std::string* out,
                     bool* drop, int depth) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* end = p + in.size();
  std::string_view key, value;
  bool has_value = false;
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
      ctx.changed = true;
    }
  }
  const bool forced = !forced_key.empty();
  const std::string_view rule_key = forced ? forced_key : key;
  if (!forced && ctx.redactor.DropsKey(key)) {
    *drop = true;
    std::string unused;
    ctx.redactor.RedactAttribute(key, "", &unused);  // counted as dropped
    ctx.changed = true;
    return true;
  }
  AppendBytesField(out, 1, key);
  if (!has_value) return true;
  if (!forced && ctx.redactor.IsSafeKey(key)) {
    AppendBytesField(out, 2, value);
    return true;
  }
  std::string v;
  const bool pseudonymised_key = !forced && ctx.redactor.PseudonymisesKey(key);
  if (!RewriteAnyValue(ctx, rule_key, forced || pseudonymised_key, value, &v, depth + 1)) {
    return false;
  }
  AppendBytesField(out, 2, v);
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
  std::string scratch;
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
    std::string child;
    switch (rule.kind) {
      case FieldRule::kMessage:
        if (!RewriteMessage(ctx, rule.child, body, &child, depth + 1)) return false;
        AppendBytesField(out, tag >> 3, child);
        break;
      case FieldRule::kText: {
        const Action a = ctx.redactor.RedactText(body, false, &scratch);
        if (a == Action::kKept) {
          AppendBytesField(out, tag >> 3, body);
        } else {
          ctx.changed = true;
          AppendBytesField(out, tag >> 3, scratch);
        }
        break;
      }
      case FieldRule::kAttributes: {
        bool drop = false;
        if (!RewriteKeyValue(ctx, body, std::string_view(), &child, &drop, depth + 1)) {
          return false;
        }
        if (!drop) AppendBytesField(out, tag >> 3, child);
        break;
      }
      default:
        break;
    }
  }
  return true;
}

}  // namespace

Result<std::optional<std::string>> RedactExportRequest(std::string_view wire,
                                                       const ValueRedactor& redactor) {
  Ctx ctx{redactor};
  std::string out;
  out.reserve(wire.size() + wire.size() / 8);
  if (!RewriteMessage(ctx, Msg::kRequest, wire, &out, 0)) {
    return Status::InvalidArgument(std::string("redaction: malformed request (") + ctx.error + ")");
  }
  if (!ctx.changed) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

}  // namespace ordertrace::redact
