// ordertrace-sim's pure parts: fault specs (good ones and every error), rate selection,
// pacing from rules (default, a file in real-world time with a time scale), order ids, flags.
#include "sim/options.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace ordertrace::sim {
namespace {

using namespace std::chrono_literals;

FaultSpec MustParse(std::string_view text) {
  auto f = ParseFault(text);
  EXPECT_TRUE(f.ok()) << text << ": " << f.status().message();
  return f.ok() ? *f : FaultSpec{};
}

std::string ErrorOf(std::string_view text) {
  auto f = ParseFault(text);
  EXPECT_FALSE(f.ok()) << text << " parsed";
  return f.ok() ? std::string() : f.status().message();
}

TEST(SimFaultSpec, ParsesEveryFault) {
  FaultSpec f = MustParse("lost-to-mes:rate=0.25");
  EXPECT_EQ(f.kind, FaultKind::kLostToMes);
  ASSERT_TRUE(f.rate);
  EXPECT_DOUBLE_EQ(*f.rate, 0.25);
  EXPECT_FALSE(f.lift_after);

  f = MustParse("calc-silent:orders=ORD-1|ORD-2:for=30s");
  EXPECT_EQ(f.kind, FaultKind::kCalcSilent);
  EXPECT_EQ(f.orders, (std::vector<std::string>{"ORD-1", "ORD-2"}));
  ASSERT_TRUE(f.lift_after);
  EXPECT_EQ(*f.lift_after, Micros(30s));

  EXPECT_EQ(MustParse("calc-slow:rate=1").kind, FaultKind::kCalcSlow);
  EXPECT_EQ(MustParse("crm-ignores-price:orders=A").kind, FaultKind::kCrmIgnoresPrice);
  EXPECT_EQ(MustParse("crm-stalls-approved:rate=0").kind, FaultKind::kCrmStallsApproved);
  EXPECT_EQ(MustParse("mes-silent:rate=0.1:for=2m").kind, FaultKind::kMesSilent);
  EXPECT_EQ(MustParse("crm-no-close:orders=A:rate=0.5").kind, FaultKind::kCrmNoClose);

  f = MustParse("consumer-gone:queue=crm.prices:after=10s:for=1m");
  EXPECT_EQ(f.kind, FaultKind::kConsumerGone);
  EXPECT_EQ(f.queue, "crm.prices");
  EXPECT_EQ(f.after, Micros(10s));
  EXPECT_EQ(*f.lift_after, Micros(1min));
  EXPECT_TRUE(IsQueueFault(f.kind));

  f = MustParse("slow-consumer:queue=mes.calculate:per_second=2.5");
  EXPECT_EQ(f.kind, FaultKind::kSlowConsumer);
  EXPECT_DOUBLE_EQ(f.per_second, 2.5);
  EXPECT_EQ(f.after, Micros(0));
  EXPECT_EQ(f.text, "slow-consumer:queue=mes.calculate:per_second=2.5");
}

TEST(SimFaultSpec, EveryErrorSaysWhatIsWrong) {
  EXPECT_EQ(ErrorOf("lost-to-crm:rate=1"),
            "--fault 'lost-to-crm:rate=1': unknown fault 'lost-to-crm' (faults: lost-to-mes, "
            "calc-silent, calc-slow, crm-ignores-price, crm-stalls-approved, mes-silent, "
            "crm-no-close, consumer-gone, slow-consumer)");
  EXPECT_EQ(ErrorOf("mes-silent:rate"),
            "--fault 'mes-silent:rate': expected key=value, got 'rate'");
  EXPECT_EQ(ErrorOf("mes-silent:=1"), "--fault 'mes-silent:=1': expected key=value, got '=1'");
  EXPECT_EQ(ErrorOf("mes-silent:rate=1.5"),
            "--fault 'mes-silent:rate=1.5': rate: expected a number from 0 to 1, got '1.5'");
  EXPECT_EQ(ErrorOf("mes-silent:rate=x"),
            "--fault 'mes-silent:rate=x': rate: expected a number from 0 to 1, got 'x'");
  EXPECT_EQ(ErrorOf("mes-silent:orders=A||B"),
            "--fault 'mes-silent:orders=A||B': orders: an empty order id (ids are separated by "
            "|)");
  EXPECT_EQ(ErrorOf("mes-silent:rate=1:for=soon"),
            "--fault 'mes-silent:rate=1:for=soon': for: expected a duration like 500ms, 30s, 2m, "
            "1h or 5d, got 'soon'");
  EXPECT_EQ(ErrorOf("consumer-gone:queue=crm.prices:after=x"),
            "--fault 'consumer-gone:queue=crm.prices:after=x': after: expected a duration like "
            "500ms, 30s, 2m, 1h or 5d, got 'x'");
  EXPECT_EQ(ErrorOf("consumer-gone:queue=crm.order"),
            "--fault 'consumer-gone:queue=crm.order': queue: unknown queue 'crm.order' (queues: "
            "crm.orders, mes.calculate, crm.prices, mes.manufacturing, crm.shipments)");
  EXPECT_EQ(ErrorOf("slow-consumer:queue=crm.orders:per_second=0"),
            "--fault 'slow-consumer:queue=crm.orders:per_second=0': per_second: expected a "
            "number above 0, got '0'");
  EXPECT_EQ(ErrorOf("mes-silent:rate=1:color=red"),
            "--fault 'mes-silent:rate=1:color=red': unknown key 'color' (keys: rate, orders, "
            "after, for, queue, per_second)");
  EXPECT_EQ(ErrorOf("consumer-gone:queue=crm.orders:rate=1"),
            "--fault 'consumer-gone:queue=crm.orders:rate=1': consumer-gone acts on a queue, not "
            "on orders: rate= and orders= do not apply");
  EXPECT_EQ(ErrorOf("consumer-gone:for=1s"),
            "--fault 'consumer-gone:for=1s': consumer-gone needs queue=Q");
  EXPECT_EQ(ErrorOf("slow-consumer:queue=crm.orders"),
            "--fault 'slow-consumer:queue=crm.orders': slow-consumer needs per_second=N");
  EXPECT_EQ(ErrorOf("consumer-gone:queue=crm.orders:per_second=3"),
            "--fault 'consumer-gone:queue=crm.orders:per_second=3': per_second= applies to "
            "slow-consumer only");
  EXPECT_EQ(ErrorOf("mes-silent:rate=1:queue=crm.orders"),
            "--fault 'mes-silent:rate=1:queue=crm.orders': mes-silent acts on orders: queue= and "
            "per_second= apply to queue faults only");
  EXPECT_EQ(ErrorOf("mes-silent:rate=1:after=5s"),
            "--fault 'mes-silent:rate=1:after=5s': after= applies to queue faults only "
            "(consumer-gone, slow-consumer)");
  EXPECT_EQ(ErrorOf("calc-slow"), "--fault 'calc-slow': calc-slow needs rate=R or orders=ID|ID...");
}

TEST(SimFaultSpec, RateSelectionIsDeterministicAndNearTheRate) {
  FaultSpec f = MustParse("mes-silent:rate=0.2");
  FaultSpec g = MustParse("calc-silent:rate=0.2");
  int selected = 0, both = 0;
  const int n = 20000;
  for (int i = 1; i <= n; ++i) {
    const std::string id = OrderId("ORD-", 42, i);
    const bool s = f.Selects(42, id);
    EXPECT_EQ(s, f.Selects(42, id));  // the same answer in every process
    selected += s;
    both += s && g.Selects(42, id);
  }
  // Binomial(20000, 0.2): sd ~57; 5 sd either way.
  EXPECT_NEAR(selected, n * 0.2, 300);
  // Independent per fault name: ~4% chosen by both, not 20%.
  EXPECT_NEAR(both, n * 0.04, 200);
  // Another seed chooses other orders.
  int same = 0;
  for (int i = 1; i <= 1000; ++i) {
    const std::string id = OrderId("ORD-", 42, i);
    same += f.Selects(42, id) == f.Selects(43, id);
  }
  EXPECT_LT(same, 800);

  EXPECT_FALSE(MustParse("mes-silent:rate=0").Selects(1, "A"));
  EXPECT_TRUE(MustParse("mes-silent:rate=1").Selects(1, "A"));
  FaultSpec listed = MustParse("mes-silent:orders=A|B");
  EXPECT_TRUE(listed.Selects(1, "B"));
  EXPECT_FALSE(listed.Selects(1, "C"));
  EXPECT_FALSE(MustParse("consumer-gone:queue=crm.orders").Selects(1, "A"));
}

TEST(SimPacing, FromTheDefaultRules) {
  auto p = DerivePacing(journey::DefaultRules(), 0.3, 1);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->stages[0], "SUBMITTED");
  EXPECT_EQ(p->stages[5], "CLOSED");
  EXPECT_EQ(p->calculate, Micros(9min));           // 0.3 x 30m
  EXPECT_EQ(p->calculate_heartbeat, Micros(90s));  // 0.3 x 5m
  EXPECT_EQ(p->calculate_deadline, Micros(30min));
  EXPECT_EQ(p->approve, Micros(std::chrono::hours(24)) * 3 / 10);
  EXPECT_EQ(p->manufacture, Micros(std::chrono::hours(24 * 5)) * 3 / 10);
  EXPECT_EQ(p->manufacture_heartbeat, Micros(std::chrono::hours(2)) * 3 / 10);
  EXPECT_EQ(p->close, Micros(std::chrono::hours(24)) * 3 / 10);
}

TEST(SimPacing, ARenamedScaledFileWithTimeScale) {
  auto rules = journey::ParseRules(R"(
stages: [NEW, PRICED, OK, BUILDING, SENT, DONE]
expect:
  NEW: {next: PRICED, within: 30m, heartbeat: 5m}
  PRICED: {next: OK, within: 10m}
  OK: {next: BUILDING, within: 4h}
  BUILDING: {next: SENT, within: 5d, heartbeat: 2h}
  SENT: {next: DONE, within: 24h}
)",
                                   "scaled.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  // 1000x: the 30-minute calculation in 1.8 s, five days of manufacturing in 432 s.
  auto p = DerivePacing(*rules, 0.5, 1000);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->stages[1], "PRICED");
  EXPECT_EQ(p->stages[4], "SENT");
  EXPECT_EQ(p->calculate, Micros(900ms));            // 0.5 x 30m / 1000
  EXPECT_EQ(p->calculate_heartbeat, Micros(150ms));  // 0.5 x 5m / 1000
  EXPECT_EQ(p->calculate_deadline, Micros(1800ms));
  EXPECT_EQ(p->approve, Micros(300ms));
  EXPECT_EQ(p->manufacture, Micros(216s));
  EXPECT_EQ(p->manufacture_heartbeat, Micros(3600ms));
  EXPECT_EQ(p->close, Micros(43200ms));

  // Jitter: ±20% around the paced time, never past 95% of the deadline.
  for (int i = 0; i < 200; ++i) {
    const std::string id = OrderId("X-", 1, i);
    Micros j = Jittered(p->calculate, p->calculate_deadline, 1, id, "calculate");
    EXPECT_GE(j, Micros(720ms));
    EXPECT_LE(j, Micros(1080ms));
    EXPECT_EQ(j, Jittered(p->calculate, p->calculate_deadline, 1, id, "calculate"));
    EXPECT_LE(Jittered(Micros(1s), Micros(1s), 1, id, "x"), Micros(950ms));
  }
}

TEST(SimPacing, NeedsSixStages) {
  auto rules = journey::ParseRules(R"(
stages: [A, B, C]
expect:
  A: {next: B, within: 1m}
  B: {next: C, within: 1m}
)",
                                   "short.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  auto p = DerivePacing(*rules, 0.3, 1);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "rules (short.yaml): ordertrace-sim needs exactly 6 stages (submitted, price "
            "calculated, approved, manufacturing started, shipped, closed, in that order), got "
            "3: A, B, C");
}

TEST(SimOrderId, PrefixSeedTagAndCounter) {
  const std::string a = OrderId("ORD-", 7, 42);
  ASSERT_EQ(a.size(), std::string("ORD-7f3a-000042").size());
  EXPECT_EQ(a.substr(0, 4), "ORD-");
  EXPECT_EQ(a.substr(8), "-000042");
  EXPECT_EQ(a, OrderId("ORD-", 7, 42));
  EXPECT_EQ(a.substr(0, 8), OrderId("ORD-", 7, 1).substr(0, 8));  // one tag per seed
  EXPECT_NE(a.substr(4, 4), OrderId("ORD-", 8, 42).substr(4, 4));
  EXPECT_EQ(OrderId("P", 7, 1234567).substr(5), "-1234567");
  std::set<std::string> tags;
  for (uint64_t s = 0; s < 100; ++s) tags.insert(OrderId("", s, 1).substr(0, 4));
  EXPECT_GT(tags.size(), 95u);
}

TEST(SimArgs, DefaultsAndFlags) {
  auto o = ParseArgs({"crm"});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->role, Role::kCrm);
  EXPECT_EQ(o->amqp.host, "127.0.0.1");
  EXPECT_EQ(o->amqp.port, 5672);
  EXPECT_EQ(o->amqp.vhost, "/");
  EXPECT_EQ(o->otlp, "http://127.0.0.1:4318/v1/traces");
  EXPECT_EQ(ParseArgs({"crm", "--otlp", "https://gw:4318/v1/traces"})->otlp,
            "https://gw:4318/v1/traces");
  EXPECT_FALSE(ParseArgs({"crm", "--otlp", "grpc://gw:4317"}).ok());
  EXPECT_DOUBLE_EQ(o->pace, 0.3);
  EXPECT_EQ(o->pacing.stages[0], "SUBMITTED");
  EXPECT_TRUE(o->order_id_on_every_span);
  EXPECT_FALSE(ParseArgs({"mes", "--order-id-spans", "entry"})->order_id_on_every_span);
  EXPECT_TRUE(ParseArgs({"mes", "--order-id-spans=every"})->order_id_on_every_span);

  o = ParseArgs({"partner", "--amqp", "amqp://u:p%40ss@h:5673/%2F", "--rate=200", "--orders", "10",
                 "--seed", "9", "--fault", "mes-silent:rate=0.5", "--quiet", "--duration", "30s",
                 "--time-scale", "60", "--pace", "0.5"});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->amqp.user, "u");
  EXPECT_EQ(o->amqp.password, "p@ss");
  EXPECT_EQ(o->amqp.host, "h");
  EXPECT_EQ(o->amqp.port, 5673);
  EXPECT_EQ(o->amqp.vhost, "/");
  EXPECT_EQ(o->amqp.text, "amqp://u@h:5673/%2F");
  EXPECT_DOUBLE_EQ(o->rate, 200);
  EXPECT_EQ(*o->orders, 10u);
  EXPECT_EQ(o->seed, 9u);
  EXPECT_EQ(*o->duration, Micros(30s));
  EXPECT_EQ(o->faults.size(), 1u);
  EXPECT_TRUE(o->quiet);
  EXPECT_EQ(o->pacing.calculate, Micros(15s));  // 0.5 x 30m / 60

  EXPECT_EQ(ParseAmqpUrl("amqp://guest:guest@127.0.0.1:5672/prod")->vhost, "prod");
}

TEST(SimArgs, Errors) {
  const auto err = [](std::vector<std::string> a) {
    auto o = ParseArgs(a);
    EXPECT_FALSE(o.ok());
    return o.ok() ? std::string() : o.status().message();
  };
  EXPECT_EQ(err({"billing"}), "unknown role 'billing' (roles: partner, crm, mes, all)");
  EXPECT_EQ(err({"crm", "--pace", "0"}), "--pace: expected a number above 0, at most 1, got '0'");
  EXPECT_EQ(err({"crm", "--order-id-spans", "some"}),
            "--order-id-spans: expected every or entry, got 'some'");
  EXPECT_EQ(err({"crm", "--pace", "1.5"}),
            "--pace: expected a number above 0, at most 1, got '1.5'");
  EXPECT_EQ(err({"crm", "--rate"}), "--rate needs a value");
  EXPECT_EQ(err({"crm", "--orders", "-1"}), "--orders: expected a whole number, got '-1'");
  EXPECT_EQ(err({"crm", "--amqp", "http://x/"}),
            "--amqp 'http://x/': only amqp:// is supported (expected "
            "amqp://USER:PASSWORD@HOST:PORT/VHOST)");
  EXPECT_EQ(err({"crm", "--fault", "nope"}).substr(0, 33), "--fault 'nope': unknown fault 'no");
  EXPECT_EQ(err({"crm", "--rules", "/nonexistent/rules.yaml"}).substr(0, 9), "--rules: ");
  EXPECT_EQ(err({"crm", "--bogus"}).substr(0, 22), "unknown flag '--bogus'");
  EXPECT_EQ(err({}).substr(0, 13), "no role given");
  EXPECT_EQ(ParseArgs({"--help"}).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ordertrace::sim
