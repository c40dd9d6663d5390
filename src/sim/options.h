// ordertrace-sim's configuration: command-line flags, fault specs, pacing derived from the
// lifecycle rules, order ids and the seeded randomness every role shares (docs/sim.md).
//
// Everything here is pure (no I/O but LoadRules in ParseArgs), so the unit tests cover it.
//
// Thread-safety: immutable values after parsing.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "journey/rules/rules.h"

namespace ordertrace::sim {

using Micros = std::chrono::microseconds;
// The roles' clock: timers, pacing, backoff and drain deadlines.
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Topology (fixed names: the end-to-end tests and the gateway's diagnoses name them).

inline constexpr char kExchange[] = "orders";
struct QueueDef {
  const char* queue;
  const char* routing_key;
  const char* consumer;  // the role that consumes it
};
inline constexpr std::array<QueueDef, 5> kQueues = {{
    {"crm.orders", "order.submit", "crm"},
    {"mes.calculate", "price.calculate", "mes"},
    {"crm.prices", "price.calculated", "crm"},
    {"mes.manufacturing", "manufacturing.start", "mes"},
    {"crm.shipments", "order.shipped", "crm"},
}};
// What lost-to-mes publishes to: bound to no queue, so RabbitMQ drops it (confirmed).
inline constexpr char kUnroutedCalculateKey[] = "price.calculate.unrouted";

// ---------------------------------------------------------------------------------------------
// Faults

enum class FaultKind : uint8_t {
  kLostToMes,
  kCalcSilent,
  kCalcSlow,
  kCrmIgnoresPrice,
  kCrmStallsApproved,
  kMesSilent,
  kCrmNoClose,
  kConsumerGone,
  kSlowConsumer,
};
// The exact name used in --fault ("lost-to-mes", ...).
const char* FaultName(FaultKind kind) noexcept;
// consumer-gone and slow-consumer act on a queue for a while; the others on chosen orders.
bool IsQueueFault(FaultKind kind) noexcept;

struct FaultSpec {
  FaultKind kind = FaultKind::kLostToMes;
  std::string text;                  // as given, for messages and reports
  std::optional<double> rate;        // rate=R: each order with probability R (seeded hash)
  std::vector<std::string> orders;   // orders=ID|ID: these orders
  Micros after{0};                   // queue faults: starts this long after the role started
  std::optional<Micros> lift_after;  // for=D: lifted this long after it took effect
  std::string queue;                 // queue faults
  double per_second = 0;             // slow-consumer

  // Whether this (order) fault applies to `order_id`: listed, or selected by rate with
  // hash(seed, order id, fault name), so every process agrees without talking.
  bool Selects(uint64_t seed, std::string_view order_id) const;
};

// Parses NAME[:key=value]...; the error names the spec and the problem.
Result<FaultSpec> ParseFault(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Pacing: how long each healthy step takes, from the rules.

struct Pacing {
  // The rules' six stages in order: SUBMITTED, PRICE_CALCULATED, APPROVED,
  // MANUFACTURING_STARTED, SHIPPED, CLOSED (whatever they are called).
  std::array<std::string, 6> stages;
  // pace x the rule's deadline / time scale (0 when the rule has none: the step is immediate).
  Micros calculate{0};              // SUBMITTED.within: the MES's price calculation
  Micros calculate_heartbeat{0};    // SUBMITTED.heartbeat (0: no heartbeats)
  Micros calculate_deadline{0};     // SUBMITTED.within / time scale (calc-slow takes 2x this)
  Micros approve{0};                // PRICE_CALCULATED.within: the CRM approves
  Micros manufacture{0};            // MANUFACTURING_STARTED.within: until shipped
  Micros manufacture_heartbeat{0};  // MANUFACTURING_STARTED.heartbeat
  Micros close{0};                  // SHIPPED.within: the CRM closes
  // Per-step deadlines (unscaled by pace), to keep jittered steps inside them.
  Micros approve_deadline{0}, manufacture_deadline{0}, close_deadline{0};
};

// Fails (a message naming the rules' source) unless the rules have exactly six stages.
Result<Pacing> DerivePacing(const journey::Rules& rules, double pace, double time_scale);

// `base` with ±20% jitter from hash(seed, order id, step), kept below 95% of `deadline` when
// there is one, so a healthy order never misses it.
Micros Jittered(Micros base, Micros deadline, uint64_t seed, std::string_view order_id,
                std::string_view step);

// ---------------------------------------------------------------------------------------------
// Ids and hashing

// 64-bit hash of the parts (FNV-1a, then a splitmix64 finaliser).
uint64_t Hash(uint64_t seed, std::string_view a, std::string_view b = {});
// A uniform number in [0, 1) from Hash().
double Unit(uint64_t seed, std::string_view a, std::string_view b = {});
// prefix + 4 hex digits derived from the seed + '-' + the counter, 6 digits or more:
// OrderId("ORD-", 7, 42) == "ORD-xxxx-000042".
std::string OrderId(std::string_view prefix, uint64_t seed, uint64_t counter);

// ---------------------------------------------------------------------------------------------
// Command line

enum class Role : uint8_t { kPartner, kCrm, kMes, kAll };
const char* RoleName(Role role) noexcept;

struct AmqpUrl {
  std::string user = "guest", password = "guest", host = "127.0.0.1";
  int port = 5672;
  std::string vhost = "/";
  std::string text;  // as given, without the password (for logs)
};
Result<AmqpUrl> ParseAmqpUrl(std::string_view text);

struct Options {
  Role role = Role::kAll;
  AmqpUrl amqp;
  std::string otlp = "http://127.0.0.1:4318/v1/traces";
  std::string rules_file;  // "" built-in default
  journey::Rules rules;
  double pace = 0.3;
  double time_scale = 1;
  double rate = 2;
  std::optional<uint64_t> orders;
  std::optional<Micros> duration;
  uint64_t seed = 1;
  std::string order_prefix = "ORD-";
  std::vector<FaultSpec> faults;
  std::string report;
  bool quiet = false;
  int prefetch = 1000;
  Micros drain{std::chrono::seconds(10)};
  // --order-id-spans: `every` span of an order carries order.id (libordertrace's way), or only
  // the `entry` span (the partner's submit) and the heartbeats, the way services traced by
  // third-party instrumentation look: the gateway attributes the rest through trace context
  // (docs/attribution.md).
  bool order_id_on_every_span = true;
  Pacing pacing;
};

constexpr const char* kUsage =
    "usage: ordertrace-sim partner|crm|mes|all [--amqp URL] [--otlp URL] [--rules FILE]\n"
    "         [--pace F] [--time-scale K] [--rate R] [--orders N] [--duration D] [--seed S]\n"
    "         [--order-prefix P] [--fault SPEC]... [--report FILE] [--quiet] [--prefetch N]\n"
    "         [--drain D] [--order-id-spans every|entry]\n"
    "       ordertrace-sim scale-rules --time-scale K FILE   (the rules for the gateway)\n"
    "see docs/sim.md\n";

// Parses argv[1..] (without the program name); loads the rules file.  The error is the message
// to print (exit status 2).  "--help" gives a kNotFound status whose message is the usage.
Result<Options> ParseArgs(const std::vector<std::string>& args);

}  // namespace ordertrace::sim
