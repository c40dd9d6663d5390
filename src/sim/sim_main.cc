// SimMain: the `ordertrace-sim` program (sim_main.h).
#include "sim/sim_main.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "sim/runtime/loop.h"
#include "sim/scale_rules.h"

namespace ordertrace::sim {
namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

void OnSignal(int) { g_stop.store(true); }

std::shared_ptr<TracerProvider> MakeProvider(const Options& options, Role role) {
  return std::make_shared<TracerProvider>(SimTracerOptions(options, RoleName(role)));
}

}  // namespace

// ordertrace-sim scale-rules --time-scale K FILE: the rules file for the gateway (scale_rules.h).
static int ScaleRulesMain(const std::vector<std::string>& args) {
  std::string file;
  double k = 0;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--time-scale" && i + 1 < args.size()) {
      char* end = nullptr;
      k = std::strtod(args[++i].c_str(), &end);
      if (end == args[i].c_str() || *end != '\0') k = -1;
    } else if (file.empty() && !args[i].starts_with("--")) {
      file = args[i];
    } else {
      file.clear();
      break;
    }
  }
  if (file.empty() || k == 0) {
    std::fputs(
        "usage: ordertrace-sim scale-rules --time-scale K FILE  (writes the scaled rules "
        "to stdout; see docs/sim.md)\n",
        stderr);
    return 2;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ordertrace-sim: cannot read %s: %s\n", file.c_str(),
                 std::strerror(errno));
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto scaled = ScaleRules(text.str(), file, k);
  if (!scaled.ok()) {
    std::fprintf(stderr, "ordertrace-sim: %s\n", scaled.status().message().c_str());
    return 2;
  }
  std::fputs(scaled->c_str(), stdout);
  return 0;
}

int SimMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "scale-rules") return ScaleRulesMain(args);
  auto parsed = ParseArgs(args);
  if (!parsed.ok()) {
    if (parsed.status().code() == StatusCode::kNotFound) {  // --help
      std::fputs(parsed.status().message().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "ordertrace-sim: %s\n", parsed.status().message().c_str());
    return 2;
  }
  const Options& o = *parsed;
  // The exporter's TLS files (OTEL_EXPORTER_OTLP_CERTIFICATE, ...) are checked now, so that a
  // wrong path is a usage error at start rather than spans silently dropped.
  if (std::string why = CheckExporterOptions(SimTracerOptions(o, "check").exporter); !why.empty()) {
    std::fprintf(stderr, "ordertrace-sim: OTLP exporter: %s\n", why.c_str());
    return 2;
  }
  ReportWriter report;
  if (!o.report.empty() && !report.Open(o.report)) {
    std::fprintf(stderr, "ordertrace-sim: --report %s: %s\n", o.report.c_str(),
                 std::strerror(errno));
    return 1;
  }
  ReportWriter* rep = o.report.empty() ? nullptr : &report;

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (!o.quiet)
    std::fprintf(stderr,
                 "ordertrace-sim %s: amqp %s, otlp %s, rules %s, pace %g, time scale %g, "
                 "seed %llu\n",
                 RoleName(o.role), o.amqp.text.c_str(), o.otlp.c_str(), o.rules.source.c_str(),
                 o.pace, o.time_scale, static_cast<unsigned long long>(o.seed));

  if (o.role != Role::kAll) {
    auto provider = MakeProvider(o, o.role);
    RoleRunner runner(o.role, o, *provider, rep);
    Stats s = runner.Run(g_stop);
    std::printf("%s\n", StatsJson(s).c_str());
    return 0;
  }

  // Every role in this process, one thread each, each with its own provider (service.name).
  const Role roles[] = {Role::kCrm, Role::kMes, Role::kPartner};
  std::vector<std::shared_ptr<TracerProvider>> providers;
  std::vector<std::unique_ptr<RoleRunner>> runners;
  std::vector<std::unique_ptr<std::atomic<bool>>> stops;
  std::vector<Stats> stats(3);
  std::vector<std::thread> threads;
  std::atomic<bool> partner_exited{false};
  for (size_t i = 0; i < 3; ++i) {
    providers.push_back(MakeProvider(o, roles[i]));
    runners.push_back(std::make_unique<RoleRunner>(roles[i], o, *providers[i], rep));
    stops.push_back(std::make_unique<std::atomic<bool>>(false));
  }
  for (size_t i = 0; i < 3; ++i)
    threads.emplace_back([&, i] {
      stats[i] = runners[i]->Run(*stops[i]);
      if (roles[i] == Role::kPartner) partner_exited.store(true);
    });
  // Stop on a signal, or when the partner is done and the CRM and MES have been idle.
  while (!g_stop.load()) {
    if (partner_exited.load() && runners[0]->idle() && runners[1]->idle()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& s : stops) s->store(true);
  for (auto& t : threads) t.join();
  for (const Stats& s : stats) std::printf("%s\n", StatsJson(s).c_str());
  return 0;
}

}  // namespace ordertrace::sim
