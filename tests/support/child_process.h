// ChildProcess: any program run by an integration test (ordertrace-sim roles, ...), with its
// stdout and stderr in a log file, stopped by pid: SIGTERM, a wait, then SIGKILL.  The child
// gets SIGTERM too when the test process dies (PR_SET_PDEATHSIG), so a crashed test leaves
// nothing running.  PR_SET_PDEATHSIG fires when the *thread* that forked ends, not only the
// process: call Start() from a thread that outlives the child (the test's main thread).
// Header-only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::testing_support {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (a path) with `argv`; false when fork fails.
  bool Start(const std::vector<std::string>& argv, const std::string& log_path) {
    Stop();
    log_ = log_path;
    std::vector<std::string> args = argv;
    std::vector<char*> a;
    for (std::string& s : args) a.push_back(s.data());
    a.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      // main() of the binaries under test may block signals; start them with none blocked.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(a[0], a.data());
      ::_exit(127);
    }
    exit_code_ = -1;
    return true;
  }

  // Waits up to `timeout` for the child to exit by itself; true (and exit_code()) when it did.
  bool Wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return true;
    const auto until = std::chrono::steady_clock::now() + timeout;
    do {
      if (Reap(WNOHANG)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  // SIGTERM, up to `grace` to exit, then SIGKILL.  Returns the exit code (128 + signal when
  // killed; -1 when nothing ran).
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(15000)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGTERM);
    if (!Wait(grace)) {
      ::kill(pid_, SIGKILL);
      Reap(0);
    }
    return exit_code_;
  }

  // SIGKILL and reap: the crash case.  Returns the exit code (128 + 9), -1 when nothing ran.
  int Kill() {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, SIGKILL);
    Reap(0);
    return exit_code_;
  }

  bool running() {
    if (pid_ > 0) Reap(WNOHANG);
    return pid_ > 0;
  }
  pid_t pid() const { return pid_; }
  int exit_code() const { return exit_code_; }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  bool Reap(int flags) {
    int status = 0;
    if (::waitpid(pid_, &status, flags) != pid_) return false;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
    return true;
  }

  std::string log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace ordertrace::testing_support
