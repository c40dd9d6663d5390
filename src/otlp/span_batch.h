// SpanBatch: one accepted OTLP export request, decoded without copying.
//
// The batch owns the request's wire bytes (protobuf encoding of ExportTraceServiceRequest;
// OTLP/JSON is converted to it first) and indexes them: every string_view below points into
// `wire()`.  Spans refused by validation are not in `spans()`; repairs (truncations, fixed
// timestamps) are applied by the views, so every consumer sees the same repaired span.
//
// Thread-safety: immutable once decoded; share it as std::shared_ptr<const SpanBatch>
// between threads freely.  It is neither copyable nor movable (the views point into it).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "otlp/limits.h"

namespace ordertrace::otlp {

enum class Protocol : uint8_t { kGrpc, kHttpProtobuf, kHttpJson };
const char* ProtocolName(Protocol p);  // "grpc", "http_protobuf", "http_json"

// Why a span was refused (it is not in the batch; counted in partial success).
enum class RefuseReason : uint8_t {
  kInvalidTraceId,    // not 16 bytes, or all zero
  kInvalidSpanId,     // not 8 bytes, or all zero
  kInvalidParentId,   // present but not 8 bytes
  kInvalidUtf8,       // a string field of the span, its resource or scope is not UTF-8
  kMissingStartTime,  // start_time_unix_nano is 0
  kValueTooDeep,      // array/kvlist values nested deeper than max_value_depth
  kCount
};
const char* RefuseReasonName(RefuseReason r);

// What was repaired in an accepted span (bit flags in SpanRef::repairs).
enum class Repair : uint8_t {
  kEndBeforeStart,       // end < start (or 0): end := start
  kAttributesTruncated,  // more attributes than the limit (span, event or link)
  kValueTruncated,       // a string/bytes value longer than the limit
  kEventsTruncated,
  kLinksTruncated,
  kInvalidKind,        // kind > 5: := UNSPECIFIED
  kInvalidStatusCode,  // code > 2: := UNSET
  kCount
};
const char* RepairName(Repair r);

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;
std::string ToHex(const uint8_t* data, size_t n);
inline std::string ToHex(const TraceId& id) { return ToHex(id.data(), id.size()); }
inline std::string ToHex(const SpanId& id) { return ToHex(id.data(), id.size()); }
// `hex` (exactly 2n hex digits, either case) into n bytes; false, `out` unspecified, otherwise.
bool FromHex(std::string_view hex, uint8_t* out, size_t n);

enum class ValueType : uint8_t { kEmpty, kString, kBool, kInt, kDouble, kArray, kKvList, kBytes };

// One AnyValue.  For kString/kBytes, `str` is the (possibly truncated) value; for kArray and
// kKvList, `str` is the encoded ArrayValue/KeyValueList, walked with ForEachArrayValue and
// ForEachKeyValue.
struct AnyValueView {
  ValueType type = ValueType::kEmpty;
  std::string_view str;
  int64_t int_value = 0;
  double double_value = 0;
  bool bool_value = false;
};

struct KeyValueView {
  std::string_view key;
  AnyValueView value;
};

struct ResourceRef {
  std::string_view encoded;  // the Resource message (empty if absent)
  std::string_view schema_url;
  std::string_view service_name;  // resource attribute service.name, "" if absent
  uint32_t attributes = 0;        // kept, after the limit
  uint32_t dropped_attributes = 0;
};

struct ScopeRef {
  uint32_t resource = 0;     // index into SpanBatch::resources()
  std::string_view encoded;  // the InstrumentationScope message (empty if absent)
  std::string_view name;
  std::string_view version;
  std::string_view schema_url;
  uint32_t attributes = 0;
  uint32_t dropped_attributes = 0;
};

struct SpanRef {
  std::string_view encoded;  // the Span message
  uint32_t scope = 0;        // index into SpanBatch::scopes()
  uint32_t resource = 0;     // index into SpanBatch::resources()
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero for a root span
  std::string_view name;
  std::string_view trace_state;
  std::string_view status_message;
  uint64_t start_time_unix_nano = 0;
  uint64_t end_time_unix_nano = 0;
  uint32_t flags = 0;
  uint8_t kind = 0;         // SpanKind, 0..5
  uint8_t status_code = 0;  // 0 unset, 1 ok, 2 error
  uint32_t attributes = 0;  // kept, after the limit
  uint32_t dropped_attributes = 0;
  uint32_t events = 0;
  uint32_t dropped_events = 0;
  uint32_t links = 0;
  uint32_t dropped_links = 0;
  uint32_t repairs = 0;  // bit (1 << Repair)

  bool has_parent() const;
  bool repaired(Repair r) const { return repairs & (1u << static_cast<int>(r)); }
};

struct EventView {
  uint64_t time_unix_nano = 0;
  std::string_view name;
  std::string_view encoded;         // the Event message, for its attributes
  uint32_t dropped_attributes = 0;  // as sent plus those over the limit
};

struct LinkView {
  TraceId trace_id{};
  SpanId span_id{};
  std::string_view trace_state;
  uint32_t flags = 0;
  std::string_view encoded;
  uint32_t dropped_attributes = 0;
};

class SpanBatch {
 public:
  SpanBatch(std::string wire, Protocol protocol, const Limits& limits);
  SpanBatch(const SpanBatch&) = delete;
  SpanBatch& operator=(const SpanBatch&) = delete;

  std::string_view wire() const { return wire_; }
  Protocol protocol() const { return protocol_; }
  const Limits& limits() const { return limits_; }
  int64_t received_unix_nano() const { return received_unix_nano_; }

  const std::vector<ResourceRef>& resources() const { return resources_; }
  const std::vector<ScopeRef>& scopes() const { return scopes_; }
  const std::vector<SpanRef>& spans() const { return spans_; }

  // Spans in the request that were refused, by reason, and the first refusal in words.
  uint64_t refused_spans() const { return refused_total_; }
  uint64_t refused(RefuseReason r) const { return refused_[static_cast<int>(r)]; }
  const std::string& refusal_message() const { return refusal_message_; }
  uint64_t repaired(Repair r) const { return repaired_[static_cast<int>(r)]; }
  // True when the views differ from the wire: a span was refused or repaired, or a resource or
  // scope had attributes or values cut to the limits.  Forwarding re-encodes such a batch and
  // sends the wire bytes of any other as they came.
  bool modified() const;

  // Attribute walkers.  `fn(const KeyValueView&)` is called for each kept attribute, in wire
  // order, with values truncated to the limit.
  template <typename F>
  void ForEachAttribute(const ResourceRef& r, F&& fn) const;
  template <typename F>
  void ForEachAttribute(const ScopeRef& s, F&& fn) const;
  template <typename F>
  void ForEachAttribute(const SpanRef& s, F&& fn) const;
  template <typename F>
  void ForEachAttribute(const EventView& e, F&& fn) const;
  template <typename F>
  void ForEachAttribute(const LinkView& l, F&& fn) const;
  template <typename F>
  void ForEachEvent(const SpanRef& s, F&& fn) const;
  template <typename F>
  void ForEachLink(const SpanRef& s, F&& fn) const;
  // Finds a span attribute by key; returns false if absent.
  bool FindAttribute(const SpanRef& s, std::string_view key, AnyValueView* out) const;

 private:
  friend class Decoder;
  void ForEachKeyValueImpl(std::string_view msg, uint32_t field, uint32_t limit, void* ctx,
                           void (*cb)(void*, const KeyValueView&)) const;
  void ForEachEventImpl(const SpanRef& s, void* ctx, void (*cb)(void*, const EventView&)) const;
  void ForEachLinkImpl(const SpanRef& s, void* ctx, void (*cb)(void*, const LinkView&)) const;

  std::string wire_;
  Protocol protocol_;
  Limits limits_;
  int64_t received_unix_nano_ = 0;
  std::vector<ResourceRef> resources_;
  std::vector<ScopeRef> scopes_;
  std::vector<SpanRef> spans_;
  uint64_t refused_total_ = 0;
  uint64_t refused_[static_cast<int>(RefuseReason::kCount)] = {};
  uint64_t repaired_[static_cast<int>(Repair::kCount)] = {};
  std::string refusal_message_;
  bool truncated_above_spans_ = false;  // a resource/scope attribute or value over the limits
};

// Walks the elements of an array value / the entries of a kvlist value.
void ForEachArrayValue(const AnyValueView& v, uint32_t max_value_bytes, void* ctx,
                       void (*cb)(void*, const AnyValueView&));
void ForEachKeyValue(const AnyValueView& v, uint32_t max_value_bytes, void* ctx,
                     void (*cb)(void*, const KeyValueView&));
template <typename F>
void ForEachArrayValue(const AnyValueView& v, uint32_t max, F&& fn) {
  ForEachArrayValue(v, max, &fn, [](void* c, const AnyValueView& x) { (*static_cast<F*>(c))(x); });
}
template <typename F>
void ForEachKeyValue(const AnyValueView& v, uint32_t max, F&& fn) {
  ForEachKeyValue(v, max, &fn, [](void* c, const KeyValueView& x) { (*static_cast<F*>(c))(x); });
}

// ---- template implementations ----
namespace detail {
template <typename T, typename F>
void Thunk(void* c, const T& x) {
  (*static_cast<F*>(c))(x);
}
}  // namespace detail

template <typename F>
void SpanBatch::ForEachAttribute(const ResourceRef& r, F&& fn) const {
  ForEachKeyValueImpl(r.encoded, 1, limits_.max_attributes, &fn,
                      &detail::Thunk<KeyValueView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachAttribute(const ScopeRef& s, F&& fn) const {
  ForEachKeyValueImpl(s.encoded, 3, limits_.max_attributes, &fn,
                      &detail::Thunk<KeyValueView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachAttribute(const SpanRef& s, F&& fn) const {
  ForEachKeyValueImpl(s.encoded, 9, limits_.max_attributes, &fn,
                      &detail::Thunk<KeyValueView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachAttribute(const EventView& e, F&& fn) const {
  ForEachKeyValueImpl(e.encoded, 3, limits_.max_attributes_per_event, &fn,
                      &detail::Thunk<KeyValueView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachAttribute(const LinkView& l, F&& fn) const {
  ForEachKeyValueImpl(l.encoded, 4, limits_.max_attributes_per_event, &fn,
                      &detail::Thunk<KeyValueView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachEvent(const SpanRef& s, F&& fn) const {
  ForEachEventImpl(s, &fn, &detail::Thunk<EventView, std::remove_reference_t<F>>);
}
template <typename F>
void SpanBatch::ForEachLink(const SpanRef& s, F&& fn) const {
  ForEachLinkImpl(s, &fn, &detail::Thunk<LinkView, std::remove_reference_t<F>>);
}

}  // namespace ordertrace::otlp
