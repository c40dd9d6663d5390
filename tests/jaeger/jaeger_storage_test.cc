// What a real Jaeger (tools/jaeger/build, Badger storage, deploy/jaeger/badger.yaml) keeps of what
// a real `ordertrace serve` forwards to it:
//
// - Restart: a steady load of unique spans is posted to the gateway while Jaeger is killed
//   (SIGKILL) or stopped (SIGTERM) and, a few seconds later, started again on the same Badger
//   directory and ports.
//   Afterwards every span the gateway acknowledged (HTTP 200) is in Jaeger, read back by trace
//   id, and no span is there twice (docs/forwarding.md: at least once; Badger keys a span by
//   trace id, start time and span id, so a re-sent span overwrites itself).
// - TTL: with a Badger TTL of a few seconds, an order's trace is readable in Jaeger, then gone
//   from its API (404 by trace id, nothing by `order.id`), while the gateway's journey store (its
//   own retention) still answers GET /api/v1/orders/{id}.
//
// Skipped with the reason without a Jaeger binary, failed when ORDERTRACE_REQUIRE_JAEGER=1.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "support/api_text.h"
#include "support/gateway_process.h"
#include "support/jaeger_process.h"
#include "support/otlp_requests.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using testing_support::GatewayProcess;
using testing_support::JaegerProcess;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;
using SpanKind = opentelemetry::proto::trace::v1::Span;

uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string HexOf(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// 16 random bytes, for trace ids no other run shares.
std::string RandomTraceId(std::mt19937_64& rng) {
  std::string id(16, '\0');
  for (char& c : id) c = static_cast<char>(rng() & 0xff);
  id[0] = static_cast<char>(id[0] | 1);  // never all zero
  return id;
}

// An 8-byte span id from a counter (unique within the run, never zero).
std::string SpanIdOf(uint64_t n) {
  std::string id(8, '\0');
  for (int i = 7; i >= 0; --i, n >>= 8) id[static_cast<size_t>(i)] = static_cast<char>(n & 0xff);
  return id;
}

// A gateway forwarding to `upstream`, retrying quickly (the restart must not wait for a 30 s
// backoff), with the rest of its configuration at the defaults (journeys in SQLite, redaction).
bool StartGateway(GatewayProcess& gw, const std::string& upstream) {
  const std::filesystem::path config = gw.dir() / "gateway.yaml";
  std::ofstream(config) << "forward:\n"
                        << "  upstream: " << upstream << "\n"
                        << "  retry: {initial: 100ms, max: 500ms}\n";
  return gw.Start({"--config", config.string()});
}

// The sum of a metric's samples on the gateway's /metrics (those whose labels contain `labels`),
// or -1 when /metrics did not answer.
double Metric(const GatewayProcess& gw, const std::string& name, const std::string& labels = "") {
  auto r = net::HttpGet(gw.http_port(), "/metrics");
  if (!r.ok() || r.value().status != 200) return -1;
  return testing_support::MetricSum(r.value().body, name, labels);
}

// Span ids (hex) of every span in a v1 answer, with how often each occurs.
std::map<std::string, int> SpanIdCounts(const json& answer) {
  std::map<std::string, int> out;
  for (const json& s : JaegerProcess::Spans(answer)) ++out[s.value("spanID", "")];
  return out;
}

// The parameter: SIGKILL (a crash) or SIGTERM (a stop: Jaeger shuts down cleanly).
class JaegerRestart : public ::testing::TestWithParam<bool> {};

TEST_P(JaegerRestart, DuringLoadKeepsEveryAcknowledgedSpan) {
  const bool sigkill = GetParam();
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  GatewayProcess gw("jaeger_restart");
  JaegerProcess jaeger(gw.dir() / "jaeger");
  ASSERT_TRUE(jaeger.Start()) << jaeger.Log();
  ASSERT_TRUE(StartGateway(gw, jaeger.otlp_http_url())) << gw.Log();

  // The load: kRequests requests of kSpansPerRequest spans, one every kInterval, spread over
  // kTraces traces (so the read-back is kTraces lookups).  Jaeger is killed after kKillAfter
  // requests and started again kDownFor later, while the load goes on.
  constexpr int kRequests = 150, kSpansPerRequest = 20, kTraces = 30, kKillAfter = 40;
  constexpr auto kInterval = std::chrono::milliseconds(30);
  constexpr auto kDownFor = std::chrono::milliseconds(3000);
  std::mt19937_64 rng(std::random_device{}());
  std::vector<std::string> traces;
  for (int t = 0; t < kTraces; ++t) traces.push_back(RandomTraceId(rng));

  std::map<std::string, std::set<std::string>> acked;  // trace (hex) → span ids (hex)
  int acked_spans = 0, refused = 0;
  std::atomic<int> sent{0};
  // The load runs on its own thread; Jaeger is restarted from this one, which outlives it (the
  // child gets SIGTERM when the thread that started it ends: PR_SET_PDEATHSIG).
  std::thread load([&] {
    const std::string url =
        "http://127.0.0.1:" + std::to_string(gw.otlp_http_port()) + "/v1/traces";
    net::HttpOptions post;
    post.headers = {{"Content-Type", "application/x-protobuf"}};
    uint64_t next_span = 1;
    auto next_at = std::chrono::steady_clock::now();
    for (int i = 0; i < kRequests; ++i) {
      const std::string& trace = traces[static_cast<size_t>(i % kTraces)];
      RequestBuilder req;
      req.Resource("jaeger-restart-load").Scope("ordertrace-jaeger-e2e");
      std::vector<std::string> ids;
      const uint64_t now = NowNanos();
      for (int j = 0; j < kSpansPerRequest; ++j) {
        const std::string id = SpanIdOf(next_span++);
        ids.push_back(HexOf(id));
        req.Add(SpanBuilder("load " + std::to_string(i) + "." + std::to_string(j))
                    .Ids(trace, id)
                    .Kind(SpanKind::SPAN_KIND_INTERNAL)
                    .Times(now, now + 1000000)
                    .Attr("load.request", i));
      }
      auto r = net::HttpPost(url, req.Serialized(), post);
      if (r.ok() && r.value().status == 200) {
        for (const std::string& id : ids) acked[HexOf(trace)].insert(id);
        acked_spans += kSpansPerRequest;
      } else {
        ++refused;  // not acknowledged: a client would retry; nothing is promised for it
      }
      sent.fetch_add(1);
      next_at += kInterval;
      std::this_thread::sleep_until(next_at);
    }
  });
  // The worst moment: right after Jaeger acknowledged an export (a span Jaeger acknowledged
  // but had not written yet would be lost to it, and the gateway would not send it again).
  while (sent.load() < kKillAfter) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const double exports = Metric(gw, "ordertrace_forward_export_requests_total", "code=\"200\"");
  while (Metric(gw, "ordertrace_forward_export_requests_total", "code=\"200\"") == exports &&
         sent.load() < kRequests) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (sigkill) {
    jaeger.Kill();
  } else {
    jaeger.Stop();
  }
  const int killed_after = sent.load();
  std::this_thread::sleep_for(kDownFor);
  const auto restart_began = std::chrono::steady_clock::now();
  const bool restarted = jaeger.Start();
  const auto restart_took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - restart_began);
  load.join();
  ASSERT_TRUE(restarted) << jaeger.Log();
  ASSERT_TRUE(jaeger.running()) << jaeger.Log();
  EXPECT_EQ(refused, 0) << "the gateway refused requests while Jaeger was down";
  ASSERT_GT(acked_spans, 0);

  // The forward queue drains into the restarted Jaeger.
  EXPECT_TRUE(
      testing_support::WaitFor([&] { return Metric(gw, "ordertrace_forward_queue_records") == 0; },
                               std::chrono::milliseconds(20000)))
      << gw.Log();

  // Every acknowledged span is in Jaeger; none is there twice, as stored (raw) or as served.
  // (Jaeger writes what it received before it answers: a short wait covers only the reads.)
  int missing = 0, stored_twice = 0, served_twice = 0, found = 0;
  std::string first_missing;
  auto read_back = [&] {
    missing = stored_twice = served_twice = found = 0;
    first_missing.clear();
    for (const auto& [trace, want] : acked) {
      const std::map<std::string, int> raw = SpanIdCounts(jaeger.Trace(trace, nullptr, true));
      const std::map<std::string, int> served = SpanIdCounts(jaeger.Trace(trace));
      for (const std::string& id : want) {
        if (raw.count(id) == 0) {
          ++missing;
          if (first_missing.empty()) first_missing = trace + "/" + id;
        }
      }
      for (const auto& [id, n] : raw) stored_twice += n - 1;
      for (const auto& [id, n] : served) served_twice += n - 1;
      found += static_cast<int>(raw.size());
    }
    return missing == 0;
  };
  testing_support::WaitFor(read_back, std::chrono::milliseconds(3000));
  std::printf(
      "restart (%s): down after %d requests, restarted in %lld ms; acked_spans=%d "
      "found_distinct=%d missing=%d stored_twice=%d served_twice=%d retries=%.0f\n",
      sigkill ? "SIGKILL" : "SIGTERM", killed_after, static_cast<long long>(restart_took.count()),
      acked_spans, found, missing, stored_twice, served_twice,
      Metric(gw, "ordertrace_forward_retries_total"));
  EXPECT_EQ(missing, 0) << "acknowledged spans missing from Jaeger, the first " << first_missing
                        << "\n"
                        << jaeger.Log();
  EXPECT_EQ(found, acked_spans);
  EXPECT_EQ(stored_twice, 0);
  EXPECT_EQ(served_twice, 0);
  // The outage was real: the forwarder had to retry.
  EXPECT_GT(Metric(gw, "ordertrace_forward_retries_total"), 0);
}

INSTANTIATE_TEST_SUITE_P(Signals, JaegerRestart, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Sigkill" : "Sigterm"; });

TEST(JaegerStorage, TraceOlderThanTheTtlIsGoneWhileTheJourneyStays) {
  ORDERTRACE_REQUIRE_JAEGER_OR_SKIP();
  GatewayProcess gw("jaeger_ttl");
  JaegerProcess::Options options;
  // Badger keeps an entry until the whole second after write time + TTL: 3 to 4 s here, time
  // enough to see the trace even when the machine is busy, short enough for CI.
  options.ttl = "4s";
  JaegerProcess jaeger(gw.dir() / "jaeger", options);
  ASSERT_TRUE(jaeger.Start()) << jaeger.Log();
  ASSERT_TRUE(StartGateway(gw, jaeger.otlp_grpc_url())) << gw.Log();

  std::mt19937_64 rng(std::random_device{}());
  const std::string trace = RandomTraceId(rng);
  const std::string order = "ORD-TTL-" + HexOf(trace).substr(0, 8);
  const uint64_t now = NowNanos();
  RequestBuilder req;
  req.Resource("jaeger-ttl-crm").Scope("ordertrace-jaeger-e2e");
  req.Add(SpanBuilder("POST /orders")
              .Ids(trace, SpanIdOf(1))
              .Kind(SpanKind::SPAN_KIND_SERVER)
              .Times(now - 2000000, now)
              .Attr("order.id", order)
              .Attr("order.stage", "SUBMITTED"));
  net::HttpOptions post;
  post.headers = {{"Content-Type", "application/x-protobuf"}};
  auto r = net::HttpPost("http://127.0.0.1:" + std::to_string(gw.otlp_http_port()) + "/v1/traces",
                         req.Serialized(), post);
  ASSERT_TRUE(r.ok() && r.value().status == 200);
  const auto sent_at = std::chrono::steady_clock::now();

  // Readable in Jaeger, by trace id and by order.id; the journey answers.
  json answer;
  ASSERT_TRUE(testing_support::WaitFor(
      [&] {
        answer = jaeger.Trace(HexOf(trace));
        return JaegerProcess::Spans(answer).size() == 1;
      },
      std::chrono::milliseconds(3000)))
      << answer.dump();
  EXPECT_EQ(JaegerProcess::Spans(jaeger.Search("jaeger-ttl-crm", {{"order.id", order}})).size(),
            1u);
  const auto readable_after = std::chrono::steady_clock::now() - sent_at;
  auto journey = net::HttpGet(gw.http_port(), "/api/v1/orders/" + order);
  ASSERT_TRUE(journey.ok());
  EXPECT_EQ(journey.value().status, 200) << journey.value().body;

  // Past the TTL (Badger stamps each entry with now + ttl in whole seconds): gone from the API.
  int status = 0;
  EXPECT_TRUE(testing_support::WaitFor(
      [&] {
        answer = jaeger.Trace(HexOf(trace), &status);
        return status == 404;
      },
      std::chrono::milliseconds(8000)))
      << status << " " << answer.dump();
  const auto gone_after = std::chrono::steady_clock::now() - sent_at;
  EXPECT_TRUE(JaegerProcess::Spans(jaeger.Search("jaeger-ttl-crm", {{"order.id", order}})).empty());
  std::printf("ttl: readable after %lld ms, 404 after %lld ms (ttl 4s)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(readable_after).count()),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(gone_after).count()));

  // The journey store has its own retention (journeys.retention.*, days by default).
  journey = net::HttpGet(gw.http_port(), "/api/v1/orders/" + order);
  ASSERT_TRUE(journey.ok());
  EXPECT_EQ(journey.value().status, 200) << journey.value().body;
  const json j = json::parse(journey.value().body, nullptr, false);
  EXPECT_NE(j.dump().find(HexOf(trace)), std::string::npos) << j.dump();
}

}  // namespace
}  // namespace ordertrace
