// GatewayProcess: a real `ordertrace serve` child process for integration tests.
//
// Started on free ports (port 0) with its own data directory under the system temp dir; the
// bound ports are read from its "ordertrace gateway started" log line.  Stop() (and the
// destructor) sends SIGTERM, waits, then SIGKILLs, always by pid.  The data directory stays
// until the object is destroyed, so a test can restart a gateway on the same data.
//
// Header-only; needs ORDERTRACE_BIN (the binary's path) defined by the test target.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::testing_support {

class GatewayProcess {
 public:
  // `name` names the temp directory (unique per process and object).
  explicit GatewayProcess(const std::string& name) {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_" + name + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~GatewayProcess() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // Starts `ordertrace serve` with free ports, --data <dir>/data and `extra` flags; waits (up
  // to 10 s) for the started line.  Each start writes a new log file (log(), logs().back()).
  bool Start(const std::vector<std::string>& extra = {}) {
    Stop();
    log_ = dir_ / ("gateway-" + std::to_string(starts_++) + ".log");
    std::vector<std::string> args{
        ORDERTRACE_BIN, "serve",  "--otlp-grpc", "127.0.0.1:0", "--otlp-http",
        "127.0.0.1:0",  "--http", http_address_, "--data",      data_dir().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log_path = log_.string();  // no allocation between fork and exec
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(ORDERTRACE_BIN, argv.data());
      ::_exit(127);
    }
    const std::regex started(R"(ordertrace gateway started.* otlp_grpc=127\.0\.0\.1:(\d+) )"
                             R"(otlp_http=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 500; ++i) {
      std::smatch m;
      const std::string text = Log();
      if (std::regex_search(text, m, started)) {
        otlp_grpc_port_ = static_cast<uint16_t>(std::stoi(m[1]));
        otlp_http_port_ = static_cast<uint16_t>(std::stoi(m[2]));
        http_port_ = static_cast<uint16_t>(std::stoi(m[3]));
        return true;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited during start-up
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // SIGTERM, up to 10 s for the drain, then SIGKILL.  Returns the exit status (or -1).
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return 128 + SIGKILL;
  }

  // SIGKILL and reap: the crash case (nothing flushed, no drain).  Returns the exit status
  // (128 + 9), or -1 when nothing ran.
  int Kill() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // The API listener's address for the next Start() (default 127.0.0.1:0), for a test whose
  // configuration must name the port before the start (a sign-in redirect URI).
  void set_http_address(std::string address) { http_address_ = std::move(address); }

  void Signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // Waits until the current log contains `text` (up to `timeout`).
  bool WaitForLog(const std::string& text,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) const {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (Log().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }
  uint16_t otlp_grpc_port() const { return otlp_grpc_port_; }
  uint16_t otlp_http_port() const { return otlp_http_port_; }
  uint16_t http_port() const { return http_port_; }
  std::string api_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::filesystem::path log_;
  int starts_ = 0;
  std::string http_address_ = "127.0.0.1:0";
  pid_t pid_ = -1;
  uint16_t otlp_grpc_port_ = 0, otlp_http_port_ = 0, http_port_ = 0;
};

}  // namespace ordertrace::testing_support
