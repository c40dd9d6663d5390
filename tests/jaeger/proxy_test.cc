// Traces only through the gateway's sign-in (issue 16): a real Jaeger v2 (deploy/jaeger/
// memory.yaml, free loopback ports) holds spans that went through the gateway's OTLP/HTTP
// receiver and its forwarder; the gateway (in process, API sign-in against a JWKS served on
// loopback) serves Jaeger's query API under /jaeger/.  Without a token: 401; a Sales token: 403;
// a Developer token: the trace's JSON from Jaeger; each request one audit line naming the trace
// or the search.  Skipped without a Jaeger binary (failed with ORDERTRACE_REQUIRE_JAEGER=1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "gateway/gateway.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "support/jaeger_process.h"
#include "support/jwt_mint.h"
#include "support/otlp_requests.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using testing_support::JaegerProcess;
using testing_support::TestKey;

std::vector<json> AuditLines(const std::filesystem::path& file, const std::string& route_prefix) {
  std::vector<json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("http")) continue;
    if (j["http"].value("route", "").rfind(route_prefix, 0) == 0) out.push_back(std::move(j));
  }
  return out;
}

TEST(JaegerProxyTest, TracesOnlyThroughTheGatewaysSignIn) {
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("ordertrace_jaeger_proxy_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  JaegerProcess::Options jo;
  jo.config = "memory.yaml";
  JaegerProcess jaeger(dir / "jaeger", jo);
  ASSERT_TRUE(jaeger.Start()) << jaeger.Log();

  // The identity provider's discovery document and keys.
  const TestKey key = TestKey::EcP256();
  net::HttpServer idp(net::HttpServerOptions{});
  std::string issuer;
  idp.Route("GET", "/.well-known/openid-configuration",
            [&](net::HttpRequest&, net::HttpResponse& res) {
              res.content_type = "application/json";
              res.body = json{{"issuer", issuer}, {"jwks_uri", issuer + "/jwks"}}.dump();
            });
  idp.Route("GET", "/jwks", [&](net::HttpRequest&, net::HttpResponse& res) {
    res.content_type = "application/json";
    res.body = json{{"keys", {key.Jwk("ec-1")}}}.dump();
  });
  ASSERT_TRUE(idp.Start().ok());
  issuer = "http://127.0.0.1:" + std::to_string(idp.port());

  config::Config c;
  c.listen.otlp_grpc = "127.0.0.1:0";
  c.listen.otlp_http = "127.0.0.1:0";
  c.listen.http = "127.0.0.1:0";
  c.data_dir = (dir / "gateway").string();
  c.auth.oidc.issuer = issuer;
  c.auth.oidc.audience = "urn:ordertrace:api";
  c.auth.oidc.allow_insecure_loopback = true;
  c.forward.upstream = jaeger.otlp_http_url();
  c.forward.batch.max_age = std::chrono::milliseconds(50);
  c.jaeger.query_url = jaeger.query_url();
  c.jaeger.timeout = std::chrono::milliseconds(5000);
  gateway::Gateway gw(c);
  ASSERT_TRUE(gw.Start().ok());
  const std::string api = "http://127.0.0.1:" + std::to_string(gw.http_port());

  // Two spans of one trace into the gateway's OTLP/HTTP receiver, forwarded to Jaeger.
  const std::string trace_id("\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36",
                             16);
  const std::string trace_hex = "4bf92f3577b34da6a3ce929d0e0e4736";
  const uint64_t now_ns = static_cast<uint64_t>(SystemClock().Now());
  const auto request =
      testing_support::RequestBuilder()
          .Resource("proxy-test-crm")
          .Scope("ordertrace-test", "1.0")
          .Add(testing_support::SpanBuilder("create order")
                   .Ids(trace_id, std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8))
                   .Times(now_ns - 5'000'000, now_ns - 1'000'000)
                   .Attr("test.case", "proxy"))
          .Add(testing_support::SpanBuilder("store order")
                   .Ids(trace_id, std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb8", 8),
                        std::string("\x00\xf0\x67\xaa\x0b\xa9\x02\xb7", 8))
                   .Times(now_ns - 4'000'000, now_ns - 2'000'000))
          .Build();
  net::HttpOptions post;
  post.headers = {{"Content-Type", "application/x-protobuf"}};
  auto sent =
      net::HttpPost("http://127.0.0.1:" + std::to_string(gw.otlp_http_port()) + "/v1/traces",
                    request.SerializeAsString(), post);
  ASSERT_TRUE(sent.ok()) << sent.status().message();
  ASSERT_EQ(sent.value().status, 200) << sent.value().body;
  size_t in_jaeger = 0;
  for (int i = 0; i < 200 && in_jaeger < 2; ++i) {
    in_jaeger = JaegerProcess::Spans(jaeger.Trace(trace_hex)).size();
    if (in_jaeger < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(in_jaeger, 2u) << "the spans did not reach Jaeger\n" << jaeger.Log();

  const int64_t now_s = SystemClock().Now() / 1'000'000'000;
  auto token = [&](const std::string& role) {
    return testing_support::MintJwt(json{{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", "ec-1"}},
                                    json{{"iss", issuer},
                                         {"aud", "urn:ordertrace:api"},
                                         {"sub", role == "Sales" ? "sam" : "dana"},
                                         {"exp", now_s + 600},
                                         {"roles", {role}}},
                                    key);
  };
  auto get = [&](const std::string& target, const std::string& bearer,
                 const std::string& method = "GET") {
    net::HttpConnection conn(net::ParseUrl(api).value(), nullptr, false);
    net::HeaderList headers = {{"Accept", "application/json"}};
    if (!bearer.empty()) headers.emplace_back("Authorization", "Bearer " + bearer);
    net::HttpOutcome out =
        conn.Send(method, target, {}, headers, std::chrono::seconds(10), uint64_t{64} << 20);
    EXPECT_TRUE(out.ok()) << out.failure->Describe();
    return out.reply;
  };

  const std::string trace_path = "/jaeger/api/traces/" + trace_hex;
  // The gateway's sign-in is in front of Jaeger, which has none of its own.  The IdP's keys
  // are fetched at start; retry the first allowed request until they are in.
  net::HttpReply anonymous = get(trace_path, "");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.body.find(trace_hex), std::string::npos);
  const std::string dana = token("Developer");
  net::HttpReply developer;
  for (int i = 0; i < 100; ++i) {
    developer = get(trace_path, dana);
    if (developer.status != 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  net::HttpReply sales = get(trace_path, token("Sales"));
  EXPECT_EQ(sales.status, 403);
  EXPECT_EQ(sales.body.find(trace_hex), std::string::npos);

  ASSERT_EQ(developer.status, 200) << developer.body;
  EXPECT_EQ(developer.content_type.rfind("application/json", 0), 0u);
  const json answer = json::parse(developer.body, nullptr, false);
  ASSERT_FALSE(answer.is_discarded()) << developer.body;
  EXPECT_EQ(answer["data"][0]["traceID"], trace_hex);
  EXPECT_EQ(JaegerProcess::Spans(answer).size(), 2u);
  EXPECT_EQ(developer.Header("Cache-Control"), "no-store");

  // Jaeger's UI page (the placeholder of a plain Go build) under the listener's strict CSP.
  net::HttpReply ui = get("/jaeger/", dana);
  EXPECT_EQ(ui.status, 200) << ui.body;
  EXPECT_EQ(ui.content_type.rfind("text/html", 0), 0u) << ui.content_type;
  EXPECT_EQ(ui.Header("Content-Security-Policy"), "default-src 'self'; frame-ancestors 'none'");
  EXPECT_EQ(ui.Header("Set-Cookie"), "");

  // A search through the gateway, and a write Jaeger would accept but the gateway does not.
  const std::string search =
      "/jaeger/api/traces?service=proxy-test-crm&tags=%7B%22test.case%22%3A%"
      "22proxy%22%7D&limit=5&lookback=1h";
  net::HttpReply found = get(search, token("DevOps"));
  EXPECT_EQ(found.status, 200) << found.body;
  EXPECT_NE(found.body.find(trace_hex), std::string::npos) << found.body;
  EXPECT_EQ(get("/jaeger/api/archive/" + trace_hex, token("Developer"), "POST").status, 405);

  // One audit line per request, naming what was asked for.
  const auto lines = AuditLines(std::filesystem::path(c.data_dir) / "audit.log", "/jaeger");
  std::vector<json> trace_lines, search_lines;
  for (const json& l : lines) {
    if (l["http"]["route"] == "/jaeger/api/traces/{id}") trace_lines.push_back(l);
    if (l["http"]["route"] == "/jaeger/api/traces") search_lines.push_back(l);
  }
  ASSERT_GE(trace_lines.size(), 3u);  // 401, 200 (after any 503 while keys loaded), 403
  EXPECT_EQ(trace_lines.front()["http"]["status"], 401);
  EXPECT_EQ(trace_lines.front()["outcome"], "denied");
  EXPECT_EQ(trace_lines.back()["http"]["status"], 403);
  EXPECT_EQ(trace_lines.back()["actor"]["sub"], "sam");
  EXPECT_EQ(trace_lines[trace_lines.size() - 2]["http"]["status"], 200);
  EXPECT_EQ(trace_lines[trace_lines.size() - 2]["actor"]["sub"], "dana");
  for (const json& l : trace_lines) {
    EXPECT_EQ(l["resource"]["type"], "trace");
    EXPECT_EQ(l["resource"]["trace_id"], trace_hex);
  }
  ASSERT_EQ(search_lines.size(), 1u);
  EXPECT_EQ(search_lines[0]["http"]["status"], 200);
  EXPECT_EQ(search_lines[0]["resource"]["service"], "proxy-test-crm");
  EXPECT_EQ(search_lines[0]["resource"]["tags"], "{\"test.case\":\"proxy\"}");
  EXPECT_EQ(search_lines[0]["resource"]["limit"], "5");
  // Nothing secret in the audit: no token.
  std::ifstream audit(std::filesystem::path(c.data_dir) / "audit.log");
  const std::string all((std::istreambuf_iterator<char>(audit)), {});
  EXPECT_EQ(all.find(dana.substr(dana.rfind('.') + 1)), std::string::npos);

  const std::string metrics = get("/metrics", "").body;
  EXPECT_NE(metrics.find("ordertrace_jaeger_proxy_requests_total{result=\"ok\"} 3"),
            std::string::npos)
      << metrics;

  gw.Stop();
  idp.Shutdown();
  jaeger.Stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ordertrace
