// rabbitmq_broker start|stop DIR: the ctest fixture around the RabbitMQ tests (see
// tests/CMakeLists.txt).  `start` runs a private broker (broker.h) and writes DIR/state, which
// the tests read (ORDERTRACE_RABBITMQ_STATE); `stop` stops it by process id.
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
  if (argc != 3 || (std::strcmp(argv[1], "start") != 0 && std::strcmp(argv[1], "stop") != 0)) {
    std::fprintf(stderr, "usage: %s start|stop DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[2];
  const std::string state = dir + ".state";  // beside DIR: start empties DIR
  Broker old;
  const bool had = ordertrace::testing::LoadBroker(state, &old);
  const pid_t old_pid = old.pid;
  if (had && (old.pid > 0 || old.epmd_pid > 0)) {
    // A broker left by an interrupted run: stop it first (by its recorded ids).
    if (ordertrace::testing::StopBroker(&old))
      std::printf("stopped the broker (pid %d)\n", static_cast<int>(old_pid));
    unlink(state.c_str());
  }
  if (std::strcmp(argv[1], "stop") == 0) {
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
    std::printf("rabbitmq-server %s on 127.0.0.1:%d (pid %d, epmd pid %d), data in %s\n",
                b.node.c_str(), b.port, static_cast<int>(b.pid), static_cast<int>(b.epmd_pid),
                dir.c_str());
    return 0;
  }
  std::printf("RabbitMQ not available: %s\n", b.reason.c_str());
  return b.reason.find("not found") != std::string::npos ? 0 : 1;
}
