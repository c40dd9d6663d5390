// Alerting end to end with a REAL Alertmanager (Debian prometheus-alertmanager, started here on
// loopback with its own storage directory and no clustering) and a real `ordertrace serve`:
//   - an order hangs (the OpenTelemetry JS SDK sends its spans stamped 10 minutes ago): the
//     alert appears in Alertmanager's GET /api/v2/alerts with its labels and the diagnosis; the
//     order moves on (send_order.mjs --next): Alertmanager resolves it (and notifies "resolved");
//   - SIGKILL and restart of the gateway while the alert fires: Alertmanager keeps ONE alert
//     with the original startsAt, updated by the restarted gateway, and never notifies a
//     resolve (no flap);
//   - a storm: 5,000 orders stuck at once (one OTLP/JSON request) give a bounded number of
//     notifications at a local webhook receiver, with the count in them, and one grouped alert
//     in Alertmanager.
// Without the Alertmanager package (or node for the JS SDK) the tests skip with the reason, or
// fail when ORDERTRACE_REQUIRE_INTEROP=1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "support/alertmanager_process.h"
#include "support/gateway_process.h"
#include "support/otlp_requests.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using testing_support::Alertmanager;
using testing_support::FreePort;
using testing_support::GatewayProcess;
using testing_support::kAlertmanagerBin;
using testing_support::Receiver;
using testing_support::WaitFor;

const std::string kInteropDir = std::string(ORDERTRACE_SOURCE_DIR) + "/tests/interop";

int RunShell(const std::string& command, std::string* out = nullptr) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) {
    if (out != nullptr) out->append(buf, n);
  }
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Notifications Alertmanager sent to its receiver for one order, by status ("firing",
// "resolved").
size_t Notifications(const Receiver& r, const std::string& order, const std::string& status) {
  size_t n = 0;
  for (const auto& body : r.bodies()) {
    if (!body.is_object() || !body.contains("alerts")) continue;
    for (const auto& a : body["alerts"]) {
      if (a["labels"].value("order_id", "") == order && a.value("status", "") == status) ++n;
    }
  }
  return n;
}

std::string Missing() {
  if (!std::filesystem::exists(kAlertmanagerBin)) {
    return std::string(kAlertmanagerBin) +
           " is missing: install the Debian package prometheus-alertmanager (scripts/setup)";
  }
  if (RunShell("command -v node >/dev/null 2>&1") != 0) return "node is not on PATH";
  if (!std::filesystem::exists(kInteropDir +
                               "/node_modules/@opentelemetry/exporter-trace-otlp-proto")) {
    return "tests/interop/node_modules is missing; run tests/interop/setup";
  }
  return "";
}

class AlertmanagerEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = Missing();
    if (!missing.empty()) {
      const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
      if (required != nullptr && std::string(required) == "1") FAIL() << missing;
      GTEST_SKIP() << missing;
    }
  }

  // The gateway's flags: a config file with short intervals, plus --alertmanager.
  std::vector<std::string> GatewayFlags(const GatewayProcess& gw, const Alertmanager& am,
                                        const std::string& extra_alerting = "") {
    const std::filesystem::path config = gw.dir() / "gateway.yaml";
    std::ofstream(config) << "journeys:\n  jaeger_ui: http://jaeger.test:16686\n"
                             "alerting:\n  resend_interval: 2s\n  timeout: 2s\n"
                             "  runbook_url: https://wiki.test/stuck-orders\n"
                          << extra_alerting;
    return {"--config", config.string(), "--alertmanager", am.url()};
  }

  static int SendOrder(const GatewayProcess& gw, const std::string& order, std::string* out) {
    return RunShell("cd '" + kInteropDir + "' && node send_order.mjs --endpoint http://127.0.0.1:" +
                        std::to_string(gw.otlp_http_port()) + " --order " + order +
                        " --minutes-ago 10",
                    out);
  }
};

TEST_F(AlertmanagerEndToEnd, StuckOrderAlertsWithDiagnosisAndResolvesWhenItMovesOn) {
  GatewayProcess gw("alert_e2e");
  Receiver am_hook;
  ASSERT_TRUE(am_hook.started());
  Alertmanager am(gw.dir() / "am", am_hook.url("/am"));
  ASSERT_TRUE(am.Start()) << am.Log();
  ASSERT_TRUE(gw.Start(GatewayFlags(gw, am))) << gw.Log();

  const std::string order = "AM-1";
  std::string out;
  ASSERT_EQ(SendOrder(gw, order, &out), 0) << out;
  const json ids = json::parse(out, nullptr, false);
  ASSERT_TRUE(ids.is_object()) << out;
  const std::string trace_id = ids["trace_id"];

  json alerts;
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = am.Alerts({{"order_id", order}});
        return alerts.size() == 1;
      },
      std::chrono::milliseconds(15000)))
      << alerts.dump(2) << gw.Log() << am.Log();
  const json& a = alerts[0];
  EXPECT_EQ(a["labels"]["alertname"], "OrderStuck");
  EXPECT_EQ(a["labels"]["stage"], "SUBMITTED");
  EXPECT_EQ(a["labels"]["service"], "mes");
  EXPECT_EQ(a["labels"]["severity"], "critical");
  const std::string summary = a["annotations"]["summary"];
  EXPECT_NE(summary.find("stuck in SUBMITTED"), std::string::npos) << summary;
  EXPECT_NE(summary.find("msg-AM-1 published to orders with routing key price.calculate"),
            std::string::npos)
      << summary;
  EXPECT_NE(a["annotations"].value("description", "").find("Order AM-1 is stuck in SUBMITTED"),
            std::string::npos)
      << a.dump(2);
  // The order's traces together first (all of them on one Jaeger page), then the latest one.
  EXPECT_EQ(a["annotations"]["jaeger_url"], "http://jaeger.test:16686/search?traceID=" + trace_id);
  EXPECT_EQ(a["annotations"]["jaeger_trace_url"], "http://jaeger.test:16686/trace/" + trace_id);
  EXPECT_EQ(a["annotations"]["runbook_url"], "https://wiki.test/stuck-orders");
  EXPECT_EQ(a["status"]["state"], "active");
  // startsAt is when the order got stuck (minutes ago), not when the alert was sent.
  const std::string starts_at = a["startsAt"];
  EXPECT_LT(starts_at, am.Alerts()[0]["updatedAt"].get<std::string>());
  ASSERT_TRUE(WaitFor([&] { return Notifications(am_hook, order, "firing") >= 1; },
                      std::chrono::milliseconds(10000)));

  // The order moves on: the MES processes the message and reaches PRICE_CALCULATED.
  ASSERT_EQ(
      RunShell("cd '" + kInteropDir + "' && node send_order.mjs --endpoint http://127.0.0.1:" +
               std::to_string(gw.otlp_http_port()) + " --order " + order + " --next"),
      0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return am.Alerts({{"order_id", order}}).empty();
      },
      std::chrono::milliseconds(15000)))
      << am.Alerts().dump(2) << gw.Log();
  EXPECT_TRUE(WaitFor([&] { return Notifications(am_hook, order, "resolved") == 1; },
                      std::chrono::milliseconds(10000)))
      << gw.Log() << am.Log();
  auto api = net::HttpGet(gw.http_port(), "/api/v1/orders/" + order);
  ASSERT_TRUE(api.ok());
  EXPECT_EQ(json::parse(api.value().body)["stage"], "PRICE_CALCULATED");
  // Gateway metrics count what was sent.
  auto metrics = net::HttpGet(gw.http_port(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics.value().body.find("ordertrace_alerts_sent_total{sink=\"alertmanager\"}"),
            std::string::npos);
  EXPECT_NE(metrics.value().body.find("ordertrace_alerts_failed_total{sink=\"alertmanager\"} 0"),
            std::string::npos)
      << metrics.value().body;
}

TEST_F(AlertmanagerEndToEnd, GatewayKilledAndRestartedWhileFiringIsOneAlertNotAFlap) {
  GatewayProcess gw("alert_restart");
  Receiver am_hook;
  ASSERT_TRUE(am_hook.started());
  Alertmanager am(gw.dir() / "am", am_hook.url("/am"));
  ASSERT_TRUE(am.Start()) << am.Log();
  const auto flags = GatewayFlags(gw, am);
  ASSERT_TRUE(gw.Start(flags)) << gw.Log();

  const std::string order = "AM-2";
  std::string out;
  ASSERT_EQ(SendOrder(gw, order, &out), 0) << out;
  json alerts;
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = am.Alerts({{"order_id", order}});
        return alerts.size() == 1;
      },
      std::chrono::milliseconds(15000)))
      << gw.Log();
  const std::string starts_at = alerts[0]["startsAt"];

  gw.Signal(SIGKILL);
  gw.Stop();                                                     // reaps it
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // more than one resend interval
  ASSERT_TRUE(gw.Start(flags)) << gw.Log();
  const std::string restarted_at = am.Alerts({{"order_id", order}})[0]["updatedAt"];

  // The restarted gateway re-sends the alert (updatedAt moves on) with the same startsAt.
  ASSERT_TRUE(WaitFor(
      [&] {
        alerts = am.Alerts({{"order_id", order}});
        return alerts.size() == 1 && alerts[0]["updatedAt"].get<std::string>() != restarted_at;
      },
      std::chrono::milliseconds(10000)))
      << alerts.dump(2) << gw.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  alerts = am.Alerts({{"order_id", order}});
  ASSERT_EQ(alerts.size(), 1u) << alerts.dump(2);
  EXPECT_EQ(alerts[0]["startsAt"], starts_at);
  EXPECT_EQ(alerts[0]["status"]["state"], "active");
  EXPECT_EQ(Notifications(am_hook, order, "resolved"), 0u) << "the alert flapped";
  EXPECT_EQ(Notifications(am_hook, order, "firing"), 1u);  // one page, not two
}

// One OTLP/JSON request with `n` SUBMITTED spans (service crm) stamped 10 minutes ago.
std::string ManyStuckOrders(int n) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const int64_t t0 = now - int64_t{600} * 1000000000;
  testing_support::RequestBuilder req;
  req.Resource("crm").Scope("storm");
  char id[64];
  for (int i = 0; i < n; ++i) {
    std::snprintf(id, sizeof id, "%032x", i + 1);
    const std::string trace_id = id;
    std::snprintf(id, sizeof id, "%016x", i + 1);
    const std::string span_id = id;
    req.Add(testing_support::SpanBuilder("POST /api/orders")
                .Ids(testing_support::IdFromHex(trace_id), testing_support::IdFromHex(span_id))
                .Kind(opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER)
                .Times(static_cast<uint64_t>(t0), static_cast<uint64_t>(t0 + 50000000))
                .Attr("order.id", "STORM-" + std::to_string(i))
                .Attr("order.stage", "SUBMITTED")
                .Status(opentelemetry::proto::trace::v1::Status::STATUS_CODE_OK));
  }
  return testing_support::ToOtlpJson(req.Build());
}

TEST_F(AlertmanagerEndToEnd, StormOfFiveThousandStuckOrdersGivesBoundedNotifications) {
  GatewayProcess gw("alert_storm");
  Receiver am_hook, hook;
  ASSERT_TRUE(am_hook.started());
  ASSERT_TRUE(hook.started());
  Alertmanager am(gw.dir() / "am", am_hook.url("/am"));
  ASSERT_TRUE(am.Start()) << am.Log();
  ASSERT_TRUE(gw.Start(
      GatewayFlags(gw, am, "  webhook:\n    url: " + hook.url("/hook") + "\n    secret: s3cret\n")))
      << gw.Log();

  constexpr int kOrders = 5000;
  net::HttpOptions post;
  post.timeout = std::chrono::milliseconds(30000);
  post.headers = {{"Content-Type", "application/json"}};
  auto sent =
      net::HttpPost("http://127.0.0.1:" + std::to_string(gw.otlp_http_port()) + "/v1/traces",
                    ManyStuckOrders(kOrders), post);
  ASSERT_TRUE(sent.ok()) << sent.status().message();
  ASSERT_EQ(sent.value().status, 200) << sent.value().body;

  // Every order is stuck (the API lists them) ...
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = net::HttpGet(gw.http_port(), "/metrics");
        return r.ok() && r.value().body.find("ordertrace_alerts_storms 1") != std::string::npos;
      },
      std::chrono::milliseconds(30000)))
      << gw.Log();
  // ... and Alertmanager shows one grouped alert with the count.
  json storm;
  ASSERT_TRUE(WaitFor(
      [&] {
        storm = am.Alerts({{"alertname", "OrderStuckStorm"}});
        return storm.size() == 1 &&
               storm[0]["annotations"].value("count", "") == std::to_string(kOrders);
      },
      std::chrono::milliseconds(30000)))
      << storm.dump(2) << gw.Log();
  EXPECT_EQ(storm[0]["labels"]["stage"], "SUBMITTED");
  EXPECT_EQ(storm[0]["labels"]["service"], "mes");
  EXPECT_EQ(storm[0]["annotations"]["summary"], "5000 orders stuck at SUBMITTED waiting for mes");
  std::this_thread::sleep_for(std::chrono::milliseconds(5000));  // two resend intervals more
  const size_t per_order = am.Alerts({{"alertname", "OrderStuck"}}).size();
  EXPECT_LE(per_order, 100u);  // at most the threshold, before the storm was recognised

  // The webhook: a bounded number of notifications, the storm's with its count; signed.
  const auto bodies = hook.bodies();
  EXPECT_LE(bodies.size(), 100u + 5u);
  size_t storms = 0, max_count = 0;
  for (const auto& b : bodies) {
    if (b.value("alertname", "") != "OrderStuckStorm") continue;
    ++storms;
    max_count = std::max<size_t>(max_count, b.value("count", 0));
  }
  EXPECT_GE(storms, 1u);
  EXPECT_LE(storms, 3u);
  EXPECT_GT(max_count, 100u);
  std::cout << "storm: " << bodies.size() << " webhook notifications (" << storms
            << " grouped, largest count " << max_count << "), " << per_order
            << " per-order alerts in Alertmanager\n";
}

}  // namespace
}  // namespace ordertrace
