// The web UI in a real browser, end to end (issue 17, "Real browser tests"): this harness starts,
// on free loopback ports with its own temp directory and stopping every process by pid,
//   - a private RabbitMQ with the management plugin (tests/rabbitmq/broker.h),
//   - gateway A: `ordertrace serve` with the open API, the UI (embedded by ORDERTRACE_UI, or the
//     directory in ORDERTRACE_UI_DIST), broker health every second and short rules,
//   - ordertrace-sim's crm, mes and partner with a known fault mix: lost-to-mes,
//     crm-ignores-price and mes-silent on chosen orders, consumer-gone on crm.shipments from 12 s,
//   - an OpenID provider (tests/oidc/provider.mjs) and gateway B with browser sign-in on
//     http://localhost (the only plain-http origin where browsers keep a Secure cookie),
// then runs `node --test` on tests/ui/*.test.mjs (playwright-core driving Debian's chromium)
// with their addresses in the environment, and fails when node fails.  The RabbitMQ outage is
// done by the node test through the commands in OT_BROKER_STOP / OT_BROKER_START
// (rabbitmq_broker stop-server / start-server on this broker's state file).
//
// Without chromium, node, tests/ui/node_modules (tests/ui/setup), tests/oidc/node_modules,
// rabbitmq-server or a gateway that serves the UI, the test skips with the reason; with
// ORDERTRACE_REQUIRE_BROWSER=1 (scripts/test) it fails instead.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "rabbitmq/broker.h"
#include "sim/options.h"
#include "support/alertmanager_process.h"  // FreePort
#include "support/child_process.h"
#include "support/fast_rules.h"
#include "support/gateway_process.h"
#include "support/oidc_provider_process.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using testing_support::ChildProcess;
using testing_support::GatewayProcess;
using testing_support::OidcProviderProcess;

// The request's lifecycle with every deadline in seconds (support/fast_rules.h).
constexpr const char* kRules = testing_support::kFastLifecycleRules;
constexpr int kOrders = 16;
constexpr char kPrefix[] = "UI-";
constexpr uint64_t kSeed = 17;

bool Required() {
  const char* r = std::getenv("ORDERTRACE_REQUIRE_BROWSER");
  return r != nullptr && std::string(r) == "1";
}

std::string Chromium() {
  const char* c = std::getenv("ORDERTRACE_CHROMIUM");
  return c != nullptr && *c != '\0' ? c : "/usr/bin/chromium";
}

std::string UiTestsDir() { return std::string(ORDERTRACE_SOURCE_DIR) + "/tests/ui"; }

// Why the browser tests cannot run here, or "".
std::string MissingPrerequisite() {
  if (::access(Chromium().c_str(), X_OK) != 0) {
    return Chromium() +
           " not found: apt-get install -y --no-install-recommends chromium (scripts/setup)";
  }
  if (OidcProviderProcess::FindNode().empty()) return "node is not on PATH (scripts/setup)";
  for (const char* pkg : {"playwright-core", "@axe-core/playwright", "axe-core"}) {
    if (!fs::exists(UiTestsDir() + "/node_modules/" + pkg + "/package.json")) {
      return std::string("tests/ui/node_modules has no ") + pkg + "; run tests/ui/setup (npm ci)";
    }
  }
  return OidcProviderProcess::MissingPrerequisite();
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

json GetJson(const std::string& base, const std::string& path) {
  auto r = net::HttpGet(base, path, 3000ms);
  if (!r.ok() || r.value().status != 200) return nullptr;
  return json::parse(r.value().body, nullptr, false);
}

class UiBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = MissingPrerequisite();
    if (!missing.empty()) {
      if (Required()) FAIL() << missing;
      GTEST_SKIP() << missing;
    }
    dir_ = fs::temp_directory_path() / ("ordertrace_ui_browser_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "rules.yaml") << kRules;
    broker_dir_ = (dir_ / "rabbitmq").string();
    broker_ = testing::StartBroker(broker_dir_, /*die_with_parent=*/true);
    if (!broker_.available) {
      if (Required()) FAIL() << "RabbitMQ is required: " << broker_.reason;
      GTEST_SKIP() << "RabbitMQ not available: " << broker_.reason;
    }
    // The node test stops and restarts rabbitmq-server through rabbitmq_broker and this file.
    ASSERT_TRUE(testing::SaveBroker(broker_, broker_dir_ + ".state"));
  }

  void TearDown() override {
    for (auto& s : sims_) s->Stop(3000ms);
    if (gateway_) gateway_->Stop();
    if (signin_gateway_) signin_gateway_->Stop();
    if (idp_) idp_->Stop();
    if (HasFailure()) {
      for (const auto& [name, log] : Logs())
        std::cerr << "---- " << name << " (tail) ----\n" << log;
    }
    // The node test may have restarted the broker: its current pids are in the state file.
    testing::Broker now;
    if (testing::LoadBroker(broker_dir_ + ".state", &now) && now.pid != broker_.pid) broker_ = now;
    if (broker_.pid > 0 || broker_.epmd_pid > 0) testing::StopBroker(&broker_);
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
  }

  std::vector<std::pair<std::string, std::string>> Logs() const {
    auto tail = [](const std::string& s) {
      return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
    };
    std::vector<std::pair<std::string, std::string>> out;
    for (size_t i = 0; i < sims_.size(); ++i)
      out.emplace_back("sim " + std::to_string(i), tail(sims_[i]->Log()));
    if (gateway_) out.emplace_back("gateway", tail(gateway_->Log()));
    if (signin_gateway_) out.emplace_back("sign-in gateway", tail(signin_gateway_->Log()));
    if (idp_) out.emplace_back("oidc provider", tail(idp_->Log()));
    return out;
  }

  std::string AmqpUrl() const {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(broker_.port) + "/";
  }

  // The UI's directory, when not embedded: ORDERTRACE_UI_DIST.
  static std::string UiConfig() {
    const char* dist = std::getenv("ORDERTRACE_UI_DIST");
    if (dist == nullptr || *dist == '\0') return "";
    return std::string("ui:\n  dir: ") + dist + "\n";
  }

  // Gateway A: open API, the UI, broker health every second, Jaeger links to its own /jaeger.
  void StartGateway() {
    const uint16_t port = testing_support::FreePort();
    const std::string origin = "http://127.0.0.1:" + std::to_string(port);
    std::ofstream(dir_ / "gateway.yaml")
        << "broker:\n  management_url: http://127.0.0.1:" << broker_.management_port
        << "\n  interval: 1s\n  timeout: 1s\njourneys:\n  jaeger_ui: " << origin << "/jaeger\n"
        << UiConfig();
    gateway_ = std::make_unique<GatewayProcess>("ui_browser");
    gateway_->set_http_address("127.0.0.1:" + std::to_string(port));
    ASSERT_TRUE(gateway_->Start(
        {"--config", (dir_ / "gateway.yaml").string(), "--rules", (dir_ / "rules.yaml").string()}))
        << gateway_->Log();
  }

  // Whether gateway A serves the UI's index page.
  std::string UiNotServed() const {
    auto r = net::HttpGet(gateway_->api_url(), "/ui/stuck", 3000ms);
    if (!r.ok()) return "GET /ui/stuck failed: " + r.status().message();
    if (r.value().status != 200 || r.value().body.find("/ui/assets/") == std::string::npos) {
      return "the gateway serves no web UI at /ui/stuck (HTTP " + std::to_string(r.value().status) +
             "): build with -DORDERTRACE_UI=ON or set ORDERTRACE_UI_DIST to ui/'s build";
    }
    return "";
  }

  std::string Id(int i) const { return sim::OrderId(kPrefix, kSeed, static_cast<uint64_t>(i)); }

  void StartSim(const std::string& role, const std::vector<std::string>& extra) {
    auto p = std::make_unique<ChildProcess>();
    std::vector<std::string> argv{
        ORDERTRACE_SIM_BIN,
        role,
        "--amqp",
        AmqpUrl(),
        "--otlp",
        "http://127.0.0.1:" + std::to_string(gateway_->otlp_http_port()) + "/v1/traces",
        "--rules",
        (dir_ / "rules.yaml").string(),
        "--seed",
        std::to_string(kSeed),
        "--order-prefix",
        kPrefix,
        "--quiet"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ASSERT_TRUE(p->Start(argv, (dir_ / (role + ".log")).string()));
    sims_.push_back(std::move(p));
  }

  // The fault mix: three orders hung at three critical points, and the shipments' consumer gone
  // from 12 s on (the first orders close before; the later ones pile up in crm.shipments).
  void StartPipeline() {
    const std::vector<std::string> faults{"--fault", "lost-to-mes:orders=" + Id(2),
                                          "--fault", "crm-ignores-price:orders=" + Id(3),
                                          "--fault", "mes-silent:orders=" + Id(5),
                                          "--fault", "consumer-gone:queue=crm.shipments:after=12s"};
    ::setenv("OTEL_BSP_SCHEDULE_DELAY", "200", 1);
    StartSim("crm", faults);
    StartSim("mes", faults);
    std::vector<std::string> partner = faults;
    partner.insert(partner.end(), {"--orders", std::to_string(kOrders), "--rate", "1.5"});
    StartSim("partner", partner);
  }

  // Until the faulted orders are stuck, some order closed and the partner is done.
  bool WaitForFaultMix(std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      bool ok = true;
      for (int i : {2, 3, 5}) {
        json o = GetJson(gateway_->api_url(), "/api/v1/orders/" + Id(i));
        ok = ok && o.is_object() && o.value("stuck", false);
      }
      json list = GetJson(gateway_->api_url(), "/api/v1/orders?stuck=false&limit=1000");
      bool closed = false;
      if (list.is_object() && list["orders"].is_array()) {
        for (const json& o : list["orders"]) closed = closed || o.value("closed", false);
      }
      ok = ok && closed;
      json gone = GetJson(gateway_->api_url(), "/api/v1/orders?stuck=true&stage=SHIPPED&limit=1");
      ok = ok && gone.is_object() && !gone["orders"].empty();
      if (ok && !sims_[2]->running()) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  }

  // The OpenID provider and gateway B with browser sign-in on http://localhost:PORT.
  void StartSignInGateway() {
    const uint16_t port = testing_support::FreePort();
    signin_origin_ = "http://localhost:" + std::to_string(port);
    const std::string secret = "ui-browser-secret-" + std::to_string(::getpid());
    std::ofstream(dir_ / "client_secret") << secret << "\n";
    ::chmod((dir_ / "client_secret").c_str(), 0600);
    idp_ = std::make_unique<OidcProviderProcess>(dir_);
    idp_->set_env({"OIDC_UI_REDIRECT=" + signin_origin_ + "/auth/callback",
                   "OIDC_UI_POST_LOGOUT=" + signin_origin_ + "/", "OIDC_UI_SECRET=" + secret});
    ASSERT_TRUE(idp_->Start({"k1"}, "entra")) << idp_->Log();
    std::ofstream(dir_ / "signin.yaml")
        << "auth:\n  oidc: {issuer: " << idp_->issuer()
        << ", audience: urn:ordertrace:api, allow_insecure_loopback: true}\n"
        << "  signin:\n    client_id: ordertrace-ui\n    client_secret_file: "
        << (dir_ / "client_secret").string() << "\n    redirect_uri: " << signin_origin_
        << "/auth/callback\n    post_logout_redirect_uri: " << signin_origin_
        << "/\n    resource: urn:ordertrace:api\n"
        << UiConfig();
    signin_gateway_ = std::make_unique<GatewayProcess>("ui_browser_signin");
    signin_gateway_->set_http_address("127.0.0.1:" + std::to_string(port));
    ASSERT_TRUE(signin_gateway_->Start(
        {"--config", (dir_ / "signin.yaml").string(), "--rules", (dir_ / "rules.yaml").string()}))
        << signin_gateway_->Log();
  }

  fs::path dir_;
  std::string broker_dir_;
  testing::Broker broker_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::unique_ptr<GatewayProcess> signin_gateway_;
  std::unique_ptr<OidcProviderProcess> idp_;
  std::string signin_origin_;
  std::vector<std::unique_ptr<ChildProcess>> sims_;
};

TEST_F(UiBrowserTest, NodeBrowserTestsAgainstTheRealPipeline) {
  const auto t0 = std::chrono::steady_clock::now();
  StartGateway();
  if (HasFatalFailure()) return;
  if (const std::string why = UiNotServed(); !why.empty()) {
    if (Required()) FAIL() << why;
    GTEST_SKIP() << why;
  }
  StartPipeline();
  if (HasFatalFailure()) return;
  StartSignInGateway();
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitForFaultMix(90s)) << "the fault mix did not settle";
  const auto settled = std::chrono::steady_clock::now();

  const std::string broker_ctl = std::string(ORDERTRACE_RABBITMQ_BROKER_BIN) + " ";
  fs::create_directories(ORDERTRACE_UI_SCREENSHOTS);
  const std::vector<std::pair<std::string, std::string>> env{
      {"OT_GATEWAY", gateway_->api_url()},
      {"OT_OTLP_HTTP",
       "http://127.0.0.1:" + std::to_string(gateway_->otlp_http_port()) + "/v1/traces"},
      {"OT_JAEGER_BASE", gateway_->api_url() + "/jaeger"},
      {"OT_SIGNIN_GATEWAY", signin_origin_},
      {"OT_SIGNIN_OTLP",
       "http://127.0.0.1:" + std::to_string(signin_gateway_->otlp_http_port()) + "/v1/traces"},
      {"OT_IDP", idp_->issuer()},
      {"OT_BROKER_STOP", broker_ctl + "stop-server " + broker_dir_},
      {"OT_BROKER_START", broker_ctl + "start-server " + broker_dir_},
      {"OT_CONSUMER_GONE_QUEUE", "crm.shipments"},
      {"OT_SCREENSHOTS", ORDERTRACE_UI_SCREENSHOTS},
      {"OT_CHROMIUM", Chromium()},
      {"OT_GRACE_SECONDS", "1"},
      {"OT_STAGE_SECONDS", "4"},
  };
  std::string command = "cd " + Quote(UiTestsDir()) + " && env";
  for (const auto& [k, v] : env) command += " " + k + "=" + Quote(v);
  // ORDERTRACE_UI_BROWSER_HOLD=S: keep everything running for up to S seconds before the node
  // tests, with the environment in <dir>/env.sh, for working on one test file by hand (touch
  // <dir>/release to go on).
  if (const char* hold = std::getenv("ORDERTRACE_UI_BROWSER_HOLD"); hold != nullptr) {
    std::ofstream out(dir_ / "env.sh");
    for (const auto& [k, v] : env) out << "export " << k << "=" << Quote(v) << "\n";
    out.close();
    std::cout << "[ui browser] holding: . " << (dir_ / "env.sh").string() << "; touch "
              << (dir_ / "release").string() << " to go on" << std::endl;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(hold));
    while (std::chrono::steady_clock::now() < until && !fs::exists(dir_ / "release")) {
      std::this_thread::sleep_for(500ms);
    }
  }
  command += " " + Quote(OidcProviderProcess::FindNode()) +
             " --test --test-concurrency=1 --test-timeout=180000 --test-reporter=spec ";
  // One file at a time (one browser at a time on a small machine); node runs them in name
  // order.  The RabbitMQ outage disturbs the pipeline: it runs last, on its own.
  const testing_support::CommandResult r = testing_support::RunCommand(
      command +
      "a11y.test.mjs board.test.mjs flow.test.mjs order.test.mjs security.test.mjs "
      "signin.test.mjs 2>&1");
  const testing_support::CommandResult outage =
      testing_support::RunCommand(command + "outage.test.mjs 2>&1");
  const auto done = std::chrono::steady_clock::now();
  std::cout << r.out << outage.out << "\n[ui browser] set-up " << (settled - t0) / 1s
            << " s, node tests " << (done - settled) / 1s << " s; screenshots in "
            << ORDERTRACE_UI_SCREENSHOTS << "\n";
  EXPECT_EQ(r.exit_code, 0) << "node --test failed (its output is above)";
  EXPECT_EQ(outage.exit_code, 0) << "node --test outage.test.mjs failed (its output is above)";
}

}  // namespace
}  // namespace ordertrace
