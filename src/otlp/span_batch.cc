#include "otlp/span_batch.h"

#include <chrono>
#include <cstring>

#include "otlp/wire.h"

namespace ordertrace::otlp {

using wire::kFixed32;
using wire::kFixed64;
using wire::kLengthDelimited;
using wire::kVarint;
using wire::Tag;

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kGrpc:
      return "grpc";
    case Protocol::kHttpProtobuf:
      return "http_protobuf";
    case Protocol::kHttpJson:
      return "http_json";
  }
  return "unknown";
}

const char* RefuseReasonName(RefuseReason r) {
  switch (r) {
    case RefuseReason::kInvalidTraceId:
      return "invalid_trace_id";
    case RefuseReason::kInvalidSpanId:
      return "invalid_span_id";
    case RefuseReason::kInvalidParentId:
      return "invalid_parent_span_id";
    case RefuseReason::kInvalidUtf8:
      return "invalid_utf8";
    case RefuseReason::kMissingStartTime:
      return "missing_start_time";
    case RefuseReason::kValueTooDeep:
      return "value_too_deep";
    case RefuseReason::kCount:
      break;
  }
  return "unknown";
}

const char* RepairName(Repair r) {
  switch (r) {
    case Repair::kEndBeforeStart:
      return "end_before_start";
    case Repair::kAttributesTruncated:
      return "attributes_truncated";
    case Repair::kValueTruncated:
      return "value_truncated";
    case Repair::kEventsTruncated:
      return "events_truncated";
    case Repair::kLinksTruncated:
      return "links_truncated";
    case Repair::kInvalidKind:
      return "invalid_kind";
    case Repair::kInvalidStatusCode:
      return "invalid_status_code";
    case Repair::kCount:
      break;
  }
  return "unknown";
}

std::string ToHex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

bool FromHex(std::string_view hex, uint8_t* out, size_t n) {
  if (hex.size() != n * 2) return false;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < n; ++i) {
    const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool SpanRef::has_parent() const {
  for (uint8_t b : parent_span_id) {
    if (b) return true;
  }
  return false;
}

bool SpanBatch::modified() const {
  if (refused_total_ > 0 || truncated_above_spans_) return true;
  for (uint64_t n : repaired_) {
    if (n > 0) return true;
  }
  return false;
}

SpanBatch::SpanBatch(std::string wire, Protocol protocol, const Limits& limits)
    : wire_(std::move(wire)), protocol_(protocol), limits_(limits) {
  received_unix_nano_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
}

namespace {

inline std::string_view View(const uint8_t* p, uint32_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

inline const uint8_t* Begin(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// Skips a field.  The views read bytes the decoder already validated, so a failure cannot
// happen for a decoded batch; it stops the walk rather than asserting.
bool Skip(uint32_t tag, const uint8_t*& p, const uint8_t* end) {
  return wire::SkipField(tag, p, end) == nullptr;
}

// Cuts a string at max bytes, backing up to a UTF-8 character boundary.
std::string_view Truncate(std::string_view s, uint32_t max, bool utf8) {
  if (s.size() <= max) return s;
  size_t n = max;
  if (utf8) {
    while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  }
  return s.substr(0, n);
}

AnyValueView DecodeValue(std::string_view encoded, uint32_t max_value_bytes) {
  AnyValueView v;
  const uint8_t* p = Begin(encoded);
  const uint8_t* end = p + encoded.size();
  while (p < end) {
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) break;
    switch (tag) {
      case Tag(1, kLengthDelimited):
      case Tag(5, kLengthDelimited):
      case Tag(6, kLengthDelimited):
      case Tag(7, kLengthDelimited): {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!wire::ReadLengthDelimited(p, end, &d, &n)) return v;
        v.str = View(d, n);
        const uint32_t field = tag >> 3;
        v.type = field == 1   ? ValueType::kString
                 : field == 5 ? ValueType::kArray
                 : field == 6 ? ValueType::kKvList
                              : ValueType::kBytes;
        if (field == 1 || field == 7) v.str = Truncate(v.str, max_value_bytes, field == 1);
        break;
      }
      case Tag(2, kVarint):
      case Tag(3, kVarint): {
        uint64_t x;
        if (!wire::ReadVarint(p, end, &x)) return v;
        if (tag == Tag(2, kVarint)) {
          v.type = ValueType::kBool;
          v.bool_value = x != 0;
        } else {
          v.type = ValueType::kInt;
          v.int_value = static_cast<int64_t>(x);
        }
        break;
      }
      case Tag(4, kFixed64): {
        uint64_t x;
        if (!wire::ReadFixed64(p, end, &x)) return v;
        v.type = ValueType::kDouble;
        std::memcpy(&v.double_value, &x, 8);
        break;
      }
      default:
        if (!Skip(tag, p, end)) return v;
    }
  }
  return v;
}

KeyValueView DecodeKeyValueView(std::string_view encoded, uint32_t max_value_bytes) {
  KeyValueView kv;
  const uint8_t* p = Begin(encoded);
  const uint8_t* end = p + encoded.size();
  while (p < end) {
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) break;
    if (tag == Tag(1, kLengthDelimited) || tag == Tag(2, kLengthDelimited)) {
      const uint8_t* d = nullptr;
      uint32_t n = 0;
      if (!wire::ReadLengthDelimited(p, end, &d, &n)) break;
      if (tag == Tag(1, kLengthDelimited))
        kv.key = View(d, n);
      else
        kv.value = DecodeValue(View(d, n), max_value_bytes);
    } else if (!Skip(tag, p, end)) {
      break;
    }
  }
  return kv;
}

// Calls fn(payload) for each length-delimited occurrence of `field` in msg, up to `limit`;
// returns how many occurrences there were in all.
template <typename F>
uint32_t ForEachField(std::string_view msg, uint32_t field, uint32_t limit, F&& fn) {
  const uint8_t* p = Begin(msg);
  const uint8_t* end = p + msg.size();
  const uint32_t want = Tag(field, kLengthDelimited);
  uint32_t seen = 0;
  while (p < end) {
    uint32_t tag;
    if (!wire::ReadTag(p, end, &tag)) break;
    if (tag == want) {
      const uint8_t* d = nullptr;
      uint32_t n = 0;
      if (!wire::ReadLengthDelimited(p, end, &d, &n)) break;
      if (seen++ < limit) fn(View(d, n));
    } else if (!Skip(tag, p, end)) {
      break;
    }
  }
  return seen;
}

}  // namespace

void SpanBatch::ForEachKeyValueImpl(std::string_view msg, uint32_t field, uint32_t limit, void* ctx,
                                    void (*cb)(void*, const KeyValueView&)) const {
  const uint32_t max = limits_.max_attribute_value_bytes;
  ForEachField(msg, field, limit,
               [&](std::string_view kv) { cb(ctx, DecodeKeyValueView(kv, max)); });
}

bool SpanBatch::FindAttribute(const SpanRef& s, std::string_view key, AnyValueView* out) const {
  bool found = false;
  const uint32_t max = limits_.max_attribute_value_bytes;
  ForEachField(s.encoded, 9, limits_.max_attributes, [&](std::string_view encoded) {
    if (found) return;
    KeyValueView kv = DecodeKeyValueView(encoded, max);
    if (kv.key == key) {
      *out = kv.value;
      found = true;
    }
  });
  return found;
}

void SpanBatch::ForEachEventImpl(const SpanRef& s, void* ctx,
                                 void (*cb)(void*, const EventView&)) const {
  ForEachField(s.encoded, 11, limits_.max_events_per_span, [&](std::string_view encoded) {
    EventView e;
    e.encoded = encoded;
    const uint8_t* p = Begin(encoded);
    const uint8_t* end = p + encoded.size();
    uint32_t attrs = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) break;
      if (tag == Tag(1, kFixed64)) {
        if (!wire::ReadFixed64(p, end, &e.time_unix_nano)) break;
      } else if (tag == Tag(2, kLengthDelimited) || tag == Tag(3, kLengthDelimited)) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!wire::ReadLengthDelimited(p, end, &d, &n)) break;
        if (tag == Tag(2, kLengthDelimited))
          e.name = View(d, n);
        else
          ++attrs;
      } else if (tag == Tag(4, kVarint)) {
        uint64_t v = 0;
        if (!wire::ReadVarint(p, end, &v)) break;
        e.dropped_attributes = static_cast<uint32_t>(v);
      } else if (!Skip(tag, p, end)) {
        break;
      }
    }
    if (attrs > limits_.max_attributes_per_event) {
      e.dropped_attributes += attrs - limits_.max_attributes_per_event;
    }
    cb(ctx, e);
  });
}

void SpanBatch::ForEachLinkImpl(const SpanRef& s, void* ctx,
                                void (*cb)(void*, const LinkView&)) const {
  ForEachField(s.encoded, 13, limits_.max_links_per_span, [&](std::string_view encoded) {
    LinkView l;
    l.encoded = encoded;
    const uint8_t* p = Begin(encoded);
    const uint8_t* end = p + encoded.size();
    uint32_t attrs = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) break;
      if ((tag & 7) == kLengthDelimited && (tag >> 3) <= 4) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!wire::ReadLengthDelimited(p, end, &d, &n)) break;
        switch (tag >> 3) {
          case 1:
            if (n == 16)
              std::memcpy(l.trace_id.data(), d, 16);
            else
              l.trace_id = {};
            break;
          case 2:
            if (n == 8)
              std::memcpy(l.span_id.data(), d, 8);
            else
              l.span_id = {};
            break;
          case 3:
            l.trace_state = View(d, n);
            break;
          case 4:
            ++attrs;
            break;
        }
      } else if (tag == Tag(5, kVarint)) {
        uint64_t v = 0;
        if (!wire::ReadVarint(p, end, &v)) break;
        l.dropped_attributes = static_cast<uint32_t>(v);
      } else if (tag == Tag(6, kFixed32)) {
        if (!wire::ReadFixed32(p, end, &l.flags)) break;
      } else if (!Skip(tag, p, end)) {
        break;
      }
    }
    if (attrs > limits_.max_attributes_per_event) {
      l.dropped_attributes += attrs - limits_.max_attributes_per_event;
    }
    cb(ctx, l);
  });
}

void ForEachArrayValue(const AnyValueView& v, uint32_t max_value_bytes, void* ctx,
                       void (*cb)(void*, const AnyValueView&)) {
  if (v.type != ValueType::kArray) return;
  ForEachField(v.str, 1, UINT32_MAX,
               [&](std::string_view e) { cb(ctx, DecodeValue(e, max_value_bytes)); });
}

void ForEachKeyValue(const AnyValueView& v, uint32_t max_value_bytes, void* ctx,
                     void (*cb)(void*, const KeyValueView&)) {
  if (v.type != ValueType::kKvList) return;
  ForEachField(v.str, 1, UINT32_MAX,
               [&](std::string_view e) { cb(ctx, DecodeKeyValueView(e, max_value_bytes)); });
}

}  // namespace ordertrace::otlp
