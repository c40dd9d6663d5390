// The durable ingest log of issue 18 end to end: a real `ordertrace serve` with journeys on
// (SQLite) forwarding to an upstream, under a steady load of orders (tests/durability/
// order_load.h), against the log's contract (docs/architecture.md, docs/configuration.md
// `ingest_log.*`):
//   - CrashConsistency: SIGKILLed 4 times under the load and restarted on its data.  Its
//     journeys (milestones, hops, spans, the stuck set and verdicts) equal those of a reference
//     gateway that received every acknowledged request once and was never killed, and those the
//     load planned; every acknowledged span reached the upstream; each stuck episode is one
//     alert (one startsAt per order at the gateway's Alertmanager sink, never resolved and fired
//     again), the same alerts as the reference's; the webhook told of each stuck episode as
//     firing exactly once across the restarts (but for the one notification a kill may catch
//     between the webhook's answer and the gateway's record of it, docs/alerting.md "Restarts").
//   - SlowJourneysDoNotSlowForwarding: with `journeys.apply_delay` the journeys' cursor lags
//     while the forwarder keeps up (its lag stays near 0, the upstream gets every span as it is
//     acknowledged) and no client is refused until `ingest_log.max_bytes` is reached; then 429
//     with Retry-After; after a restart without the delay the journeys catch up and hold every
//     acknowledged span.
//   - JourneysBehindFlagNoOrderThatMovedOn: with the journeys behind by more than a deadline
//     plus grace, no healthy order is flagged (the detector judges up to the consumer's
//     horizon), and the orders that hang are, once the journeys catch up.
//   - DiskFullAnswers503AndLosesNothing: the log on an 8 MiB tmpfs the test mounts (root only;
//     skipped with the reason when mounting is refused) with a budget above it: a full disk
//     answers 503 with Retry-After, never 500 nor 429; the gateway restarts on the full disk;
//     once space is freed ingest resumes and every acknowledged span reaches the upstream and
//     the journeys.
// Every process is started on free ports with its own data directory and stopped by pid.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "durability/order_load.h"
#include "net/http_client.h"
#include "support/alertmanager_process.h"
#include "support/api_text.h"
#include "support/gateway_process.h"

namespace ordertrace::durability {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing_support::GatewayProcess;
using testing_support::MetricSum;
using testing_support::Receiver;
using testing_support::Rfc3339Nanos;
using testing_support::WaitFor;
using Clock = std::chrono::steady_clock;

Nanos NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string Metrics(const GatewayProcess& gw) {
  auto r = net::HttpGet(gw.http_port(), "/metrics");
  return r.ok() && r->status == 200 ? r->body : "";
}

// A sample of the log's metrics; -1 when the gateway does not answer or has no such series.
double LogMetric(const std::string& text, const std::string& name, const std::string& labels) {
  if (text.find(name) == std::string::npos) return -1;
  return MetricSum(text, name, labels);
}
double Lag(const std::string& text, const std::string& consumer) {
  return LogMetric(text, "ordertrace_ingest_log_consumer_lag_records",
                   "consumer=\"" + consumer + "\"");
}

// The gateway's config file: journeys on the load's rules; forwarding and an Alertmanager sink
// when given; `extra` appended (ingest_log, journeys.apply_delay ...); other rules when given.
std::vector<std::string> ConfigFlags(const GatewayProcess& gw, const std::string& upstream,
                                     const std::string& alertmanager,
                                     const std::string& journeys_extra = "",
                                     const std::string& extra = "",
                                     const std::string& rules_text = kRules) {
  const auto rules = gw.dir() / "rules.yaml";
  std::ofstream(rules) << rules_text;
  const auto config = gw.dir() / "gateway.yaml";
  std::ofstream out(config);
  out << "journeys:\n  rules: " << rules.string() << "\n  store: sqlite\n" << journeys_extra;
  if (!upstream.empty()) {
    out << "forward:\n  upstream: " << upstream
        << "\n  batch:\n    max_age: 20ms\n  retry:\n    initial: 50ms\n    max: 200ms\n";
  }
  if (!alertmanager.empty()) {
    out << "alerting:\n  alertmanager: " << alertmanager
        << "\n  resend_interval: 2s\n  timeout: 2s\n  storm:\n    threshold: 0\n"
        << "  webhook:\n    url: " << alertmanager << "/hook\n";
  }
  out << extra;
  return {"--config", config.string()};
}

// ---- Journeys as the API gives them

json GetJson(uint16_t port, const std::string& target) {
  auto r = net::HttpGet(port, target);
  if (!r.ok() || r->status != 200) return json();
  return json::parse(r->body, nullptr, false);
}

// Every stuck order (the list API, page by page); nullopt-like empty + false when it fails.
bool StuckSet(uint16_t port, std::set<std::string>* out) {
  out->clear();
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    json j = GetJson(
        port, "/api/v1/orders?stuck=true&limit=1000" + (cursor.empty() ? "" : "&cursor=" + cursor));
    if (!j.is_object() || !j["orders"].is_array()) return false;
    for (const auto& o : j["orders"]) out->insert(o["order_id"].get<std::string>());
    if (!j["next_cursor"].is_string()) return true;
    cursor = j["next_cursor"].get<std::string>();
  }
  return false;
}

// An order's journey reduced to what two gateways given the same spans must agree on (no
// sentence said "as of the request", no link): null when the API does not know the order.
json Journey(uint16_t port, const std::string& id) {
  const json j = GetJson(port, "/api/v1/orders/" + id);
  if (!j.is_object()) return json();
  json out;
  for (const char* k : {"order_id", "stage", "stage_since", "stuck", "stuck_kind", "stuck_since",
                        "deadline", "expected_service", "last_service", "first_seen", "last_seen",
                        "last_heartbeat", "open_hops", "closed", "milestones"}) {
    out[k] = j.value(k, json());
  }
  std::vector<json> hops;
  for (const auto& h : j.value("hops", json::array())) hops.push_back(h);
  std::sort(hops.begin(), hops.end(),
            [](const json& a, const json& b) { return a.dump() < b.dump(); });
  out["hops"] = hops;
  std::set<std::string> spans;
  for (const auto& s : j.value("spans", json::array())) spans.insert(s.value("span_id", ""));
  out["span_ids"] = spans;
  return out;
}

// What a journey misses of its plan ("" when it holds).
std::string CheckAgainstPlan(const json& j, const OrderPlan& plan) {
  if (j.is_null()) return "unknown to the API";
  std::string problems;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) problems += what + "; ";
  };
  expect(j["stage"] == plan.final_stage, "stage " + j["stage"].dump());
  expect(j["stuck"] == plan.stuck, "stuck " + j["stuck"].dump());
  expect(j["closed"] == plan.closed, "closed " + j["closed"].dump());
  expect(j["hops"].size() == plan.hops, "hops " + std::to_string(j["hops"].size()));
  size_t open = 0;
  for (const auto& h : j["hops"]) open += h.value("open", false) ? 1 : 0;
  expect(open == plan.open_hops, "open hops " + std::to_string(open));
  expect(j["span_ids"].get<std::set<std::string>>() == plan.span_ids,
         "spans " + std::to_string(j["span_ids"].size()) + " of " +
             std::to_string(plan.span_ids.size()));
  return problems;
}

// ---- Alerts at a gateway's Alertmanager sink (the test's Receiver): its output, before any
// deduplication Alertmanager would do.
struct AlertLog {
  std::map<std::string, std::set<std::string>> firing_starts;  // order → distinct startsAt
  std::map<std::string, size_t> resolved;                      // order → resolved notifications
  std::map<std::string, size_t> fired_after_resolved;  // order → firing sent after a resolve
  size_t alerts = 0;                                   // every alert posted, re-sends included
  // The webhook's notifications (one POST per event, not re-sent while firing nor after a
  // restart: the gateway records what it was told).
  std::map<std::string, size_t> webhook_firing;                 // order → "firing" events
  std::map<std::string, std::set<std::string>> webhook_starts;  // order → distinct starts_at
  std::map<std::string, size_t> webhook_resolved;               // order → "resolved" events
  // Per `kills` snapshot (bodies received when a kill had ended the process): the order of the
  // last webhook "firing" received before it, "" none.  The webhook gets one POST at a time, so
  // this one alone may have been answered and not yet recorded when the process died.
  std::vector<std::string> in_flight_at_kill;
};

AlertLog Alerts(const Receiver& sink, const std::vector<size_t>& kills = {}) {
  AlertLog log;
  log.in_flight_at_kill.assign(kills.size(), "");
  size_t index = 0;
  for (const auto& body : sink.bodies()) {
    ++index;
    if (body.is_object() && body.value("event", "") == "firing" && body.contains("order_id")) {
      ++log.webhook_firing[body.value("order_id", "")];
      log.webhook_starts[body.value("order_id", "")].insert(body.value("starts_at", ""));
      for (size_t k = 0; k < kills.size(); ++k) {
        if (index <= kills[k]) log.in_flight_at_kill[k] = body.value("order_id", "");
      }
    }
    if (body.is_object() && body.value("event", "") == "resolved" && body.contains("order_id")) {
      ++log.webhook_resolved[body.value("order_id", "")];
    }
    if (!body.is_array()) continue;
    for (const auto& a : body) {
      ++log.alerts;
      const std::string order = a["labels"].value("order_id", "");
      if (order.empty()) continue;
      if (a.contains("endsAt")) {
        ++log.resolved[order];
      } else {
        log.firing_starts[order].insert(a.value("startsAt", ""));
        if (log.resolved.count(order) != 0) ++log.fired_after_resolved[order];
      }
    }
  }
  return log;
}

// Waits until the log's consumer `name` has nothing left (lag 0), or, on a gateway without the
// metric, returns true at once (the callers' later checks then decide).
bool CaughtUp(const GatewayProcess& gw, const std::string& name, std::chrono::milliseconds limit) {
  return WaitFor([&] { return Lag(Metrics(gw), name) <= 0; }, limit);
}

class DurabilityTest : public ::testing::Test {
 protected:
  // The load thread gives up on a request after this (the test fails instead of hanging).
  static constexpr auto kGiveUp = 100s;
};

TEST_F(DurabilityTest, CrashConsistency) {
  const auto started = Clock::now();
  UpstreamRecorder upstream;
  ASSERT_TRUE(upstream.Start());
  Receiver a_alerts, ref_alerts;
  ASSERT_TRUE(a_alerts.started() && ref_alerts.started());

  GatewayProcess a("durability_crash"), ref("durability_crash_ref");
  // A's journey consumer waits 200 ms before each write (journeys.apply_delay), so every kill
  // finds acknowledged requests its journeys have not applied: each restart must replay them.
  const auto a_flags = ConfigFlags(a, upstream.url(), a_alerts.url(""), "  apply_delay: 200ms\n");
  const auto ref_flags = ConfigFlags(ref, "", ref_alerts.url(""));
  ASSERT_TRUE(a.Start(a_flags)) << a.Log();
  ASSERT_TRUE(ref.Start(ref_flags)) << ref.Log();

  // The load: one request every 25 ms (at most 40 requests and 400 spans a second), each retried
  // on A until acknowledged, then given once to the reference.
  std::atomic<uint16_t> a_port{a.otlp_http_port()};
  LoadClient to_a([&] { return a_port.load(); });
  LoadClient to_ref([&] { return ref.otlp_http_port(); });
  OrderLoad load("CRASH");
  constexpr size_t kRequests = 450;
  std::atomic<size_t> sent{0};
  std::atomic<bool> failed{false};
  const auto give_up_at = Clock::now() + kGiveUp;
  auto give_up = [&] { return failed || Clock::now() > give_up_at; };
  std::thread client([&] {
    for (size_t i = 0; i <= kRequests && !failed; ++i) {
      LoadRequest r = i < kRequests ? load.Next(NowNanos()) : load.Flush(NowNanos());
      if (r.body.empty()) break;
      if (!to_a.SendUntilAcknowledged(r, give_up) || !to_ref.SendUntilAcknowledged(r, give_up)) {
        failed = true;
        break;
      }
      ++sent;
      std::this_thread::sleep_for(25ms);
    }
  });
  // A failed assertion below returns at once: the client stops and is joined first.
  struct Joiner {
    std::thread& thread;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } joiner{client, failed};

  // Four SIGKILLs: three spread over the load, one while the journeys still replay after the
  // previous restart.  The upstream is down from the first restart to the third, so the second
  // and third kills also find spans the forwarder has not sent.
  std::vector<double> restart_seconds;
  std::vector<double> lag_at_kill, forward_lag_at_kill;
  std::vector<size_t> alerts_at_kill;  // bodies A's sink had received when A was dead
  auto kill_and_restart = [&] {
    double lag = 0;
    EXPECT_TRUE(WaitFor([&] { return (lag = Lag(Metrics(a), "journeys")) > 0; }, 10s))
        << "the journeys are not behind: the kill would test nothing";
    lag_at_kill.push_back(lag);
    forward_lag_at_kill.push_back(Lag(Metrics(a), "forward"));
    a_port = 0;
    EXPECT_EQ(a.Kill(), 128 + SIGKILL);
    // A request the process wrote before it died may still be read by the receiver: let it.
    std::this_thread::sleep_for(300ms);
    alerts_at_kill.push_back(a_alerts.bodies().size());
    const auto t = Clock::now();
    const bool up = a.Start(a_flags);
    restart_seconds.push_back(Seconds(t));
    a_port = a.otlp_http_port();
    return up;
  };
  for (size_t at : {80u, 170u, 260u}) {
    ASSERT_TRUE(WaitFor([&] { return sent >= at || failed; }, 60s));
    ASSERT_FALSE(failed);
    ASSERT_TRUE(kill_and_restart()) << a.Log();
    if (at == 80u) upstream.SetRefusing(true);
    if (at == 260u) upstream.SetRefusing(false);
  }
  EXPECT_GT(forward_lag_at_kill[1], 0);
  EXPECT_GT(forward_lag_at_kill[2], 0);
  // At once after the third restart: the journeys' cursor is behind what is acknowledged.
  const size_t before = sent;
  ASSERT_TRUE(WaitFor([&] { return sent >= before + 3 || failed; }, 30s));
  ASSERT_TRUE(kill_and_restart()) << a.Log();
  client.join();
  ASSERT_FALSE(failed) << "a request was never acknowledged: " << a.Log();
  const double load_seconds = Seconds(started);

  // (b) Every span A acknowledged reached the upstream.
  const std::set<std::string> acked = to_a.acknowledged();
  EXPECT_TRUE(WaitFor([&] { return upstream.Missing(acked).empty(); }, 30s));
  const auto missing = upstream.Missing(acked);
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << acked.size()
                               << " acknowledged spans never reached the upstream, e.g. "
                               << missing.front();

  // (a) The journeys: both gateways caught up, every deadline of the load passed (the stalls
  // are flagged 4 s after their heartbeat), the stuck sets are the planned one...
  EXPECT_TRUE(CaughtUp(a, "journeys", 30s)) << Metrics(a);
  EXPECT_TRUE(CaughtUp(ref, "journeys", 30s)) << Metrics(ref);
  const std::set<std::string> expected_stuck = load.ExpectedStuck();
  std::set<std::string> a_stuck, ref_stuck;
  EXPECT_TRUE(WaitFor(
      [&] { return StuckSet(ref.http_port(), &ref_stuck) && ref_stuck == expected_stuck; }, 20s))
      << ref_stuck.size() << " stuck at the reference, " << expected_stuck.size() << " planned";
  EXPECT_TRUE(
      WaitFor([&] { return StuckSet(a.http_port(), &a_stuck) && a_stuck == expected_stuck; }, 20s))
      << a_stuck.size() << " stuck at the killed gateway, " << expected_stuck.size() << " planned";

  const double settled_seconds = Seconds(started);
  // ... and every order's journey is the reference's and the plan's.
  // Both gateways read at once (one thread each): 900 order views.
  auto journeys_of = [&](uint16_t port) {
    std::map<std::string, json> out;
    for (const auto& [id, plan] : load.orders()) out[id] = Journey(port, id);
    return out;
  };
  auto a_journeys_future = std::async(std::launch::async, journeys_of, a.http_port());
  const std::map<std::string, json> ref_journeys = journeys_of(ref.http_port());
  const std::map<std::string, json> a_journeys = a_journeys_future.get();
  size_t differ = 0, off_plan = 0;
  for (const auto& [id, plan] : load.orders()) {
    const json& got = a_journeys.at(id);
    const json& want = ref_journeys.at(id);
    if (got != want && ++differ <= 3) {
      std::string diff;
      const json reference = want.is_object() ? want : json::object();
      for (const auto& [key, value] : reference.items()) {
        if (!got.is_object() || got.value(key, json()) != value) {
          diff += "\n  " + key + ": " + (got.is_object() ? got.value(key, json()).dump() : "-") +
                  " (the reference: " + value.dump() + ")";
        }
      }
      ADD_FAILURE() << "order " << id << " after the kills differs from the reference's:"
                    << (got.is_null() ? std::string(" unknown to the API") : diff);
    }
    const std::string problems = CheckAgainstPlan(want, plan);
    if (!problems.empty() && ++off_plan <= 3) {
      ADD_FAILURE() << "the reference's order " << id << " is not as planned: " << problems;
    }
  }
  EXPECT_EQ(differ, 0u) << "orders whose journey differs from the reference's, of "
                        << load.orders().size();
  EXPECT_EQ(off_plan, 0u);

  const double compared_seconds = Seconds(started);
  // (c) One alert per stuck episode at A's sink: every stuck order alerted with its
  // stuck_since, one startsAt only (re-sends and the resend after each restart carry the same),
  // never resolved nor fired again, no other order alerted; the same alerts as the reference's.
  EXPECT_TRUE(WaitFor(
      [&] {
        const AlertLog a_now = Alerts(a_alerts), ref_now = Alerts(ref_alerts);
        return a_now.firing_starts.size() >= expected_stuck.size() &&
               a_now.webhook_starts.size() >= expected_stuck.size() &&
               ref_now.firing_starts.size() >= expected_stuck.size() &&
               ref_now.webhook_starts.size() >= expected_stuck.size();
      },
      15s));
  const AlertLog a_log = Alerts(a_alerts, alerts_at_kill), ref_log = Alerts(ref_alerts);
  size_t twice = 0;
  for (const auto& [order, starts] : a_log.firing_starts) {
    if (starts.size() != 1 && ++twice <= 3) {
      ADD_FAILURE() << "order " << order << " fired " << starts.size()
                    << " alerts with different startsAt";
    }
    EXPECT_EQ(expected_stuck.count(order), 1u) << "order " << order << " alerted, not stuck";
  }
  EXPECT_EQ(twice, 0u);
  EXPECT_TRUE(a_log.resolved.empty())
      << a_log.resolved.size() << " orders resolved, e.g. " << a_log.resolved.begin()->first;
  EXPECT_TRUE(a_log.fired_after_resolved.empty());
  EXPECT_EQ(a_log.firing_starts, ref_log.firing_starts)
      << "the killed gateway's alerts differ from the reference's";
  size_t wrong_start = 0;
  for (const auto& order : expected_stuck) {
    const json j = GetJson(a.http_port(), "/api/v1/orders/" + order);
    const json stuck_since = j.is_object() ? j.value("stuck_since", json()) : json();
    auto it = a_log.firing_starts.find(order);
    const bool ok = it != a_log.firing_starts.end() && it->second.size() == 1 &&
                    Rfc3339Nanos(*it->second.begin()) == Rfc3339Nanos(stuck_since);
    if (!ok && ++wrong_start <= 3) {
      ADD_FAILURE() << "order " << order << ": alert startsAt is not its stuck_since "
                    << stuck_since.dump();
    }
  }
  EXPECT_EQ(wrong_start, 0u);
  // The webhook: one starts_at per order too, the same as Alertmanager's, and each stuck episode
  // told as firing exactly once, restarts included: the gateway records each notification right
  // after the webhook's answer, and reads the record back at start.  The one exception: the
  // notification a kill catches between the webhook's answer and that record (at most one per
  // kill, the last one received before it) is told again after the restart: at least once,
  // never lost.  Never resolved (the stuck orders stay stuck).
  EXPECT_EQ(a_log.webhook_starts, a_log.firing_starts);
  std::map<std::string, size_t> excused;  // order → kills that caught its notification
  for (const std::string& order : a_log.in_flight_at_kill) {
    if (!order.empty()) ++excused[order];
  }
  size_t webhook_repeats = 0, repeats_in_window = 0, told_twice = 0;
  for (const auto& order : expected_stuck) {
    const auto it = a_log.webhook_firing.find(order);
    const size_t n = it == a_log.webhook_firing.end() ? 0 : it->second;
    const size_t allowed = 1 + (excused.count(order) ? excused[order] : 0);
    if (n > 1) {
      webhook_repeats += n - 1;
      repeats_in_window += std::min(n, allowed) - 1;
    }
    if ((n == 0 || n > allowed) && ++told_twice <= 3) {
      ADD_FAILURE() << "order " << order << ": told the webhook as firing " << n
                    << " times (once expected"
                    << (allowed > 1 ? ", or twice: a kill caught its notification" : "") << ")";
    }
  }
  EXPECT_EQ(told_twice, 0u) << "stuck episodes not told to the webhook exactly once, of "
                            << expected_stuck.size();
  EXPECT_TRUE(a_log.webhook_resolved.empty())
      << a_log.webhook_resolved.size() << " orders resolved at the webhook, e.g. "
      << a_log.webhook_resolved.begin()->first;
  for (const auto& [order, n] : ref_log.webhook_firing) {
    EXPECT_EQ(n, 1u) << "the reference told the webhook of order " << order << " " << n << " times";
  }

  const std::string metrics = Metrics(a);
  EXPECT_EQ(MetricSum(metrics, "ordertrace_journey_failed_batches_total"), 0) << metrics;
  const double alerts_seconds = Seconds(started);
  EXPECT_EQ(a.Stop(), 0) << a.Log();
  EXPECT_EQ(ref.Stop(), 0) << ref.Log();
  std::printf(
      "crash consistency: %zu requests, %zu spans acknowledged, %zu orders (%zu stuck); 4 "
      "SIGKILLs: journeys behind by %.0f/%.0f/%.0f/%.0f records, forward by %.0f/%.0f/%.0f/%.0f, "
      "restarts %.2f/%.2f/%.2f/%.2f s; upstream got %zu spans (%zu distinct); %zu alerts posted "
      "(re-sends included), %zu webhook notifications repeated after restarts (%zu of them caught "
      "by a kill between the webhook's answer and its record); at %.1f s the "
      "load ended, %.1f s settled, %.1f s journeys compared, %.1f s alerts checked, %.1f s "
      "stopped\n",
      to_a.acknowledged_requests(), acked.size(), load.orders().size(), expected_stuck.size(),
      lag_at_kill[0], lag_at_kill[1], lag_at_kill[2], lag_at_kill[3], forward_lag_at_kill[0],
      forward_lag_at_kill[1], forward_lag_at_kill[2], forward_lag_at_kill[3], restart_seconds[0],
      restart_seconds[1], restart_seconds[2], restart_seconds[3], upstream.total(),
      upstream.distinct(), a_log.alerts, webhook_repeats, repeats_in_window, load_seconds,
      settled_seconds, compared_seconds, alerts_seconds, Seconds(started));
}

// The log's settings of the two tests below: small segments so a small budget is made of many.
std::string IngestLogConfig(const std::string& dir, const std::string& max_bytes) {
  std::string out = "ingest_log:\n  max_bytes: " + max_bytes + "\n  segment_bytes: 1MiB\n";
  if (!dir.empty()) out += "  dir: " + dir + "\n";
  return out;
}

// For each order whose spans were acknowledged, the spans its stored journey lacks.
size_t SpansMissingFromJourneys(uint16_t port, const OrderLoad& load,
                                const std::set<std::string>& acked, std::string* example) {
  size_t missing = 0;
  for (const auto& [id, plan] : load.orders()) {
    std::vector<std::string> wanted;
    for (const auto& s : plan.span_ids) {
      if (acked.count(s) != 0) wanted.push_back(s);
    }
    if (wanted.empty()) continue;
    const json j = Journey(port, id);
    const auto have =
        j.is_null() ? std::set<std::string>() : j["span_ids"].get<std::set<std::string>>();
    for (const auto& s : wanted) {
      if (have.count(s) == 0) {
        if (missing++ == 0) *example = "span " + s + " of order " + id;
      }
    }
  }
  return missing;
}

TEST_F(DurabilityTest, SlowJourneysDoNotSlowForwarding) {
  const auto started = Clock::now();
  UpstreamRecorder upstream;
  ASSERT_TRUE(upstream.Start());
  GatewayProcess gw("durability_slow");
  // The journey consumer sleeps 60 s before each write: it writes nothing during the test.
  const auto slow_flags =
      ConfigFlags(gw, upstream.url(), "", "  apply_delay: 60s\n", IngestLogConfig("", "16MiB"));
  ASSERT_TRUE(gw.Start(slow_flags)) << gw.Log();

  // One client at full speed, requests of about 45 KB (4 KB of padding per span), until the
  // log's budget refuses one; then Retry-After is honoured for 2 s more.
  LoadClient client([&] { return gw.otlp_http_port(); });
  OrderLoad load("SLOW", 4096);
  struct Sample {
    double t;
    size_t acked_requests, upstream_spans;
    double forward_lag, journeys_lag;
  };
  std::vector<Sample> samples;
  std::atomic<bool> stop_sampling{false};
  std::thread sampler([&] {
    while (!stop_sampling) {
      const std::string m = Metrics(gw);
      samples.push_back({Seconds(started), client.acknowledged_requests(), upstream.distinct(),
                         Lag(m, "forward"), Lag(m, "journeys")});
      std::this_thread::sleep_for(100ms);
    }
  });
  PostResult first_refusal;
  LoadRequest refused;
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline) {
    LoadRequest r = load.Next(NowNanos());
    const PostResult res = client.SendOnce(r);
    if (res.status == 200) continue;
    first_refusal = res;
    refused = std::move(r);
    break;
  }
  const double full_at = Seconds(started);
  const size_t acked_before_full = client.acknowledged_requests();
  const std::set<std::string> acked_at_full = client.acknowledged();
  const size_t upstream_at_full = upstream.distinct();
  const std::string metrics_at_full = Metrics(gw);
  // The refused request, retried as a client would after Retry-After, is refused again while
  // the journeys sleep (for 2 s).
  const auto until = Clock::now() + 2s;
  while (!refused.body.empty() && Clock::now() < until) {
    const PostResult res = client.SendOnce(refused);
    EXPECT_EQ(res.status, 429);
    if (res.status == 200) break;
    const double wait = std::atof(res.retry_after.c_str());
    std::this_thread::sleep_for(
        std::chrono::milliseconds(static_cast<int64_t>(std::clamp(wait, 0.05, 1.0) * 1000)));
  }
  stop_sampling = true;
  sampler.join();

  // No client was refused before the budget was full: the first refusal is a 429 with
  // Retry-After, the log holding about max_bytes, after hundreds of acknowledged requests.
  ASSERT_EQ(first_refusal.status, 429)
      << "after " << acked_before_full << " requests: " << gw.Log();
  EXPECT_FALSE(first_refusal.retry_after.empty());
  EXPECT_GT(acked_before_full, 100u);
  const double log_bytes = LogMetric(metrics_at_full, "ordertrace_ingest_log_bytes", "");
  EXPECT_GT(log_bytes, 0.9 * (16 << 20)) << metrics_at_full;
  EXPECT_GT(LogMetric(metrics_at_full, "ordertrace_ingest_log_refused_total", "reason=\"full\""), 0)
      << metrics_at_full;
  const auto statuses = client.statuses();
  for (const auto& [status, n] : statuses) {
    EXPECT_TRUE(status == 200 || status == 429) << n << " answers " << status;
  }

  // Forwarding went on at full speed meanwhile: the forwarder's lag stayed near 0 while the
  // journeys' grew to every request, and the upstream had every acknowledged span within a
  // moment of the budget filling up.
  double max_forward_lag = 0, max_journeys_lag = 0;
  for (const auto& s : samples) {
    max_forward_lag = std::max(max_forward_lag, s.forward_lag);
    max_journeys_lag = std::max(max_journeys_lag, s.journeys_lag);
  }
  EXPECT_LE(max_forward_lag, 50) << "the forwarder fell behind";
  EXPECT_GE(Lag(metrics_at_full, "journeys"), static_cast<double>(acked_before_full) * 0.95)
      << metrics_at_full;
  EXPECT_TRUE(WaitFor([&] { return upstream.Missing(acked_at_full).empty(); }, 5s))
      << upstream.Missing(acked_at_full).size() << " acknowledged spans not forwarded";
  // The upstream got spans as fast as clients were acknowledged.
  EXPECT_GE(static_cast<double>(upstream_at_full), 0.9 * static_cast<double>(acked_at_full.size()));
  const double fill_seconds = full_at - samples.front().t;

  // Nothing acknowledged is lost to the journeys: restarted without the delay they catch up.
  const std::set<std::string> acked = client.acknowledged();
  // SIGKILL: a SIGTERM would wait out the journeys' apply_delay sleep in progress (up to 60 s;
  // reported to the log's owner), and the replay after a kill is the stronger check anyway.
  EXPECT_EQ(gw.Kill(), 128 + SIGKILL);
  const auto fast_flags = ConfigFlags(gw, upstream.url(), "", "", IngestLogConfig("", "16MiB"));
  ASSERT_TRUE(gw.Start(fast_flags)) << gw.Log();
  EXPECT_TRUE(CaughtUp(gw, "journeys", 60s)) << Metrics(gw);
  std::string example;
  EXPECT_EQ(SpansMissingFromJourneys(gw.http_port(), load, acked, &example), 0u) << example;
  EXPECT_TRUE(upstream.Missing(acked).empty());
  EXPECT_EQ(gw.Stop(), 0) << gw.Log();
  std::printf(
      "slow journeys: %zu requests (%zu spans) acknowledged in %.1f s before the budget (%.0f "
      "bytes in the log) refused one with 429 (Retry-After %s), %zu spans upstream by then; "
      "forward lag at most %.0f records, journeys lag up to %.0f; total %.1f s\n",
      acked_before_full, acked_at_full.size(), fill_seconds, log_bytes,
      first_refusal.retry_after.c_str(), upstream_at_full, max_forward_lag, max_journeys_lag,
      Seconds(started));
}

// The load's rules with every deadline before MANUFACTURING_STARTED at 1.5 s and a grace of 1 s:
// shorter than the journeys' backlog in JourneysBehindFlagNoOrderThatMovedOn.
std::string ShortDeadlineRules() {
  std::string rules = kRules;
  for (const auto& [from, to] : std::initializer_list<std::pair<std::string, std::string>>{
           {"within: 30s", "within: 1500ms"},
           {"within_receipt: 20s", "within_receipt: 1500ms"},
           {"within_processing: 20s", "within_processing: 1500ms"},
           {"processed_within: 20s", "processed_within: 1500ms"},
           {"grace: 2s", "grace: 1s"}}) {
    for (size_t at = rules.find(from); at != std::string::npos; at = rules.find(from, at)) {
      rules.replace(at, from.size(), to);
    }
  }
  return rules;
}

// While the journeys consumer is behind in the log by more than a stage's deadline plus grace,
// the detector judges deadlines only up to the consumer's horizon (the append time of its
// oldest unacknowledged record): no healthy order is flagged while its moving-on spans wait in
// the log, and the orders that really hang are flagged once the journeys catch up.  Without
// the horizon, every healthy order whose second request fell into a later round of the
// consumer than its first was flagged, then cleared.
TEST_F(DurabilityTest, JourneysBehindFlagNoOrderThatMovedOn) {
  const std::string rules = ShortDeadlineRules();
  ASSERT_EQ(rules.find("30s"), std::string::npos) << rules;
  ASSERT_EQ(rules.find("20s"), std::string::npos) << rules;
  ASSERT_NE(rules.find("grace: 1s"), std::string::npos) << rules;
  GatewayProcess gw("durability_behind");
  // Each journeys write waits 2.5 s: every round of the consumer holds what arrived meanwhile.
  ASSERT_TRUE(gw.Start(ConfigFlags(gw, "", "", "  apply_delay: 2500ms\n", "", rules))) << gw.Log();
  LoadClient client([&] { return gw.otlp_http_port(); });
  OrderLoad load("BEHIND");
  double max_journeys_lag = 0;
  const auto started = Clock::now();
  for (int i = 0; i < 60; ++i) {  // ~6 s of orders, a request every 100 ms
    ASSERT_TRUE(client.SendUntilAcknowledged(load.Next(NowNanos()), [] { return false; }));
    max_journeys_lag = std::max(max_journeys_lag, Lag(Metrics(gw), "journeys"));
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(client.SendUntilAcknowledged(load.Flush(NowNanos()), [] { return false; }));
  const double sent_in = Seconds(started);
  // The journeys fell behind by more than a deadline plus grace (2.5 s)...
  EXPECT_GE(max_journeys_lag, 10) << "the consumer was not behind: the test proves nothing";
  ASSERT_TRUE(CaughtUp(gw, "journeys", 30s)) << Metrics(gw);
  // ...and once they caught up, the stalls' heartbeat (2 s + 1 s grace) passes.
  const std::set<std::string> expected = load.ExpectedStuck();
  ASSERT_GE(expected.size(), 20u);
  auto flagged = [&] { return LogMetric(Metrics(gw), "ordertrace_journey_flagged_total", ""); };
  EXPECT_TRUE(WaitFor([&] { return flagged() >= static_cast<double>(expected.size()); }, 15s))
      << "the orders that hang were not all flagged: " << flagged() << " of " << expected.size();
  std::this_thread::sleep_for(1500ms);  // a late false flag would show by now
  const std::string m = Metrics(gw);
  // Every flag is one of the hanging orders', and none was taken back.
  EXPECT_EQ(LogMetric(m, "ordertrace_journey_flagged_total", ""),
            static_cast<double>(expected.size()))
      << m;
  EXPECT_EQ(LogMetric(m, "ordertrace_journey_cleared_total", ""), 0) << m;
  size_t checked = 0;
  for (const auto& [id, plan] : load.orders()) {
    const json j = Journey(gw.http_port(), id);
    EXPECT_EQ(CheckAgainstPlan(j, plan), "") << id;
    ++checked;
  }
  EXPECT_EQ(checked, load.orders().size());
  EXPECT_EQ(gw.Stop(), 0) << gw.Log();
  std::printf(
      "journeys behind: %zu orders sent in %.1f s, journeys lag up to %.0f records; %.0f flagged "
      "(%zu hang), %.0f cleared\n",
      load.orders().size(), sent_in, max_journeys_lag,
      LogMetric(m, "ordertrace_journey_flagged_total", ""), expected.size(),
      LogMetric(m, "ordertrace_journey_cleared_total", ""));
}

// An 8 MiB tmpfs mounted for the test, unmounted (lazily, so a crash leaves nothing busy) and
// removed on destruction.
class SmallFilesystem {
 public:
  SmallFilesystem() {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_durability_small_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") != 0) {
      error_ = std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~SmallFilesystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
  std::string error_;
};

TEST_F(DurabilityTest, DiskFullAnswers503AndLosesNothing) {
  const auto started = Clock::now();
  SmallFilesystem small;
  if (!small.mounted()) {
    GTEST_SKIP() << "cannot mount an 8 MiB tmpfs for the ingest log (" << small.error()
                 << "): run as root, or in a container with CAP_SYS_ADMIN";
  }
  // 5 MiB of filler leaves the log about 3 MiB; the budget (64 MiB) is far above the disk.
  const auto filler = small.dir() / "filler";
  {
    std::ofstream f(filler, std::ios::binary);
    const std::string mib(1 << 20, 'f');
    for (int i = 0; i < 5; ++i) f << mib;
  }
  // The upstream refuses until space is freed: the forwarder keeps every segment.
  UpstreamRecorder upstream;
  upstream.SetRefusing(true);
  ASSERT_TRUE(upstream.Start());
  GatewayProcess gw("durability_enospc");
  const auto flags = ConfigFlags(gw, upstream.url(), "", "",
                                 IngestLogConfig((small.dir() / "log").string(), "64MiB"));
  ASSERT_TRUE(gw.Start(flags)) << gw.Log();

  LoadClient client([&] { return gw.otlp_http_port(); });
  OrderLoad load("FULL", 1024);
  PostResult refusal;
  LoadRequest refused;
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline) {
    refused = load.Next(NowNanos());
    refusal = client.SendOnce(refused);
    if (refusal.status != 200) break;
  }
  const size_t acked_before = client.acknowledged_requests();
  ASSERT_EQ(refusal.status, 503) << "after " << acked_before << " requests: " << gw.Log();
  EXPECT_FALSE(refusal.retry_after.empty()) << "503 without Retry-After";
  EXPECT_GT(acked_before, 50u);
  // Still full: the next requests are refused the same way, and the gateway survives a SIGKILL
  // and restarts on the full disk.
  for (int i = 0; i < 5; ++i) {
    const PostResult r = client.SendOnce(refused);
    EXPECT_EQ(r.status, 503);
    EXPECT_FALSE(r.retry_after.empty());
  }
  std::string metrics = Metrics(gw);
  EXPECT_GT(LogMetric(metrics, "ordertrace_ingest_log_refused_total", "reason=\"disk_full\""), 0)
      << metrics;
  // Logged once for the episode, not once per refused request.
  const std::string first_log = gw.Log();
  size_t logged = 0;
  for (size_t at = 0; (at = first_log.find("ingest log I/O error", at)) != std::string::npos;
       ++at) {
    ++logged;
  }
  EXPECT_EQ(logged, 1u) << first_log;
  EXPECT_EQ(gw.Kill(), 128 + SIGKILL);
  ASSERT_TRUE(gw.Start(flags)) << "no restart on a full disk: " << gw.Log();
  // The refused appends' partial records were cut away when they failed: nothing torn on disk.
  EXPECT_NE(gw.Log().find("torn_records=0"), std::string::npos) << gw.Log();
  const PostResult after_restart = client.SendOnce(refused);
  EXPECT_TRUE(after_restart.status == 503 || after_restart.status == 200) << after_restart.status;

  // Space comes back (the filler goes, the upstream comes up): ingest resumes, and every
  // acknowledged span reaches the upstream and the journeys.
  std::filesystem::remove(filler);
  upstream.SetRefusing(false);
  const auto resume_deadline = Clock::now() + 60s;
  const auto give_up = [&] { return Clock::now() > resume_deadline; };
  EXPECT_TRUE(after_restart.status == 200 || client.SendUntilAcknowledged(refused, give_up, true));
  size_t resumed = 0;
  for (int i = 0; i < 100; ++i) {
    LoadRequest r = load.Next(NowNanos());
    if (client.SendUntilAcknowledged(r, give_up, true)) ++resumed;
  }
  EXPECT_EQ(resumed, 100u);
  const LoadRequest rest = load.Flush(NowNanos());
  if (!rest.body.empty()) client.SendUntilAcknowledged(rest, give_up);
  const std::set<std::string> acked = client.acknowledged();
  EXPECT_TRUE(WaitFor([&] { return upstream.Missing(acked).empty(); }, 30s))
      << upstream.Missing(acked).size() << " of " << acked.size()
      << " acknowledged spans never reached the upstream";
  EXPECT_TRUE(CaughtUp(gw, "journeys", 30s)) << Metrics(gw);
  std::string example;
  EXPECT_EQ(SpansMissingFromJourneys(gw.http_port(), load, acked, &example), 0u) << example;
  const auto statuses = client.statuses();
  for (const auto& [status, n] : statuses) {
    EXPECT_TRUE(status == 200 || status == 503) << n << " answers " << status;
  }
  const auto retry_afters = client.retry_afters();
  if (retry_afters.count(503) != 0) {
    for (const auto& v : retry_afters.at(503)) EXPECT_FALSE(v.empty());
  }
  metrics = Metrics(gw);
  EXPECT_EQ(LogMetric(metrics, "ordertrace_ingest_log_refused_total", "reason=\"io\""), 0);
  EXPECT_EQ(gw.Stop(), 0) << gw.Log();
  std::printf(
      "disk full: %zu requests acknowledged before the first 503 (Retry-After %s), %zu 503s in "
      "all, restarted on the full disk, %zu more acknowledged once space was freed, %zu spans "
      "upstream; total %.1f s\n",
      acked_before, refusal.retry_after.c_str(), statuses.count(503) ? statuses.at(503) : 0,
      resumed, upstream.distinct(), Seconds(started));
}

}  // namespace
}  // namespace ordertrace::durability
