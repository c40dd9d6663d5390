// A private RabbitMQ broker for tests: Debian's rabbitmq-server run as its own node (unique
// name, free loopback ports, its own epmd, data and logs in one directory), started and stopped
// by process id, with the management plugin on (HTTP API on loopback, guest/guest).  An outage
// is StopServer() then StartServer(): the same node, ports and data, so durable queues and
// persistent messages survive it.  See /usr/lib/rabbitmq/bin/rabbitmq-server and
// tests/rabbitmq/README.md.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace ordertrace::testing {

// The server script run as root directly (the /usr/sbin wrapper switches user); the variable
// ORDERTRACE_RABBITMQ_SERVER overrides the path.
inline constexpr char kRabbitmqServer[] = "/usr/lib/rabbitmq/bin/rabbitmq-server";

struct Broker {
  bool available = false;
  std::string reason;  // why it is not available
  std::string host = "127.0.0.1";
  int port = 0;             // AMQP
  int management_port = 0;  // the management plugin's HTTP API: http://127.0.0.1:<port>/api
  int dist_port = 0;        // Erlang distribution
  int epmd_port = 0;        // the private epmd
  std::string node;
  std::string dir;
  pid_t pid = -1;       // the rabbitmq-server script, leader of its own process group
  pid_t epmd_pid = -1;  // the private epmd, its own process group too
};

// Starts a broker with everything under `dir` (emptied first) and waits until an AMQP login
// succeeds.  With `die_with_parent`, the broker and its epmd get SIGTERM when the calling thread
// exits (a crashed test leaves nothing behind).  When rabbitmq-server is not installed:
// available = false with the reason, nothing started.  When it fails to start: the same, with
// the end of its log in the reason, and everything started is stopped.
Broker StartBroker(const std::string& dir, bool die_with_parent,
                   std::chrono::seconds timeout = std::chrono::seconds(120));

// Stops only rabbitmq-server (SIGTERM to its process group, SIGKILL after `grace`); the private
// epmd, the data and the ports stay, for StartServer().  False when it outlived SIGKILL.
bool StopServer(Broker* broker, std::chrono::seconds grace = std::chrono::seconds(30));

// Starts rabbitmq-server again after StopServer(), with the same node name, ports and data
// directory (nothing is emptied), and waits until an AMQP login succeeds.  False (and the reason
// in broker->reason) when it does not come up within `timeout`.
bool StartServer(Broker* broker, bool die_with_parent,
                 std::chrono::seconds timeout = std::chrono::seconds(120));

// SIGTERM to the broker's process group (RabbitMQ stops gracefully), SIGKILL after `grace`;
// then the private epmd.  Returns false when something outlived SIGKILL.
bool StopBroker(Broker* broker, std::chrono::seconds grace = std::chrono::seconds(30));

// The broker as a key=value file, for a ctest fixture (start in one process, use and stop in
// others).
bool SaveBroker(const Broker& broker, const std::string& path);
bool LoadBroker(const std::string& path, Broker* broker);

// Whether a process of group `pgid` other than a zombie still exists.
bool ProcessGroupAlive(pid_t pgid);

}  // namespace ordertrace::testing
