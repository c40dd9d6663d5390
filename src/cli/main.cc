// `ordertrace`: the gateway (`serve`), a sample sender (`send`), the journey queries (`order`,
// `stuck`), ingest tokens (`token new`) and `version`.
//
// Exit codes: 0 success; 1 a runtime failure (a port in use, requests refused); 2 bad usage
// or a bad config file, with the problem on stderr; `order` 3 for an unknown order; `stuck` 4
// when orders are stuck.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/query.h"
#include "cli/send.h"
#include "cli/token.h"
#include "cli/watch.h"
#include "common/log.h"
#include "common/process_memory.h"
#include "common/values.h"
#include "config/config.h"
#include "gateway/gateway.h"

namespace ordertrace::cli {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// glibc's default is 8 arenas per core, one for each thread that allocates while the others
// hold theirs: the gateway's ~18 threads made 15, each keeping its own free memory.  Most
// threads allocate little; the receivers, the ingest worker and the journey writer do, and 4
// arenas leave them little to contend on (the ingest benchmark's figure is unchanged).
constexpr int kServeArenaMax = 4;

int Usage(const std::string& message) {
  std::fprintf(stderr, "ordertrace: %s\n", message.c_str());
  return kExitUsage;
}

struct ServeFlags {
  std::string config_file;
  config::Overrides overrides;
};

int Serve(const ServeFlags& flags) {
  config::Config config;
  if (!flags.config_file.empty()) {
    auto loaded = config::LoadConfig(flags.config_file);
    if (!loaded.ok()) return Usage(loaded.status().message());
    config = std::move(loaded.value());
  }
  if (Status s = config::ApplyOverrides(flags.overrides, &config); !s.ok()) {
    return Usage(s.message());
  }
  log::Init(config.log.level, config.log.format);  // validated with the config
  // Before any thread starts (docs/benchmarks.md, "Memory under sustained load").
  TuneMallocForServing(kServeArenaMax);
  gateway::Gateway gw(config);
  RegisterHeapMetrics(gw.registry(), [] { return static_cast<double>(sqlite3_memory_used()); });
  gateway::BlockTerminationSignals();  // the trimmer's thread must not take SIGTERM
  HeapTrimmer trimmer(HeapTrimmer::Options{}, &gw.registry());
  trimmer.Start();
  // SIGHUP reads the file (and the flags) again for the redaction keys (a key rotation).
  gw.SetConfigLoader([flags]() -> Result<config::Config> {
    config::Config fresh;
    if (!flags.config_file.empty()) {
      auto loaded = config::LoadConfig(flags.config_file);
      if (!loaded.ok()) return loaded.status();
      fresh = std::move(loaded).value();
    }
    if (Status s = config::ApplyOverrides(flags.overrides, &fresh); !s.ok()) return s;
    return fresh;
  });
  if (Status s = gw.Run(); !s.ok()) {
    log::Error("cannot start", {{"error", s.message()}});
    return kExitFailure;
  }
  return 0;
}

// Adds an option whose value lands in an std::optional only when the flag is given.
template <typename T>
CLI::Option* AddOptional(CLI::App* app, const std::string& name, std::optional<T>* target,
                         const std::string& help) {
  return app->add_option_function<T>(
      name, [target](const T& v) { *target = v; }, help);
}

// --token-file and --ca-file of the API commands (cli/api_access.h).
void AddApiAccessFlags(CLI::App* cmd, ApiAccess* access) {
  cmd->add_option("--token-file", access->token_file,
                  "Send the bearer token on this file's first line (default: the environment "
                  "variable ORDERTRACE_TOKEN)");
  cmd->add_option("--ca-file", access->ca_file,
                  "Trust the CAs in this PEM file for an https:// --api (default: "
                  "ORDERTRACE_CA_FILE, else the system's)");
}

}  // namespace

int Main(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask and the gateway can wait
  // for SIGINT/SIGTERM synchronously (gateway::Gateway::Run).
  gateway::BlockTerminationSignals();

  CLI::App app{"ordertrace: OTLP gateway that turns spans into order journeys", "ordertrace"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  ServeFlags serve;
  auto* serve_cmd = app.add_subcommand("serve", "Run the gateway (OTLP/gRPC, OTLP/HTTP, API)");
  serve_cmd->add_option("--config", serve.config_file, "YAML config file (docs/configuration.md)");
  AddOptional(serve_cmd, "--otlp-grpc", &serve.overrides.otlp_grpc,
              "OTLP/gRPC listen address HOST:PORT (default 127.0.0.1:4317)");
  AddOptional(serve_cmd, "--otlp-http", &serve.overrides.otlp_http,
              "OTLP/HTTP listen address HOST:PORT (default 127.0.0.1:4318)");
  AddOptional(serve_cmd, "--http", &serve.overrides.http,
              "API, /healthz, /readyz, /metrics listen address HOST:PORT (default 127.0.0.1:8080)");
  AddOptional(serve_cmd, "--data", &serve.overrides.data_dir, "Data directory (default ./data)");
  AddOptional(serve_cmd, "--upstream", &serve.overrides.upstream,
              "Forward spans to this OTLP upstream (Jaeger): grpc://HOST:PORT, grpcs://HOST:PORT "
              "or http(s)://HOST:PORT/v1/traces (default: off)");
  AddOptional(serve_cmd, "--rules", &serve.overrides.rules,
              "Lifecycle rules file (docs/rules.md; default: the built-in lifecycle, as in "
              "config/rules.example.yaml); SIGHUP reloads it");
  AddOptional(serve_cmd, "--rabbitmq-management", &serve.overrides.rabbitmq_management,
              "Poll this RabbitMQ management API, http://HOST:PORT (docs/broker.md; \"\": off); "
              "replaces broker.management_url");
  AddOptional(serve_cmd, "--oidc-issuer", &serve.overrides.oidc_issuer,
              "Require OIDC bearer tokens from this issuer on the API (https://...; "
              "auth.oidc.issuer, docs/security.md); needs --oidc-audience");
  AddOptional(serve_cmd, "--oidc-audience", &serve.overrides.oidc_audience,
              "The audience API tokens must carry (auth.oidc.audience)");
  AddOptional(serve_cmd, "--jaeger-ui", &serve.overrides.jaeger_ui,
              "Jaeger UI base URL for trace links (default http://localhost:16686)");
  AddOptional(serve_cmd, "--ui-dir", &serve.overrides.ui_dir,
              "Serve the web UI from this directory (the output of ui/build; config ui.dir) "
              "instead of the one compiled in");
  serve_cmd
      ->add_option("--alertmanager", serve.overrides.alertmanager,
                   "Send alerts to this Alertmanager (http(s)://HOST:PORT); repeat for an HA "
                   "pair; replaces alerting.alertmanager (docs/alerting.md)")
      ->allow_extra_args(false)
      ->take_all();
  AddOptional(serve_cmd, "--log-level", &serve.overrides.log_level,
              "debug, info, warn or error (default info)");
  AddOptional(serve_cmd, "--log-format", &serve.overrides.log_format,
              "logfmt or json (default logfmt)");
  serve_cmd->add_flag_callback(
      "--log-spans", [&serve] { serve.overrides.log_spans = true; },
      "Log one line per span (besides one per batch)");

  SendOptions send;
  std::string duration_text;
  std::optional<int> orders;
  std::optional<uint64_t> seed;
  auto* send_cmd =
      app.add_subcommand("send", "Send sample order traces to a gateway over OTLP/HTTP (protobuf)");
  send_cmd->add_option("--endpoint", send.endpoint, "OTLP/HTTP traces URL")->capture_default_str();
  AddOptional(send_cmd, "--orders", &orders,
              "Orders to send (default 20; unlimited with --duration)")
      ->check(CLI::PositiveNumber);
  send_cmd->add_option("--rate", send.rate, "Orders started per second")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 10000.0));
  send_cmd->add_option("--duration", duration_text,
                       "Keep starting orders this long, e.g. 10s or 2m; orders in flight then "
                       "finish");
  AddOptional(send_cmd, "--seed", &seed, "Random seed, for the same traffic again");
  send_cmd->add_flag("--gzip", send.gzip, "Compress request bodies (Content-Encoding: gzip)");
  send_cmd->add_flag("--quiet,-q", send.quiet, "Only the summary, no progress lines");

  QueryOptions query;
  std::string order_id;
  auto* order_cmd = app.add_subcommand(
      "order", "Show an order's journey and, when it is stuck, where it stopped (exit 3: unknown)");
  order_cmd->add_option("ID", order_id, "The order id")->required();
  bool order_jaeger = false;
  order_cmd->add_flag("--jaeger", order_jaeger,
                      "Also read the order's traces back from Jaeger (spans per trace; needs "
                      "jaeger.query_url on the gateway and the action traces.read)");
  StuckOptions stuck;
  auto* stuck_cmd = app.add_subcommand(
      "stuck", "List stuck orders with their diagnosis (exit 4 when there are any)");
  stuck_cmd->add_option("--stage", stuck.stage, "Only orders stuck in this stage");
  stuck_cmd->add_option("--service", stuck.service,
                        "Only orders waiting for (or last seen at) this service");
  stuck_cmd->add_option("--partner", stuck.partner,
                        "Only this partner's orders: its pseudonym (pse:...), or its clear id "
                        "(sent in a request body; DevOps only by default)");
  stuck_cmd->add_option("--limit", stuck.limit, "At most this many orders")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  for (CLI::App* cmd : {order_cmd, stuck_cmd}) {
    cmd->add_option("--api", query.api, "The gateway's API (its --http listener)")
        ->capture_default_str();
    cmd->add_flag("--json", query.json, "Print the API's JSON");
    AddApiAccessFlags(cmd, &query.access);
  }

  WatchOptions watch;
  std::string watch_interval = "1s";
  auto* watch_cmd = app.add_subcommand(
      "watch", "Live view of a gateway: orders per stage, RabbitMQ, stuck orders (Ctrl-C stops)");
  watch_cmd->add_option("--api", watch.api, "The gateway's API (its --http listener)")
      ->capture_default_str();
  watch_cmd->add_option("--interval", watch_interval, "Redraw every, e.g. 1s or 500ms")
      ->capture_default_str();
  watch_cmd->add_option("--limit", watch.limit, "Stuck orders listed")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  watch_cmd->add_flag("--once", watch.once,
                      "Print one frame and exit (1 when the gateway cannot be asked)");
  watch_cmd->add_option("--banner", watch.banner,
                        "A line shown above every frame (scripts/demo: where the board is)");
  AddApiAccessFlags(watch_cmd, &watch.access);

  auto* token_cmd = app.add_subcommand("token", "Ingest tokens (ingest.auth, docs/security.md)");
  token_cmd->require_subcommand(1);
  std::string token_name = "my-service";
  auto* token_new_cmd = token_cmd->add_subcommand(
      "new", "Print a new random ingest token and the sha256 line for the gateway's config");
  token_new_cmd->add_option("--name", token_name, "The service, for the config line")
      ->capture_default_str();

  auto* version_cmd = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ordertrace: %s\nRun 'ordertrace --help' for usage.\n", e.what());
    return kExitUsage;
  }

  if (version_cmd->parsed()) {
    std::printf("ordertrace %s\n", gateway::Version());
    return 0;
  }
  if (serve_cmd->parsed()) return Serve(serve);
  if (token_new_cmd->parsed()) {
    auto t = NewIngestToken();
    if (!t.ok()) {
      std::fprintf(stderr, "ordertrace: %s\n", t.status().message().c_str());
      return kExitFailure;
    }
    std::fputs(FormatIngestToken(*t, token_name).c_str(), stdout);
    return 0;
  }
  if (order_cmd->parsed()) return RunOrder(query, order_id, order_jaeger);
  if (stuck_cmd->parsed()) return RunStuck(query, stuck);
  if (watch_cmd->parsed()) {
    auto d = ParseDuration(watch_interval);
    if (!d.ok() || d->count() < 100) {
      return Usage("--interval: " +
                   (d.ok() ? std::string("at least 100ms") : d.status().message()));
    }
    watch.interval = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    return RunWatch(watch);
  }
  if (send_cmd->parsed()) {
    if (!duration_text.empty()) {
      auto d = ParseDuration(duration_text);
      if (!d.ok()) return Usage("--duration: " + d.status().message());
      send.duration = *d;
    }
    send.orders = orders;
    send.seed = seed;
    return RunSend(send);
  }
  return Usage("no command given; try 'ordertrace --help'");
}

}  // namespace ordertrace::cli

int main(int argc, char** argv) { return ordertrace::cli::Main(argc, argv); }
