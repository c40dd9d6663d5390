// Tests for JsonToWire: OTLP/JSON documents written by hand (the OTLP form, with hex ids) are
// compared, as parsed protobuf messages, with the same request built with generated classes.
#include "otlp/json.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace ordertrace::otlp {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::KeyValue;
using opentelemetry::proto::trace::v1::Span;
using opentelemetry::proto::trace::v1::Status;

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

const std::string kTraceId = Bytes({0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69,
                                    0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c});
const std::string kSpanId = Bytes({0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74});
const std::string kParentId = Bytes({0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73});
const std::string kLinkTraceId = Bytes({0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                        0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f});
const std::string kLinkSpanId = Bytes({0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8});

ExportTraceServiceRequest Parse(const std::string& wire) {
  ExportTraceServiceRequest r;
  EXPECT_TRUE(r.ParseFromString(wire));
  return r;
}

// Converts `json` and expects it to equal `want`, field by field.
void ExpectConverts(const std::string& json, const ExportTraceServiceRequest& want) {
  Result<std::string> wire = JsonToWire(json);
  ASSERT_TRUE(wire.ok()) << wire.status().ToString() << "\n" << json;
  ExportTraceServiceRequest got = Parse(*wire);
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  EXPECT_TRUE(diff.Compare(want, got)) << report << "\nwant:\n"
                                       << want.DebugString() << "\ngot:\n"
                                       << got.DebugString();
}

// Expects `json` to be refused with InvalidArgument and exactly `message`.
void ExpectError(const std::string& json, const std::string& message) {
  Result<std::string> wire = JsonToWire(json);
  ASSERT_FALSE(wire.ok()) << json;
  EXPECT_EQ(wire.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wire.status().message(), message) << json;
}

// One span inside the usual envelope; `span` is the span object's JSON.
std::string WrapSpan(const std::string& span) {
  return R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + span + "]}]}]}";
}
ExportTraceServiceRequest WrapSpan(const Span& span) {
  ExportTraceServiceRequest r;
  *r.add_resource_spans()->add_scope_spans()->add_spans() = span;
  return r;
}

// A span carrying one attribute "a" with `value` (JSON), and the expected request.
std::string WrapValue(const std::string& value) {
  return WrapSpan(R"({"attributes":[{"key":"a","value":)" + value + "}]}");
}
ExportTraceServiceRequest WrapValue(const AnyValue& value) {
  Span s;
  KeyValue* kv = s.add_attributes();
  kv->set_key("a");
  *kv->mutable_value() = value;
  return WrapSpan(s);
}

TEST(JsonToWire, FullRequestEveryField) {
  const std::string json = R"({
    "resourceSpans": [{
      "resource": {
        "attributes": [
          {"key": "service.name", "value": {"stringValue": "crm"}},
          {"key": "host.cores", "value": {"intValue": "8"}}
        ],
        "droppedAttributesCount": 2
      },
      "schemaUrl": "https://opentelemetry.io/schemas/1.21.0",
      "scopeSpans": [{
        "scope": {
          "name": "ordertrace", "version": "1.2.3",
          "attributes": [{"key": "scope.attr", "value": {"boolValue": true}}],
          "droppedAttributesCount": 1
        },
        "schemaUrl": "https://example.com/scope-schema",
        "spans": [{
          "traceId": "5B8EFFF798038103D269B633813FC60C",
          "spanId": "eee19b7ec3c1b174",
          "parentSpanId": "EEE19B7EC3C1B173",
          "traceState": "vendor=value",
          "flags": 769,
          "name": "POST /orders",
          "kind": 2,
          "startTimeUnixNano": "1544712660000000000",
          "endTimeUnixNano": "1544712661000000000",
          "attributes": [
            {"key": "order.id", "value": {"stringValue": "A-1"}},
            {"key": "retry", "value": {"boolValue": false}},
            {"key": "count", "value": {"intValue": -42}},
            {"key": "ratio", "value": {"doubleValue": 0.25}}
          ],
          "droppedAttributesCount": 3,
          "events": [{
            "timeUnixNano": "1544712660500000000",
            "name": "exception",
            "attributes": [{"key": "exception.message", "value": {"stringValue": "boom"}}],
            "droppedAttributesCount": 4
          }],
          "droppedEventsCount": 5,
          "links": [{
            "traceId": "000102030405060708090a0b0c0d0e0f",
            "spanId": "fffefdfcfbfaf9f8",
            "traceState": "k=v",
            "attributes": [{"key": "link.kind", "value": {"stringValue": "follows"}}],
            "droppedAttributesCount": 6,
            "flags": 257
          }],
          "droppedLinksCount": 7,
          "status": {"code": 2, "message": "payment declined"}
        }]
      }]
    }]
  })";

  ExportTraceServiceRequest want;
  auto* rs = want.add_resource_spans();
  rs->set_schema_url("https://opentelemetry.io/schemas/1.21.0");
  auto* res = rs->mutable_resource();
  auto* a = res->add_attributes();
  a->set_key("service.name");
  a->mutable_value()->set_string_value("crm");
  a = res->add_attributes();
  a->set_key("host.cores");
  a->mutable_value()->set_int_value(8);
  res->set_dropped_attributes_count(2);
  auto* ss = rs->add_scope_spans();
  ss->set_schema_url("https://example.com/scope-schema");
  ss->mutable_scope()->set_name("ordertrace");
  ss->mutable_scope()->set_version("1.2.3");
  a = ss->mutable_scope()->add_attributes();
  a->set_key("scope.attr");
  a->mutable_value()->set_bool_value(true);
  ss->mutable_scope()->set_dropped_attributes_count(1);
  Span* s = ss->add_spans();
  s->set_trace_id(kTraceId);
  s->set_span_id(kSpanId);
  s->set_parent_span_id(kParentId);
  s->set_trace_state("vendor=value");
  s->set_flags(769);
  s->set_name("POST /orders");
  s->set_kind(Span::SPAN_KIND_SERVER);
  s->set_start_time_unix_nano(1544712660000000000ULL);
  s->set_end_time_unix_nano(1544712661000000000ULL);
  a = s->add_attributes();
  a->set_key("order.id");
  a->mutable_value()->set_string_value("A-1");
  a = s->add_attributes();
  a->set_key("retry");
  a->mutable_value()->set_bool_value(false);
  a = s->add_attributes();
  a->set_key("count");
  a->mutable_value()->set_int_value(-42);
  a = s->add_attributes();
  a->set_key("ratio");
  a->mutable_value()->set_double_value(0.25);
  s->set_dropped_attributes_count(3);
  auto* e = s->add_events();
  e->set_time_unix_nano(1544712660500000000ULL);
  e->set_name("exception");
  a = e->add_attributes();
  a->set_key("exception.message");
  a->mutable_value()->set_string_value("boom");
  e->set_dropped_attributes_count(4);
  s->set_dropped_events_count(5);
  auto* l = s->add_links();
  l->set_trace_id(kLinkTraceId);
  l->set_span_id(kLinkSpanId);
  l->set_trace_state("k=v");
  a = l->add_attributes();
  a->set_key("link.kind");
  a->mutable_value()->set_string_value("follows");
  l->set_dropped_attributes_count(6);
  l->set_flags(257);
  s->set_dropped_links_count(7);
  s->mutable_status()->set_code(Status::STATUS_CODE_ERROR);
  s->mutable_status()->set_message("payment declined");

  ExpectConverts(json, want);
}

TEST(JsonToWire, EmptyObjectIsEmptyRequest) {
  ExpectConverts("{}", ExportTraceServiceRequest());
  ExpectConverts(R"({"resourceSpans":[]})", ExportTraceServiceRequest());
  Result<std::string> wire = JsonToWire(" {} ");
  ASSERT_TRUE(wire.ok());
  EXPECT_TRUE(wire->empty());
}

TEST(JsonToWire, SeveralResourcesScopesAndSpansKeepOrder) {
  ExportTraceServiceRequest want;
  for (int r = 0; r < 2; ++r) {
    auto* rs = want.add_resource_spans();
    for (int sc = 0; sc < 2; ++sc) {
      auto* ss = rs->add_scope_spans();
      ss->mutable_scope()->set_name("s" + std::to_string(r) + std::to_string(sc));
      for (int sp = 0; sp < 3; ++sp) {
        ss->add_spans()->set_name("n" + std::to_string(sp));
      }
    }
  }
  std::string spans = R"([{"name":"n0"},{"name":"n1"},{"name":"n2"}])";
  std::string json = R"({"resourceSpans":[)";
  for (int r = 0; r < 2; ++r) {
    if (r) json += ",";
    json += R"({"scopeSpans":[)";
    for (int sc = 0; sc < 2; ++sc) {
      if (sc) json += ",";
      json += R"({"scope":{"name":"s)" + std::to_string(r) + std::to_string(sc) + R"("},"spans":)" +
              spans + "}";
    }
    json += "]}";
  }
  json += "]}";
  ExpectConverts(json, want);
}

TEST(JsonToWire, PresenceOfEmptyMessagesIsKept) {
  // "resource": {} and "status": {} are present-but-empty messages on the wire, as protobuf's
  // own JSON parser makes them; a KeyValue's empty value {} is an empty AnyValue.
  ExportTraceServiceRequest want;
  auto* rs = want.add_resource_spans();
  rs->mutable_resource();
  auto* ss = rs->add_scope_spans();
  ss->mutable_scope();
  Span* s = ss->add_spans();
  s->mutable_status();
  KeyValue* kv = s->add_attributes();
  kv->set_key("empty");
  kv->mutable_value();
  s->add_attributes()->set_key("novalue");
  ExpectConverts(
      R"({"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{},"spans":[{"status":{},)"
      R"("attributes":[{"key":"empty","value":{}},{"key":"novalue"}]}]}]}]})",
      want);
}

TEST(JsonToWire, AnyValueStringAndUnicode) {
  AnyValue v;
  v.set_string_value("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ \n");
  ExpectConverts(WrapValue(R"({"stringValue":"caf\u00e9 € \ud83d\ude00 \"q\" \\ \n"})"),
                 WrapValue(v));
  v.set_string_value("");
  ExpectConverts(WrapValue(R"({"stringValue":""})"), WrapValue(v));
}

TEST(JsonToWire, AnyValueBool) {
  AnyValue v;
  v.set_bool_value(true);
  ExpectConverts(WrapValue(R"({"boolValue":true})"), WrapValue(v));
  v.set_bool_value(false);
  ExpectConverts(WrapValue(R"({"boolValue":false})"), WrapValue(v));
}

TEST(JsonToWire, AnyValueIntAsNumberAndString) {
  struct Case {
    const char* json;
    int64_t want;
  } cases[] = {
      {"0", 0},
      {"\"0\"", 0},
      {"42", 42},
      {"\"42\"", 42},
      {"-42", -42},
      {"\"-42\"", -42},
      {"9223372036854775807", std::numeric_limits<int64_t>::max()},
      {"\"9223372036854775807\"", std::numeric_limits<int64_t>::max()},
      {"-9223372036854775808", std::numeric_limits<int64_t>::min()},
      {"\"-9223372036854775808\"", std::numeric_limits<int64_t>::min()},
      {"1e3", 1000},
      {"5.0", 5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    AnyValue v;
    v.set_int_value(c.want);
    ExpectConverts(WrapValue(std::string(R"({"intValue":)") + c.json + "}"), WrapValue(v));
  }
}

TEST(JsonToWire, AnyValueDouble) {
  struct Case {
    const char* json;
    double want;
  } cases[] = {
      {"0.25", 0.25},
      {"-1.5e300", -1.5e300},
      {"3", 3.0},
      {"\"2.5\"", 2.5},
      {"\"Infinity\"", std::numeric_limits<double>::infinity()},
      {"\"-Infinity\"", -std::numeric_limits<double>::infinity()},
      {"1.7976931348623157e308", std::numeric_limits<double>::max()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    AnyValue v;
    v.set_double_value(c.want);
    ExpectConverts(WrapValue(std::string(R"({"doubleValue":)") + c.json + "}"), WrapValue(v));
  }
  Result<std::string> wire = JsonToWire(WrapValue(R"({"doubleValue":"NaN"})"));
  ASSERT_TRUE(wire.ok()) << wire.status().ToString();
  ExportTraceServiceRequest got = Parse(*wire);
  const AnyValue& v = got.resource_spans(0).scope_spans(0).spans(0).attributes(0).value();
  ASSERT_EQ(v.value_case(), AnyValue::kDoubleValue);
  EXPECT_TRUE(std::isnan(v.double_value()));
}

TEST(JsonToWire, AnyValueBytesBase64) {
  AnyValue v;
  v.set_bytes_value(Bytes({0xfb, 0xff, 0x00, 0x61}));
  // Standard alphabet with and without padding, URL-safe alphabet.
  ExpectConverts(WrapValue(R"({"bytesValue":"+/8AYQ=="})"), WrapValue(v));
  ExpectConverts(WrapValue(R"({"bytesValue":"+/8AYQ"})"), WrapValue(v));
  ExpectConverts(WrapValue(R"({"bytesValue":"-_8AYQ=="})"), WrapValue(v));
  v.set_bytes_value("hello");
  ExpectConverts(WrapValue(R"({"bytesValue":"aGVsbG8="})"), WrapValue(v));
  v.set_bytes_value("");
  ExpectConverts(WrapValue(R"({"bytesValue":""})"), WrapValue(v));
}

TEST(JsonToWire, AnyValueArrayAndKvListNested) {
  AnyValue v;
  auto* arr = v.mutable_array_value();
  arr->add_values()->set_string_value("x");
  arr->add_values()->set_int_value(7);
  arr->add_values()->set_double_value(1.5);
  arr->add_values()->set_bool_value(true);
  arr->add_values();  // an empty AnyValue element
  auto* inner = arr->add_values()->mutable_kvlist_value();
  KeyValue* kv = inner->add_values();
  kv->set_key("deep");
  kv->mutable_value()->mutable_array_value()->add_values()->set_bytes_value("\x01");
  kv = inner->add_values();
  kv->set_key("s");
  kv->mutable_value()->set_string_value("v");
  arr->add_values()->mutable_array_value();  // an empty array
  ExpectConverts(
      WrapValue(R"({"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"7"},)"
                R"({"doubleValue":1.5},{"boolValue":true},{},{"kvlistValue":{"values":[)"
                R"({"key":"deep","value":{"arrayValue":{"values":[{"bytesValue":"AQ=="}]}}},)"
                R"({"key":"s","value":{"stringValue":"v"}}]}},{"arrayValue":{}}]}})"),
      WrapValue(v));
}

TEST(JsonToWire, KindsAndStatusCodesAsIntegersAndNames) {
  const char* kinds[] = {"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
                         "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"};
  for (int k = 0; k <= 5; ++k) {
    Span s;
    s.set_kind(static_cast<Span::SpanKind>(k));
    ExpectConverts(WrapSpan(R"({"kind":)" + std::to_string(k) + "}"), WrapSpan(s));
    ExpectConverts(WrapSpan(R"({"kind":")" + std::string(kinds[k]) + "\"}"), WrapSpan(s));
  }
  const char* codes[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"};
  for (int c = 0; c <= 2; ++c) {
    Span s;
    s.mutable_status()->set_code(static_cast<Status::StatusCode>(c));
    ExpectConverts(WrapSpan(R"({"status":{"code":)" + std::to_string(c) + "}}"), WrapSpan(s));
    ExpectConverts(WrapSpan(R"({"status":{"code":")" + std::string(codes[c]) + "\"}}"),
                   WrapSpan(s));
  }
  // Values outside the enum pass through (proto3 enums are open); the decoder repairs them.
  Span s;
  s.set_kind(static_cast<Span::SpanKind>(9));
  ExpectConverts(WrapSpan(R"({"kind":9})"), WrapSpan(s));
}

TEST(JsonToWire, HexIdsAreCaseInsensitiveAndMayBeEmpty) {
  Span s;
  s.set_trace_id(kTraceId);
  s.set_span_id(kSpanId);
  ExpectConverts(WrapSpan(R"({"traceId":"5b8efff798038103d269b633813fc60c",)"
                          R"("spanId":"EEE19B7EC3C1B174","parentSpanId":""})"),
                 WrapSpan(s));
  ExpectConverts(WrapSpan(R"({"traceId":"5b8EFFf798038103D269b633813fC60c",)"
                          R"("spanId":"eEe19b7Ec3C1b174"})"),
                 WrapSpan(s));
  // Well-formed hex of the wrong length is kept: the decoder refuses such spans per span.
  Span short_id;
  short_id.set_trace_id(Bytes({0xab, 0xcd}));
  ExpectConverts(WrapSpan(R"({"traceId":"abcd"})"), WrapSpan(short_id));
}

TEST(JsonToWire, Uint64TimesAsStringsAndNumbers) {
  Span s;
  s.set_start_time_unix_nano(18446744073709551615ULL);
  s.set_end_time_unix_nano(1700000000123456789ULL);
  ExpectConverts(WrapSpan(R"({"startTimeUnixNano":"18446744073709551615",)"
                          R"("endTimeUnixNano":1700000000123456789})"),
                 WrapSpan(s));
  ExpectConverts(WrapSpan(R"({"startTimeUnixNano":18446744073709551615,)"
                          R"("endTimeUnixNano":"1700000000123456789"})"),
                 WrapSpan(s));
}

TEST(JsonToWire, Uint32CountsAndFlagsAsStringsAndNumbers) {
  Span s;
  s.set_dropped_attributes_count(4294967295u);
  s.set_dropped_events_count(1);
  s.set_dropped_links_count(2);
  s.set_flags(0x301);
  ExpectConverts(WrapSpan(R"({"droppedAttributesCount":"4294967295","droppedEventsCount":1,)"
                          R"("droppedLinksCount":"2","flags":"769"})"),
                 WrapSpan(s));
}

TEST(JsonToWire, SnakeCaseNamesAccepted) {
  Span s;
  s.set_trace_id(kTraceId);
  s.set_span_id(kSpanId);
  s.set_parent_span_id(kParentId);
  s.set_trace_state("a=b");
  s.set_start_time_unix_nano(10);
  s.set_end_time_unix_nano(20);
  s.set_dropped_attributes_count(1);
  s.set_dropped_events_count(2);
  s.set_dropped_links_count(3);
  KeyValue* kv = s.add_attributes();
  kv->set_key("k");
  kv->mutable_value()->set_string_value("v");
  kv = s.add_attributes();
  kv->set_key("n");
  kv->mutable_value()->mutable_kvlist_value()->add_values()->set_key("x");
  auto* e = s.add_events();
  e->set_time_unix_nano(15);
  e->set_dropped_attributes_count(9);
  auto* l = s.add_links();
  l->set_trace_id(kLinkTraceId);
  l->set_span_id(kLinkSpanId);
  l->set_trace_state("c=d");
  l->set_dropped_attributes_count(8);
  ExportTraceServiceRequest want;
  auto* rs = want.add_resource_spans();
  rs->set_schema_url("r");
  rs->mutable_resource()->set_dropped_attributes_count(5);
  auto* ss = rs->add_scope_spans();
  ss->set_schema_url("s");
  ss->mutable_scope()->set_dropped_attributes_count(6);
  *ss->add_spans() = s;
  ExpectConverts(
      R"({"resource_spans":[{"schema_url":"r","resource":{"dropped_attributes_count":5},)"
      R"("scope_spans":[{"schema_url":"s","scope":{"dropped_attributes_count":6},)"
      R"("spans":[{"trace_id":"5b8efff798038103d269b633813fc60c",)"
      R"("span_id":"eee19b7ec3c1b174","parent_span_id":"eee19b7ec3c1b173",)"
      R"("trace_state":"a=b","start_time_unix_nano":"10","end_time_unix_nano":20,)"
      R"("dropped_attributes_count":1,"dropped_events_count":2,)"
      R"("dropped_links_count":3,"attributes":[{"key":"k","value":{"string_value":"v"}},)"
      R"({"key":"n","value":{"kvlist_value":{"values":[{"key":"x"}]}}}],)"
      R"("events":[{"time_unix_nano":"15","dropped_attributes_count":9}],)"
      R"("links":[{"trace_id":"000102030405060708090a0b0c0d0e0f",)"
      R"("span_id":"fffefdfcfbfaf9f8","trace_state":"c=d",)"
      R"("dropped_attributes_count":8}]}]}]}]})",
      want);
}

TEST(JsonToWire, UnknownFieldsIgnoredAtEveryLevel) {
  Span s;
  s.set_name("n");
  KeyValue* kv = s.add_attributes();
  kv->set_key("k");
  kv->mutable_value()->set_string_value("v");
  s.add_events()->set_name("e");
  s.add_links()->set_trace_state("t");
  s.mutable_status()->set_message("m");
  ExportTraceServiceRequest want;
  auto* rs = want.add_resource_spans();
  rs->mutable_resource();
  auto* ss = rs->add_scope_spans();
  ss->mutable_scope()->set_name("sc");
  *ss->add_spans() = s;
  // Unknown keys of every JSON type, including ones that would be malformed if known.
  const std::string junk = R"("futureField":{"x":[1,{"y":null}]},"other":"zz","n":-1.5,"b":true)";
  ExpectConverts(R"({)" + junk + R"(,"resourceSpans":[{)" + junk + R"(,"resource":{)" + junk +
                     R"(,"entityRefs":[{"type":"host"}]},"scopeSpans":[{)" + junk +
                     R"(,"scope":{"name":"sc",)" + junk + R"(},"spans":[{"name":"n",)" + junk +
                     R"(,"attributes":[{"key":"k",)" + junk + R"(,"value":{"stringValue":"v",)" +
                     junk + R"(}}],"events":[{"name":"e",)" + junk + R"(}],"links":[{)" + junk +
                     R"(,"traceState":"t"}],"status":{"message":"m","deprecatedCode":1,)" + junk +
                     R"(}}]}]}]})",
                 want);
}

TEST(JsonToWire, NullIsAbsent) {
  Span s;
  s.set_name("n");
  ExportTraceServiceRequest want;
  auto* ss = want.add_resource_spans()->add_scope_spans();
  *ss->add_spans() = s;
  ExpectConverts(
      R"({"resourceSpans":[{"resource":null,"schemaUrl":null,"scopeSpans":[{"scope":null,)"
      R"("spans":[{"name":"n","traceId":null,"spanId":null,"kind":null,"startTimeUnixNano":null,)"
      R"("attributes":null,"events":null,"links":null,"status":null,"flags":null}]}]}]})",
      want);
  AnyValue v;  // every member null: an empty AnyValue
  ExpectConverts(WrapValue(R"({"stringValue":null,"intValue":null})"), WrapValue(v));
  ExpectConverts(R"({"resourceSpans":null})", ExportTraceServiceRequest());
}

TEST(JsonToWire, AgreesWithProtobufJsonParserWithoutIds) {
  // Away from the OTLP deviations (hex ids, integer enums), the conversion must agree with
  // libprotobuf's own proto3 JSON parser, including its lenient forms.
  const std::string json = R"({"resourceSpans":[{"resource":{"attributes":[
      {"key":"s","value":{"stringValue":"\u00e9"}},
      {"key":"i","value":{"intValue":"-9223372036854775808"}},
      {"key":"i2","value":{"int_value":12}},
      {"key":"d","value":{"doubleValue":"-Infinity"}},
      {"key":"d2","value":{"doubleValue":1e-300}},
      {"key":"b","value":{"boolValue":false}},
      {"key":"y","value":{"bytesValue":"-_-_"}},
      {"key":"a","value":{"arrayValue":{"values":[{"intValue":1},{"kvlistValue":{"values":[
        {"key":"z","value":{}}]}}]}}}],"droppedAttributesCount":"7"},
      "scopeSpans":[{"scope":{"name":"x","version":"y"},"spans":[
        {"name":"sp","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1","endTimeUnixNano":2,
         "flags":"256","status":{"code":"STATUS_CODE_OK"},
         "events":[{"timeUnixNano":"3","name":"ev"}]}]}]}]})";
  ExportTraceServiceRequest reference;
  auto st = google::protobuf::util::JsonStringToMessage(json, &reference);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ExpectConverts(json, reference);
}

// ---- errors, with their paths ----

TEST(JsonToWireErrors, MalformedJsonNamesTheByte) {
  Result<std::string> r = JsonToWire(R"({"resourceSpans":[}")");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind("malformed JSON at byte 18: ", 0), 0u)
      << r.status().message();
  r = JsonToWire("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("malformed JSON at byte ", 0), 0u) << r.status().message();
  r = JsonToWire(R"({"resourceSpans":[]} trailing)");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("malformed JSON at byte 23: ", 0), 0u)
      << r.status().message();
  // Invalid UTF-8 inside a string is malformed JSON (RFC 8259), not a span to validate.
  r = JsonToWire(WrapSpan("{\"name\":\"\xff\xfe\"}"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("malformed JSON at byte ", 0), 0u) << r.status().message();
}

TEST(JsonToWireErrors, RootMustBeAnObject) {
  ExpectError("[]", "request: expected an object, got array");
  ExpectError("null", "request: expected an object, got null");
  ExpectError("\"x\"", "request: expected an object, got string");
}

TEST(JsonToWireErrors, DepthBounded) {
  // 64 levels are fine (unknown fields, so nothing is converted); 65 are refused.
  std::string ok = "{\"x\":" + std::string(62, '[') + "{}" + std::string(62, ']') + "}";
  EXPECT_TRUE(JsonToWire(ok).ok()) << JsonToWire(ok).status().ToString();
  std::string deep = "{\"x\":" + std::string(63, '[') + "{}" + std::string(63, ']') + "}";
  ExpectError(deep, "JSON nested deeper than 64 levels at byte 68");
  // Brackets inside strings do not count; an escaped quote does not end the string.
  std::string in_string = "{\"x\":\"\\\"" + std::string(200, '[') + "\"}";
  EXPECT_TRUE(JsonToWire(in_string).ok());
  // A hostile body: a million open brackets, no crash, quick refusal.
  std::string hostile(1 << 20, '[');
  Result<std::string> r = JsonToWire(hostile);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "JSON nested deeper than 64 levels at byte 64");
  // Deeply nested AnyValues within the limit convert.
  std::string value = R"({"stringValue":"leaf"})";
  AnyValue want;
  want.set_string_value("leaf");
  for (int i = 0; i < 15; ++i) {
    value = R"({"arrayValue":{"values":[)" + value + "]}}";
    AnyValue outer;
    *outer.mutable_array_value()->add_values() = want;
    want = outer;
  }
  ExpectConverts(WrapValue(value), WrapValue(want));
}

TEST(JsonToWireErrors, Ids) {
  ExpectError(R"({"resourceSpans":[{"scopeSpans":[{},{"spans":[{},{},{},{"traceId":"xyz1"}]}]}]})",
              "resourceSpans[0].scopeSpans[1].spans[3].traceId: not a hex string");
  ExpectError(WrapSpan(R"({"spanId":"abc"})"),
              "resourceSpans[0].scopeSpans[0].spans[0].spanId: not a hex string (odd number of "
              "digits)");
  ExpectError(WrapSpan(R"({"parentSpanId":"0g00000000000000"})"),
              "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId: not a hex string");
  ExpectError(WrapSpan(R"({"traceId":12})"),
              "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a string, got number");
  // A base64 id (protobuf's generic JSON mapping) is not OTLP/JSON.
  ExpectError(WrapSpan(R"({"spanId":"7uGbfsPBsXQ="})"),
              "resourceSpans[0].scopeSpans[0].spans[0].spanId: not a hex string");
  ExpectError(WrapSpan(R"({"links":[{},{"traceId":"zz"}]})"),
              "resourceSpans[0].scopeSpans[0].spans[0].links[1].traceId: not a hex string");
  ExpectError(WrapSpan(R"({"links":[{"spanId":" 0"}]})"),
              "resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: not a hex string");
}

TEST(JsonToWireErrors, Integers) {
  const std::string p = "resourceSpans[0].scopeSpans[0].spans[0].";
  ExpectError(WrapSpan(R"({"startTimeUnixNano":"18446744073709551616"})"),
              p + "startTimeUnixNano: integer out of range");
  ExpectError(WrapSpan(R"({"startTimeUnixNano":18446744073709551616})"),
              p + "startTimeUnixNano: integer out of range");
  ExpectError(WrapSpan(R"({"startTimeUnixNano":1e30})"),
              p + "startTimeUnixNano: integer out of range");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":-1})"), p + "endTimeUnixNano: integer out of range");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":"-1"})"), p + "endTimeUnixNano: integer out of range");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":1.5})"), p + "endTimeUnixNano: not an integer");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":"12ns"})"),
              p + "endTimeUnixNano: not a decimal integer string");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":""})"),
              p + "endTimeUnixNano: not a decimal integer string");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":" 1"})"),
              p + "endTimeUnixNano: not a decimal integer string");
  ExpectError(WrapSpan(R"({"endTimeUnixNano":true})"),
              p + "endTimeUnixNano: expected an integer (number or decimal string), got boolean");
  ExpectError(WrapSpan(R"({"droppedAttributesCount":4294967296})"),
              p + "droppedAttributesCount: integer out of range");
  ExpectError(WrapSpan(R"({"flags":"4294967296"})"), p + "flags: integer out of range");
  ExpectError(WrapSpan(R"({"flags":-1})"), p + "flags: integer out of range");
  ExpectError(WrapValue(R"({"intValue":"9223372036854775808"})"),
              p + "attributes[0].value.intValue: integer out of range");
  ExpectError(WrapValue(R"({"intValue":9223372036854775808})"),
              p + "attributes[0].value.intValue: integer out of range");
  ExpectError(WrapValue(R"({"intValue":-9223372036854775809})"),
              p + "attributes[0].value.intValue: integer out of range");
  ExpectError(WrapValue(R"({"intValue":"-9223372036854775809"})"),
              p + "attributes[0].value.intValue: integer out of range");
  ExpectError(WrapValue(R"({"intValue":"0x10"})"),
              p + "attributes[0].value.intValue: not a decimal integer string");
  ExpectError(WrapSpan(R"({"kind":2147483648})"), p + "kind: integer out of range");
}

TEST(JsonToWireErrors, EnumsDoublesBoolsBytes) {
  const std::string p = "resourceSpans[0].scopeSpans[0].spans[0].";
  ExpectError(WrapSpan(R"({"kind":"SERVER"})"), p + "kind: unknown enum value \"SERVER\"");
  ExpectError(WrapSpan(R"({"kind":1.5})"), p + "kind: not an integer");
  ExpectError(WrapSpan(R"({"kind":[]})"), p + "kind: expected an integer enum value, got array");
  ExpectError(WrapSpan(R"({"status":{"code":"ERROR"}})"),
              p + "status.code: unknown enum value \"ERROR\"");
  ExpectError(WrapValue(R"({"doubleValue":"fast"})"),
              p + "attributes[0].value.doubleValue: not a number string");
  ExpectError(WrapValue(R"({"doubleValue":"1e999"})"),
              p + "attributes[0].value.doubleValue: number out of range");
  ExpectError(WrapValue(R"({"doubleValue":{}})"),
              p + "attributes[0].value.doubleValue: expected a number, got object");
  ExpectError(WrapValue(R"({"boolValue":"true"})"),
              p + "attributes[0].value.boolValue: expected true or false, got string");
  ExpectError(WrapValue(R"({"bytesValue":"a"})"),
              p + "attributes[0].value.bytesValue: not a base64 string (bad length or padding)");
  ExpectError(WrapValue(R"({"bytesValue":"ab*d"})"),
              p + "attributes[0].value.bytesValue: not a base64 string");
  ExpectError(WrapValue(R"({"bytesValue":"abc=="})"),
              p + "attributes[0].value.bytesValue: not a base64 string (bad length or padding)");
}

TEST(JsonToWireErrors, StructureAndTypes) {
  const std::string p = "resourceSpans[0].scopeSpans[0].spans[0].";
  ExpectError(R"({"resourceSpans":{}})", "resourceSpans: expected an array, got object");
  ExpectError(R"({"resourceSpans":[5]})", "resourceSpans[0]: expected an object, got number");
  ExpectError(R"({"resourceSpans":[null]})", "resourceSpans[0]: null element in a repeated field");
  ExpectError(R"({"resourceSpans":[{"resource":[]}]})",
              "resourceSpans[0].resource: expected an object, got array");
  ExpectError(R"({"resourceSpans":[{"resource":{"attributes":[{"key":1}]}}]})",
              "resourceSpans[0].resource.attributes[0].key: expected a string, got number");
  ExpectError(R"({"resourceSpans":[{"scopeSpans":[{"scope":{"version":false}}]}]})",
              "resourceSpans[0].scopeSpans[0].scope.version: expected a string, got boolean");
  ExpectError(R"({"resourceSpans":[{"schemaUrl":1}]})",
              "resourceSpans[0].schemaUrl: expected a string, got number");
  ExpectError(WrapSpan(R"({"name":["x"]})"), p + "name: expected a string, got array");
  ExpectError(WrapSpan(R"({"events":[{"attributes":[{"key":"k","value":{"intValue":"x"}}]}]})"),
              p + "events[0].attributes[0].value.intValue: not a decimal integer string");
  ExpectError(WrapSpan(R"({"links":[{"attributes":[{"key":"k","value":"v"}]}]})"),
              p + "links[0].attributes[0].value: expected an object, got string");
  ExpectError(WrapSpan(R"({"status":{"message":7}})"),
              p + "status.message: expected a string, got number");
  ExpectError(WrapValue(R"({"stringValue":"a","intValue":1})"),
              p + "attributes[0].value: more than one value given (\"intValue\" and "
                  "\"stringValue\")");
  ExpectError(WrapValue(R"({"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"k",)"
                        R"("value":{"boolValue":1}}]}}]}})"),
              p + "attributes[0].value.arrayValue.values[0].kvlistValue.values[0].value."
                  "boolValue: expected true or false, got number");
  ExpectError(WrapValue(R"({"arrayValue":[]})"),
              p + "attributes[0].value.arrayValue: expected an object, got array");
  // A field under both of its names is given twice.
  ExpectError(WrapSpan(R"({"traceId":"00","trace_id":"00"})"),
              p + "traceId: field given more than once");
}

TEST(JsonToWireErrors, NeverThrowsOnGarbage) {
  // Prefixes of a valid document and assorted junk: every result is a Status, never a throw.
  const std::string doc = R"({"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":)"
                          R"({"intValue":"1"}}]},"scopeSpans":[{"spans":[{"traceId":"00",)"
                          R"("kind":1,"status":{"code":2}}]}]}]})";
  for (size_t n = 0; n < doc.size(); ++n) {
    Result<std::string> r = JsonToWire(doc.substr(0, n));
    EXPECT_FALSE(r.ok()) << n;
  }
  EXPECT_TRUE(JsonToWire(doc).ok());
  for (const char* junk : {"\x00", "{\"a\":\x01}", "[[[[", "}}}}", "\"\\u", "1e99999", "nul",
                           "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[1e400]}]}]}"}) {
    Result<std::string> r = JsonToWire(junk);
    EXPECT_FALSE(r.ok()) << junk;
  }
}

}  // namespace
}  // namespace ordertrace::otlp
