// Attribution through trace context (docs/rules.md, src/journey/attribution/attributor.h) with
// third-party instrumentations as real peers: a real `ordertrace serve`, a private RabbitMQ and
// unmodified OpenTelemetry instrumentations in three runtimes (tests/attribution/README.md):
//   - Node: @opentelemetry/instrumentation-amqplib, the producer; only its app span carries
//     order.id, the instrumentation's publish span is its child and carries none;
//   - Python: opentelemetry-instrumentation-pika, a consumer that sets nothing;
//   - Java: the OpenTelemetry Java agent on a plain amqp-client program, a consumer and a
//     "third-party MES" that consumes and publishes its own message, configured only with OTEL_*.
// The cases:
//   1. a message published and never consumed is flagged message_unprocessed within
//      processed_within + grace + 1 s, the diagnosis naming its queue;
//   2. a message consumed (pika; the Java agent) is never flagged, its hop is closed and the
//      consumer's service is on the order;
//   3. the consumer's spans reach the gateway before the producer's: the same verdict;
//   4. the MES's publish, mapped by service + span name (no order_id_from), moves the order to
//      the next stage without any order id on the MES's spans.
// Asserted only through the gateway's HTTP API (docs/api.md) and /metrics.
//
// The broker is the ctest fixture rabbitmq_broker's (ORDERTRACE_RABBITMQ_STATE), or this
// program's own when run alone; each test has its own vhost, gateway and queues.  Without
// rabbitmq-server or a peer (tests/attribution/setup installs them) a test skips with the
// reason, or fails when ORDERTRACE_REQUIRE_INTEROP=1.
#include <gtest/gtest.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "rabbitmq/broker.h"
#include "rabbitmq/broker_environment.h"
#include "support/api_text.h"
#include "support/child_process.h"
#include "support/gateway_process.h"
#include "support/run_command.h"

namespace ordertrace {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using testing_support::ChildProcess;
using testing_support::GatewayProcess;
using testing_support::RunCommand;
using Clock = std::chrono::steady_clock;

const std::string kPeers = std::string(ORDERTRACE_SOURCE_DIR) + "/tests/attribution";
const std::string kNodeModules = std::string(ORDERTRACE_SOURCE_DIR) + "/tests/interop/node_modules";

// Short deadlines: a message must be processed within 3 s (+ 3 s grace); a span waits 2 s for
// its ancestor.  The stages' own deadlines are far away: only the messages are checked here.
constexpr auto kProcessedWithin = 3s;
constexpr auto kGrace = 3s;
constexpr auto kAttributionWait = 2s;
constexpr char kRules[] = R"(stages: [SUBMITTED, PRICE_CALCULATED, CLOSED]
expect:
  SUBMITTED:        {next: PRICE_CALCULATED, within: 10m}
  PRICE_CALCULATED: {next: CLOSED, within: 10m}
messages: {processed_within: 3s}
grace: 3s
mappings:
  # The Java agent names the MES's basicPublish "{exchange} publish" (tests/attribution/README.md).
  - {service: mes, span: "mes publish", stage: PRICE_CALCULATED}
)";

bool RequireInterop() {
  const char* v = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

bool Readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

std::string OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  }
  return "";
}

enum class Peer { kNode, kPython, kJava };

// Why a peer cannot run here ("" when it can).
std::string PeerMissing(Peer p) {
  const std::string setup = " (run tests/attribution/setup)";
  switch (p) {
    case Peer::kNode:
      if (OnPath("node").empty()) return "node is not on PATH (scripts/setup installs it)";
      for (const char* pkg : {"@opentelemetry/instrumentation-amqplib", "amqplib",
                              "@opentelemetry/exporter-trace-otlp-proto"}) {
        if (!Readable(kNodeModules + "/" + pkg + "/package.json"))
          return "tests/interop/node_modules lacks " + std::string(pkg) + setup;
      }
      return "";
    case Peer::kPython:
      if (!Readable(kPeers + "/python/.venv/.ordertrace-requirements"))
        return "the Python peer is not installed in tests/attribution/python/.venv" + setup;
      return "";
    case Peer::kJava:
      if (OnPath("java").empty()) return "java is not on PATH";
      if (!Readable(kPeers + "/java/target/.ordertrace-installed"))
        return "the Java peer is not installed in tests/attribution/java/target" + setup;
      return "";
  }
  return "";
}

std::string PeersMissing(std::initializer_list<Peer> peers) {
  std::string why;
  for (Peer p : peers) {
    const std::string m = PeerMissing(p);
    if (!m.empty()) why += (why.empty() ? "" : "; ") + m;
  }
  return why;
}

// Skips the test (fails it under ORDERTRACE_REQUIRE_INTEROP=1) when a peer cannot run.
#define REQUIRE_PEERS(...)                                                     \
  do {                                                                         \
    const std::string missing_peers = PeersMissing({__VA_ARGS__});             \
    if (!missing_peers.empty()) {                                              \
      if (RequireInterop()) FAIL() << "a peer is required: " << missing_peers; \
      GTEST_SKIP() << missing_peers;                                           \
    }                                                                          \
  } while (0)

int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t Ns(std::chrono::nanoseconds d) { return d.count(); }

std::string Unique(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  return prefix + "-" + std::to_string(rng() % 1000000000);
}

// ---------------------------------------------------------------------------------------------
// The broker for the whole program.

::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(
    new testing::BrokerEnvironment("ot-attribution-broker", /*use_fixture=*/true));

// ---------------------------------------------------------------------------------------------

// What a test saw of one order while polling the API.
struct Watched {
  int polls = 0;
  bool ever_stuck = false;
  json first_stuck;            // the order the first time the API said it was stuck
  int64_t first_stuck_ns = 0;  // wall clock of that poll
  json last;                   // the latest answer (null while 404)
};

class Attribution : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::Broker& b = testing::BrokerEnvironment::broker();
    if (!b.available) {
      if (RequireInterop()) FAIL() << "RabbitMQ is required: " << b.reason;
      GTEST_SKIP() << "RabbitMQ not available: " << b.reason;
    }
    static int n = 0;
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++n);
    vhost_ = "attribution-" + tag;
    dir_ = fs::temp_directory_path() / ("ordertrace_attribution_" + tag);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(Management("PUT", "/api/vhosts/" + vhost_, "{}"));
    ASSERT_TRUE(Management("PUT", "/api/permissions/" + vhost_ + "/guest",
                           R"({"configure":".*","write":".*","read":".*"})"));
    std::ofstream(dir_ / "rules.yaml") << kRules;
    std::ofstream(dir_ / "gateway.yaml")
        << "journeys:\n  store: memory\n  attribution:\n    wait: "
        << std::chrono::duration_cast<std::chrono::seconds>(kAttributionWait).count() << "s\n"
        << "broker:\n  management_url: http://127.0.0.1:" << b.management_port
        << "\n  vhost: " << vhost_ << "\n  interval: 1s\n  timeout: 1s\n";
    gateway_ = std::make_unique<GatewayProcess>("attribution");
    ASSERT_TRUE(gateway_->Start(
        {"--config", (dir_ / "gateway.yaml").string(), "--rules", (dir_ / "rules.yaml").string()}))
        << gateway_->Log();
  }

  void TearDown() override {
    for (auto& [name, p] : peers_) p->Stop(3000ms);
    if (gateway_) gateway_->Stop();
    if (HasFailure()) {
      for (auto& [name, p] : peers_) std::cerr << "---- " << name << " ----\n" << Tail(p->Log());
      if (gateway_) std::cerr << "---- gateway log (tail) ----\n" << Tail(gateway_->Log());
    }
    if (!vhost_.empty() && testing::BrokerEnvironment::broker().available)
      Management("DELETE", "/api/vhosts/" + vhost_, "");
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  static std::string Tail(const std::string& s) {
    return (s.size() > 6000 ? s.substr(s.size() - 6000) : s) + "\n";
  }

  // The broker's management API (curl: PUT/DELETE with a body are not in our HTTP client).
  static bool Management(const std::string& method, const std::string& path,
                         const std::string& body) {
    const std::string cmd =
        "curl -sf -o /dev/null -u guest:guest -X " + method +
        " -H 'content-type: application/json' " + (body.empty() ? "" : "-d '" + body + "' ") +
        "http://127.0.0.1:" + std::to_string(testing::BrokerEnvironment::broker().management_port) +
        path;
    return RunCommand(cmd).exit_code == 0;
  }

  std::string AmqpUrl() const {
    return "amqp://guest:guest@127.0.0.1:" +
           std::to_string(testing::BrokerEnvironment::broker().port) + "/" + vhost_;
  }
  std::string OtlpBase() const {
    return "http://127.0.0.1:" + std::to_string(gateway_->otlp_http_port());
  }
  std::string OtlpTraces() const { return OtlpBase() + "/v1/traces"; }

  // A peer process; its stdout and stderr go to dir_/NAME.log.
  ChildProcess* Start(const std::string& name, const std::vector<std::string>& argv) {
    auto p = std::make_unique<ChildProcess>();
    EXPECT_TRUE(p->Start(argv, (dir_ / (name + ".log")).string())) << name;
    peers_.emplace_back(name, std::move(p));
    return peers_.back().second.get();
  }

  // The Node producer (amqplib): publishes one message for `order` to `queue`.
  ChildProcess* StartProducer(const std::string& order, const std::string& queue,
                              const std::string& hold_until = "") {
    std::vector<std::string> argv{OnPath("node"), kPeers + "/node/producer.mjs",
                                  "--url",        AmqpUrl(),
                                  "--queue",      queue,
                                  "--order",      order,
                                  "--otlp",       OtlpTraces(),
                                  "--service",    "node-shop"};
    if (!hold_until.empty()) argv.insert(argv.end(), {"--hold-until", hold_until});
    return Start("node-producer", argv);
  }

  // The Python consumer (pika): consumes one message from `queue`.
  ChildProcess* StartPythonConsumer(const std::string& queue, const std::string& service) {
    return Start(
        "python-" + service,
        {kPeers + "/python/.venv/bin/python", kPeers + "/python/consumer.py", "--url", AmqpUrl(),
         "--queue", queue, "--otlp", OtlpTraces(), "--service", service, "--timeout-s", "30"});
  }

  // The Java program under the agent, configured only by OTEL_* variables; `stable` opts in to
  // the stable messaging conventions (OTEL_SEMCONV_STABILITY_OPT_IN=messaging).
  ChildProcess* StartJava(const std::string& service, bool stable,
                          const std::vector<std::string>& args) {
    const std::string target = kPeers + "/java/target";
    std::vector<std::string> argv{"/usr/bin/env",
                                  "OTEL_SERVICE_NAME=" + service,
                                  "OTEL_TRACES_EXPORTER=otlp",
                                  "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                                  "OTEL_EXPORTER_OTLP_ENDPOINT=" + OtlpBase(),
                                  "OTEL_METRICS_EXPORTER=none",
                                  "OTEL_LOGS_EXPORTER=none",
                                  "OTEL_BSP_SCHEDULE_DELAY=100",
                                  "OTEL_JAVAAGENT_LOGGING=none"};
    if (stable) argv.push_back("OTEL_SEMCONV_STABILITY_OPT_IN=messaging");
    argv.insert(argv.end(),
                // C1 only: the agent's start-up (bytecode rewriting) takes half as long on two
                // busy cores without the C2 compiler's threads; the agent's behaviour is the same.
                {OnPath("java"), "-XX:TieredStopAtLevel=1",
                 "-javaagent:" + target + "/agent/opentelemetry-javaagent.jar", "-cp",
                 target + "/classes:" + target + "/lib/*", "peers.Mes", "--uri", AmqpUrl(),
                 "--timeout-s", "30"});
    argv.insert(argv.end(), args.begin(), args.end());
    return Start("java-" + service, argv);
  }

  // The first JSON line of a peer's output that has `key` (null when none yet).
  static json Line(const ChildProcess& p, const std::string& key) {
    std::istringstream in(p.Log());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] != '{') continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.contains(key)) return j;
    }
    return nullptr;
  }

  // Waits for a peer's JSON line with `key`; null when it exited or the time ran out first.
  static json WaitLine(ChildProcess& p, const std::string& key,
                       std::chrono::milliseconds timeout = 30000ms) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      json j = Line(p, key);
      if (!j.is_null()) return j;
      if (!p.running()) return Line(p, key);
      std::this_thread::sleep_for(20ms);
    }
    return nullptr;
  }

  // GET /api/v1/orders/{id}: the order, or null with *status the HTTP status (0: no answer).
  json GetOrder(const std::string& id, int* status = nullptr) {
    auto r = net::HttpGet(gateway_->api_url(), "/api/v1/orders/" + id, 3000ms);
    if (status != nullptr) *status = r.ok() ? r.value().status : 0;
    if (!r.ok() || r.value().status != 200) return nullptr;
    return json::parse(r.value().body, nullptr, false);
  }
  std::string Metrics() {
    auto r = net::HttpGet(gateway_->api_url(), "/metrics", 3000ms);
    return r.ok() ? r.value().body : "";
  }
  bool InStuckList(const std::string& id) {
    auto r = net::HttpGet(gateway_->api_url(), "/api/v1/orders?stuck=true&limit=1000", 3000ms);
    if (!r.ok() || r.value().status != 200) return false;
    json j = json::parse(r.value().body, nullptr, false);
    if (!j.is_object() || !j["orders"].is_array()) return false;
    for (const json& o : j["orders"])
      if (o.value("order_id", "") == id) return true;
    return false;
  }

  // Polls the order every 100 ms until `done` holds for it or `timeout` passes.
  Watched Watch(const std::string& id, const std::function<bool(const json&)>& done,
                std::chrono::milliseconds timeout) {
    Watched w;
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      json o = GetOrder(id);
      ++w.polls;
      if (o.is_object()) {
        if (o.value("stuck", false) && !w.ever_stuck) {
          w.ever_stuck = true;
          w.first_stuck = o;
          w.first_stuck_ns = WallNowNs();
        }
        w.last = std::move(o);
        if (done(w.last)) break;
      }
      std::this_thread::sleep_for(100ms);
    }
    return w;
  }

  // Settled for an order whose messages are all processed: every hop closed, and past the
  // latest moment any of them could have been flagged (published + processed_within + grace),
  // plus 1 s.
  static bool Settled(const json& o, size_t hops) {
    if (!o["hops"].is_array() || o["hops"].size() < hops) return false;
    int64_t latest = 0;
    for (const json& h : o["hops"]) {
      if (h.value("open", true)) return false;
      latest = std::max(latest, testing_support::Rfc3339Nanos(h["published"]));
    }
    return WallNowNs() >= latest + Ns(kProcessedWithin + kGrace + 1s);
  }

  static bool HasSpan(const json& o, const std::string& service, const std::string& name) {
    if (!o["spans"].is_array()) return false;
    for (const json& s : o["spans"])
      if (s.value("service", "") == service && s.value("name", "") == name) return true;
    return false;
  }
  static std::string Spans(const json& o) {
    std::string out;
    if (!o.is_object() || !o["spans"].is_array()) return out;
    for (const json& s : o["spans"])
      out += "  " + s.value("service", "") + " '" + s.value("name", "") + "'\n";
    return out;
  }

  // A consumed message: the order was never stuck, its one hop is closed by `consumer`, whose
  // span `consumer_span` is on the order.
  void ExpectConsumed(const std::string& order, const std::string& queue,
                      const std::string& consumer, const std::string& consumer_span) {
    Watched w = Watch(
        order, [](const json& o) { return Settled(o, 1); }, 20s);
    const json& o = w.last;
    ASSERT_TRUE(o.is_object()) << "order " << order << " never appeared in the API";
    EXPECT_FALSE(w.ever_stuck) << "flagged although its message was consumed: "
                               << w.first_stuck.dump(2);
    EXPECT_TRUE(Settled(o, 1)) << o.dump(2);
    EXPECT_FALSE(o.value("stuck", true));
    EXPECT_EQ(o.value("stage", ""), "SUBMITTED");
    EXPECT_EQ(o.value("open_hops", -1), 0);
    ASSERT_TRUE(o["hops"].is_array());
    ASSERT_EQ(o["hops"].size(), 1u) << o["hops"].dump(2);
    const json& h = o["hops"][0];
    EXPECT_FALSE(h.value("open", true));
    EXPECT_EQ(h.value("publisher", ""), "node-shop");
    EXPECT_EQ(h.value("processor", ""), consumer);
    EXPECT_EQ(h.value("routing_key", ""), queue);
    EXPECT_TRUE(HasSpan(o, "node-shop", "publish <default>")) << Spans(o);
    EXPECT_TRUE(HasSpan(o, consumer, consumer_span)) << Spans(o);
    EXPECT_FALSE(InStuckList(order));
  }

  std::string vhost_;
  fs::path dir_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::vector<std::pair<std::string, std::unique_ptr<ChildProcess>>> peers_;
};

// 1. The amqplib producer's message is never consumed: the order (known only from the app span;
//    the publish span is attributed through its parent) is flagged message_unprocessed once
//    processed_within + grace has passed, and no later than 1 s after that.
TEST_F(Attribution, UnconsumedMessageFromAmqplibIsFlagged) {
  REQUIRE_PEERS(Peer::kNode);
  const std::string order = Unique("ATTR1"), queue = Unique("attr1.orders");
  const std::string before = Metrics();
  ChildProcess* producer = StartProducer(order, queue);
  const json published = WaitLine(*producer, "published");
  ASSERT_TRUE(published.is_object()) << producer->Log();
  const int64_t published_ns = published.value("at_ms", int64_t{0}) * 1'000'000;

  Watched w = Watch(
      order, [](const json& o) { return o.value("stuck", false); },
      kProcessedWithin + kGrace + 10s);
  ASSERT_TRUE(w.ever_stuck) << "not flagged: " << w.last.dump(2);
  EXPECT_TRUE(producer->Wait(5s));
  EXPECT_EQ(producer->exit_code(), 0);
  const json& o = w.first_stuck;
  // The bound: processed_within + grace after the publish, + 1 s for the exporter (100 ms batch
  // delay), the detector and this test's 100 ms polls.  The attribution wait does not add: the
  // publish span's parent arrives in the same request.
  const double latency_s = static_cast<double>(w.first_stuck_ns - published_ns) / 1e9;
  std::cerr << "[ measure  ] flagged " << latency_s << " s after the publish (bound "
            << std::chrono::duration<double>(kProcessedWithin + kGrace + 1s).count() << " s)\n";
  EXPECT_LE(w.first_stuck_ns - published_ns, Ns(kProcessedWithin + kGrace + 1s));
  EXPECT_EQ(o.value("stuck_kind", ""), "message_unprocessed") << o.dump(2);
  ASSERT_TRUE(o["hops"].is_array() && o["hops"].size() == 1) << o.dump(2);
  const json& hop = o["hops"][0];
  EXPECT_TRUE(hop.value("open", false));
  EXPECT_EQ(hop.value("publisher", ""), "node-shop");
  EXPECT_EQ(hop.value("routing_key", ""), queue);
  // Not before the deadline: stuck_since is the publish + processed_within + grace.
  const int64_t hop_published = testing_support::Rfc3339Nanos(hop["published"]);
  EXPECT_GE(testing_support::Rfc3339Nanos(o["stuck_since"]) - hop_published,
            Ns(kProcessedWithin + kGrace) - 1'000'000)
      << o.dump(2);
  EXPECT_LE(testing_support::Rfc3339Nanos(o["stuck_since"]) - hop_published,
            Ns(kProcessedWithin + kGrace + 1s));

  const json& d = o["diagnosis"];
  ASSERT_TRUE(d.is_object()) << o.dump(2);
  EXPECT_NE(d.value("summary", "").find(queue), std::string::npos) << d.dump(2);
  ASSERT_TRUE(d["open_hops"].is_array() && d["open_hops"].size() == 1) << d.dump(2);
  EXPECT_EQ(d["open_hops"][0].value("routing_key", ""), queue);
  // The broker's view of the queue, from the management API the gateway polls.
  const json& broker = d["open_hops"][0]["broker"];
  ASSERT_TRUE(broker.is_string()) << d.dump(2);
  EXPECT_NE(broker.get<std::string>().find(queue), std::string::npos) << broker;
  EXPECT_NE(broker.get<std::string>().find("1 ready"), std::string::npos) << broker;
  EXPECT_NE(broker.get<std::string>().find("0 consumers"), std::string::npos) << broker;

  EXPECT_TRUE(HasSpan(o, "node-shop", "checkout")) << Spans(o);
  EXPECT_TRUE(HasSpan(o, "node-shop", "publish <default>")) << Spans(o);
  EXPECT_TRUE(InStuckList(order));
  const std::string after = Metrics();
  EXPECT_GE(
      testing_support::MetricSum(after, "ordertrace_attribution_spans_total", R"(via="parent")") -
          testing_support::MetricSum(before, "ordertrace_attribution_spans_total",
                                     R"(via="parent")"),
      1)
      << after;
}

// 2a. Consumed by pika: never flagged, hop closed by the Python service, on the order.
TEST_F(Attribution, MessageConsumedByPikaIsNotFlagged) {
  REQUIRE_PEERS(Peer::kNode, Peer::kPython);
  const std::string order = Unique("ATTR2P"), queue = Unique("attr2p.orders");
  ChildProcess* consumer = StartPythonConsumer(queue, "py-consumer");
  ASSERT_TRUE(WaitLine(*consumer, "ready").is_object()) << consumer->Log();
  ChildProcess* producer = StartProducer(order, queue);
  ASSERT_TRUE(WaitLine(*producer, "published").is_object()) << producer->Log();
  ASSERT_TRUE(WaitLine(*consumer, "consumed").is_object()) << consumer->Log();
  EXPECT_TRUE(consumer->Wait(10s));
  EXPECT_EQ(consumer->exit_code(), 0);
  ExpectConsumed(order, queue, "py-consumer", queue + " receive");
}

// 2b. Consumed by a plain amqp-client program under the Java agent (stable messaging
//     conventions opted in): never flagged, hop closed by the Java service, on the order.
TEST_F(Attribution, MessageConsumedUnderJavaAgentIsNotFlagged) {
  REQUIRE_PEERS(Peer::kNode, Peer::kJava);
  const std::string order = Unique("ATTR2J"), queue = Unique("attr2j.orders");
  ChildProcess* consumer = StartJava("java-consumer", /*stable=*/true, {"--queue", queue});
  ASSERT_TRUE(WaitLine(*consumer, "ready").is_object()) << consumer->Log();
  ChildProcess* producer = StartProducer(order, queue);
  ASSERT_TRUE(WaitLine(*producer, "published").is_object()) << producer->Log();
  ASSERT_TRUE(WaitLine(*consumer, "consumed").is_object()) << consumer->Log();
  EXPECT_TRUE(consumer->Wait(10s));
  EXPECT_EQ(consumer->exit_code(), 0);
  ExpectConsumed(order, queue, "java-consumer", "process " + queue);
}

// 3. The consumer's spans reach the gateway first: the producer holds its spans until the
//    gateway has the consumer's span waiting for its ancestor (and the order is still unknown);
//    once the producer's arrive, the verdict is the in-order one.
TEST_F(Attribution, ConsumerSpansBeforeProducerSpansGiveTheSameVerdict) {
  REQUIRE_PEERS(Peer::kNode, Peer::kPython);
  const std::string order = Unique("ATTR3"), queue = Unique("attr3.orders");
  const std::string release = (dir_ / "release-producer").string();
  const std::string before = Metrics();
  ChildProcess* producer = StartProducer(order, queue, release);
  ASSERT_TRUE(WaitLine(*producer, "published").is_object()) << producer->Log();
  ChildProcess* consumer = StartPythonConsumer(queue, "py-consumer");
  // Printed after its force-flush: its span has been sent.
  ASSERT_TRUE(WaitLine(*consumer, "consumed").is_object()) << consumer->Log();

  // The consumer's span is in the gateway, waiting for its parent (the held publish span); it
  // waits kAttributionWait at most, so this looks at once.
  const auto until = Clock::now() + 5s;
  std::string m;
  while (Clock::now() < until) {
    m = Metrics();
    if (testing_support::MetricSum(m, "ordertrace_attribution_pending_spans") >= 1) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_GE(testing_support::MetricSum(m, "ordertrace_attribution_pending_spans"), 1) << m;
  EXPECT_GE(testing_support::MetricSum(m, "ordertrace_receiver_accepted_spans_total") -
                testing_support::MetricSum(before, "ordertrace_receiver_accepted_spans_total"),
            1);
  int status = 0;
  EXPECT_TRUE(GetOrder(order, &status).is_null());
  EXPECT_EQ(status, 404) << "the order must be unknown before the producer's spans arrive";
  EXPECT_FALSE(Line(*producer, "exported").is_object()) << "the producer exported too early";

  std::ofstream(release) << "go\n";
  ASSERT_TRUE(WaitLine(*producer, "exported", 10s).is_object()) << producer->Log();
  EXPECT_TRUE(producer->Wait(5s));
  EXPECT_EQ(producer->exit_code(), 0);
  EXPECT_TRUE(consumer->Wait(10s));
  EXPECT_EQ(consumer->exit_code(), 0);
  ExpectConsumed(order, queue, "py-consumer", queue + " receive");
  // Attributed when its ancestor came, within the wait: nothing was given up.
  const std::string after = Metrics();
  EXPECT_EQ(testing_support::MetricSum(after, "ordertrace_attribution_given_up_total") -
                testing_support::MetricSum(before, "ordertrace_attribution_given_up_total"),
            0)
      << after;
  EXPECT_GE(testing_support::MetricSum(after, "ordertrace_attribution_waited_total") -
                testing_support::MetricSum(before, "ordertrace_attribution_waited_total"),
            1)
      << after;
  // Through their parents: the publish span (the app span's child) and the consumer's span (the
  // publish span's child), not only through the consumer's message id.
  EXPECT_GE(
      testing_support::MetricSum(after, "ordertrace_attribution_spans_total", R"(via="parent")") -
          testing_support::MetricSum(before, "ordertrace_attribution_spans_total",
                                     R"(via="parent")"),
      2)
      << after;
}

// 4. The third-party MES (Java agent, default conventions) consumes the order's message and
//    publishes its own (routing key price.calculated), which pika consumes.  The rules map the
//    MES's publish by service and span name only: the order reaches PRICE_CALCULATED though no
//    span of the MES carries an order id or a correlation id.
TEST_F(Attribution, MesPublishMappedBySpanNameMovesTheOrder) {
  REQUIRE_PEERS(Peer::kNode, Peer::kPython, Peer::kJava);
  const std::string order = Unique("ATTR4"), queue = Unique("attr4.orders");
  const std::string prices = queue + ".prices";
  ChildProcess* billing = StartPythonConsumer(prices, "py-billing");
  ChildProcess* mes = StartJava("mes", /*stable=*/false,
                                {"--queue", queue, "--exchange", "mes", "--routing-key",
                                 "price.calculated", "--out-queue", prices});
  ASSERT_TRUE(WaitLine(*billing, "ready").is_object()) << billing->Log();
  ASSERT_TRUE(WaitLine(*mes, "ready").is_object()) << mes->Log();
  ChildProcess* producer = StartProducer(order, queue);
  ASSERT_TRUE(WaitLine(*producer, "published").is_object()) << producer->Log();
  ASSERT_TRUE(WaitLine(*mes, "consumed").is_object()) << mes->Log();
  ASSERT_TRUE(WaitLine(*billing, "consumed").is_object()) << billing->Log();
  EXPECT_TRUE(mes->Wait(10s));
  EXPECT_EQ(mes->exit_code(), 0);

  Watched w = Watch(
      order,
      [](const json& o) { return o.value("stage", "") == "PRICE_CALCULATED" && Settled(o, 2); },
      25s);
  const json& o = w.last;
  ASSERT_TRUE(o.is_object()) << "order " << order << " never appeared in the API";
  EXPECT_EQ(o.value("stage", ""), "PRICE_CALCULATED") << o.dump(2);
  EXPECT_FALSE(w.ever_stuck) << w.first_stuck.dump(2);
  EXPECT_FALSE(o.value("stuck", true));
  bool milestone = false;
  for (const json& m : o["milestones"]) {
    if (m.value("stage", "") == "PRICE_CALCULATED") {
      milestone = true;
      EXPECT_EQ(m.value("service", ""), "mes") << m.dump();
    }
  }
  EXPECT_TRUE(milestone) << o["milestones"].dump(2);
  EXPECT_TRUE(HasSpan(o, "mes", "mes publish")) << Spans(o);
  EXPECT_TRUE(HasSpan(o, "mes", queue + " process")) << Spans(o);
  EXPECT_EQ(o.value("open_hops", -1), 0);
  ASSERT_TRUE(o["hops"].is_array());
  ASSERT_EQ(o["hops"].size(), 2u) << o["hops"].dump(2);
  bool order_hop = false, price_hop = false;
  for (const json& h : o["hops"]) {
    EXPECT_FALSE(h.value("open", true)) << h.dump();
    if (h.value("publisher", "") == "node-shop") {
      order_hop = true;
      EXPECT_EQ(h.value("processor", ""), "mes") << h.dump();
    } else if (h.value("publisher", "") == "mes") {
      price_hop = true;
      EXPECT_EQ(h.value("routing_key", ""), "price.calculated") << h.dump();
      EXPECT_EQ(h.value("exchange", ""), "mes") << h.dump();
      EXPECT_EQ(h.value("processor", ""), "py-billing") << h.dump();
    }
  }
  EXPECT_TRUE(order_hop && price_hop) << o["hops"].dump(2);
  EXPECT_FALSE(InStuckList(order));
}

}  // namespace
}  // namespace ordertrace
