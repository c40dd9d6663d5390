#include "forward/encoder.h"

#include <cstring>

namespace ordertrace::forward {
namespace {

using otlp::AnyValueView;
using otlp::KeyValueView;
using otlp::SpanBatch;
using otlp::ValueType;

// A minimal protobuf writer: tags, varints, fixed-width values and length-delimited fields.
// Sub-messages are built in their own string, then written with their length.
class Writer {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, uint32_t wire_type) { Varint((field << 3) | wire_type); }
  void VarintField(uint32_t field, uint64_t v) {
    if (v == 0) return;  // proto3: defaults are not written
    Tag(field, 0);
    Varint(v);
  }
  void Fixed64Field(uint32_t field, uint64_t v) {
    if (v == 0) return;
    Tag(field, 1);
    char b[8];
    std::memcpy(b, &v, 8);  // little-endian targets only, as the decoder
    out_.append(b, 8);
  }
  void Fixed32Field(uint32_t field, uint32_t v) {
    if (v == 0) return;
    Tag(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out_.append(b, 4);
  }
  void BytesField(uint32_t field, std::string_view s, bool even_if_empty = false) {
    if (s.empty() && !even_if_empty) return;
    Tag(field, 2);
    Varint(s.size());
    out_.append(s);
  }
  void Message(uint32_t field, const Writer& sub) { BytesField(field, sub.out_, true); }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

template <size_t N>
bool NonZero(const std::array<uint8_t, N>& id) {
  for (uint8_t b : id) {
    if (b) return true;
  }
  return false;
}

template <size_t N>
std::string_view Bytes(const std::array<uint8_t, N>& id) {
  return {reinterpret_cast<const char*>(id.data()), N};
}

void WriteValue(const AnyValueView& v, Writer* w) {
  switch (v.type) {
    case ValueType::kEmpty:
      break;
    case ValueType::kString:
      w->BytesField(1, v.str, true);
      break;
    case ValueType::kBool:
      w->Tag(2, 0);
      w->Varint(v.bool_value ? 1 : 0);
      break;
    case ValueType::kInt:
      w->Tag(3, 0);
      w->Varint(static_cast<uint64_t>(v.int_value));
      break;
    case ValueType::kDouble: {
      uint64_t bits;
      std::memcpy(&bits, &v.double_value, 8);
      w->Tag(4, 1);
      w->str().append(reinterpret_cast<const char*>(&bits), 8);
      break;
    }
    case ValueType::kArray:
      w->BytesField(5, v.str, true);
      break;
    case ValueType::kKvList:
      w->BytesField(6, v.str, true);
      break;
    case ValueType::kBytes:
      w->BytesField(7, v.str, true);
      break;
  }
}

// Writes `field` = KeyValue for each attribute the walker yields.
template <typename Walk>
void WriteAttributes(uint32_t field, Walk walk, Writer* w) {
  walk([&](const KeyValueView& kv) {
    Writer item, value;
    item.BytesField(1, kv.key);
    WriteValue(kv.value, &value);
    item.Message(2, value);
    w->Message(field, item);
  });
}

void WriteSpan(const SpanBatch& b, const otlp::SpanRef& s, Writer* w) {
  w->BytesField(1, Bytes(s.trace_id));
  w->BytesField(2, Bytes(s.span_id));
  w->BytesField(3, s.trace_state);
  if (s.has_parent()) w->BytesField(4, Bytes(s.parent_span_id));
  w->BytesField(5, s.name);
  w->VarintField(6, s.kind);
  w->Fixed64Field(7, s.start_time_unix_nano);
  w->Fixed64Field(8, s.end_time_unix_nano);
  WriteAttributes(
      9, [&](auto fn) { b.ForEachAttribute(s, fn); }, w);
  w->VarintField(10, s.dropped_attributes);
  b.ForEachEvent(s, [&](const otlp::EventView& e) {
    Writer ev;
    ev.Fixed64Field(1, e.time_unix_nano);
    ev.BytesField(2, e.name);
    WriteAttributes(
        3, [&](auto fn) { b.ForEachAttribute(e, fn); }, &ev);
    ev.VarintField(4, e.dropped_attributes);
    w->Message(11, ev);
  });
  w->VarintField(12, s.dropped_events);
  b.ForEachLink(s, [&](const otlp::LinkView& l) {
    Writer link;
    if (NonZero(l.trace_id)) link.BytesField(1, Bytes(l.trace_id));
    if (NonZero(l.span_id)) link.BytesField(2, Bytes(l.span_id));
    link.BytesField(3, l.trace_state);
    WriteAttributes(
        4, [&](auto fn) { b.ForEachAttribute(l, fn); }, &link);
    link.VarintField(5, l.dropped_attributes);
    link.Fixed32Field(6, l.flags);
    w->Message(13, link);
  });
  w->VarintField(14, s.dropped_links);
  if (s.status_code != 0 || !s.status_message.empty()) {
    Writer status;
    status.BytesField(2, s.status_message);
    status.VarintField(3, s.status_code);
    w->Message(15, status);
  }
  w->Fixed32Field(16, s.flags);
}

}  // namespace

std::string EncodeForForwarding(const SpanBatch& b) {
  if (!b.modified()) return std::string(b.wire());

  Writer request;
  const auto& spans = b.spans();
  size_t i = 0;
  // Spans are in wire order, grouped by resource and then by scope.
  while (i < spans.size()) {
    const uint32_t resource = spans[i].resource;
    const otlp::ResourceRef& r = b.resources()[resource];
    Writer rs;
    if (!r.encoded.empty() || r.dropped_attributes > 0) {
      Writer res;
      WriteAttributes(
          1, [&](auto fn) { b.ForEachAttribute(r, fn); }, &res);
      res.VarintField(2, r.dropped_attributes);
      rs.Message(1, res);
    }
    while (i < spans.size() && spans[i].resource == resource) {
      const uint32_t scope = spans[i].scope;
      const otlp::ScopeRef& sc = b.scopes()[scope];
      Writer ss;
      if (!sc.encoded.empty()) {
        Writer scope_msg;
        scope_msg.BytesField(1, sc.name);
        scope_msg.BytesField(2, sc.version);
        WriteAttributes(
            3, [&](auto fn) { b.ForEachAttribute(sc, fn); }, &scope_msg);
        scope_msg.VarintField(4, sc.dropped_attributes);
        ss.Message(1, scope_msg);
      }
      for (; i < spans.size() && spans[i].scope == scope; ++i) {
        Writer span;
        WriteSpan(b, spans[i], &span);
        ss.Message(2, span);
      }
      ss.BytesField(3, sc.schema_url);
      rs.Message(2, ss);
    }
    rs.BytesField(3, r.schema_url);
    request.Message(1, rs);
  }
  return std::move(request.str());
}

}  // namespace ordertrace::forward
