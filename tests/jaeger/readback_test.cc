// Reading an order's spans back from a real Jaeger (docs/jaeger.md, "Reading an order's spans back
// from Jaeger"): a real `ordertrace serve` forwards to a private Jaeger v2 (Badger) and reads back
// from its query service (jaeger.query_url).  Spans with an order id go in through the gateway's
// OTLP/HTTP receiver; GET /api/v1/orders/{id}?include=jaeger returns them as Jaeger holds them
// (ids and names match), and `ordertrace order ID --jaeger` counts them per trace.  With Jaeger
// stopped the journey still answers 200, with jaeger.error saying why.
//
// No sign-in here (the loopback-only API allows every action); the roles are tested in
// src/api/api_guard_test.cc.  Skipped without the Jaeger binary (tools/jaeger/build), failed
// when ORDERTRACE_REQUIRE_JAEGER=1.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "support/gateway_process.h"
#include "support/jaeger_process.h"
#include "support/otlp_requests.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using testing_support::GatewayProcess;
using testing_support::JaegerProcess;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr char kTraceA[] = "5b8efff798038103d269b633813fc60c";
constexpr char kTraceB[] = "7a3c0fe2d1b54c1e9f0a6b2c3d4e5f60";

struct SentSpan {
  std::string trace_id, span_id, name;
};

uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// POSTs `request` (protobuf) to the gateway's OTLP/HTTP receiver; the HTTP status.
int Post(uint16_t port, const std::string& request) {
  net::HttpOptions o;
  o.headers = {{"Content-Type", "application/x-protobuf"}};
  auto r = net::HttpPost("http://127.0.0.1:" + std::to_string(port) + "/v1/traces", request, o);
  return r.ok() ? r.value().status : 0;
}

json GetOrder(const GatewayProcess& gw, const std::string& target, int* status) {
  auto r = net::HttpGet(gw.api_url(), target, 20s);
  *status = r.ok() ? r.value().status : 0;
  return r.ok() ? json::parse(r.value().body, nullptr, false) : json();
}

// Span ids by trace id in a read-back.
std::map<std::string, std::set<std::string>> SpanIdsOf(const json& jaeger) {
  std::map<std::string, std::set<std::string>> out;
  if (!jaeger.is_object() || !jaeger["traces"].is_array()) return out;
  for (const json& t : jaeger["traces"]) {
    for (const json& s : t["spans"]) out[t["trace_id"]].insert(s.value("spanID", ""));
  }
  return out;
}

class JaegerReadBack : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_readback_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

TEST_F(JaegerReadBack, TheOrdersSpansComeBackFromJaegerAndAJaegerDownIsNamed) {
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  JaegerProcess jaeger(dir_ / "jaeger");
  ASSERT_TRUE(jaeger.Start()) << jaeger.Log();

  const std::filesystem::path config = dir_ / "gateway.yaml";
  std::ofstream(config) << "forward:\n  upstream: " << jaeger.otlp_http_url()
                        << "\n  batch:\n    max_age: 50ms\n"
                        << "jaeger:\n  query_url: " << jaeger.query_url() << "\n  timeout: 5s\n";
  GatewayProcess gw("readback");
  ASSERT_TRUE(gw.Start({"--config", config.string()})) << gw.Log();

  // Two traces of one order: a submit with a child, and a later price calculation.
  const std::string order = "RB-1";
  const uint64_t t0 = NowNanos() - 60'000'000'000ull;
  const std::vector<SentSpan> sent = {{kTraceA, "1111111111111111", "POST /api/orders"},
                                      {kTraceA, "2222222222222222", "publish orders"},
                                      {kTraceB, "3333333333333333", "calculate price"}};
  RequestBuilder crm;
  crm.Resource("crm").Scope("readback-test");
  crm.Add(SpanBuilder(sent[0].name)
              .Ids(testing_support::IdFromHex(kTraceA), testing_support::IdFromHex(sent[0].span_id))
              .Times(t0, t0 + 20'000'000)
              .Attr("order.id", order));
  crm.Add(SpanBuilder(sent[1].name)
              .Ids(testing_support::IdFromHex(kTraceA), testing_support::IdFromHex(sent[1].span_id),
                   testing_support::IdFromHex(sent[0].span_id))
              .Times(t0 + 5'000'000, t0 + 6'000'000)
              .Attr("order.id", order));
  RequestBuilder pricing;
  pricing.Resource("pricing").Scope("readback-test");
  pricing.Add(
      SpanBuilder(sent[2].name)
          .Ids(testing_support::IdFromHex(kTraceB), testing_support::IdFromHex(sent[2].span_id))
          .Times(t0 + 2'000'000'000, t0 + 2'100'000'000)
          .Attr("order.id", order));
  ASSERT_EQ(Post(gw.otlp_http_port(), crm.Serialized()), 200);
  ASSERT_EQ(Post(gw.otlp_http_port(), pricing.Serialized()), 200);

  // The journey has them at once; Jaeger after its batch processor: poll.
  const std::string target = "/api/v1/orders/" + order + "?include=jaeger";
  json j;
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + 20s;
  std::map<std::string, std::set<std::string>> got;
  while (std::chrono::steady_clock::now() < until) {
    j = GetOrder(gw, target, &status);
    if (status == 200) {
      got = SpanIdsOf(j["jaeger"]);
      if (got[kTraceA].size() == 2 && got[kTraceB].size() == 1) break;
    }
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(status, 200) << j.dump(2) << gw.Log();
  ASSERT_EQ(got[kTraceA].size(), 2u) << j["jaeger"].dump(2) << "\n" << gw.Log();
  ASSERT_EQ(got[kTraceB].size(), 1u) << j["jaeger"].dump(2);
  const json& r = j["jaeger"];
  EXPECT_TRUE(r["error"].is_null()) << r.dump(2);
  EXPECT_TRUE(r["missing"].empty());
  EXPECT_TRUE(r["failed"].empty());
  EXPECT_TRUE(r["left_out"].empty());
  // Latest first: the price calculation's trace ended last.
  ASSERT_EQ(r["traces"].size(), 2u);
  EXPECT_EQ(r["traces"][0]["trace_id"], kTraceB);
  EXPECT_EQ(r["traces"][1]["trace_id"], kTraceA);
  // Each span as Jaeger holds it: ids, names, the order id tag, the service in its process.
  std::map<std::string, json> by_id;
  for (const json& t : r["traces"]) {
    for (const json& s : t["spans"]) {
      json span = s;
      span["service"] = t["processes"][s.value("processID", "")].value("serviceName", "");
      by_id[s.value("spanID", "")] = span;
    }
  }
  for (const SentSpan& s : sent) {
    ASSERT_TRUE(by_id.count(s.span_id)) << s.span_id << " in " << r.dump(2);
    const json& span = by_id[s.span_id];
    EXPECT_EQ(span["traceID"], s.trace_id);
    EXPECT_EQ(span["operationName"], s.name);
    bool has_order = false;
    for (const json& tag : span["tags"]) {
      if (tag["key"] == "order.id" && tag["value"] == order) has_order = true;
    }
    EXPECT_TRUE(has_order) << span.dump(2);
  }
  EXPECT_EQ(by_id["1111111111111111"]["service"], "crm");
  EXPECT_EQ(by_id["3333333333333333"]["service"], "pricing");
  // The links point at the gateway's own /jaeger/ (jaeger.query_url set, no journeys.jaeger_ui).
  const std::string search = j["jaeger_search_link"];
  EXPECT_NE(search.find("/jaeger/search?traceID=" + std::string(kTraceB) +
                        "&traceID=" + std::string(kTraceA)),
            std::string::npos)
      << search;
  for (const json& s : j["spans"]) {
    EXPECT_NE(s["jaeger_link"].get<std::string>().find(
                  "/jaeger/trace/" + s["trace_id"].get<std::string>() +
                  "?uiFind=" + s["span_id"].get<std::string>()),
              std::string::npos)
        << s.dump();
  }

  // The CLI: spans per trace.
  testing_support::CommandResult cli = testing_support::RunCommand(
      std::string(ORDERTRACE_BIN) + " order " + order + " --jaeger --api " + gw.api_url());
  EXPECT_EQ(cli.exit_code, 0) << cli.out;
  EXPECT_NE(cli.out.find("trace " + std::string(kTraceA) + "  2 spans"), std::string::npos)
      << cli.out;
  EXPECT_NE(cli.out.find("trace " + std::string(kTraceB) + "  1 spans"), std::string::npos)
      << cli.out;
  EXPECT_NE(cli.out.find("traces  http"), std::string::npos) << cli.out;

  // Jaeger down: the journey still answers, and says why Jaeger's part is missing.
  jaeger.Stop();
  j = GetOrder(gw, target, &status);
  ASSERT_EQ(status, 200) << j.dump(2);
  EXPECT_EQ(j["order_id"], order);
  EXPECT_EQ(j["spans"].size(), 3u);
  EXPECT_TRUE(j["jaeger"]["traces"].empty());
  EXPECT_EQ(j["jaeger"]["error"], "Jaeger is not reachable: connect: Connection refused")
      << j["jaeger"].dump(2);
  EXPECT_EQ(j["jaeger"]["failed"].size(), 2u);
  auto metrics = net::HttpGet(gw.api_url(), "/metrics", 5s);
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("ordertrace_jaeger_read_back_traces_total{outcome=\"failed\"} 2"),
            std::string::npos)
      << metrics->body;
  EXPECT_TRUE(gw.WaitForLog("order's traces not read back from Jaeger")) << gw.Log();
}

}  // namespace
}  // namespace ordertrace
