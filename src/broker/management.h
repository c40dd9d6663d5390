// RabbitMQ's management API (the rabbitmq_management plugin), read-only: what the gateway
// polls to know whether the broker is up and what its queues hold.
//
//   GET {url}/api/overview           node, cluster name, versions
//   GET {url}/api/queues/{vhost}     per queue: ready, unacknowledged, consumers, message rates
//   GET {url}/api/exchanges/{vhost}  names and types (direct, topic, fanout, headers)
//   GET {url}/api/bindings/{vhost}   source exchange -> queue or exchange, with the routing key
//
// Every request carries HTTP Basic auth and is bounded by a timeout and a body size.  The
// responses are parsed defensively: a missing field keeps its zero value, a field of the wrong
// type or a body that is not the expected JSON is an error naming the endpoint and the problem;
// nothing the broker (or something pretending to be it) sends can crash the gateway.
//
// Thread-safety: the parsers are pure functions; a ManagementClient is immutable after
// construction and Fetch() may run on any thread (each call opens its own connections).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::broker {

using Nanos = int64_t;  // Unix time in nanoseconds

struct Overview {
  std::string node;  // the node that answered, e.g. rabbit@host
  std::string cluster_name;
  std::string rabbitmq_version;
  std::string management_version;
  std::string erlang_version;
};

struct QueueState {
  std::string vhost;
  std::string name;
  uint64_t ready = 0;    // messages_ready: waiting for a consumer
  uint64_t unacked = 0;  // messages_unacknowledged: delivered, not acknowledged yet
  uint64_t consumers = 0;
  // Messages per second over the management plugin's last sample (message_stats.*_details.rate);
  // 0 when the broker has no stats for the queue yet.
  double publish_rate = 0;
  double deliver_rate = 0;  // deliver_get: deliveries and basic.get
  double ack_rate = 0;
  // False when the response had no message counts for the queue: RabbitMQ reports a queue
  // before its statistics (just declared, or just after a restart), and 0 would be a lie.
  bool counted = true;
};

struct ExchangeInfo {
  std::string vhost;
  std::string name;  // "" is the default exchange
  std::string type;  // direct | topic | fanout | headers | (a plugin's type)
  // arguments."alternate-exchange": where messages nothing matches go ("" none).  One set by a
  // policy is not seen.
  std::string alternate_exchange{};
};

struct BindingInfo {
  std::string vhost;
  std::string source;            // exchange ("" the default exchange)
  std::string destination;       // queue or exchange name
  std::string destination_type;  // "queue" | "exchange"
  std::string routing_key;       // binding key (a pattern on topic exchanges)
};

// One successful poll.
struct Snapshot {
  Nanos at_ns = 0;
  Overview overview;
  std::vector<QueueState> queues;  // sorted by name
  std::vector<ExchangeInfo> exchanges;
  std::vector<BindingInfo> bindings;

  const QueueState* FindQueue(std::string_view name) const;
  const ExchangeInfo* FindExchange(std::string_view name) const;
};

// The parsers: `endpoint` ("/api/queues") only names the source in error messages.
Status ParseOverview(std::string_view body, Overview* out);
Status ParseQueues(std::string_view body, std::vector<QueueState>* out);
Status ParseExchanges(std::string_view body, std::vector<ExchangeInfo>* out);
Status ParseBindings(std::string_view body, std::vector<BindingInfo>* out);

struct ManagementOptions {
  std::string url;  // http://HOST:PORT[/prefix], the management plugin's base URL
  std::string user = "guest";
  std::string password = "guest";  // never logged
  std::string vhost = "/";
  std::chrono::milliseconds timeout{5000};  // per request
  uint64_t max_body_bytes = uint64_t{32} << 20;
};

class ManagementClient {
 public:
  explicit ManagementClient(ManagementOptions options);

  // The four requests above, in order; the first failure is returned: Unavailable with
  // "connection refused", "timed out after 5000ms", "HTTP 401 Unauthorized: Login failed", or
  // InvalidArgument for a response that does not parse ("/api/queues: expected a JSON array").
  Result<Snapshot> Fetch(Nanos now) const;

  // HOST:PORT of the management URL (the BrokerUnreachable alert's `broker` label).
  const std::string& host_port() const { return host_port_; }
  const ManagementOptions& options() const { return options_; }

 private:
  Result<std::string> Get(const std::string& path) const;

  ManagementOptions options_;
  std::string base_;    // http://HOST:PORT
  std::string prefix_;  // a path prefix before /api ("" or "/rabbitmq")
  std::string host_port_;
  std::string vhost_encoded_;
  std::string authorization_;
};

}  // namespace ordertrace::broker
