// OTLP/JSON → protobuf wire bytes.
//
// The OTLP specification ("JSON Protobuf Encoding") uses the proto3 JSON mapping with three
// deviations, all applied here: trace/span ids are case-insensitive hex strings (not base64),
// enums are integers, and unknown fields are ignored.  On top of the specification this
// converter is lenient the way protobuf's own JSON parser is: proto field names (snake_case)
// are accepted beside lowerCamelCase, enum name strings beside integers, 64- and 32-bit
// integers as numbers or decimal strings, doubles as "NaN"/"Infinity"/"-Infinity" or numeric
// strings, bytes as standard or URL-safe base64 with or without padding, and null as absent.
//
// Why generated classes and not a direct writer: JSON is not the gateway's hot path (the
// protobuf exporters are), and the generated serializer is the reference encoding the
// decoder is tested against.
#include "otlp/json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace ordertrace::otlp {
namespace {

namespace pb_common = opentelemetry::proto::common::v1;
namespace pb_resource = opentelemetry::proto::resource::v1;
namespace pb_trace = opentelemetry::proto::trace::v1;
namespace pb_collector = opentelemetry::proto::collector::trace::v1;
using Json = nlohmann::json;

// Deepest nesting of JSON objects and arrays accepted.  A span attribute sits at depth 10;
// every level of array/kvlist nesting adds 3, so this admits values nested deeper than the
// decoder's own limit (Limits::max_value_depth), which then refuses the span with a reason.
constexpr int kMaxDepth = 64;

// A position in the document, linked up the C++ stack: free to build, rendered only on error.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // a field name, or empty for an array index
  size_t index = 0;

  Path Field(std::string_view name) const { return Path{this, name, 0}; }
  Path Index(size_t i) const { return Path{this, {}, i}; }

  std::string Render() const {
    if (parent == nullptr) return "request";  // the root object
    std::string out = parent->parent == nullptr ? std::string() : parent->Render();
    if (key.empty()) {
      out += '[';
      out += std::to_string(index);
      out += ']';
    } else {
      if (!out.empty()) out += '.';
      out += key;
    }
    return out;
  }
};

// Thrown inside this file only, caught in JsonToWire.
struct JsonError {
  std::string message;
};

[[noreturn]] void Fail(const Path& path, std::string_view what) {
  std::string m = path.Render();
  m += ": ";
  m += what;
  throw JsonError{std::move(m)};
}

[[noreturn]] void FailType(const Path& path, std::string_view expected, const Json& got) {
  std::string m = "expected ";
  m += expected;
  m += ", got ";
  m += got.type_name();
  Fail(path, m);
}

// Matches an object key against a field's lowerCamelCase and proto (snake_case) names.
bool Is(const std::string& key, std::string_view camel, std::string_view snake) {
  return key == camel || key == snake;
}

// Remembers which fields of one message were set, so that a field given under both its
// names ("traceId" and "trace_id") is an error, as in protobuf's JSON parser.
class SeenFields {
 public:
  void Mark(const Path& parent, int field, std::string_view name) {
    uint64_t bit = uint64_t{1} << field;
    if (seen_ & bit) Fail(parent.Field(name), "field given more than once");
    seen_ |= bit;
  }

 private:
  uint64_t seen_ = 0;
};

// ---- scalars ----

const std::string& GetString(const Json& j, const Path& path) {
  if (!j.is_string()) FailType(path, "a string", j);
  return j.get_ref<const std::string&>();
}

bool GetBool(const Json& j, const Path& path) {
  if (!j.is_boolean()) FailType(path, "true or false", j);
  return j.get<bool>();
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Trace and span ids: case-insensitive hex.  The length is not checked here: a well-formed
// id of the wrong size is the decoder's to refuse (per span, in partial success).
std::string GetHexId(const Json& j, const Path& path) {
  const std::string& s = GetString(j, path);
  if (s.size() % 2 != 0) Fail(path, "not a hex string (odd number of digits)");
  std::string out(s.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexNibble(s[2 * i]);
    int lo = HexNibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) Fail(path, "not a hex string");
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

int Base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // standard or URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Standard or URL-safe base64, padding optional (as protobuf's JSON parser accepts).
std::string GetBase64(const Json& j, const Path& path) {
  std::string_view s = GetString(j, path);
  size_t pad = 0;
  while (!s.empty() && s.back() == '=' && pad < 2) {
    s.remove_suffix(1);
    ++pad;
  }
  if (s.size() % 4 == 1 || (pad > 0 && (s.size() + pad) % 4 != 0)) {
    Fail(path, "not a base64 string (bad length or padding)");
  }
  std::string out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int d = Base64Digit(c);
    if (d < 0) Fail(path, "not a base64 string");
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// Parses a whole decimal string into T; false when it is not one or is out of T's range.
template <typename T>
bool ParseDecimal(std::string_view s, T* out, bool* out_of_range) {
  *out_of_range = false;
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports range before checking the rest; only digits count as "a number".
    *out_of_range = true;
    return false;
  }
  return ec == std::errc() && end == s.data() + s.size();
}

// 64-bit integers: a JSON number (integral, in range) or a decimal string.
template <typename T>
T GetInteger(const Json& j, const Path& path) {
  static_assert(std::is_integral_v<T>);
  constexpr T kMin = std::numeric_limits<T>::min();
  constexpr T kMax = std::numeric_limits<T>::max();
  switch (j.type()) {
    case Json::value_t::number_unsigned: {
      uint64_t v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(kMax)) Fail(path, "integer out of range");
      return static_cast<T>(v);
    }
    case Json::value_t::number_integer: {
      int64_t v = j.get<int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (v < 0) Fail(path, "integer out of range");
        if (static_cast<uint64_t>(v) > static_cast<uint64_t>(kMax)) {
          Fail(path, "integer out of range");
        }
      } else {
        if (v < static_cast<int64_t>(kMin) || v > static_cast<int64_t>(kMax)) {
          Fail(path, "integer out of range");
        }
      }
      return static_cast<T>(v);
    }
    case Json::value_t::number_float: {
      // Numbers too large for 64 bits arrive here, as do 1e3 and 5.0.
      double d = j.get<double>();
      if (!std::isfinite(d) || d != std::trunc(d)) Fail(path, "not an integer");
      // 2^64 and 2^63 are exact doubles; kMin is -2^63 or 0, also exact.
      constexpr double kLimit =
          std::is_unsigned_v<T> ? 18446744073709551616.0 : 9223372036854775808.0;
      constexpr double kUpper = sizeof(T) == 8 ? kLimit : static_cast<double>(kMax) + 1.0;
      // A literal below int64's range arrives as a float that rounds to exactly -2^63, so
      // for int64 that value is refused too ("-9223372036854775808" itself parses as an
      // integer and never gets here).
      constexpr bool kSigned64 = std::is_signed_v<T> && sizeof(T) == 8;
      if (d < static_cast<double>(kMin) || (kSigned64 && d == static_cast<double>(kMin)) ||
          d >= kUpper) {
        Fail(path, "integer out of range");
      }
      return static_cast<T>(d);
    }
    case Json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      T v{};
      bool out_of_range = false;
      if (ParseDecimal(s, &v, &out_of_range)) return v;
      if (out_of_range) Fail(path, "integer out of range");
      if constexpr (std::is_unsigned_v<T>) {
        int64_t neg = 0;
        if (ParseDecimal<int64_t>(s, &neg, &out_of_range) || out_of_range) {
          Fail(path, "integer out of range");
        }
      }
      Fail(path, "not a decimal integer string");
    }
    default:
      FailType(path, "an integer (number or decimal string)", j);
  }
}

double GetDouble(const Json& j, const Path& path) {
  if (j.is_number()) {
    double d = j.get<double>();
    if (!std::isfinite(d)) Fail(path, "number out of range");
    return d;
  }
  if (!j.is_string()) FailType(path, "a number", j);
  const std::string& s = j.get_ref<const std::string&>();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s == "Infinity") return std::numeric_limits<double>::infinity();
  if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
  double d = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec == std::errc::result_out_of_range) Fail(path, "number out of range");
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    Fail(path, "not a number string");
  }
  return d;
}

// Enums: an integer (the OTLP form) or the enum value's name (the protobuf JSON form).
template <typename E>
int GetEnum(const Json& j, const Path& path, bool (*parse_name)(const std::string&, E*)) {
  if (j.is_string()) {
    E named{};
    if (parse_name(j.get_ref<const std::string&>(), &named)) return static_cast<int>(named);
    int32_t v = 0;
    bool out_of_range = false;
    if (ParseDecimal(j.get_ref<const std::string&>(), &v, &out_of_range)) return v;
    Fail(path, "unknown enum value \"" + j.get_ref<const std::string&>() + "\"");
  }
  if (!j.is_number()) FailType(path, "an integer enum value", j);
  // Values outside the enum are kept (proto3 enums are open); the decoder repairs them.
  return GetInteger<int32_t>(j, path);
}

// ---- messages ----

const Json::array_t& GetArray(const Json& j, const Path& path) {
  if (!j.is_array()) FailType(path, "an array", j);
  return j.get_ref<const Json::array_t&>();
}

const Json::object_t& GetObject(const Json& j, const Path& path) {
  if (!j.is_object()) FailType(path, "an object", j);
  return j.get_ref<const Json::object_t&>();
}

// Calls fn(element, element_path) for each element of a repeated message field.
template <typename F>
void ForEachElement(const Json& j, const Path& path, F&& fn) {
  const Json::array_t& arr = GetArray(j, path);
  for (size_t i = 0; i < arr.size(); ++i) {
    Path at = path.Index(i);
    if (arr[i].is_null()) Fail(at, "null element in a repeated field");
    fn(arr[i], at);
  }
}

void ParseAnyValue(const Json& j, const Path& path, pb_common::AnyValue* out);

void ParseKeyValue(const Json& j, const Path& path, pb_common::KeyValue* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "key") {
      seen.Mark(path, 1, "key");
      out->set_key(GetString(v, path.Field("key")));
    } else if (key == "value") {
      seen.Mark(path, 2, "value");
      ParseAnyValue(v, path.Field("value"), out->mutable_value());
    }
  }
}

void ParseKeyValues(const Json& j, const Path& path,
                    google::protobuf::RepeatedPtrField<pb_common::KeyValue>* out) {
  ForEachElement(j, path, [&](const Json& e, const Path& at) { ParseKeyValue(e, at, out->Add()); });
}

void ParseArrayValue(const Json& j, const Path& path, pb_common::ArrayValue* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null() || key != "values") continue;
    seen.Mark(path, 1, "values");
    ForEachElement(v, path.Field("values"),
                   [&](const Json& e, const Path& at) { ParseAnyValue(e, at, out->add_values()); });
  }
}

void ParseKeyValueList(const Json& j, const Path& path, pb_common::KeyValueList* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null() || key != "values") continue;
    seen.Mark(path, 1, "values");
    ParseKeyValues(v, path.Field("values"), out->mutable_values());
  }
}

void ParseAnyValue(const Json& j, const Path& path, pb_common::AnyValue* out) {
  const char* set = nullptr;  // the oneof member already set
  auto once = [&](const char* name) {
    if (set != nullptr) {
      Fail(path, std::string("more than one value given (\"") + set + "\" and \"" + name + "\")");
    }
    set = name;
    return path.Field(name);
  };
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (Is(key, "stringValue", "string_value")) {
      out->set_string_value(GetString(v, once("stringValue")));
    } else if (Is(key, "boolValue", "bool_value")) {
      out->set_bool_value(GetBool(v, once("boolValue")));
    } else if (Is(key, "intValue", "int_value")) {
      out->set_int_value(GetInteger<int64_t>(v, once("intValue")));
    } else if (Is(key, "doubleValue", "double_value")) {
      out->set_double_value(GetDouble(v, once("doubleValue")));
    } else if (Is(key, "arrayValue", "array_value")) {
      ParseArrayValue(v, once("arrayValue"), out->mutable_array_value());
    } else if (Is(key, "kvlistValue", "kvlist_value")) {
      ParseKeyValueList(v, once("kvlistValue"), out->mutable_kvlist_value());
    } else if (Is(key, "bytesValue", "bytes_value")) {
      out->set_bytes_value(GetBase64(v, once("bytesValue")));
    }
  }
}

void ParseResource(const Json& j, const Path& path, pb_resource::Resource* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "attributes") {
      seen.Mark(path, 1, "attributes");
      ParseKeyValues(v, path.Field("attributes"), out->mutable_attributes());
    } else if (Is(key, "droppedAttributesCount", "dropped_attributes_count")) {
      seen.Mark(path, 2, "droppedAttributesCount");
      out->set_dropped_attributes_count(
          GetInteger<uint32_t>(v, path.Field("droppedAttributesCount")));
    }
  }
}

void ParseScope(const Json& j, const Path& path, pb_common::InstrumentationScope* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "name") {
      seen.Mark(path, 1, "name");
      out->set_name(GetString(v, path.Field("name")));
    } else if (key == "version") {
      seen.Mark(path, 2, "version");
      out->set_version(GetString(v, path.Field("version")));
    } else if (key == "attributes") {
      seen.Mark(path, 3, "attributes");
      ParseKeyValues(v, path.Field("attributes"), out->mutable_attributes());
    } else if (Is(key, "droppedAttributesCount", "dropped_attributes_count")) {
      seen.Mark(path, 4, "droppedAttributesCount");
      out->set_dropped_attributes_count(
          GetInteger<uint32_t>(v, path.Field("droppedAttributesCount")));
    }
  }
}

void ParseEvent(const Json& j, const Path& path, pb_trace::Span::Event* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (Is(key, "timeUnixNano", "time_unix_nano")) {
      seen.Mark(path, 1, "timeUnixNano");
      out->set_time_unix_nano(GetInteger<uint64_t>(v, path.Field("timeUnixNano")));
    } else if (key == "name") {
      seen.Mark(path, 2, "name");
      out->set_name(GetString(v, path.Field("name")));
    } else if (key == "attributes") {
      seen.Mark(path, 3, "attributes");
      ParseKeyValues(v, path.Field("attributes"), out->mutable_attributes());
    } else if (Is(key, "droppedAttributesCount", "dropped_attributes_count")) {
      seen.Mark(path, 4, "droppedAttributesCount");
      out->set_dropped_attributes_count(
          GetInteger<uint32_t>(v, path.Field("droppedAttributesCount")));
    }
  }
}

void ParseLink(const Json& j, const Path& path, pb_trace::Span::Link* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (Is(key, "traceId", "trace_id")) {
      seen.Mark(path, 1, "traceId");
      out->set_trace_id(GetHexId(v, path.Field("traceId")));
    } else if (Is(key, "spanId", "span_id")) {
      seen.Mark(path, 2, "spanId");
      out->set_span_id(GetHexId(v, path.Field("spanId")));
    } else if (Is(key, "traceState", "trace_state")) {
      seen.Mark(path, 3, "traceState");
      out->set_trace_state(GetString(v, path.Field("traceState")));
    } else if (key == "attributes") {
      seen.Mark(path, 4, "attributes");
      ParseKeyValues(v, path.Field("attributes"), out->mutable_attributes());
    } else if (Is(key, "droppedAttributesCount", "dropped_attributes_count")) {
      seen.Mark(path, 5, "droppedAttributesCount");
      out->set_dropped_attributes_count(
          GetInteger<uint32_t>(v, path.Field("droppedAttributesCount")));
    } else if (key == "flags") {
      seen.Mark(path, 6, "flags");
      out->set_flags(GetInteger<uint32_t>(v, path.Field("flags")));
    }
  }
}

void ParseStatus(const Json& j, const Path& path, pb_trace::Status* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "message") {
      seen.Mark(path, 2, "message");
      out->set_message(GetString(v, path.Field("message")));
    } else if (key == "code") {
      seen.Mark(path, 3, "code");
      out->set_code(static_cast<pb_trace::Status::StatusCode>(
          GetEnum(v, path.Field("code"), &pb_trace::Status::StatusCode_Parse)));
    }
  }
}

void ParseSpan(const Json& j, const Path& path, pb_trace::Span* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (Is(key, "traceId", "trace_id")) {
      seen.Mark(path, 1, "traceId");
      out->set_trace_id(GetHexId(v, path.Field("traceId")));
    } else if (Is(key, "spanId", "span_id")) {
      seen.Mark(path, 2, "spanId");
      out->set_span_id(GetHexId(v, path.Field("spanId")));
    } else if (Is(key, "traceState", "trace_state")) {
      seen.Mark(path, 3, "traceState");
      out->set_trace_state(GetString(v, path.Field("traceState")));
    } else if (Is(key, "parentSpanId", "parent_span_id")) {
      seen.Mark(path, 4, "parentSpanId");
      out->set_parent_span_id(GetHexId(v, path.Field("parentSpanId")));
    } else if (key == "flags") {
      seen.Mark(path, 16, "flags");
      out->set_flags(GetInteger<uint32_t>(v, path.Field("flags")));
    } else if (key == "name") {
      seen.Mark(path, 5, "name");
      out->set_name(GetString(v, path.Field("name")));
    } else if (key == "kind") {
      seen.Mark(path, 6, "kind");
      out->set_kind(static_cast<pb_trace::Span::SpanKind>(
          GetEnum(v, path.Field("kind"), &pb_trace::Span::SpanKind_Parse)));
    } else if (Is(key, "startTimeUnixNano", "start_time_unix_nano")) {
      seen.Mark(path, 7, "startTimeUnixNano");
      out->set_start_time_unix_nano(GetInteger<uint64_t>(v, path.Field("startTimeUnixNano")));
    } else if (Is(key, "endTimeUnixNano", "end_time_unix_nano")) {
      seen.Mark(path, 8, "endTimeUnixNano");
      out->set_end_time_unix_nano(GetInteger<uint64_t>(v, path.Field("endTimeUnixNano")));
    } else if (key == "attributes") {
      seen.Mark(path, 9, "attributes");
      ParseKeyValues(v, path.Field("attributes"), out->mutable_attributes());
    } else if (Is(key, "droppedAttributesCount", "dropped_attributes_count")) {
      seen.Mark(path, 10, "droppedAttributesCount");
      out->set_dropped_attributes_count(
          GetInteger<uint32_t>(v, path.Field("droppedAttributesCount")));
    } else if (key == "events") {
      seen.Mark(path, 11, "events");
      ForEachElement(v, path.Field("events"),
                     [&](const Json& e, const Path& at) { ParseEvent(e, at, out->add_events()); });
    } else if (Is(key, "droppedEventsCount", "dropped_events_count")) {
      seen.Mark(path, 12, "droppedEventsCount");
      out->set_dropped_events_count(GetInteger<uint32_t>(v, path.Field("droppedEventsCount")));
    } else if (key == "links") {
      seen.Mark(path, 13, "links");
      ForEachElement(v, path.Field("links"),
                     [&](const Json& e, const Path& at) { ParseLink(e, at, out->add_links()); });
    } else if (Is(key, "droppedLinksCount", "dropped_links_count")) {
      seen.Mark(path, 14, "droppedLinksCount");
      out->set_dropped_links_count(GetInteger<uint32_t>(v, path.Field("droppedLinksCount")));
    } else if (key == "status") {
      seen.Mark(path, 15, "status");
      ParseStatus(v, path.Field("status"), out->mutable_status());
    }
  }
}

void ParseScopeSpans(const Json& j, const Path& path, pb_trace::ScopeSpans* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "scope") {
      seen.Mark(path, 1, "scope");
      ParseScope(v, path.Field("scope"), out->mutable_scope());
    } else if (key == "spans") {
      seen.Mark(path, 2, "spans");
      ForEachElement(v, path.Field("spans"),
                     [&](const Json& e, const Path& at) { ParseSpan(e, at, out->add_spans()); });
    } else if (Is(key, "schemaUrl", "schema_url")) {
      seen.Mark(path, 3, "schemaUrl");
      out->set_schema_url(GetString(v, path.Field("schemaUrl")));
    }
  }
}

void ParseResourceSpans(const Json& j, const Path& path, pb_trace::ResourceSpans* out) {
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, path)) {
    if (v.is_null()) continue;
    if (key == "resource") {
      seen.Mark(path, 1, "resource");
      ParseResource(v, path.Field("resource"), out->mutable_resource());
    } else if (Is(key, "scopeSpans", "scope_spans")) {
      seen.Mark(path, 2, "scopeSpans");
      ForEachElement(v, path.Field("scopeSpans"), [&](const Json& e, const Path& at) {
        ParseScopeSpans(e, at, out->add_scope_spans());
      });
    } else if (Is(key, "schemaUrl", "schema_url")) {
      seen.Mark(path, 3, "schemaUrl");
      out->set_schema_url(GetString(v, path.Field("schemaUrl")));
    }
  }
}

void ParseRequest(const Json& j, pb_collector::ExportTraceServiceRequest* out) {
  Path root;
  SeenFields seen;
  for (const auto& [key, v] : GetObject(j, root)) {
    if (v.is_null()) continue;
    if (Is(key, "resourceSpans", "resource_spans")) {
      seen.Mark(root, 1, "resourceSpans");
      ForEachElement(v, root.Field("resourceSpans"), [&](const Json& e, const Path& at) {
        ParseResourceSpans(e, at, out->add_resource_spans());
      });
    }
  }
}

// Rejects documents nested deeper than kMaxDepth before the parser builds them: bounds the
// work and memory an adversarial body can cost.  Malformed JSON is left to the parser.
Status CheckDepth(std::string_view json) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        if (++depth > kMaxDepth) {
          return Status::InvalidArgument("JSON nested deeper than " + std::to_string(kMaxDepth) +
                                         " levels at byte " + std::to_string(i));
        }
        break;
      case '}':
      case ']':
        --depth;
        break;
      default:
        break;
    }
  }
  return Status::Ok();
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1,
// column 7: "; the byte offset is reported separately, so keep only the reason.
std::string ParseErrorReason(const char* what) {
  std::string_view w = what;
  size_t colon = w.find(": ");
  if (colon != std::string_view::npos && w.substr(0, colon).find("parse error") != w.npos) {
    w.remove_prefix(colon + 2);
  }
  return std::string(w);
}

}  // namespace

Result<std::string> JsonToWire(std::string_view json) {
  try {
    if (Status depth = CheckDepth(json); !depth.ok()) return depth;
    Json doc;
    try {
      doc = Json::parse(json.begin(), json.end());
    } catch (const Json::parse_error& e) {
      // e.byte counts from 1 (the character that failed); report a 0-based offset.
      size_t offset = e.byte > 0 ? e.byte - 1 : 0;
      return Status::InvalidArgument("malformed JSON at byte " + std::to_string(offset) + ": " +
                                     ParseErrorReason(e.what()));
    }
    pb_collector::ExportTraceServiceRequest request;
    ParseRequest(doc, &request);
    std::string wire;
    if (!request.SerializeToString(&wire)) {
      return Status::InvalidArgument("request too large to encode");
    }
    return wire;
  } catch (const JsonError& e) {
    return Status::InvalidArgument(e.message);
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory converting OTLP/JSON");
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("malformed OTLP/JSON: ") + e.what());
  }
}

}  // namespace ordertrace::otlp
