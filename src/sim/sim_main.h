// The `ordertrace-sim` program, as a function so tests can run it in-process.
#pragma once

namespace ordertrace::sim {

// Parses args, runs the role(s) until SIGINT/SIGTERM (or the partner's orders are done), writes
// stats.  Returns the exit status (0, 1 runtime failure, 2 usage).
int SimMain(int argc, char** argv);

}  // namespace ordertrace::sim
