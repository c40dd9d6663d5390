// RunCommand: runs a shell command for an integration test, capturing its stdout (stderr passes
// through to the test's output).  Header-only.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace ordertrace::testing_support {

struct CommandResult {
  int exit_code = -1;  // the command's exit status, 128 + signal when killed
  std::string out;     // its stdout
};

inline CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace ordertrace::testing_support
