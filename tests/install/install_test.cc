// libordertrace as a user gets it: `cmake --install` of this build into a temporary prefix,
// examples/order_service configured and built against it with find_package(ordertrace), then
// run against a real `ordertrace serve`.  The order it handles must appear in the gateway's
// journey API (GET /api/v1/orders/{id}) with its milestones, the long operation and its
// heartbeats: the spans exported by the installed library arrived and were understood.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "support/gateway_process.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using testing_support::GatewayProcess;
namespace fs = std::filesystem;

using testing_support::CommandResult;

// Runs a command with its stdout and stderr together in `out`.
CommandResult RunShell(const std::string& command) {
  return testing_support::RunCommand(command + " 2>&1");
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The private broker of the ctest fixture rabbitmq_broker (tests/rabbitmq/broker_main.cc):
// "amqp://guest:guest@127.0.0.1:PORT", or "" with the reason in *why.
std::string BrokerUrl(std::string* why) {
  const char* state = std::getenv("ORDERTRACE_RABBITMQ_STATE");
  if (state == nullptr) {
    *why = "ORDERTRACE_RABBITMQ_STATE is not set (run through ctest: fixture rabbitmq_broker)";
    return "";
  }
  std::ifstream in(state);
  std::string line, port, reason;
  bool available = false;
  while (std::getline(in, line)) {
    if (line == "available=1") available = true;
    if (line.rfind("port=", 0) == 0) port = line.substr(5);
    if (line.rfind("reason=", 0) == 0) reason = line.substr(7);
  }
  if (!available || port.empty()) {
    *why = "no broker: " + (reason.empty() ? std::string("no state in ") + state : reason);
    return "";
  }
  return "amqp://guest:guest@127.0.0.1:" + port;  // no path: the default vhost "/"
}

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ordertrace_install_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);  // kept for a look when the test failed
  }
  fs::path dir_;
};

TEST_F(InstallTest, FindPackageBuildOfTheExampleExportsToTheGateway) {
  const fs::path prefix = dir_ / "prefix";
  const fs::path build = dir_ / "build";
  const std::string cmake = Quote(ORDERTRACE_CMAKE_COMMAND);

  // 1. Install.
  CommandResult r = RunShell(cmake + " --install " + Quote(ORDERTRACE_BUILD_DIR) + " --prefix " +
                             Quote(prefix.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(fs::exists(prefix / "include/ordertrace/tracer.h")) << r.out;
  EXPECT_TRUE(fs::exists(prefix / "include/ordertrace/rabbitmq.h")) << r.out;
  EXPECT_FALSE(fs::exists(prefix / "include/ordertrace/internal.h")) << "private header installed";
  fs::path config_dir;
  for (const char* libdir : {"lib", "lib64", "lib/x86_64-linux-gnu"}) {
    if (fs::exists(prefix / libdir / "cmake/ordertrace/ordertraceConfig.cmake")) {
      config_dir = prefix / libdir / "cmake/ordertrace";
      EXPECT_TRUE(fs::exists(prefix / libdir / "libordertrace.a"));
    }
  }
  ASSERT_FALSE(config_dir.empty()) << r.out;
  EXPECT_TRUE(fs::exists(config_dir / "ordertraceConfigVersion.cmake"));
  // The package must not point back into the source or build tree.
  for (const auto& entry : fs::directory_iterator(config_dir)) {
    const std::string text = ReadFile(entry.path());
    EXPECT_EQ(text.find(ORDERTRACE_SOURCE_DIR "/"), std::string::npos) << entry.path();
    EXPECT_EQ(text.find(ORDERTRACE_BUILD_DIR), std::string::npos) << entry.path();
    EXPECT_EQ(text.find("Boost::"), std::string::npos) << entry.path() << ": Boost is build-only";
    EXPECT_EQ(text.find("find_dependency(Boost"), std::string::npos) << entry.path();
  }

  // 2. Configure and build examples/order_service against the installed package only.
  r = RunShell(cmake + " -S " + Quote(ORDERTRACE_SOURCE_DIR "/examples/order_service") + " -B " +
               Quote(build.string()) + " -G " + Quote(ORDERTRACE_CMAKE_GENERATOR) +
               " -DCMAKE_MAKE_PROGRAM=" + Quote(ORDERTRACE_MAKE_PROGRAM) +
               " -DCMAKE_CXX_COMPILER=" + Quote(ORDERTRACE_CXX_COMPILER) +
               " -DCMAKE_BUILD_TYPE=Release -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF" +
               " -DCMAKE_PREFIX_PATH=" + Quote(prefix.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string cache = ReadFile(build / "CMakeCache.txt");
  EXPECT_NE(cache.find("ordertrace_DIR:PATH=" + config_dir.string()), std::string::npos)
      << "find_package did not use the installed package";
  r = RunShell(cmake + " --build " + Quote(build.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const fs::path example = build / "order_service";
  ASSERT_TRUE(fs::exists(example));

  // 3. Run it against a real gateway (the built-in lifecycle: SUBMITTED, PRICE_CALCULATED, ...).
  GatewayProcess gw("install");
  ASSERT_TRUE(gw.Start()) << gw.Log();
  const std::string order = "INSTALL-" + std::to_string(::getpid());
  // With the fixture's broker, the example also publishes the result (a traced publish).
  std::string why;
  const std::string amqp = BrokerUrl(&why);
  if (amqp.empty()) {
    const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
    if (required != nullptr && std::string(required) == "1") FAIL() << why;
    std::printf("install_test: without the RabbitMQ publish: %s\n", why.c_str());
  }
  const int expected_spans = amqp.empty() ? 2 : 3;  // + heartbeats
  r = RunShell(
      "env OTEL_SERVICE_NAME=crm OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test "
      "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" +
      std::to_string(gw.otlp_http_port()) + " " + Quote(example.string()) + " --order " + order +
      " --calc-ms 450 --heartbeat-ms 100" +
      (amqp.empty() ? "" : " --amqp " + amqp + " --routing-key price.calculated"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json sent = json::parse(r.out.substr(r.out.find('{')), nullptr, false);
  ASSERT_TRUE(sent.is_object()) << r.out;
  const std::string trace_id = sent["trace_id"];
  const int heartbeats = sent["heartbeats"];
  EXPECT_GE(heartbeats, 3) << r.out;
  EXPECT_EQ(sent["dropped"], 0) << r.out;
  EXPECT_EQ(sent["exported"], heartbeats + expected_spans) << r.out;
  if (!amqp.empty()) {
    EXPECT_EQ(sent["publish"].get<std::string>().rfind("ok ", 0), 0u) << r.out;
  }

  // 4. The order, as the gateway's journey API tells it.
  json j;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    auto reply = net::HttpGet(gw.http_port(), "/api/v1/orders/" + order);
    if (reply.ok() && reply.value().status == 200) {
      j = json::parse(reply.value().body, nullptr, false);
      if (j.is_object() && j["spans"].size() == static_cast<size_t>(heartbeats + expected_spans))
        break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(j.is_object()) << gw.Log();
  EXPECT_EQ(j["order_id"], order);
  EXPECT_EQ(j["stage"], "PRICE_CALCULATED") << j.dump(2);
  EXPECT_EQ(j["stuck"], false);
  EXPECT_EQ(j["last_service"], "crm");
  EXPECT_FALSE(j["last_heartbeat"].is_null()) << j.dump(2);
  // Milestones come in time order (the end of the span that reached each): the calculation
  // reaches PRICE_CALCULATED before the request span (SUBMITTED) ends.
  ASSERT_EQ(j["milestones"].size(), 2u) << j.dump(2);
  std::set<std::string> stages;
  for (const json& m : j["milestones"]) {
    stages.insert(m["stage"].get<std::string>());
    EXPECT_EQ(m["service"], "crm");
    EXPECT_EQ(m["trace_id"], trace_id);
  }
  EXPECT_EQ(stages, (std::set<std::string>{"SUBMITTED", "PRICE_CALCULATED"}));
  ASSERT_EQ(j["spans"].size(), static_cast<size_t>(heartbeats + expected_spans)) << j.dump(2);
  std::string request_id, calculation_id;
  int heartbeat_spans = 0;
  for (const json& s : j["spans"]) {
    EXPECT_EQ(s["trace_id"], trace_id);
    EXPECT_EQ(s["service"], "crm");
    if (s["name"] == "POST /api/orders") {
      request_id = s["span_id"];
      EXPECT_EQ(s["stage"], "SUBMITTED");
      EXPECT_EQ(s["status"], "OK");
      EXPECT_EQ(s["step_status"], "OK");
    }
  }
  for (const json& s : j["spans"]) {
    if (s["name"] == "price calculation") {
      calculation_id = s["span_id"];
      EXPECT_EQ(s["parent_span_id"], request_id);
      EXPECT_EQ(s["stage"], "PRICE_CALCULATED");
      EXPECT_EQ(s["step_status"], "OK");
    }
  }
  for (const json& s : j["spans"]) {
    if (s["name"] == "price calculation heartbeat") {
      ++heartbeat_spans;
      EXPECT_EQ(s["heartbeat"], true);
      EXPECT_EQ(s["parent_span_id"], calculation_id);
    }
  }
  if (!amqp.empty()) {
    // The publish: a PRODUCER span under the request, and a hop the gateway holds open (nothing
    // consumes the message here).
    std::string publish_id;
    for (const json& s : j["spans"]) {
      if (s["name"] == "publish price.calculated") {
        publish_id = s["span_id"];
        EXPECT_EQ(s["parent_span_id"], request_id);
        EXPECT_EQ(s["step_status"], "OK");
        EXPECT_EQ(s["messaging"]["routing_key"], "price.calculated");
      }
    }
    EXPECT_FALSE(publish_id.empty()) << j.dump(2);
    ASSERT_EQ(j["hops"].size(), 1u) << j.dump(2);
    EXPECT_EQ(j["hops"][0]["open"], true);
    EXPECT_EQ(j["hops"][0]["routing_key"], "price.calculated");
    EXPECT_EQ(j["hops"][0]["publisher"], "crm");
    EXPECT_EQ(j["hops"][0]["send_span_id"], publish_id);
    EXPECT_EQ(j["hops"][0]["message_id"], sent["publish"].get<std::string>().substr(3));
  }
  EXPECT_FALSE(request_id.empty()) << j.dump(2);
  EXPECT_FALSE(calculation_id.empty()) << j.dump(2);
  EXPECT_EQ(heartbeat_spans, heartbeats);
}

}  // namespace
}  // namespace ordertrace
