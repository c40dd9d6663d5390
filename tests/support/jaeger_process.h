// A private Jaeger v2 (tools/jaeger/build: the Go module github.com/jaegertracing/jaeger v1.75.0)
// for integration tests: one of the shipped configs (deploy/jaeger/badger.yaml by default, or
// memory.yaml) with every listener on a free loopback port and its own data directory, stopped by
// pid (ChildProcess: SIGTERM, then SIGKILL; the child dies with the test).  Kill() and Start()
// again on the same data directory restart it on the same ports (Badger keeps what it wrote).
//
// The binary: $ORDERTRACE_JAEGER, else tools/jaeger/bin/jaeger in the source tree.  Without it
// JaegerBinary() is "" and the tests skip with the reason, or fail when ORDERTRACE_REQUIRE_JAEGER=1
// (scripts/test sets it after building Jaeger).
//
// Reading back: the query service's v1 HTTP API under base_path /jaeger (the API the Jaeger UI
// uses; at v1.75.0 only it searches by tag): Trace(id) and Search(service, tags).
//
// Header-only; the test defines ORDERTRACE_SOURCE_DIR and links ot_net and nlohmann_json.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/url.h"
#include "net/http_client.h"
#include "support/alertmanager_process.h"  // FreePort, WaitFor
#include "support/child_process.h"

namespace ordertrace::testing_support {

// The Jaeger binary to run, or "" when there is none.
inline std::string JaegerBinary() {
  const char* env = std::getenv("ORDERTRACE_JAEGER");
  std::string path = env != nullptr && *env != '\0'
                         ? std::string(env)
                         : std::string(ORDERTRACE_SOURCE_DIR) + "/tools/jaeger/bin/jaeger";
  return ::access(path.c_str(), X_OK) == 0 ? path : std::string();
}

inline bool JaegerRequired() {
  const char* r = std::getenv("ORDERTRACE_REQUIRE_JAEGER");
  return r != nullptr && std::string(r) == "1";
}

// Use at the top of a test: skips (or fails when required) without a Jaeger binary.
#define ORDERTRACE_REQUIRE_JAEGER_OR_SKIP()                                                  \
  do {                                                                                       \
    if (::ordertrace::testing_support::JaegerBinary().empty()) {                             \
      if (::ordertrace::testing_support::JaegerRequired())                                   \
        FAIL() << "no Jaeger binary (tools/jaeger/build) and ORDERTRACE_REQUIRE_JAEGER=1";   \
      GTEST_SKIP() << "no Jaeger binary: run tools/jaeger/build (or set ORDERTRACE_JAEGER)"; \
    }                                                                                        \
  } while (0)

class JaegerProcess {
 public:
  struct Options {
    std::string config = "badger.yaml";  // a file of deploy/jaeger/
    std::string ttl = "336h";            // Badger's ttl.spans
    // Extra --set overrides, e.g. "extensions.jaeger_storage.backends.main.memory.max_traces=10".
    std::vector<std::string> sets;
  };

  explicit JaegerProcess(std::filesystem::path dir) : JaegerProcess(std::move(dir), Options()) {}
  JaegerProcess(std::filesystem::path dir, Options options)
      : dir_(std::move(dir)), options_(std::move(options)) {
    std::filesystem::create_directories(dir_ / "data");
    otlp_grpc_ = FreePort();
    otlp_http_ = FreePort();
    health_ = FreePort();
    query_http_ = FreePort();
    query_grpc_ = FreePort();
  }
  ~JaegerProcess() { Stop(); }

  // Starts it and waits (up to 30 s) for its health check; false when it did not come up (the
  // log says why: Log()).  Call it from a thread that outlives the process (the test's main
  // thread): the child gets SIGTERM when the thread that started it ends (PR_SET_PDEATHSIG
  // follows the thread, not the process).
  bool Start() {
    const std::string bin = JaegerBinary();
    if (bin.empty()) return false;
    // The shipped configs take their listeners, data directory and TTL from the environment
    // (for scripts) or from --set (here: no setenv in a test process that runs threads).
    const std::string loop = "127.0.0.1:";
    std::vector<std::string> argv{
        bin, "--config", std::string(ORDERTRACE_SOURCE_DIR) + "/deploy/jaeger/" + options_.config};
    auto set = [&](const std::string& key, const std::string& value) {
      argv.push_back("--set");
      argv.push_back(key + "=" + value);
    };
    set("receivers.otlp.protocols.grpc.endpoint", loop + std::to_string(otlp_grpc_));
    set("receivers.otlp.protocols.http.endpoint", loop + std::to_string(otlp_http_));
    set("extensions.healthcheckv2.http.endpoint", loop + std::to_string(health_));
    set("extensions.jaeger_query.http.endpoint", loop + std::to_string(query_http_));
    set("extensions.jaeger_query.grpc.endpoint", loop + std::to_string(query_grpc_));
    if (options_.config == "badger.yaml") {
      const std::string badger = "extensions.jaeger_storage.backends.main.badger.";
      set(badger + "directories.keys", (dir_ / "data" / "keys").string());
      set(badger + "directories.values", (dir_ / "data" / "values").string());
      set(badger + "ttl.spans", options_.ttl);
    }
    for (const std::string& s : options_.sets) {
      argv.push_back("--set");
      argv.push_back(s);
    }
    if (!process_.Start(argv, (dir_ / "jaeger.log").string())) return false;
    return WaitFor(
               [&] {
                 if (!process_.running()) return true;
                 auto r = net::HttpGet("http://" + loop + std::to_string(health_), "/status",
                                       std::chrono::milliseconds(500));
                 return r.ok() && r.value().status == 200;
               },
               std::chrono::milliseconds(30000)) &&
           process_.running();
  }
  // SIGTERM (a clean shutdown: Badger closes its files), then SIGKILL after 15 s.
  void Stop() { process_.Stop(); }
  // SIGKILL: the crash case.
  void Kill() { process_.Kill(); }
  bool running() { return process_.running(); }

  // Where the gateway forwards: OTLP/HTTP and OTLP/gRPC.
  std::string otlp_http_url() const {
    return "http://127.0.0.1:" + std::to_string(otlp_http_) + "/v1/traces";
  }
  std::string otlp_grpc_url() const { return "grpc://127.0.0.1:" + std::to_string(otlp_grpc_); }
  // The query service, base path included: http://127.0.0.1:PORT/jaeger
  std::string query_url() const {
    return "http://127.0.0.1:" + std::to_string(query_http_) + "/jaeger";
  }
  std::string query_origin() const { return "http://127.0.0.1:" + std::to_string(query_http_); }
  uint16_t query_port() const { return query_http_; }
  const std::filesystem::path& data_dir() const { return dir_; }

  // GET {query}/api/traces/{trace_id}: the v1 JSON ({"data":[{traceID, spans, processes}]}), or
  // null when the request failed; a trace Jaeger does not hold answers 404 ({"errors": ...}).
  // `raw`: without the query service's adjusters (which, among others, drop exact duplicate
  // spans), i.e. every span as stored.
  nlohmann::json Trace(const std::string& trace_id, int* status = nullptr, bool raw = false) const {
    return Get("/jaeger/api/traces/" + trace_id + (raw ? "?raw=true" : ""), status);
  }
  // GET {query}/api/traces?service=...&tags={json}&limit=...&start=&end=: the traces found with
  // a span in the last day (or up to a minute ahead).
  nlohmann::json Search(const std::string& service, const std::map<std::string, std::string>& tags,
                        int limit = 100) const {
    nlohmann::json t = nlohmann::json::object();
    for (const auto& [k, v] : tags) t[k] = v;
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string target = "/jaeger/api/traces?service=" + url::PercentEncode(service) +
                               "&tags=" + url::PercentEncode(t.dump()) +
                               "&limit=" + std::to_string(limit) +
                               "&start=" + std::to_string(now - int64_t{3600} * 24 * 1000000) +
                               "&end=" + std::to_string(now + int64_t{60} * 1000000);
    return Get(target, nullptr);
  }
  // Every span of every trace the v1 API returned in `answer`, flattened.
  static std::vector<nlohmann::json> Spans(const nlohmann::json& answer) {
    std::vector<nlohmann::json> out;
    if (!answer.is_object() || !answer["data"].is_array()) return out;
    for (const auto& t : answer["data"]) {
      if (!t["spans"].is_array()) continue;
      for (const auto& s : t["spans"]) out.push_back(s);
    }
    return out;
  }

  std::string Log() const {
    std::ifstream in(dir_ / "jaeger.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  nlohmann::json Get(const std::string& target, int* status) const {
    auto r = net::HttpGet(query_origin(), target, std::chrono::milliseconds(10000));
    if (!r.ok()) return nullptr;
    if (status != nullptr) *status = r.value().status;
    return nlohmann::json::parse(r.value().body, nullptr, false);
  }

  std::filesystem::path dir_;
  Options options_;
  uint16_t otlp_grpc_ = 0, otlp_http_ = 0, health_ = 0, query_http_ = 0, query_grpc_ = 0;
  ChildProcess process_;
};

}  // namespace ordertrace::testing_support
