// A private RabbitMQ broker for tests (broker.h).
#include "rabbitmq/broker.h"

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace ordertrace::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Free loopback ports: bound to port 0 together (so they differ), then released.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      close(fd);
      break;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

// fork + exec in a new session, output to `log`.  -1 on failure.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& log, bool die_with_parent) {
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here.
  setsid();
  if (die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
  }
  int in = open("/dev/null", O_RDONLY);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in < 0 || out < 0) _exit(127);
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  close_range(3, ~0U, 0);
  execve(a[0], a.data(), e.data());
  _exit(127);
}

bool TryLogin(int port) {
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  timeval tv{2, 0};
  bool ok = false;
  if (sock != nullptr && amqp_socket_open_noblock(sock, "127.0.0.1", port, &tv) == AMQP_STATUS_OK) {
    amqp_rpc_reply_t r =
        amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    ok = r.reply_type == AMQP_RESPONSE_NORMAL;
    if (ok) amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn);
  return ok;
}

std::string Tail(const fs::path& file, size_t bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

void Reap(pid_t pid) {
  if (pid > 0) waitpid(pid, nullptr, WNOHANG);  // when it is our child; ECHILD otherwise
}

bool StopGroup(pid_t pgid, std::chrono::milliseconds grace) {
  if (pgid <= 0) return true;
  kill(-pgid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    Reap(pgid);
    if (!ProcessGroupAlive(pgid)) return true;
    std::this_thread::sleep_for(50ms);
  }
  kill(-pgid, SIGKILL);
  for (int i = 0; i < 100; ++i) {
    Reap(pgid);
    if (!ProcessGroupAlive(pgid)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace

bool ProcessGroupAlive(pid_t pgid) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    if (!std::getline(in, stat)) continue;
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0;
    if (!(rest >> state >> ppid >> pgrp)) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') return true;
  }
  return false;
}

namespace {

// The server's environment: everything under b.dir, the node name and ports of `b`.
std::vector<std::string> ServerEnv(const Broker& b) {
  const fs::path d(b.dir);
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  return {
      "PATH=" + path,
      "HOME=" + b.dir,  // the Erlang cookie
      "LANG=C.UTF-8",
      "LC_ALL=C.UTF-8",
      "ERL_EPMD_ADDRESS=127.0.0.1",
      "ERL_EPMD_PORT=" + std::to_string(b.epmd_port),
      "RABBITMQ_NODENAME=" + b.node,
      "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
      "RABBITMQ_NODE_PORT=" + std::to_string(b.port),
      "RABBITMQ_DIST_PORT=" + std::to_string(b.dist_port),
      "RABBITMQ_MNESIA_BASE=" + (d / "mnesia").string(),
      "RABBITMQ_LOG_BASE=" + (d / "log").string(),
      "RABBITMQ_CONFIG_FILE=" + (d / "rabbitmq.conf").string(),
      "RABBITMQ_ADVANCED_CONFIG_FILE=" + (d / "advanced.config").string(),
      "RABBITMQ_ENABLED_PLUGINS_FILE=" + (d / "enabled_plugins").string(),
      "RABBITMQ_CONF_ENV_FILE=" + (d / "rabbitmq-env.conf").string(),
      "RABBITMQ_PID_FILE=" + (d / "rabbitmq.pid").string(),
  };
}

std::string ServerPath() {
  const char* server_env = std::getenv("ORDERTRACE_RABBITMQ_SERVER");
  return server_env && *server_env ? server_env : kRabbitmqServer;
}

// Spawns rabbitmq-server for `b` and waits for an AMQP login; on failure stops it and says why.
bool RunServer(Broker* b, bool die_with_parent, std::chrono::seconds timeout) {
  const fs::path d(b->dir);
  const std::string console = (d / "console.log").string();
  b->pid = Spawn({ServerPath()}, ServerEnv(*b), console, die_with_parent);
  if (b->pid < 0) {
    b->reason = "cannot start rabbitmq-server";
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(b->pid, &status, WNOHANG) == b->pid) {  // exited early (we are its parent)
      b->pid = -1;
      break;
    }
    if (TryLogin(b->port)) {
      b->available = true;
      return true;
    }
    std::this_thread::sleep_for(250ms);
  }
  std::string why =
      b->pid < 0 ? "rabbitmq-server exited during start-up"
                 : "rabbitmq-server not ready within " + std::to_string(timeout.count()) + " s";
  StopGroup(b->pid, 30s);
  b->pid = -1;
  b->available = false;
  const std::string node_log = Tail(d / "log" / (b->node + ".log"), 1500);
  b->reason = why + " (" + b->dir + "); console: " + Tail(console, 1500) + "; log: " + node_log;
  return false;
}

}  // namespace

Broker StartBroker(const std::string& dir, bool die_with_parent, std::chrono::seconds timeout) {
  Broker b;
  b.dir = dir;
  const std::string server = ServerPath();
  if (access(server.c_str(), X_OK) != 0) {
    b.reason = server + " not found: install Debian's rabbitmq-server (scripts/setup does)";
    return b;
  }
  const char* epmd = access("/usr/bin/epmd", X_OK) == 0 ? "/usr/bin/epmd" : nullptr;
  if (epmd == nullptr) {
    b.reason = "/usr/bin/epmd not found (Erlang, a dependency of rabbitmq-server)";
    return b;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(fs::path(dir) / "log", ec);
  fs::create_directories(fs::path(dir) / "mnesia", ec);
  if (ec) {
    b.reason = "cannot create " + dir + ": " + ec.message();
    return b;
  }
  const std::vector<int> ports = FreePorts(4);
  if (ports.size() != 4) {
    b.reason = "no free loopback ports";
    return b;
  }
  b.port = ports[0];
  b.dist_port = ports[1];
  b.epmd_port = ports[2];
  b.management_port = ports[3];
  std::random_device rd;
  b.node =
      "ot-test-" + std::to_string(getpid()) + "-" + std::to_string(rd() % 100000) + "@localhost";
  const fs::path d(dir);
  {
    std::ofstream conf(d / "rabbitmq.conf");
    conf << "listeners.tcp.default = 127.0.0.1:" << b.port << "\n"
         << "loopback_users.guest = true\n"
         << "log.console = false\n"
         << "log.file.level = info\n"
         // The management API on loopback (the gateway's broker health polls it); its
         // statistics every second rather than every 5 s, so tests see queue depths quickly.
         << "management.tcp.ip = 127.0.0.1\n"
         << "management.tcp.port = " << b.management_port << "\n"
         << "collect_statistics_interval = 1000\n";
    std::ofstream plugins(d / "enabled_plugins");
    plugins << "[rabbitmq_management].\n";
    std::ofstream env(d / "rabbitmq-env.conf");
  }
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  b.epmd_pid = Spawn({epmd, "-address", "127.0.0.1", "-port", std::to_string(b.epmd_port)},
                     {"PATH=" + path, "HOME=" + dir}, (d / "epmd.log").string(), die_with_parent);
  if (b.epmd_pid < 0) {
    b.reason = "cannot start epmd";
    return b;
  }
  if (!RunServer(&b, die_with_parent, timeout)) {
    const std::string reason = b.reason;
    StopBroker(&b);
    b.reason = reason;
  }
  return b;
}

bool StopServer(Broker* b, std::chrono::seconds grace) {
  const bool ok = StopGroup(b->pid, grace);
  b->pid = -1;
  b->available = false;
  return ok;
}

bool StartServer(Broker* b, bool die_with_parent, std::chrono::seconds timeout) {
  if (b->pid > 0 && ProcessGroupAlive(b->pid)) {
    b->reason = "rabbitmq-server is already running (pid " + std::to_string(b->pid) + ")";
    return false;
  }
  if (b->node.empty() || b->port <= 0 || b->epmd_pid <= 0) {
    b->reason = "no broker to restart: start one with StartBroker first";
    return false;
  }
  return RunServer(b, die_with_parent, timeout);
}

bool StopBroker(Broker* b, std::chrono::seconds grace) {
  bool ok = StopGroup(b->pid, grace);
  ok = StopGroup(b->epmd_pid, 5s) && ok;
  b->pid = -1;
  b->epmd_pid = -1;
  b->available = false;
  return ok;
}

bool SaveBroker(const Broker& b, const std::string& path) {
  std::string reason = b.reason;  // one line
  for (char& c : reason)
    if (c == '\n' || c == '\r') c = ' ';
  std::ofstream out(path + ".tmp");
  out << "available=" << (b.available ? 1 : 0) << "\n"
      << "reason=" << reason << "\n"
      << "host=" << b.host << "\n"
      << "port=" << b.port << "\n"
      << "management_port=" << b.management_port << "\n"
      << "dist_port=" << b.dist_port << "\n"
      << "epmd_port=" << b.epmd_port << "\n"
      << "node=" << b.node << "\n"
      << "dir=" << b.dir << "\n"
      << "pid=" << b.pid << "\n"
      << "epmd_pid=" << b.epmd_pid << "\n";
  out.close();
  if (!out) return false;
  std::error_code ec;
  fs::rename(path + ".tmp", path, ec);
  return !ec;
}

bool LoadBroker(const std::string& path, Broker* b) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "available") b->available = v == "1";
    if (k == "reason") b->reason = v;
    if (k == "host") b->host = v;
    if (k == "port") b->port = std::atoi(v.c_str());
    if (k == "management_port") b->management_port = std::atoi(v.c_str());
    if (k == "dist_port") b->dist_port = std::atoi(v.c_str());
    if (k == "epmd_port") b->epmd_port = std::atoi(v.c_str());
    if (k == "node") b->node = v;
    if (k == "dir") b->dir = v;
    if (k == "pid") b->pid = static_cast<pid_t>(std::atol(v.c_str()));
    if (k == "epmd_pid") b->epmd_pid = static_cast<pid_t>(std::atol(v.c_str()));
  }
  return true;
}

}  // namespace ordertrace::testing
