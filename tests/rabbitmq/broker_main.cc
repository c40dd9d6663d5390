// rabbitmq_broker start|stop|stop-server|start-server DIR: the ctest fixture around the RabbitMQ
// tests (see tests/CMakeLists.txt), also used by scripts/demo and bench/run sim.  `start` runs a
// private broker (broker.h, management plugin on) and writes DIR.state, which the tests read
// (ORDERTRACE_RABBITMQ_STATE); `stop` stops it by process id.  `stop-server` and `start-server`
// stop and restart only rabbitmq-server, keeping node, ports and data: a broker outage.
//
// Exit status: start → 0 when the broker runs, and also when rabbitmq-server is not installed
// (the state says why; the tests then skip, or fail under ORDERTRACE_REQUIRE_INTEROP=1); 1 when
// it is installed but did not start.  stop → 0 unless something outlived SIGKILL.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "rabbitmq/broker.h"

using ordertrace::testing::Broker;

int main(int argc, char** argv) {
  const std::string command = argc == 3 ? argv[1] : "";
  if (command != "start" && command != "stop" && command != "stop-server" &&
      command != "start-server") {
    std::fprintf(stderr, "usage: %s start|stop|stop-server|start-server DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[2];
  const std::string state = dir + ".state";  // beside DIR: start empties DIR
  Broker old;
  const bool had = ordertrace::testing::LoadBroker(state, &old);
  if (command == "stop-server" || command == "start-server") {
    if (!had || old.epmd_pid <= 0) {
      std::fprintf(stderr, "no broker recorded in %s: run `%s start %s` first\n", state.c_str(),
                   argv[0], dir.c_str());
      return 1;
    }
    bool ok = false;
    if (command == "stop-server") {
      ok = ordertrace::testing::StopServer(&old);
      if (ok) std::printf("rabbitmq-server %s stopped (data kept)\n", old.node.c_str());
    } else {
      ok = ordertrace::testing::StartServer(&old, /*die_with_parent=*/false);
      if (ok)
        std::printf("rabbitmq-server %s running again on 127.0.0.1:%d (pid %d)\n", old.node.c_str(),
                    old.port, static_cast<int>(old.pid));
      else
        std::fprintf(stderr, "rabbitmq-server did not restart: %s\n", old.reason.c_str());
    }
    if (!ordertrace::testing::SaveBroker(old, state)) {
      std::fprintf(stderr, "cannot write %s\n", state.c_str());
      return 1;
    }
    return ok ? 0 : 1;
  }
  const pid_t old_pid = old.pid;
  if (had && (old.pid > 0 || old.epmd_pid > 0)) {
    // A broker left by an interrupted run: stop it first (by its recorded ids).
    if (ordertrace::testing::StopBroker(&old))
      std::printf("stopped the broker (pid %d)\n", static_cast<int>(old_pid));
    unlink(state.c_str());
  }
  if (command == "stop") {
    if (!had) {
      std::printf("no broker state in %s\n", state.c_str());
      return 0;
    }
    return old_pid > 0 && ordertrace::testing::ProcessGroupAlive(old_pid) ? 1 : 0;
  }

  Broker b = ordertrace::testing::StartBroker(dir, /*die_with_parent=*/false);
  if (!ordertrace::testing::SaveBroker(b, state)) {
    std::fprintf(stderr, "cannot write %s\n", state.c_str());
    ordertrace::testing::StopBroker(&b);
    return 1;
  }
  if (b.available) {
    std::printf(
        "rabbitmq-server %s on 127.0.0.1:%d, management http://127.0.0.1:%d/ (pid %d, epmd pid "
        "%d), data in %s\n",
        b.node.c_str(), b.port, b.management_port, static_cast<int>(b.pid),
        static_cast<int>(b.epmd_pid), dir.c_str());
    return 0;
  }
  std::printf("RabbitMQ not available: %s\n", b.reason.c_str());
  return b.reason.find("not found") != std::string::npos ? 0 : 1;
}
