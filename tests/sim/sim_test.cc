// ordertrace-sim on a real RabbitMQ: the partner, CRM and MES roles run in-process (one thread
// each, their own TracerProvider and in-memory exporter) with fast rules (deadlines of 1–2 s),
// and the spans they leave are checked: healthy orders reach CLOSED with milestones in order and
// every hop linked (the process span's parent is the publish span); every fault leaves its
// trace shape, and lifted faults complete; queue faults show on the broker (0 consumers, a
// queue piling up); a broker restart mid-run loses no order.  The binary itself: bad flags exit
// 2, SIGTERM exits 0 with stats in the report.
//
// Each test program starts its own private broker (tests/rabbitmq/broker.h), since one case
// stops and restarts it; each case deletes the sim's queues first.
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "ordertrace/rabbitmq.h"
#include "rabbitmq/broker.h"
#include "sim/options.h"
#include "sim/runtime/loop.h"
#include "support/memory_exporter.h"
#include "support/run_command.h"

namespace ordertrace::sim {
namespace {

using namespace std::chrono_literals;
using testing::Broker;
using testing_support::MemoryExporter;

// The broker is started on first use (the binary's flag tests need none) and stopped at the end.
class BrokerEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    if (dir_.empty()) return;
    testing::StopBroker(&broker_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  static Broker& broker() {
    if (!started_) {
      started_ = true;
      char tmpl[] = "/tmp/ot-sim-test-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) {
        broker_.reason = "mkdtemp failed";
        return broker_;
      }
      dir_ = tmpl;
      broker_ = testing::StartBroker(dir_ + "/broker", /*die_with_parent=*/true);
    }
    return broker_;
  }
  static const std::string& dir() { return dir_; }

 private:
  static inline bool started_ = false;
  static inline Broker broker_;
  static inline std::string dir_;
};

::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new BrokerEnvironment());

// ---------------------------------------------------------------------------------------------
// Span helpers

std::optional<std::string> Str(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes)
    if (a.key == key && std::holds_alternative<std::string>(a.value))
      return std::get<std::string>(a.value);
  return std::nullopt;
}
bool Flag(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes)
    if (a.key == key && std::holds_alternative<bool>(a.value)) return std::get<bool>(a.value);
  return false;
}
double Secs(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

struct Tagged {
  std::string service;
  SpanData span;
};

// Every span of the run, by order.
struct Trace {
  std::vector<Tagged> all;
  std::map<std::string, std::vector<const Tagged*>> by_order;

  void Index() {
    by_order.clear();
    for (const Tagged& t : all)
      if (auto id = Str(t.span, "order.id")) by_order[*id].push_back(&t);
  }
  std::vector<const Tagged*> Of(const std::string& order) const {
    auto it = by_order.find(order);
    return it == by_order.end() ? std::vector<const Tagged*>{} : it->second;
  }
  // The first span of `order` named `name` (and from `service` when not empty).
  const SpanData* Find(const std::string& order, std::string_view name,
                       std::string_view service = {}) const {
    for (const Tagged* t : Of(order))
      if (t->span.name == name && (service.empty() || t->service == service)) return &t->span;
    return nullptr;
  }
  size_t Count(const std::string& order, std::string_view name) const {
    size_t n = 0;
    for (const Tagged* t : Of(order)) n += t->span.name == name;
    return n;
  }
  const SpanData* Stage(const std::string& order, std::string_view stage) const {
    for (const Tagged* t : Of(order))
      if (Str(t->span, "order.stage") == std::string(stage)) return &t->span;
    return nullptr;
  }
  const Tagged* BySpanId(const SpanId& id) const {
    for (const Tagged& t : all)
      if (t.span.span_id == id) return &t;
    return nullptr;
  }
};

const char* kStages[] = {
    "SUBMITTED", "PRICE_CALCULATED", "APPROVED", "MANUFACTURING_STARTED", "SHIPPED", "CLOSED"};

// Deadlines of 1–2 s: a healthy order takes about 2 s at pace 0.3.
constexpr char kFastRules[] = R"(
stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED]
expect:
  SUBMITTED: {next: PRICE_CALCULATED, within: 2s, next_by: mes, heartbeat: 1s, received_by: mes,
              within_receipt: 1s}
  PRICE_CALCULATED: {processed_by: crm, within_processing: 1s, next: APPROVED, within: 1s,
                     next_by: crm}
  APPROVED: {next: MANUFACTURING_STARTED, within: 1s, next_by: mes}
  MANUFACTURING_STARTED: {next: SHIPPED, within: 2s, next_by: mes, heartbeat: 1s}
  SHIPPED: {next: CLOSED, within: 1s, next_by: crm}
messages: {processed_within: 1s}
grace: 1s
)";

// ---------------------------------------------------------------------------------------------
// The pipeline in-process

class Pipeline {
 public:
  explicit Pipeline(Options o) : o_(std::move(o)) {
    const Role roles[] = {Role::kCrm, Role::kMes, Role::kPartner};
    for (Role r : roles) {
      auto exporter = std::make_unique<MemoryExporter>();
      exporters_.push_back(exporter.get());
      providers_.push_back(
          std::make_unique<TracerProvider>(SimTracerOptions(o_, RoleName(r)), std::move(exporter)));
      runners_.push_back(std::make_unique<RoleRunner>(r, o_, *providers_.back(), nullptr));
      stops_.push_back(std::make_unique<std::atomic<bool>>(false));
    }
    stats_.resize(3);
    for (size_t i = 0; i < 3; ++i)
      threads_.emplace_back([this, i] { stats_[i] = runners_[i]->Run(*stops_[i]); });
  }
  ~Pipeline() { Stop(); }

  // Spans exported so far (the processors export every 200 ms).
  Trace Spans() const {
    Trace t;
    const char* names[] = {"crm", "mes", "partner"};
    for (size_t i = 0; i < 3; ++i)
      for (SpanData& s : exporters_[i]->spans()) t.all.push_back({names[i], std::move(s)});
    t.Index();
    return t;
  }
  // Orders with a CLOSED milestone so far.
  std::set<std::string> Closed() const {
    std::set<std::string> closed;
    for (SpanData& s : exporters_[0]->spans()) {
      if (Str(s, "order.stage") != std::string("CLOSED")) continue;
      // Without order.id (--order-id-spans entry) a close counts under its span id.
      const auto order = Str(s, "order.id");
      closed.insert(order ? *order : "span:" + std::string(s.span_id.begin(), s.span_id.end()));
    }
    return closed;
  }
  bool WaitClosed(size_t n, std::chrono::seconds timeout) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (Closed().size() >= n) return true;
      std::this_thread::sleep_for(100ms);
    }
    return Closed().size() >= n;
  }
  // Stops every role (they flush their providers) and returns the spans.
  Trace Stop() {
    for (auto& s : stops_) s->store(true);
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    return Spans();
  }
  const Stats& stats(size_t i) const { return stats_[i]; }  // 0 crm, 1 mes, 2 partner

 private:
  Options o_;
  std::vector<MemoryExporter*> exporters_;
  std::vector<std::unique_ptr<TracerProvider>> providers_;
  std::vector<std::unique_ptr<RoleRunner>> runners_;
  std::vector<std::unique_ptr<std::atomic<bool>>> stops_;
  std::vector<Stats> stats_;
  std::vector<std::thread> threads_;
};

// A minimal OTLP/HTTP endpoint for the sim processes: answers every POST with 200 and an empty
// ExportTraceServiceResponse, and counts the requests (what is in them is the gateway's tests'
// business).
class OtlpSink {
 public:
  OtlpSink() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        conns_.emplace_back([this, c] { Serve(c); });
      }
    });
  }
  ~OtlpSink() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (accept_.joinable()) accept_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) t.join();
  }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void Serve(int c) {
    std::string buf;
    char chunk[65536];
    while (true) {
      size_t end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buf.substr(0, end);
        std::transform(head.begin(), head.end(), head.begin(), ::tolower);
        size_t cl = head.find("content-length:");
        const size_t body = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 15));
        if (buf.size() >= end + 4 + body) {
          buf.erase(0, end + 4 + body);
          ++requests_;
          static const char kOk[] =
              "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
              "Content-Length: 0\r\n\r\n";
          if (send(c, kOk, sizeof kOk - 1, MSG_NOSIGNAL) < 0) break;
          continue;
        }
      }
      ssize_t n = recv(c, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
    }
    close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

std::string AmqpUrlOf(const Broker& b) {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(b.port) + "/";
}

// Deletes the sim's queues (a previous case may have left messages).
void ResetTopology(const Broker& b) {
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  ASSERT_EQ(amqp_socket_open(sock, "127.0.0.1", b.port), AMQP_STATUS_OK);
  ASSERT_EQ(
      amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type,
      AMQP_RESPONSE_NORMAL);
  amqp_channel_open(conn, 1);
  for (const QueueDef& q : kQueues) {
    amqp_queue_delete(conn, 1, amqp_cstring_bytes(q.queue), 0, 0);
    ASSERT_EQ(amqp_get_rpc_reply(conn).reply_type, AMQP_RESPONSE_NORMAL) << q.queue;
  }
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

// A queue's state from the management API: {consumers, messages_ready}.
std::optional<nlohmann::json> QueueState(const Broker& b, const std::string& queue) {
  auto r = testing_support::RunCommand(
      "curl -sf -u guest:guest http://127.0.0.1:" + std::to_string(b.management_port) +
      "/api/queues/%2F/" + queue);
  if (r.exit_code != 0) return std::nullopt;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

class Sim : public ::testing::Test {
 protected:
  void SetUp() override {
    const Broker& b = BrokerEnvironment::broker();
    if (!b.available) {
      const char* req = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
      if (req != nullptr && std::strcmp(req, "1") == 0)
        FAIL() << "RabbitMQ is required (ORDERTRACE_REQUIRE_INTEROP=1) but not available: "
               << b.reason;
      GTEST_SKIP() << "RabbitMQ not available: " << b.reason;
    }
    ResetTopology(b);
  }

  Options FastOptions(uint64_t orders, double rate, std::vector<std::string> faults = {}) {
    std::vector<std::string> args = {"all",
                                     "--amqp",
                                     AmqpUrlOf(BrokerEnvironment::broker()),
                                     "--rate",
                                     std::to_string(rate),
                                     "--orders",
                                     std::to_string(orders),
                                     "--seed",
                                     "7",
                                     "--drain",
                                     "500ms",
                                     "--quiet"};
    for (const std::string& f : faults) {
      args.push_back("--fault");
      args.push_back(f);
    }
    auto o = ParseArgs(args);
    EXPECT_TRUE(o.ok()) << o.status().message();
    Options opts = *o;
    auto rules = journey::ParseRules(kFastRules, "fast.yaml");
    EXPECT_TRUE(rules.ok()) << rules.status().message();
    opts.rules = *rules;
    auto pacing = DerivePacing(opts.rules, opts.pace, opts.time_scale);
    EXPECT_TRUE(pacing.ok()) << pacing.status().message();
    opts.pacing = pacing.value();
    return opts;
  }
  static std::string Id(uint64_t n) { return OrderId("ORD-", 7, n); }

  // A healthy order: all six milestones in order, every hop's process span a child of its
  // publish span (same trace), the MES's calculation with heartbeats.
  static void ExpectHealthy(const Trace& t, const std::string& order) {
    SCOPED_TRACE(order);
    uint64_t last = 0;
    for (const char* stage : kStages) {
      const SpanData* m = t.Stage(order, stage);
      ASSERT_NE(m, nullptr) << "no " << stage;
      EXPECT_GE(m->end_time_unix_nano, last) << stage << " before the previous milestone";
      last = m->end_time_unix_nano;
    }
    int hops = 0;
    for (const Tagged* x : t.Of(order)) {
      if (Str(x->span, "messaging.operation.type") != std::string("process")) continue;
      ++hops;
      const Tagged* parent = t.BySpanId(x->span.parent_span_id);
      ASSERT_NE(parent, nullptr) << x->span.name << ": no parent span";
      EXPECT_EQ(Str(parent->span, "messaging.operation.type"), std::string("send"))
          << x->span.name << "'s parent is " << parent->span.name;
      EXPECT_EQ(parent->span.trace_id, x->span.trace_id);
      EXPECT_NE(parent->service, x->service);
      EXPECT_EQ(Str(parent->span, "messaging.message.id"), Str(x->span, "messaging.message.id"));
      ASSERT_EQ(x->span.links.size(), 1u);
      EXPECT_EQ(x->span.links[0].context.span_id, parent->span.span_id);
    }
    EXPECT_EQ(hops, 5);
    EXPECT_GE(t.Count(order, "calculate price heartbeat"), 1u);
    EXPECT_GE(t.Count(order, "manufacturing heartbeat"), 1u);
  }
};

// ---------------------------------------------------------------------------------------------

TEST_F(Sim, HealthyOrdersCloseWithMilestonesInOrderAndLinkedHops) {
  const uint64_t n = 30;
  Pipeline p(FastOptions(n, 20));
  ASSERT_TRUE(p.WaitClosed(n, 60s)) << p.Closed().size() << " of " << n << " closed";
  Trace t = p.Stop();
  for (uint64_t i = 1; i <= n; ++i) ExpectHealthy(t, Id(i));
  // Every span of every step carries the order; healthy steps are OK.
  for (const Tagged& x : t.all) {
    EXPECT_TRUE(Str(x.span, "order.id")) << x.span.name;
    if (!Flag(x.span, "ordertrace.heartbeat")) {
      EXPECT_EQ(Str(x.span, "order.step.status"), std::string("OK")) << x.span.name;
    }
  }
  const SpanData* calc = t.Find(Id(1), "calculate price", "mes");
  ASSERT_NE(calc, nullptr);
  EXPECT_EQ(Str(*calc, "order.stage"), std::string("PRICE_CALCULATED"));
  // 0.3 x 2 s ± 20%.
  EXPECT_GE(Secs(calc->end_time_unix_nano - calc->start_time_unix_nano), 0.45);
  EXPECT_LE(Secs(calc->end_time_unix_nano - calc->start_time_unix_nano), 0.9);
  EXPECT_EQ(p.stats(0).orders_closed, n);
  EXPECT_EQ(p.stats(2).orders_started, n);
  EXPECT_EQ(p.stats(2).published, n);
  EXPECT_EQ(p.stats(0).published, 2 * n);
  EXPECT_EQ(p.stats(1).published, 2 * n);
  EXPECT_EQ(p.stats(0).messages_processed, 3 * n);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.stats(i).spans_dropped, 0u);
    EXPECT_EQ(p.stats(i).spans_exported, p.stats(i).spans_ended);
    EXPECT_EQ(p.stats(i).publish_failures, 0u);
  }
}

// --order-id-spans entry: only the partner's submit span and the heartbeats carry order.id, as
// when third-party instrumentation traces the services; the orders still run to the end (the
// roles read the order from the message header).
TEST_F(Sim, EntryModeCarriesTheOrderOnTheSubmitSpanAndTheHeartbeatsOnly) {
  const uint64_t n = 10;
  Options o = FastOptions(n, 20);
  o.order_id_on_every_span = false;
  Pipeline p(o);
  ASSERT_TRUE(p.WaitClosed(n, 60s)) << p.Closed().size() << " of " << n << " closed";
  Trace t = p.Stop();
  size_t submits = 0, heartbeats = 0, publishes = 0, processes = 0;
  for (const Tagged& x : t.all) {
    const bool carries = Str(x.span, "order.id").has_value();
    const auto op = Str(x.span, "messaging.operation.type");
    if (x.span.name == "submit order") {
      EXPECT_TRUE(carries);
      ++submits;
    } else if (Flag(x.span, "ordertrace.heartbeat")) {
      EXPECT_TRUE(carries) << x.span.name;
      ++heartbeats;
    } else {
      EXPECT_FALSE(carries) << x.span.name << " of " << x.service;
      if (op == std::string("send")) ++publishes;
      if (op == std::string("process")) ++processes;
    }
  }
  EXPECT_EQ(submits, n);
  EXPECT_GE(heartbeats, 2 * n);
  EXPECT_EQ(publishes, 5 * n);
  EXPECT_EQ(processes, 5 * n);
  EXPECT_EQ(p.stats(0).orders_closed, n);
}

TEST_F(Sim, EveryFaultLeavesItsShapeAndLiftedFaultsComplete) {
  // Orders 1..13 faulted (odd-one-out: never lifted, the next one lifted after 2 s); 14..20
  // healthy.
  const uint64_t n = 20;
  const auto spec = [&](const char* fault, uint64_t order, bool lifted) {
    return std::string(fault) + ":orders=" + Id(order) + (lifted ? ":for=2s" : "");
  };
  Pipeline p(FastOptions(
      n, 20,
      {spec("lost-to-mes", 1, false), spec("lost-to-mes", 2, true), spec("calc-silent", 3, false),
       spec("calc-silent", 4, true), spec("calc-slow", 5, false),
       spec("crm-ignores-price", 6, false), spec("crm-ignores-price", 7, true),
       spec("crm-stalls-approved", 8, false), spec("crm-stalls-approved", 9, true),
       spec("mes-silent", 10, false), spec("mes-silent", 11, true), spec("crm-no-close", 12, false),
       spec("crm-no-close", 13, true)}));
  // 20 orders minus the 6 never lifted.
  ASSERT_TRUE(p.WaitClosed(14, 60s)) << p.Closed().size() << " of 14 closed";
  std::this_thread::sleep_for(1s);  // anything that should not happen has had its chance
  Trace t = p.Stop();
  const auto stages_reached = [&](const std::string& order) {
    int last = -1;
    for (int i = 0; i < 6; ++i)
      if (t.Stage(order, kStages[i]) != nullptr) last = i;
    return last;
  };
  const auto routing_keys = [&](const std::string& order) {
    std::vector<std::string> keys;
    for (const Tagged* x : t.Of(order))
      if (x->service == "crm" && Str(x->span, "messaging.operation.type") == std::string("send"))
        keys.push_back(*Str(x->span, "messaging.rabbitmq.destination.routing_key"));
    return keys;
  };
  const auto process_on = [&](const std::string& order, const std::string& queue) {
    for (const Tagged* x : t.Of(order))
      if (Str(x->span, "messaging.destination.subscription.name") == queue) return &x->span;
    return static_cast<const SpanData*>(nullptr);
  };

  // lost-to-mes: a confirmed publish to price.calculate.unrouted, and no MES span at all.
  EXPECT_EQ(routing_keys(Id(1)), std::vector<std::string>{"price.calculate.unrouted"});
  EXPECT_EQ(Str(*t.Find(Id(1), "publish orders:price.calculate.unrouted"), "order.step.status"),
            std::string("OK"));
  for (const Tagged* x : t.Of(Id(1))) EXPECT_NE(x->service, "mes") << x->span.name;
  EXPECT_EQ(stages_reached(Id(1)), 0);
  // Lifted: re-published correctly 2 s later, and the order completes.
  EXPECT_EQ(routing_keys(Id(2)).at(0), "price.calculate.unrouted");
  EXPECT_EQ(routing_keys(Id(2)).at(1), "price.calculate");
  EXPECT_GE(Secs(t.Find(Id(2), "publish orders:price.calculate")->start_time_unix_nano -
                 t.Find(Id(2), "publish orders:price.calculate.unrouted")->end_time_unix_nano),
            1.9);
  ExpectHealthy(t, Id(2));

  // calc-silent: received (process span), then nothing: no heartbeat, no end of the calculation.
  EXPECT_NE(process_on(Id(3), "mes.calculate"), nullptr);
  EXPECT_EQ(t.Count(Id(3), "calculate price heartbeat"), 0u);
  EXPECT_EQ(t.Find(Id(3), "calculate price"), nullptr);
  EXPECT_EQ(stages_reached(Id(3)), 0);
  // Lifted: heartbeats only from the lift on, then PRICE_CALCULATED, and CLOSED.
  {
    const SpanData* receipt = process_on(Id(4), "mes.calculate");
    ASSERT_NE(receipt, nullptr);
    const SpanData* hb = t.Find(Id(4), "calculate price heartbeat");
    ASSERT_NE(hb, nullptr);
    EXPECT_GE(Secs(hb->start_time_unix_nano - receipt->start_time_unix_nano), 2.0);
    EXPECT_GE(Secs(t.Stage(Id(4), "PRICE_CALCULATED")->end_time_unix_nano -
                   receipt->start_time_unix_nano),
              2.0);
    ExpectHealthy(t, Id(4));
  }

  // calc-slow: heartbeats on time (every 0.3 s), but the calculation takes 2 x 2 s.
  {
    const SpanData* calc = t.Find(Id(5), "calculate price");
    ASSERT_NE(calc, nullptr);
    EXPECT_GE(Secs(calc->end_time_unix_nano - calc->start_time_unix_nano), 3.9);
    std::vector<uint64_t> beats;
    for (const Tagged* x : t.Of(Id(5)))
      if (x->span.name == "calculate price heartbeat")
        beats.push_back(x->span.start_time_unix_nano);
    std::sort(beats.begin(), beats.end());
    EXPECT_GE(beats.size(), 10u);
    ASSERT_FALSE(beats.empty());
    // Every 0.3 s, well within the rules' 1 s heartbeat; 0.9 s leaves a loaded machine room
    // (a 0.55 s gap seen with two builds beside the test) and still fails a missed beat.
    EXPECT_LE(Secs(beats.front() - calc->start_time_unix_nano), 0.9);
    for (size_t i = 1; i < beats.size(); ++i) EXPECT_LE(Secs(beats[i] - beats[i - 1]), 0.9);
    ExpectHealthy(t, Id(5));
  }

  // crm-ignores-price: the MES published the price, the CRM never processed it.
  EXPECT_NE(t.Find(Id(6), "publish orders:price.calculated", "mes"), nullptr);
  EXPECT_EQ(process_on(Id(6), "crm.prices"), nullptr);
  EXPECT_EQ(stages_reached(Id(6)), 1);
  {  // Lifted: processed 2 s after the delivery, then completes.  The delivery comes after the
     // publish started, not necessarily after it ended: the publish span ends at the broker's
     // confirm, which a loaded machine may send after the delivery (1.85 s from the end seen).
    const SpanData* pub = t.Find(Id(7), "publish orders:price.calculated", "mes");
    const SpanData* proc = process_on(Id(7), "crm.prices");
    ASSERT_NE(pub, nullptr);
    ASSERT_NE(proc, nullptr);
    EXPECT_GE(Secs(proc->start_time_unix_nano - pub->start_time_unix_nano), 1.9);
    ExpectHealthy(t, Id(7));
  }

  // crm-stalls-approved: APPROVED, but manufacturing.start never published.
  EXPECT_EQ(stages_reached(Id(8)), 2);
  EXPECT_EQ(t.Find(Id(8), "publish orders:manufacturing.start"), nullptr);
  {
    const SpanData* approved = t.Stage(Id(9), "APPROVED");
    const SpanData* pub = t.Find(Id(9), "publish orders:manufacturing.start");
    ASSERT_NE(approved, nullptr);
    ASSERT_NE(pub, nullptr);
    EXPECT_GE(Secs(pub->start_time_unix_nano - approved->end_time_unix_nano), 1.9);
    ExpectHealthy(t, Id(9));
  }

  // mes-silent: MANUFACTURING_STARTED, then nothing.
  EXPECT_EQ(stages_reached(Id(10)), 3);
  EXPECT_EQ(t.Count(Id(10), "manufacturing heartbeat"), 0u);
  EXPECT_EQ(t.Find(Id(10), "publish orders:order.shipped"), nullptr);
  {
    const SpanData* started = t.Stage(Id(11), "MANUFACTURING_STARTED");
    const SpanData* hb = t.Find(Id(11), "manufacturing heartbeat");
    ASSERT_NE(started, nullptr);
    ASSERT_NE(hb, nullptr);
    EXPECT_GE(Secs(hb->start_time_unix_nano - started->end_time_unix_nano), 1.9);
    ExpectHealthy(t, Id(11));
  }

  // crm-no-close: the shipment processed, never CLOSED.
  EXPECT_NE(process_on(Id(12), "crm.shipments"), nullptr);
  EXPECT_EQ(stages_reached(Id(12)), 4);
  {
    const SpanData* proc = process_on(Id(13), "crm.shipments");
    ASSERT_NE(proc, nullptr);
    EXPECT_GE(Secs(t.Stage(Id(13), "CLOSED")->end_time_unix_nano - proc->end_time_unix_nano), 1.9);
    ExpectHealthy(t, Id(13));
  }

  for (uint64_t i = 14; i <= n; ++i) ExpectHealthy(t, Id(i));
}

TEST_F(Sim, RateFaultsChooseTheSameOrdersAsTheReport) {
  // rate= faults: the orders chosen are the ones FaultSpec::Selects names (what the partner's
  // report lists), in every role.
  const uint64_t n = 40;
  Options o = FastOptions(n, 40, {"mes-silent:rate=0.25"});
  std::set<std::string> expected;
  for (uint64_t i = 1; i <= n; ++i)
    if (o.faults[0].Selects(o.seed, Id(i))) expected.insert(Id(i));
  ASSERT_GT(expected.size(), 3u);
  ASSERT_LT(expected.size(), 20u);
  Pipeline p(o);
  ASSERT_TRUE(p.WaitClosed(n - expected.size(), 60s));
  std::this_thread::sleep_for(1s);
  Trace t = p.Stop();
  for (uint64_t i = 1; i <= n; ++i) {
    const bool silent = expected.count(Id(i)) > 0;
    EXPECT_EQ(t.Stage(Id(i), "SHIPPED") == nullptr, silent) << Id(i);
    EXPECT_NE(t.Stage(Id(i), "MANUFACTURING_STARTED"), nullptr) << Id(i);
  }
}

TEST_F(Sim, QueueFaultsShowOnTheBroker) {
  const Broker& b = BrokerEnvironment::broker();
  // The CRM cancels its crm.prices consumer from 1 s to 9 s (the management API refreshes its
  // queue figures every 5 s); crm.orders is handled at 4/s.
  const uint64_t n = 24;
  Pipeline p(FastOptions(n, 12,
                         {"consumer-gone:queue=crm.prices:after=1s:for=8s",
                          "slow-consumer:queue=crm.orders:per_second=4"}));
  const auto start = std::chrono::steady_clock::now();
  std::optional<nlohmann::json> prices, orders;
  bool piled_up = false;
  while (!piled_up && std::chrono::steady_clock::now() < start + 8500ms) {
    std::this_thread::sleep_for(250ms);
    prices = QueueState(b, "crm.prices");
    ASSERT_TRUE(prices) << "management API on port " << b.management_port;
    piled_up = (*prices)["consumers"].is_number() && (*prices)["consumers"] == 0 &&
               (*prices)["messages_ready"].is_number() && (*prices)["messages_ready"] > 0;
  }
  EXPECT_TRUE(piled_up) << "crm.prices: " << prices->dump();
  orders = QueueState(b, "crm.orders");
  ASSERT_TRUE(orders);
  EXPECT_EQ((*orders)["consumers"], 1) << orders->dump();
  ASSERT_TRUE(p.WaitClosed(n, 60s)) << p.Closed().size() << " of " << n << " closed";
  Trace t = p.Stop();
  std::vector<uint64_t> prices_processed, orders_processed;
  for (const Tagged& x : t.all) {
    auto q = Str(x.span, "messaging.destination.subscription.name");
    if (q == std::string("crm.prices")) prices_processed.push_back(x.span.start_time_unix_nano);
    if (q == std::string("crm.orders")) orders_processed.push_back(x.span.start_time_unix_nano);
  }
  std::sort(prices_processed.begin(), prices_processed.end());
  std::sort(orders_processed.begin(), orders_processed.end());
  // A gap of about 8 s in crm.prices processing, then the backlog at once.
  uint64_t gap = 0;
  for (size_t i = 1; i < prices_processed.size(); ++i)
    gap = std::max(gap, prices_processed[i] - prices_processed[i - 1]);
  EXPECT_GE(Secs(gap), 6.0);
  // crm.orders at most 4 per second: 24 orders take 5.75 s or more.
  ASSERT_EQ(orders_processed.size(), n);
  EXPECT_GE(Secs(orders_processed.back() - orders_processed.front()), 5.5);
  for (uint64_t i = 1; i <= n; ++i) ExpectHealthy(t, Id(i));
}

TEST_F(Sim, BrokerRestartLosesNoOrder) {
  Broker& b = BrokerEnvironment::broker();
  const uint64_t n = 60;
  Pipeline p(FastOptions(n, 10));
  std::this_thread::sleep_for(2500ms);
  ASSERT_TRUE(testing::StopServer(&b));
  std::this_thread::sleep_for(2s);  // the partner keeps starting orders meanwhile
  ASSERT_TRUE(testing::StartServer(&b, /*die_with_parent=*/true)) << b.reason;
  ASSERT_TRUE(p.WaitClosed(n, 120s)) << p.Closed().size() << " of " << n << " closed";
  Trace t = p.Stop();
  EXPECT_EQ(p.Closed().size(), n);
  for (size_t i = 0; i < 3; ++i) EXPECT_GE(p.stats(i).reconnects, 1u) << p.stats(i).role;
  // The partner's publishes during the outage failed, and their retries are marked.
  EXPECT_GE(p.stats(2).publish_failures, 1u);
  EXPECT_GE(p.stats(2).publish_retries, 1u);
  size_t failed = 0, retries = 0;
  for (const Tagged& x : t.all) {
    if (Str(x.span, "messaging.operation.type") == std::string("send") &&
        Str(x.span, "order.step.status") == std::string("FAIL"))
      ++failed;
    if (x.span.name.rfind("publish retry ", 0) == 0) {
      EXPECT_EQ(Str(x.span, "order.step.status"), std::string("RETRY"));
      ++retries;
    }
  }
  EXPECT_GE(failed, 1u);
  EXPECT_GE(retries, 1u);
  size_t repeated = 0;  // milestones reached twice (a publish retried after a lost confirm)
  for (uint64_t i = 1; i <= n; ++i) {
    SCOPED_TRACE(Id(i));
    for (const char* stage : kStages) {
      EXPECT_NE(t.Stage(Id(i), stage), nullptr) << stage;
      size_t count = 0;
      for (const Tagged* x : t.Of(Id(i)))
        count += Str(x->span, "order.stage") == std::string(stage);
      repeated += count > 1;
    }
  }
  std::printf("restart: %zu FAIL publishes, %zu retries, %zu milestones repeated; stats:\n", failed,
              retries, repeated);
  for (size_t i = 0; i < 3; ++i) std::printf("  %s\n", StatsJson(p.stats(i)).c_str());
}

TEST_F(Sim, Load200OrdersPerSecond) {
  // 200 orders/s for 10 s: ~1,000 messages/s through the broker, hundreds of orders in the
  // calculation at once.  Every order closes, no span is dropped, and no hop stalls.
  const uint64_t n = 2000;
  const auto start = std::chrono::steady_clock::now();
  Pipeline p(FastOptions(n, 200));
  ASSERT_TRUE(p.WaitClosed(n, 120s)) << p.Closed().size() << " of " << n << " closed";
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Trace t = p.Stop();
  std::map<SpanId, const SpanData*> by_id;
  for (const Tagged& x : t.all) by_id[x.span.span_id] = &x.span;
  std::vector<double> hops;
  for (const Tagged& x : t.all) {
    if (Str(x.span, "messaging.operation.type") != std::string("process")) continue;
    auto it = by_id.find(x.span.parent_span_id);
    ASSERT_NE(it, by_id.end());
    hops.push_back(Secs(x.span.start_time_unix_nano - it->second->start_time_unix_nano));
  }
  ASSERT_EQ(hops.size(), 5 * n);
  std::sort(hops.begin(), hops.end());
  const auto pct = [&](double q) { return hops[static_cast<size_t>(q * (hops.size() - 1))]; };
  std::printf(
      "load: %llu orders at 200/s closed in %.1f s; hop (publish start -> process start) "
      "p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
      static_cast<unsigned long long>(n), secs, pct(0.5) * 1e3, pct(0.99) * 1e3, hops.back() * 1e3);
  for (size_t i = 0; i < 3; ++i) {
    std::printf("load: %s\n", StatsJson(p.stats(i)).c_str());
    EXPECT_EQ(p.stats(i).spans_dropped, 0u) << p.stats(i).role;
  }
  // A stall, not a speed figure: a message left waiting for a redelivery or a consumer that
  // stopped reading shows as seconds to minutes.  The latency itself is bench/sim-load's figure
  // (docs/benchmarks.md): on CI's busy 2 cores the p99 has read 1.7 s with nothing wrong.
  EXPECT_LT(pct(0.99), 5.0);
}

// ---------------------------------------------------------------------------------------------
// The binary

TEST(SimBinary, BadFlagsExitTwoWithTheReason) {
  auto r = testing_support::RunCommand(std::string(ORDERTRACE_SIM_BIN) +
                                       " crm --fault mes-silent:rate=2 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "ordertrace-sim: --fault 'mes-silent:rate=2': rate: expected a number from 0 to 1, "
            "got '2'\n");
  r = testing_support::RunCommand(std::string(ORDERTRACE_SIM_BIN) + " 2>&1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no role given"), std::string::npos) << r.out;
  r = testing_support::RunCommand(std::string(ORDERTRACE_SIM_BIN) + " --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: ordertrace-sim"), std::string::npos) << r.out;
}

TEST_F(Sim, ProcessesRunTheOrdersAndStopOnSigterm) {
  // The three roles as processes; the partner exits when its orders are confirmed; SIGTERM
  // stops crm and mes with exit 0, and each writes its stats to its report, after flushing its
  // spans to the OTLP endpoint (a minimal one here: the gateway has its own tests).
  OtlpSink sink;
  ASSERT_GT(sink.port(), 0);
  const std::string dir = BrokerEnvironment::dir();
  std::string rules = dir + "/fast.yaml";
  std::ofstream(rules) << kFastRules;
  const std::string common = " --amqp " + AmqpUrlOf(BrokerEnvironment::broker()) +
                             " --otlp http://127.0.0.1:" + std::to_string(sink.port()) +
                             "/v1/traces --rules " + rules + " --seed 7 --quiet";
  const auto spawn = [&](const std::string& role, const std::string& extra) {
    pid_t pid = fork();
    if (pid == 0) {
      const std::string cmd = std::string("exec ") + ORDERTRACE_SIM_BIN + " " + role + common +
                              " --report " + dir + "/" + role + ".jsonl" + extra +
                              " >/dev/null 2>&1";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    return pid;
  };
  const pid_t crm = spawn("crm", ""), mes = spawn("mes", "");
  const pid_t partner = spawn("partner", " --orders 10 --rate 20");
  int status = 0;
  ASSERT_EQ(waitpid(partner, &status, 0), partner);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The CRM acks a shipment only after closing its order: 10 acks on crm.shipments (a cumulative
  // figure of the management API, which may lag but never runs ahead) mean 10 orders closed.
  const auto until = std::chrono::steady_clock::now() + 60s;
  int acked = 0;
  while (acked < 10 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(500ms);
    auto q = QueueState(BrokerEnvironment::broker(), "crm.shipments");
    if (q && (*q)["message_stats"].is_object() && (*q)["message_stats"]["ack"].is_number())
      acked = (*q)["message_stats"]["ack"].get<int>();
  }
  EXPECT_EQ(acked, 10);
  kill(crm, SIGTERM);
  kill(mes, SIGTERM);
  for (pid_t pid : {crm, mes}) {
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  const auto last_json = [&](const std::string& role) {
    std::ifstream in(dir + "/" + role + ".jsonl");
    std::string line, last;
    int lines = 0;
    while (std::getline(in, line)) {
      last = line;
      ++lines;
    }
    return std::make_pair(lines, nlohmann::json::parse(last, nullptr, false));
  };
  auto [partner_lines, ps] = last_json("partner");
  EXPECT_EQ(partner_lines, 11);  // one per order, then the stats
  EXPECT_EQ(ps["role"], "partner");
  EXPECT_EQ(ps["orders_started"], 10);
  auto [crm_lines, cs] = last_json("crm");
  EXPECT_EQ(cs["role"], "crm");
  EXPECT_EQ(cs["orders_closed"], 10);
  EXPECT_EQ(cs["messages_processed"], 30);
  auto [mes_lines, ms] = last_json("mes");
  EXPECT_EQ(ms["published"], 20);
  for (const auto* stats : {&ps, &cs, &ms}) {
    EXPECT_GT((*stats)["spans_ended"].get<int>(), 0) << stats->dump();
    EXPECT_EQ((*stats)["spans_exported"], (*stats)["spans_ended"]) << stats->dump();
    EXPECT_EQ((*stats)["spans_dropped"], 0) << stats->dump();
  }
  EXPECT_GE(sink.requests(), 3);
}

}  // namespace
}  // namespace ordertrace::sim
