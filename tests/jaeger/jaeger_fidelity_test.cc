// Fidelity end to end with a real Jaeger (tools/jaeger/build, Badger, deploy/jaeger/badger.yaml):
// spans sent by the OpenTelemetry JS SDK (tests/interop/send_spans.mjs, the interop tests'
// scenario, stamped a minute ago, with the order id, service and an enduser.id of the test's
// choosing) and by libordertrace
// through a real `ordertrace serve` that forwards to Jaeger's OTLP receiver (HTTP or gRPC) come
// back from Jaeger's v1 query API by trace id and by an `order.id` tag search with every field
// as sent: attributes of every type, span kind, events with attributes, links, status, resource
// attributes, service name, start and duration.
//
// The expected Jaeger JSON is derived from the sender's own record of the spans (the JS SDK's
// InMemorySpanExporter; for libordertrace, the SpanData its exporter was given) by the mapping
// Jaeger v2.12.0 applies, written out in ExpectedJaegerSpan() and in docs/jaeger.md ("What the
// end-to-end tests prove").  Where Jaeger's v1 model has no place for a field (link attributes,
// a link's trace state, nanoseconds), the test states what Jaeger shows instead.
//
// The gateway redacts personal data on the way (docs/personal-data.md): the JS trace carries
// `enduser.id`, which must reach Jaeger as a `pse:` pseudonym and nowhere in clear; every other
// value is one no detector touches, so the rest arrives unchanged.  The libordertrace batch
// holds nothing to redact, so the gateway forwards the bytes it received; the JS batches are
// re-encoded (redacted, or JSON to protobuf): both of the forwarder's paths are covered.
//
// Skipped with the reason without a Jaeger binary (failed when ORDERTRACE_REQUIRE_JAEGER=1); the
// JS cases also without node or tests/interop/node_modules (failed when
// ORDERTRACE_REQUIRE_INTEROP=1).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "lib/internal.h"  // kScopeName, kSdkVersion: the scope libordertrace sends
#include "net/http_client.h"
#include "ordertrace/tracer.h"
#include "support/api_text.h"
#include "support/gateway_process.h"
#include "support/jaeger_process.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

using Json = nlohmann::json;
using testing_support::GatewayProcess;
using testing_support::JaegerProcess;

const std::string kSourceDir = ORDERTRACE_SOURCE_DIR;

// ---- what the senders recorded, in send_spans.mjs's shape ----
//
// {resource: {attributes: [{key, value: typed}]}, spans: [{traceId, spanId, parentSpanId,
//  traceState, name, kind (OTLP), startTimeUnixNano, endTimeUnixNano, attributes, events:
//  [{name, timeUnixNano, attributes}], links: [{traceId, spanId, attributes}], status: {code,
//  message}, scope: {name, version}}]}, a typed value being {type, value}.

Json Typed(const AttributeValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return {{"type", "string"}, {"value", *s}};
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return {{"type", "int"}, {"value", std::to_string(*i)}};
  }
  if (const auto* d = std::get_if<double>(&v)) return {{"type", "double"}, {"value", *d}};
  if (const auto* b = std::get_if<bool>(&v)) return {{"type", "bool"}, {"value", *b}};
  Json values = Json::array();
  for (const std::string& s : std::get<std::vector<std::string>>(v)) {
    values.push_back({{"type", "string"}, {"value", s}});
  }
  return {{"type", "array"}, {"value", values}};
}

Json TypedAttributes(const std::vector<Attribute>& attributes) {
  Json out = Json::array();
  for (const Attribute& a : attributes) out.push_back({{"key", a.key}, {"value", Typed(a.value)}});
  return out;
}

// libordertrace's record of a span, as the JS script prints the SDK's.
Json Record(const SpanData& s) {
  Json events = Json::array();
  for (const Event& e : s.events) {
    events.push_back({{"name", e.name},
                      {"timeUnixNano", std::to_string(e.time_unix_nano)},
                      {"attributes", TypedAttributes(e.attributes)}});
  }
  Json links = Json::array();
  for (const Link& l : s.links) {
    links.push_back({{"traceId", ToHex(l.context.trace_id)},
                     {"spanId", ToHex(l.context.span_id)},
                     {"attributes", TypedAttributes(l.attributes)}});
  }
  return {{"traceId", ToHex(s.trace_id)},
          {"spanId", ToHex(s.span_id)},
          {"parentSpanId", s.has_parent ? ToHex(s.parent_span_id) : ""},
          {"traceState", s.trace_state},
          {"name", s.name},
          {"kind", static_cast<int>(s.kind)},
          {"startTimeUnixNano", std::to_string(s.start_time_unix_nano)},
          {"endTimeUnixNano", std::to_string(s.end_time_unix_nano)},
          {"attributes", TypedAttributes(s.attributes)},
          {"events", events},
          {"links", links},
          {"status", {{"code", static_cast<int>(s.status)}, {"message", s.status_message}}},
          {"scope", {{"name", internal::kScopeName}, {"version", internal::kSdkVersion}}}};
}

// ---- the mapping OTLP → Jaeger v1 JSON (Jaeger v2.12.0, as observed; docs/jaeger.md) ----

std::string Base64(const std::string& bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string BytesFromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

// A typed value as a plain JSON value: how Jaeger writes the elements of an array or the
// entries of a key-value list into the string it makes of them.
Json Plain(const Json& typed) {
  const std::string type = typed.at("type");
  if (type == "empty") return nullptr;
  if (type == "int") return std::stoll(typed.at("value").get<std::string>());
  if (type == "bytes") return Base64(BytesFromHex(typed.at("value")));
  if (type == "array") {
    Json out = Json::array();
    for (const Json& e : typed.at("value")) out.push_back(Plain(e));
    return out;
  }
  if (type == "kvlist") {
    Json out = Json::object();
    for (const Json& kv : typed.at("value"))
      out[kv.at("key").get<std::string>()] = Plain(kv.at("value"));
    return out;
  }
  return typed.at("value");  // string, bool, double
}

// Keys the gateway pseudonymises by default (docs/personal-data.md) among those sent here.
bool Pseudonymised(const std::string& key) { return key == "enduser.id"; }

// The expected Jaeger tag {type, value} for an attribute.  Arrays and key-value lists become a
// string holding their JSON: the expectation then carries `json` (the parsed value) instead
// of `value`, compared after parsing.  A pseudonymised key carries `pseudonym_of`.
Json ExpectedTag(const std::string& key, const Json& typed) {
  const std::string type = typed.at("type");
  if (Pseudonymised(key)) return {{"type", "string"}, {"pseudonym_of", typed.at("value")}};
  if (type == "string") return {{"type", "string"}, {"value", typed.at("value")}};
  if (type == "bool") return {{"type", "bool"}, {"value", typed.at("value")}};
  if (type == "int") {
    // Beyond JavaScript's safe integers (±(2^53 - 1)) the UI's JSON carries the decimal text.
    const int64_t v = Plain(typed);
    constexpr int64_t kMaxSafe = (int64_t{1} << 53) - 1;
    if (v > kMaxSafe || v < -kMaxSafe) return {{"type", "int64"}, {"value", std::to_string(v)}};
    return {{"type", "int64"}, {"value", v}};
  }
  if (type == "double") return {{"type", "float64"}, {"value", typed.at("value")}};
  if (type == "bytes") return {{"type", "binary"}, {"value", Plain(typed)}};
  return {{"type", "string"}, {"json", Plain(typed)}};  // array, kvlist (and empty)
}

Json ExpectedTags(const Json& attributes) {
  Json tags = Json::object();
  for (const Json& a : attributes) {
    tags[a.at("key").get<std::string>()] = ExpectedTag(a.at("key"), a.at("value"));
  }
  return tags;
}

Json StringTag(const std::string& value) { return {{"type", "string"}, {"value", value}}; }

uint64_t Nanos(const Json& decimal) { return std::stoull(decimal.get<std::string>()); }

// One span as Jaeger's v1 API shows it: {operationName, references, startTime, duration (µs),
// tags (an object by key), logs: [{timestamp, fields (an object by key)}]}.
Json ExpectedJaegerSpan(const Json& sent) {
  Json tags = ExpectedTags(sent.at("attributes"));
  // The scope, the kind, the status and the trace state become tags.
  tags["otel.scope.name"] = StringTag(sent.at("scope").at("name"));
  if (!sent.at("scope").at("version").get<std::string>().empty()) {
    tags["otel.scope.version"] = StringTag(sent.at("scope").at("version"));
  }
  static const char* const kKinds[] = {"", "internal", "server", "client", "producer", "consumer"};
  const int kind = sent.at("kind");
  if (kind >= 1 && kind <= 5) tags["span.kind"] = StringTag(kKinds[kind]);
  const int status = sent.at("status").at("code");
  if (status == 1) tags["otel.status_code"] = StringTag("OK");
  if (status == 2) {
    tags["otel.status_code"] = StringTag("ERROR");
    tags["error"] = {{"type", "bool"}, {"value", true}};
  }
  const std::string message = sent.at("status").at("message");
  if (!message.empty()) tags["otel.status_description"] = StringTag(message);
  const std::string trace_state = sent.at("traceState");
  if (!trace_state.empty()) tags["w3c.tracestate"] = StringTag(trace_state);

  // The parent is a CHILD_OF reference, first; each link a FOLLOWS_FROM reference (its
  // attributes and trace state have no place in v1).  A link to the span's own parent merges
  // into the parent's reference, which becomes FOLLOWS_FROM (Jaeger's OTLP translator).
  const std::string trace_id = sent.at("traceId");
  const std::string parent = sent.at("parentSpanId");
  Json references = Json::array();
  if (!parent.empty()) {
    references.push_back({{"refType", "CHILD_OF"}, {"traceID", trace_id}, {"spanID", parent}});
  }
  for (const Json& link : sent.at("links")) {
    if (!parent.empty() && link.at("traceId") == trace_id && link.at("spanId") == parent) {
      references[0]["refType"] = "FOLLOWS_FROM";
      continue;
    }
    references.push_back({{"refType", "FOLLOWS_FROM"},
                          {"traceID", link.at("traceId")},
                          {"spanID", link.at("spanId")}});
  }

  // Events become logs: the name as the field `event`, then the attributes.
  Json logs = Json::array();
  for (const Json& e : sent.at("events")) {
    Json fields = ExpectedTags(e.at("attributes"));
    fields["event"] = StringTag(e.at("name"));
    logs.push_back({{"timestamp", Nanos(e.at("timeUnixNano")) / 1000}, {"fields", fields}});
  }

  // Times in microseconds, cut (not rounded): the duration is the cut difference in ns.
  const uint64_t start = Nanos(sent.at("startTimeUnixNano"));
  const uint64_t end = Nanos(sent.at("endTimeUnixNano"));
  return {{"operationName", sent.at("name")},
          {"references", references},
          {"startTime", start / 1000},
          {"duration", (end - start) / 1000},
          {"tags", tags},
          {"logs", logs}};
}

// The process of a resource: serviceName, and the other attributes as tags.
Json ExpectedProcess(const Json& resource_attributes) {
  Json tags = Json::object();
  std::string service;
  for (const Json& a : resource_attributes) {
    if (a.at("key") == "service.name") {
      service = a.at("value").at("value");
      continue;
    }
    tags[a.at("key").get<std::string>()] = ExpectedTag(a.at("key"), a.at("value"));
  }
  return {{"serviceName", service}, {"tags", tags}};
}

// ---- comparing what Jaeger answered with the expectation ----

// Jaeger's [{key, type, value}] as an object by key; a key twice is a failure.
Json ByKey(const Json& list, const std::string& where) {
  Json out = Json::object();
  if (!list.is_array()) {
    ADD_FAILURE() << where << ": not a list: " << list.dump();
    return out;
  }
  for (const Json& kv : list) {
    const std::string key = kv.value("key", "");
    EXPECT_FALSE(out.contains(key)) << where << ": " << key << " twice";
    out[key] = {{"type", kv.value("type", "")},
                {"value", kv.contains("value") ? kv["value"] : Json()}};
  }
  return out;
}

void ExpectTags(const Json& got_list, const Json& want, const std::string& where) {
  const Json got = ByKey(got_list, where);
  for (const auto& [key, w] : want.items()) {
    SCOPED_TRACE(where + " tag " + key);
    ASSERT_TRUE(got.contains(key)) << "missing; Jaeger has " << got.dump();
    const Json& g = got[key];
    EXPECT_EQ(g["type"], w["type"]) << g.dump();
    if (w.contains("pseudonym_of")) {
      const std::string value = g["value"].is_string() ? g["value"].get<std::string>() : "";
      EXPECT_EQ(value.rfind("pse:k1:", 0), 0u) << "not a pseudonym: " << g.dump();
      EXPECT_NE(value, w["pseudonym_of"].get<std::string>());
    } else if (w.contains("json")) {
      // An array or a key-value list: a string holding the value as JSON.
      ASSERT_TRUE(g["value"].is_string()) << g.dump();
      EXPECT_EQ(Json::parse(g["value"].get<std::string>(), nullptr, false), w["json"]) << g.dump();
    } else {
      EXPECT_EQ(g["value"], w["value"]);
    }
  }
  for (const auto& [key, g] : got.items()) {
    EXPECT_TRUE(want.contains(key)) << where << ": Jaeger added tag " << key << " = " << g.dump();
  }
}

// Checks every span of `sent` in Jaeger's `answer` (one trace of the v1 API).
void ExpectTraceAsSent(const Json& answer, const Json& sent, const std::string& where) {
  ASSERT_TRUE(answer.is_object() && answer["data"].is_array() && answer["data"].size() == 1)
      << where << ": " << answer.dump().substr(0, 2000);
  const Json& trace = answer["data"][0];
  std::map<std::string, const Json*> by_id;
  for (const Json& s : trace["spans"]) by_id[s.value("spanID", "")] = &s;
  EXPECT_EQ(by_id.size(), sent.at("spans").size()) << where;
  const Json process = ExpectedProcess(sent.at("resource").at("attributes"));
  for (const Json& s : sent.at("spans")) {
    const std::string span_where = where + " span \"" + s.at("name").get<std::string>() + "\"";
    SCOPED_TRACE(span_where);
    auto found = by_id.find(s.at("spanId").get<std::string>());
    ASSERT_NE(found, by_id.end()) << "span " << s.at("spanId") << " not in Jaeger";
    const Json& got = *found->second;
    const Json want = ExpectedJaegerSpan(s);
    EXPECT_EQ(got["traceID"], s.at("traceId"));
    EXPECT_EQ(got["operationName"], want["operationName"]);
    EXPECT_EQ(got["references"], want["references"]);
    EXPECT_EQ(got["startTime"], want["startTime"]);
    EXPECT_EQ(got["duration"], want["duration"]);
    ExpectTags(got["tags"], want["tags"], span_where);
    ASSERT_TRUE(got["logs"].is_array());
    ASSERT_EQ(got["logs"].size(), want["logs"].size()) << got["logs"].dump();
    for (size_t i = 0; i < want["logs"].size(); ++i) {
      EXPECT_EQ(got["logs"][i]["timestamp"], want["logs"][i]["timestamp"]) << "log " << i;
      ExpectTags(got["logs"][i]["fields"], want["logs"][i]["fields"],
                 span_where + " log " + std::to_string(i));
    }
    const Json& got_process = trace["processes"][got.value("processID", "")];
    EXPECT_EQ(got_process["serviceName"], process["serviceName"]);
    ExpectTags(got_process["tags"], process["tags"], span_where + " process");
  }
}

// ---- the stack: Jaeger, and a gateway forwarding to it ----

struct Stack {
  GatewayProcess gateway{"jaeger_fidelity"};
  std::unique_ptr<JaegerProcess> jaeger;

  // Starts Jaeger and the gateway, forwarding over OTLP/gRPC or OTLP/HTTP.
  void Start(bool grpc_upstream) {
    jaeger = std::make_unique<JaegerProcess>(gateway.dir() / "jaeger");
    ASSERT_TRUE(jaeger->Start()) << jaeger->Log();
    const std::string upstream = grpc_upstream ? jaeger->otlp_grpc_url() : jaeger->otlp_http_url();
    ASSERT_TRUE(gateway.Start({"--upstream", upstream})) << gateway.Log();
  }

  // Waits (up to 15 s) until Jaeger holds `spans` spans of the trace; returns its answer.
  Json WaitForTrace(const std::string& trace_id, size_t spans) const {
    Json answer;
    testing_support::WaitFor(
        [&] {
          answer = jaeger->Trace(trace_id);
          return JaegerProcess::Spans(answer).size() >= spans;
        },
        std::chrono::milliseconds(15000));
    return answer;
  }

  // The sum of the gateway's metric `name` over the samples whose labels contain `labels`.
  double Metric(const std::string& name, const std::string& labels) const {
    auto r = net::HttpGet(gateway.http_port(), "/metrics");
    if (!r.ok() || r.value().status != 200) return -1;
    return testing_support::MetricSum(r.value().body, name, labels);
  }
};

// Checks every trace of `sent` in Jaeger by its id, and the trace whose root carries
// `order_id` by a tag search for it as `service` (which must find that trace alone).
void ExpectInJaeger(const Stack& stack, const Json& sent, const std::string& service,
                    const std::string& order_id, const std::string& where) {
  std::map<std::string, Json> traces;  // trace id → {resource, spans} of that trace
  std::string order_trace;
  for (const Json& s : sent.at("spans")) {
    Json& t = traces[s.at("traceId").get<std::string>()];
    t["resource"] = sent.at("resource");
    t["spans"].push_back(s);
    for (const Json& a : s.at("attributes")) {
      if (a.at("key") == "order.id" && a.at("value").value("value", "") == order_id) {
        order_trace = s.at("traceId");
      }
    }
  }
  ASSERT_FALSE(order_trace.empty()) << "no span carries order.id " << order_id;
  for (const auto& [trace_id, t] : traces) {
    const Json by_id = stack.WaitForTrace(trace_id, t.at("spans").size());
    ExpectTraceAsSent(by_id, t, where + " trace " + trace_id + " by id");
  }

  const Json found = stack.jaeger->Search(service, {{"order.id", order_id}});
  ASSERT_TRUE(found.is_object() && found["data"].is_array()) << found.dump();
  ASSERT_EQ(found["data"].size(), 1u)
      << "the order's trace, once: " << found.dump().substr(0, 2000);
  EXPECT_EQ(found["data"][0]["traceID"], order_trace);
  ExpectTraceAsSent(found, traces[order_trace], where + " by order.id");
}

// ---- the OpenTelemetry JS SDK ----

std::string MissingNode() {
  if (testing_support::RunCommand("command -v node >/dev/null 2>&1").exit_code != 0) {
    return "node is not on PATH (scripts/setup installs it)";
  }
  for (const char* pkg : {"exporter-trace-otlp-proto", "exporter-trace-otlp-http",
                          "exporter-trace-otlp-grpc", "sdk-trace-base", "resources"}) {
    if (!std::filesystem::exists(kSourceDir + "/tests/interop/node_modules/@opentelemetry/" +
                                 pkg)) {
      return "tests/interop/node_modules is missing @opentelemetry/" + std::string(pkg) +
             "; run tests/interop/setup";
    }
  }
  return "";
}

#define REQUIRE_NODE_OR_SKIP()                                                    \
  do {                                                                            \
    const std::string missing = MissingNode();                                    \
    if (!missing.empty()) {                                                       \
      const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");           \
      if (required != nullptr && std::string(required) == "1") FAIL() << missing; \
      GTEST_SKIP() << missing;                                                    \
    }                                                                             \
  } while (0)

// Runs tests/interop/send_spans.mjs against the gateway; returns what it sent.
Json SendWithJsSdk(const Stack& stack, const std::string& exporter, const std::string& order_id,
                   const std::string& user, const std::string& service) {
  const uint16_t port =
      exporter == "grpc" ? stack.gateway.otlp_grpc_port() : stack.gateway.otlp_http_port();
  const std::string command =
      "timeout 60 node '" + kSourceDir + "/tests/interop/send_spans.mjs' --exporter " + exporter +
      " --endpoint http://127.0.0.1:" + std::to_string(port) + " --order-id " + order_id +
      " --user " + user + " --service " + service + " --recent";
  testing_support::CommandResult run = testing_support::RunCommand(command);
  EXPECT_EQ(run.exit_code, 0) << command << "\n" << run.out;
  Json sent = Json::parse(run.out, nullptr, false);
  EXPECT_TRUE(sent.is_object()) << "send_spans.mjs printed no JSON:\n" << run.out;
  return sent;
}

class JsSdkToJaeger : public ::testing::TestWithParam<std::pair<std::string, bool>> {};

TEST_P(JsSdkToJaeger, EveryFieldByTraceIdAndByOrderId) {
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  REQUIRE_NODE_OR_SKIP();
  const auto [exporter, grpc_upstream] = GetParam();
  Stack stack;
  ASSERT_NO_FATAL_FAILURE(stack.Start(grpc_upstream));
  const std::string order_id = "ORD-JS-" + exporter + "-" + std::to_string(::getpid());
  const std::string user = "customer-4711";  // under enduser.id: pseudonymised by the gateway
  const std::string service = "jaeger-e2e-crm";
  const Json sent = SendWithJsSdk(stack, exporter, order_id, user, service);
  ASSERT_TRUE(sent.is_object());
  // The order's trace (five spans) and one span with every default in a trace of its own.
  ASSERT_EQ(sent.at("spans").size(), 6u);
  ExpectInJaeger(stack, sent, service, order_id,
                 exporter + (grpc_upstream ? " via gRPC" : " via HTTP"));

  // The pseudonym, never the clear value, is in Jaeger: the clear value finds nothing, the
  // pseudonym finds the order's trace.
  std::string trace_id;
  size_t order_spans = 0;
  for (const Json& s : sent.at("spans")) {
    if (s.at("name") == "POST /orders") trace_id = s.at("traceId");
  }
  for (const Json& s : sent.at("spans")) order_spans += s.at("traceId") == trace_id ? 1 : 0;
  const Json answer = stack.jaeger->Trace(trace_id);
  EXPECT_EQ(answer.dump().find(user), std::string::npos) << "the clear enduser.id is in Jaeger";
  std::string pseudonym;
  for (const Json& s : JaegerProcess::Spans(answer)) {
    for (const Json& t : s["tags"]) {
      if (t.value("key", "") == "enduser.id") pseudonym = t.value("value", "");
    }
  }
  ASSERT_FALSE(pseudonym.empty());
  EXPECT_TRUE(JaegerProcess::Spans(stack.jaeger->Search(service, {{"enduser.id", user}})).empty());
  EXPECT_EQ(JaegerProcess::Spans(stack.jaeger->Search(service, {{"enduser.id", pseudonym}})).size(),
            order_spans);
  EXPECT_GE(stack.Metric("ordertrace_redaction_batches_total", "result=\"redacted\""), 1);
}

INSTANTIATE_TEST_SUITE_P(Exporters, JsSdkToJaeger,
                         // The client's OTLP encoding, and how the gateway forwards it to Jaeger:
                         // protobuf as received over OTLP/HTTP (or re-encoded when redacted), JSON
                         // re-encoded as protobuf over OTLP/HTTP, gRPC over OTLP/gRPC.
                         ::testing::Values(std::make_pair(std::string("proto"), false),
                                           std::make_pair(std::string("json"), false),
                                           std::make_pair(std::string("grpc"), true)),
                         [](const auto& info) {
                           return std::string(info.param.first) +
                                  (info.param.second ? "_GrpcUpstream" : "_HttpUpstream");
                         });

// ---- libordertrace ----

// Hands each batch to the OTLP/HTTP exporter and keeps a copy of what it accepted.
class RecordingExporter : public SpanExporter {
 public:
  explicit RecordingExporter(std::unique_ptr<SpanExporter> otlp) : otlp_(std::move(otlp)) {}
  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept override {
    const ExportResult r = otlp_->Export(spans);
    if (r == ExportResult::kSuccess) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& s : spans) sent_.push_back(*s);
    }
    return r;
  }
  void Shutdown() noexcept override { otlp_->Shutdown(); }
  std::vector<SpanData> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  std::unique_ptr<SpanExporter> otlp_;
  std::mutex mu_;
  std::vector<SpanData> sent_;
};

uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

TEST(LibordertraceToJaeger, EveryFieldByTraceIdAndByOrderId) {
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  Stack stack;
  ASSERT_NO_FATAL_FAILURE(stack.Start(/*grpc_upstream=*/false));
  const std::string service = "jaeger-e2e-lib";
  const std::string order_id = "ORD-LIB-" + std::to_string(::getpid());

  TracerOptions options;
  options.service_name = service;
  options.exporter.endpoint =
      "http://127.0.0.1:" + std::to_string(stack.gateway.otlp_http_port()) + "/v1/traces";
  options.schedule_delay = std::chrono::milliseconds(100);
  const std::vector<std::pair<std::string, std::string>> resource{
      {"service.name", service},
      {"service.version", "5.0.2"},
      {"deployment.environment.name", "e2e"},
      {"telemetry.sdk.name", "libordertrace"},
      {"telemetry.sdk.language", "cpp"}};
  auto recording =
      std::make_unique<RecordingExporter>(MakeOtlpHttpExporter(options.exporter, resource));
  RecordingExporter* recorder = recording.get();
  TracerProvider provider(options, std::move(recording));

  const uint64_t t0 = NowNanos() - 60'000'000'000ull;  // a minute ago
  // Start options: `kind`, a parent (nullptr: a root), a start `offset` ns after t0.
  auto start = [t0](SpanKind kind, const SpanContext* parent, uint64_t offset) {
    StartOptions o;
    o.kind = kind;
    o.parent = parent;
    o.root = parent == nullptr;
    o.start_time_unix_nano = t0 + offset;
    return o;
  };
  const StartOptions root_options = start(SpanKind::kServer, nullptr, 123'456'789);
  Span root(provider, "POST /orders", root_options);
  root.SetAttribute("order.id", order_id);
  root.SetAttribute("order.stage", "SUBMITTED");
  root.SetAttribute("http.response.status_code", 201);
  root.SetAttribute("order.big", int64_t{9'007'199'254'740'993});  // beyond a double's 2^53
  root.SetAttribute("order.negative", -42);
  root.SetAttribute("order.total", 1234.5);
  root.SetAttribute("order.discount", -0.125);
  root.SetAttribute("order.priority", true);
  root.SetAttribute("order.gift", false);
  root.SetAttribute("order.tags", std::vector<std::string>{"rush", "b2b", ""});
  root.SetAttribute("order.none", std::vector<std::string>{});
  root.SetAttribute("order.note", "caf\u00e9 \u2013 \"quoted\" \\ slash\nnewline");
  root.SetStatus(SpanStatus::kOk);

  Span price(provider, "price.calculate",
             start(SpanKind::kInternal, &root.context(), 1'000'000'005));
  price.AddEvent("calculation.started", {{"calc.items", int64_t{3}},
                                         {"calc.mode", std::string("full")},
                                         {"calc.ratio", 0.5},
                                         {"calc.exact", true},
                                         {"calc.parts", std::vector<std::string>{"base", "tax"}}});
  price.AddEvent("no.attributes");
  price.RecordException("TimeoutError", "price service timed out");
  price.SetStatus(SpanStatus::kError, "calculation failed: timeout");
  price.End(t0 + 4'000'000'001);

  Span publish(provider, "publish order.created",
               start(SpanKind::kProducer, &root.context(), 4'000'000'100));
  publish.SetAttribute("messaging.system", "rabbitmq");
  const SpanContext publish_context = publish.context();
  publish.End(t0 + 4'000'200'000);

  // The consumer: a remote parent (the publish span, with a trace state, as from AMQP headers),
  // a link to it and one to another trace.
  SpanContext remote = publish_context;
  remote.remote = true;
  remote.trace_state = "ordertrace=p1,vendor=abc";
  SpanContext other;
  other.trace_id = NewTraceId();
  other.span_id = NewSpanId();
  other.trace_flags = kTraceFlagSampled;
  StartOptions consume_options = start(SpanKind::kConsumer, &remote, 7'000'000'001);
  consume_options.links = {Link{publish_context, {{"link.reason", std::string("producer")}}},
                           Link{other, {{"link.score", 0.125}}}};
  Span consume(provider, "orders process", consume_options);
  consume.SetAttribute("order.id", order_id);
  consume.AddEvent("heartbeat", {{"ordertrace.heartbeat", true}});
  consume.End(t0 + 9'000'000'000);

  Span client(provider, "GET /partners/{id}",
              start(SpanKind::kClient, &root.context(), 5'000'000'000));
  client.SetAttribute("server.address", "partners.internal");
  client.SetAttribute("server.port", 443);
  client.End(t0 + 5'250'000'000);
  root.End(t0 + 6'987'654'321);

  ASSERT_TRUE(provider.ForceFlush(std::chrono::milliseconds(20000)));
  Json sent = {{"resource", {{"attributes", Json::array()}}}, {"spans", Json::array()}};
  for (const auto& [k, v] : resource) {
    sent["resource"]["attributes"].push_back({{"key", k}, {"value", Typed(AttributeValue(v))}});
  }
  for (const SpanData& s : recorder->sent()) sent["spans"].push_back(Record(s));
  ASSERT_EQ(sent["spans"].size(), 5u) << "libordertrace did not export every span";
  ExpectInJaeger(stack, sent, service, order_id, "libordertrace via HTTP");

  // Nothing to redact: the gateway forwarded the bytes libordertrace sent.
  EXPECT_EQ(stack.Metric("ordertrace_redaction_batches_total", "result=\"redacted\""), 0);
  EXPECT_GE(stack.Metric("ordertrace_redaction_batches_total", "result=\"clean\""), 1);
  provider.Shutdown();
}

}  // namespace
}  // namespace ordertrace
