#include "otlp/decoder.h"

#include <simdjson.h>

#include <cstdio>
#include <cstring>

#include "otlp/wire.h"

namespace ordertrace::otlp {

using wire::kFixed32;
using wire::kFixed64;
using wire::kLengthDelimited;
using wire::kVarint;
using wire::Tag;

namespace {

// UTF-8 validation with an ASCII fast path; simdjson validates the rest (SIMD), since most
// OTLP strings are short ASCII where a call into a general validator costs more than the check.
inline bool ValidUtf8(const uint8_t* p, uint32_t n) {
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ULL) {
      return simdjson::validate_utf8(reinterpret_cast<const char*>(p), n);
    }
  }
  for (; i < n; ++i) {
    if (p[i] & 0x80) return simdjson::validate_utf8(reinterpret_cast<const char*>(p), n);
  }
  return true;
}

inline std::string_view View(const uint8_t* p, uint32_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

inline bool AllZero(const uint8_t* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

// What validation found in one span (or in the resource/scope above it).
struct Findings {
  bool refused = false;
  RefuseReason reason = RefuseReason::kCount;
  std::string detail;  // filled only for the first refusal in the batch (cheap otherwise)
  bool value_truncated = false;

  void Refuse(RefuseReason r) {
    if (!refused) {
      refused = true;
      reason = r;
    }
  }
};

}  // namespace

// One-pass decoder.  Structural errors (not a valid protobuf encoding of the schema) fail the
// whole request; validation problems refuse single spans and are counted in the batch.
class Decoder {
 public:
  Decoder(SpanBatch* batch) : b_(batch), limits_(batch->limits_) {}

  Status Run() {
    const auto* begin = reinterpret_cast<const uint8_t*>(b_->wire_.data());
    base_ = begin;
    const uint8_t* p = begin;
    const uint8_t* end = begin + b_->wire_.size();
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return Fail(p, "truncated or invalid tag");
      if (tag == Tag(1, kLengthDelimited)) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!wire::ReadLengthDelimited(p, end, &d, &n))
          return Fail(p, "resource_spans: bad length");
        if (!DecodeResourceSpans(d, d + n)) return error_;
        ++resource_index_;
      } else if (!SkipField(tag, p, end, 0)) {
        return error_.ok() ? Fail(p, "unknown field: bad encoding") : error_;
      }
    }
    if (b_->refused_total_ > 0) {
      b_->refusal_message_ =
          std::to_string(b_->refused_total_) + " span(s) refused; first: " + first_refusal_;
    }
    return Status::Ok();
  }

 private:
  Status Fail(const uint8_t* at, const char* what) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "malformed OTLP protobuf at byte %zu (%s): %s",
                  static_cast<size_t>(at - base_), Where().c_str(), what);
    error_ = Status::InvalidArgument(buf);
    return error_;
  }
  bool FailB(const uint8_t* at, const char* what) {
    (void)Fail(at, what);  // kept in error_, which the caller returns after `false`
    return false;
  }

  std::string Where() const {
    std::string w = "resource_spans[" + std::to_string(resource_index_) + "]";
    if (in_scope_) w += ".scope_spans[" + std::to_string(scope_index_) + "]";
    if (in_span_) w += ".spans[" + std::to_string(span_index_) + "]";
    return w;
  }

  // Skips one field of any wire type (wire::SkipField), failing the request with its reason.
  bool SkipField(uint32_t tag, const uint8_t*& p, const uint8_t* end, int depth) {
    const char* err = wire::SkipField(tag, p, end, depth);
    return err == nullptr || FailB(p, err);
  }

  // A string field: checks bounds and UTF-8.  Returns false on a structural error; an invalid
  // UTF-8 string refuses the span (or resource/scope) through `f`.
  bool ReadString(const uint8_t*& p, const uint8_t* end, std::string_view* out, Findings* f) {
    const uint8_t* d = nullptr;
    uint32_t n = 0;
    if (!wire::ReadLengthDelimited(p, end, &d, &n)) return FailB(p, "string: length past end");
    if (!ValidUtf8(d, n)) {
      f->Refuse(RefuseReason::kInvalidUtf8);
      if (f->detail.empty()) f->detail = "a string field is not valid UTF-8";
    }
    *out = View(d, n);
    return true;
  }

  bool ReadBytes(const uint8_t*& p, const uint8_t* end, const uint8_t** d, uint32_t* n) {
    return wire::ReadLengthDelimited(p, end, d, n) || FailB(p, "bytes: length past end");
  }

  bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
    return wire::ReadVarint(p, end, v) || FailB(p, "truncated varint");
  }

  // AnyValue at nesting `depth` (1 for an attribute's value).
  bool DecodeAnyValue(const uint8_t* p, const uint8_t* end, uint32_t depth, Findings* f) {
    bool seen_array = false, seen_kvlist = false;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "AnyValue: invalid tag");
      switch (tag) {
        case Tag(1, kLengthDelimited): {
          std::string_view s;
          if (!ReadString(p, end, &s, f)) return false;
          if (s.size() > limits_.max_attribute_value_bytes) f->value_truncated = true;
          break;
        }
        case Tag(7, kLengthDelimited): {
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          if (n > limits_.max_attribute_value_bytes) f->value_truncated = true;
          break;
        }
        case Tag(2, kVarint):
        case Tag(3, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          break;
        }
        case Tag(4, kFixed64):
          if (end - p < 8) return FailB(p, "AnyValue.double_value: truncated");
          p += 8;
          break;
        case Tag(5, kLengthDelimited):
        case Tag(6, kLengthDelimited): {
          const bool is_array = tag == Tag(5, kLengthDelimited);
          bool& seen = is_array ? seen_array : seen_kvlist;
          if (seen)
            return FailB(p, "AnyValue: array/kvlist value given twice (merging is not supported)");
          seen = true;
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          if (depth + 1 > limits_.max_value_depth) {
            f->Refuse(RefuseReason::kValueTooDeep);
            break;  // not walked: the span is refused anyway
          }
          if (!DecodeValueList(d, d + n, depth + 1, is_array, f)) return false;
          break;
        }
        default:
          if (!SkipField(tag, p, end, 0)) return false;
      }
    }
    return true;
  }

  // ArrayValue (repeated AnyValue values = 1) or KeyValueList (repeated KeyValue values = 1).
  bool DecodeValueList(const uint8_t* p, const uint8_t* end, uint32_t depth, bool is_array,
                       Findings* f) {
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "value list: invalid tag");
      if (tag == Tag(1, kLengthDelimited)) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!ReadBytes(p, end, &d, &n)) return false;
        if (is_array ? !DecodeAnyValue(d, d + n, depth, f)
                     : !DecodeKeyValue(d, d + n, depth, f, nullptr)) {
          return false;
        }
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    return true;
  }

  // KeyValue; `service_name` (may be null) receives the value of a "service.name" string.
  bool DecodeKeyValue(const uint8_t* p, const uint8_t* end, uint32_t depth, Findings* f,
                      std::string_view* service_name) {
    std::string_view key;
    const uint8_t* value = nullptr;
    uint32_t value_len = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "KeyValue: invalid tag");
      if (tag == Tag(1, kLengthDelimited)) {
        if (!ReadString(p, end, &key, f)) return false;
      } else if (tag == Tag(2, kLengthDelimited)) {
        if (value) return FailB(p, "KeyValue: value given twice (merging is not supported)");
        if (!ReadBytes(p, end, &value, &value_len)) return false;
        if (!DecodeAnyValue(value, value + value_len, depth, f)) return false;
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    if (service_name && key == "service.name" && value) {
      // The string_value of the AnyValue, if that is what it holds (last one wins).
      const uint8_t* q = value;
      const uint8_t* qe = value + value_len;
      while (q < qe) {
        uint32_t tag;
        if (!wire::ReadTag(q, qe, &tag)) break;
        if (tag == Tag(1, kLengthDelimited)) {
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!wire::ReadLengthDelimited(q, qe, &d, &n)) break;
          *service_name = View(d, n);
        } else {
          *service_name = {};
          if (!SkipField(tag, q, qe, 0)) break;
        }
      }
    }
    return true;
  }

  // Attributes of a resource/scope/span/event/link: counts them, validates each.
  bool DecodeAttribute(const uint8_t*& p, const uint8_t* end, Findings* f, uint32_t* count,
                       std::string_view* service_name = nullptr) {
    const uint8_t* d = nullptr;
    uint32_t n = 0;
    if (!ReadBytes(p, end, &d, &n)) return false;
    ++*count;
    return DecodeKeyValue(d, d + n, 1, f, service_name);
  }

  bool DecodeResource(const uint8_t* p, const uint8_t* end, ResourceRef* r, Findings* f) {
    uint32_t count = 0, dropped = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "Resource: invalid tag");
      if (tag == Tag(1, kLengthDelimited)) {
        if (!DecodeAttribute(p, end, f, &count, &r->service_name)) return false;
      } else if (tag == Tag(2, kVarint)) {
        uint64_t v = 0;
        if (!ReadVarint(p, end, &v)) return false;
        dropped = static_cast<uint32_t>(v);
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    r->attributes = std::min(count, limits_.max_attributes);
    r->dropped_attributes = dropped + (count - r->attributes);
    if (count > r->attributes || f->value_truncated) b_->truncated_above_spans_ = true;
    return true;
  }

  bool DecodeScope(const uint8_t* p, const uint8_t* end, ScopeRef* s, Findings* f) {
    uint32_t count = 0, dropped = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "InstrumentationScope: invalid tag");
      switch (tag) {
        case Tag(1, kLengthDelimited):
          if (!ReadString(p, end, &s->name, f)) return false;
          break;
        case Tag(2, kLengthDelimited):
          if (!ReadString(p, end, &s->version, f)) return false;
          break;
        case Tag(3, kLengthDelimited):
          if (!DecodeAttribute(p, end, f, &count)) return false;
          break;
        case Tag(4, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          dropped = static_cast<uint32_t>(v);
          break;
        }
        default:
          if (!SkipField(tag, p, end, 0)) return false;
      }
    }
    s->attributes = std::min(count, limits_.max_attributes);
    s->dropped_attributes = dropped + (count - s->attributes);
    if (count > s->attributes || f->value_truncated) b_->truncated_above_spans_ = true;
    return true;
  }

  bool DecodeResourceSpans(const uint8_t* p, const uint8_t* end) {
    const uint32_t resource = static_cast<uint32_t>(b_->resources_.size());
    b_->resources_.emplace_back();
    const size_t first_span = b_->spans_.size();
    Findings rf;  // resource-level findings apply to all its spans
    bool seen_resource = false;
    scope_index_ = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "ResourceSpans: invalid tag");
      if (tag == Tag(1, kLengthDelimited)) {
        if (seen_resource)
          return FailB(p, "ResourceSpans.resource given twice (merging is not supported)");
        seen_resource = true;
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!ReadBytes(p, end, &d, &n)) return false;
        ResourceRef& r = b_->resources_[resource];
        r.encoded = View(d, n);
        if (!DecodeResource(d, d + n, &r, &rf)) return false;
      } else if (tag == Tag(2, kLengthDelimited)) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!ReadBytes(p, end, &d, &n)) return false;
        in_scope_ = true;
        if (!DecodeScopeSpans(d, d + n, resource)) return false;
        in_scope_ = false;
        ++scope_index_;
      } else if (tag == Tag(3, kLengthDelimited)) {
        if (!ReadString(p, end, &b_->resources_[resource].schema_url, &rf)) return false;
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    if (rf.refused)
      RefuseTail(first_span, rf.reason, "the resource has a string that is not valid UTF-8");
    return true;
  }

  bool DecodeScopeSpans(const uint8_t* p, const uint8_t* end, uint32_t resource) {
    const uint32_t scope = static_cast<uint32_t>(b_->scopes_.size());
    b_->scopes_.emplace_back();
    b_->scopes_[scope].resource = resource;
    const size_t first_span = b_->spans_.size();
    Findings sf;
    bool seen_scope = false;
    span_index_ = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "ScopeSpans: invalid tag");
      if (tag == Tag(2, kLengthDelimited)) {
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!ReadBytes(p, end, &d, &n)) return false;
        in_span_ = true;
        if (!DecodeSpan(d, d + n, scope, resource)) return false;
        in_span_ = false;
        ++span_index_;
      } else if (tag == Tag(1, kLengthDelimited)) {
        if (seen_scope) return FailB(p, "ScopeSpans.scope given twice (merging is not supported)");
        seen_scope = true;
        const uint8_t* d = nullptr;
        uint32_t n = 0;
        if (!ReadBytes(p, end, &d, &n)) return false;
        ScopeRef& s = b_->scopes_[scope];
        s.encoded = View(d, n);
        if (!DecodeScope(d, d + n, &s, &sf)) return false;
      } else if (tag == Tag(3, kLengthDelimited)) {
        if (!ReadString(p, end, &b_->scopes_[scope].schema_url, &sf)) return false;
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    if (sf.refused)
      RefuseTail(first_span, sf.reason, "the scope has a string that is not valid UTF-8");
    return true;
  }

  // Refuses every span accepted since `first` (a resource or scope turned out invalid).
  void RefuseTail(size_t first, RefuseReason reason, const char* why) {
    const size_t n = b_->spans_.size() - first;
    if (n == 0) return;
    b_->spans_.resize(first);
    CountRefused(reason, n, why);
  }

  void CountRefused(RefuseReason reason, uint64_t n, const std::string& why) {
    b_->refused_total_ += n;
    b_->refused_[static_cast<int>(reason)] += n;
    if (!have_refusal_detail_) {
      have_refusal_detail_ = true;
      first_refusal_ = Where() + ": " + RefuseReasonName(reason) + ": " + why;
    }
  }

  bool DecodeEvent(const uint8_t* p, const uint8_t* end, Findings* f) {
    uint32_t count = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "Event: invalid tag");
      switch (tag) {
        case Tag(1, kFixed64):
          if (end - p < 8) return FailB(p, "Event.time_unix_nano: truncated");
          p += 8;
          break;
        case Tag(2, kLengthDelimited): {
          std::string_view name;
          if (!ReadString(p, end, &name, f)) return false;
          break;
        }
        case Tag(3, kLengthDelimited):
          if (!DecodeAttribute(p, end, f, &count)) return false;
          break;
        default:
          if (!SkipField(tag, p, end, 0)) return false;  // dropped_attributes_count and unknowns
      }
    }
    if (count > limits_.max_attributes_per_event) attrs_truncated_ = true;
    return true;
  }

  bool DecodeLink(const uint8_t* p, const uint8_t* end, Findings* f) {
    uint32_t count = 0;
    uint32_t trace_len = 0, span_len = 0;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "Link: invalid tag");
      switch (tag) {
        case Tag(1, kLengthDelimited):
        case Tag(2, kLengthDelimited): {
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          (tag == Tag(1, kLengthDelimited) ? trace_len : span_len) = n;
          break;
        }
        case Tag(3, kLengthDelimited): {
          std::string_view ts;
          if (!ReadString(p, end, &ts, f)) return false;
          break;
        }
        case Tag(4, kLengthDelimited):
          if (!DecodeAttribute(p, end, f, &count)) return false;
          break;
        default:
          if (!SkipField(tag, p, end, 0)) return false;  // dropped count, flags, unknowns
      }
    }
    // A link to an invalid (all-zero or empty) context is legal (OTel spec: recorded when it has
    // attributes or trace state); a malformed id length is not.
    if (trace_len != 0 && trace_len != 16) {
      f->Refuse(RefuseReason::kInvalidTraceId);
      if (f->detail.empty())
        f->detail = "a link's trace_id has " + std::to_string(trace_len) + " bytes, want 16";
    }
    if (span_len != 0 && span_len != 8) {
      f->Refuse(RefuseReason::kInvalidSpanId);
      if (f->detail.empty())
        f->detail = "a link's span_id has " + std::to_string(span_len) + " bytes, want 8";
    }
    if (count > limits_.max_attributes_per_event) attrs_truncated_ = true;
    return true;
  }

  bool DecodeStatus(const uint8_t* p, const uint8_t* end, SpanRef* s, Findings* f) {
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "Status: invalid tag");
      if (tag == Tag(2, kLengthDelimited)) {
        if (!ReadString(p, end, &s->status_message, f)) return false;
      } else if (tag == Tag(3, kVarint)) {
        uint64_t v = 0;
        if (!ReadVarint(p, end, &v)) return false;
        status_code_raw_ = static_cast<int32_t>(v);
      } else if (!SkipField(tag, p, end, 0)) {
        return false;
      }
    }
    return true;
  }

  bool DecodeSpan(const uint8_t* p, const uint8_t* end, uint32_t scope, uint32_t resource) {
    SpanRef& s = b_->spans_.emplace_back();
    s.encoded = View(p, static_cast<uint32_t>(end - p));
    s.scope = scope;
    s.resource = resource;
    Findings f;
    const uint8_t* trace_id = nullptr;
    const uint8_t* span_id = nullptr;
    const uint8_t* parent_id = nullptr;
    uint32_t trace_len = 0, span_len = 0, parent_len = 0;
    uint32_t attrs = 0, events = 0, links = 0;
    int32_t kind_raw = 0;
    status_code_raw_ = 0;
    attrs_truncated_ = false;
    while (p < end) {
      uint32_t tag;
      if (!wire::ReadTag(p, end, &tag)) return FailB(p, "Span: invalid tag");
      switch (tag) {
        case Tag(9, kLengthDelimited):
          if (!DecodeAttribute(p, end, &f, &attrs)) return false;
          break;
        case Tag(1, kLengthDelimited):
          if (!ReadBytes(p, end, &trace_id, &trace_len)) return false;
          break;
        case Tag(2, kLengthDelimited):
          if (!ReadBytes(p, end, &span_id, &span_len)) return false;
          break;
        case Tag(3, kLengthDelimited):
          if (!ReadString(p, end, &s.trace_state, &f)) return false;
          break;
        case Tag(4, kLengthDelimited):
          if (!ReadBytes(p, end, &parent_id, &parent_len)) return false;
          break;
        case Tag(5, kLengthDelimited):
          if (!ReadString(p, end, &s.name, &f)) return false;
          break;
        case Tag(6, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          kind_raw = static_cast<int32_t>(v);
          break;
        }
        case Tag(7, kFixed64):
          if (!wire::ReadFixed64(p, end, &s.start_time_unix_nano))
            return FailB(p, "Span.start_time_unix_nano: truncated");
          break;
        case Tag(8, kFixed64):
          if (!wire::ReadFixed64(p, end, &s.end_time_unix_nano))
            return FailB(p, "Span.end_time_unix_nano: truncated");
          break;
        case Tag(10, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          s.dropped_attributes = static_cast<uint32_t>(v);
          break;
        }
        case Tag(11, kLengthDelimited): {
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          ++events;
          if (!DecodeEvent(d, d + n, &f)) return false;
          break;
        }
        case Tag(12, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          s.dropped_events = static_cast<uint32_t>(v);
          break;
        }
        case Tag(13, kLengthDelimited): {
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          ++links;
          if (!DecodeLink(d, d + n, &f)) return false;
          break;
        }
        case Tag(14, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v)) return false;
          s.dropped_links = static_cast<uint32_t>(v);
          break;
        }
        case Tag(15, kLengthDelimited): {
          // A repeated singular message merges; for Status (two scalars) that is: last wins.
          const uint8_t* d = nullptr;
          uint32_t n = 0;
          if (!ReadBytes(p, end, &d, &n)) return false;
          if (!DecodeStatus(d, d + n, &s, &f)) return false;
          break;
        }
        case Tag(16, kFixed32):
          if (!wire::ReadFixed32(p, end, &s.flags)) return FailB(p, "Span.flags: truncated");
          break;
        default:
          if (!SkipField(tag, p, end, 0)) return false;
      }
    }

    // Validation: refusals.
    if (trace_len != 16 || AllZero(trace_id, 16)) {
      f.Refuse(RefuseReason::kInvalidTraceId);
      f.detail = trace_len != 16 ? "trace_id has " + std::to_string(trace_len) + " bytes, want 16"
                                 : "trace_id is all zero";
    } else if (span_len != 8 || AllZero(span_id, 8)) {
      f.Refuse(RefuseReason::kInvalidSpanId);
      f.detail = span_len != 8 ? "span_id has " + std::to_string(span_len) + " bytes, want 8"
                               : "span_id is all zero";
    } else if (parent_len != 0 && parent_len != 8) {
      f.Refuse(RefuseReason::kInvalidParentId);
      f.detail = "parent_span_id has " + std::to_string(parent_len) + " bytes, want 0 or 8";
    } else if (s.start_time_unix_nano == 0) {
      f.Refuse(RefuseReason::kMissingStartTime);
      f.detail = "start_time_unix_nano is 0";
    }
    if (f.refused) {
      b_->spans_.pop_back();
      CountRefused(f.reason, 1, f.detail.empty() ? "invalid span" : f.detail);
      return true;
    }

    std::memcpy(s.trace_id.data(), trace_id, 16);
    std::memcpy(s.span_id.data(), span_id, 8);
    if (parent_len == 8) std::memcpy(s.parent_span_id.data(), parent_id, 8);

    // Repairs.
    auto repair = [&](Repair r) {
      s.repairs |= 1u << static_cast<int>(r);
      ++b_->repaired_[static_cast<int>(r)];
    };
    if (kind_raw < 0 || kind_raw > 5) {
      repair(Repair::kInvalidKind);
      kind_raw = 0;
    }
    s.kind = static_cast<uint8_t>(kind_raw);
    if (status_code_raw_ < 0 || status_code_raw_ > 2) {
      repair(Repair::kInvalidStatusCode);
      status_code_raw_ = 0;
    }
    s.status_code = static_cast<uint8_t>(status_code_raw_);
    if (s.end_time_unix_nano < s.start_time_unix_nano) {
      repair(Repair::kEndBeforeStart);
      s.end_time_unix_nano = s.start_time_unix_nano;
    }
    s.attributes = std::min(attrs, limits_.max_attributes);
    s.dropped_attributes += attrs - s.attributes;
    s.events = std::min(events, limits_.max_events_per_span);
    s.dropped_events += events - s.events;
    s.links = std::min(links, limits_.max_links_per_span);
    s.dropped_links += links - s.links;
    if (attrs > s.attributes || attrs_truncated_) repair(Repair::kAttributesTruncated);
    if (events > s.events) repair(Repair::kEventsTruncated);
    if (links > s.links) repair(Repair::kLinksTruncated);
    if (f.value_truncated) repair(Repair::kValueTruncated);
    return true;
  }

  SpanBatch* b_;
  const Limits& limits_;
  const uint8_t* base_ = nullptr;
  Status error_;
  size_t resource_index_ = 0, scope_index_ = 0, span_index_ = 0;
  bool in_scope_ = false, in_span_ = false;
  int32_t status_code_raw_ = 0;
  bool attrs_truncated_ = false;
  bool have_refusal_detail_ = false;
  std::string first_refusal_;
};

Result<std::shared_ptr<const SpanBatch>> DecodeExportRequest(std::string wire, Protocol protocol,
                                                             const Limits& limits) {
  auto batch = std::make_shared<SpanBatch>(std::move(wire), protocol, limits);
  Decoder decoder(batch.get());
  Status st = decoder.Run();
  if (!st.ok()) return st;
  return std::shared_ptr<const SpanBatch>(std::move(batch));
}

}  // namespace ordertrace::otlp
