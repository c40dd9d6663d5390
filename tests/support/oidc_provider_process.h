// OidcProviderProcess: a real OpenID provider (npm oidc-provider 8.8.1, tests/oidc/provider.mjs)
// on a loopback port for integration tests, started and stopped by pid.  Its signing keys stay
// in the test's directory, so that restarting it with another key list (Restart({"k2", "k1"}))
// is a key rotation under the same issuer.  Tokens come from its token endpoint with the
// client-credentials grant; JwksRequests() counts the JWKS fetches it served (its log).
//
// Needs node and tests/oidc/node_modules (tests/oidc/setup); MissingPrerequisite() says what is
// missing.  Header-only; the test defines ORDERTRACE_SOURCE_DIR.
//
// Thread-safety: one owner thread.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "support/child_process.h"

namespace ordertrace::testing_support {

class OidcProviderProcess {
 public:
  static std::string SourceDir() { return std::string(ORDERTRACE_SOURCE_DIR) + "/tests/oidc"; }

  static std::string FindNode() {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin";
    size_t start = 0;
    while (start <= p.size()) {
      const size_t end = p.find(':', start);
      std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (dir.empty()) dir = ".";
      if (::access((dir + "/node").c_str(), X_OK) == 0) return dir + "/node";
      if (end == std::string::npos) break;
      start = end + 1;
    }
    return "";
  }

  // True when a missing prerequisite is a failure, not a skip (ORDERTRACE_REQUIRE_INTEROP=1, as
  // scripts/test sets it).
  static bool Required() {
    const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
    return required != nullptr && std::string(required) == "1";
  }

  // A new empty directory `name` under the system's temp dir, for one test's keys and logs.
  static std::filesystem::path FreshDir(const std::string& name) {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
  }

  // Why the provider cannot run here, or "" when it can.
  static std::string MissingPrerequisite() {
    if (FindNode().empty()) return "node is not on PATH; install nodejs and npm (scripts/setup)";
    if (!std::filesystem::exists(SourceDir() + "/node_modules/oidc-provider/package.json")) {
      return "tests/oidc/node_modules has no oidc-provider; run tests/oidc/setup (npm ci)";
    }
    return "";
  }

  // `dir` keeps the keys and logs (must exist).
  explicit OidcProviderProcess(std::filesystem::path dir) : dir_(std::move(dir)) {}
  ~OidcProviderProcess() { Stop(); }

  // Starts with `kids` (the first signs) and role `shape` (provider.mjs); the port stays the
  // same across restarts once chosen.  False when it did not print READY within 15 s.
  bool Start(const std::vector<std::string>& kids = {"k1"}, const std::string& shape = "entra") {
    Stop();
    std::string keys;
    for (const std::string& k : kids) keys += (keys.empty() ? "" : ",") + k;
    log_ = (dir_ / ("oidc-provider-" + std::to_string(starts_++) + ".log")).string();
    std::vector<std::string> argv = {"/usr/bin/env", "OIDC_PORT=" + std::to_string(port_),
                                     "OIDC_KEYS_DIR=" + (dir_ / "keys").string(),
                                     "OIDC_KEYS=" + keys, "OIDC_ROLE_SHAPE=" + shape};
    argv.insert(argv.end(), env_.begin(), env_.end());
    argv.push_back(FindNode());
    argv.push_back(SourceDir() + "/provider.mjs");
    if (!process_.Start(argv, log_)) return false;
    const std::regex ready(R"(READY (\d+))");
    for (int i = 0; i < 150; ++i) {
      std::smatch m;
      const std::string text = process_.Log();
      if (std::regex_search(text, m, ready)) {
        port_ = static_cast<uint16_t>(std::stoi(m[1]));
        return true;
      }
      if (!process_.running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void Stop() { process_.Stop(std::chrono::milliseconds(5000)); }

  // More environment ("NAME=value", provider.mjs) for the next Start(): the browser sign-in
  // client's OIDC_UI_REDIRECT, OIDC_UI_SECRET, ...
  void set_env(std::vector<std::string> env) { env_ = std::move(env); }

  // The issuer; valid after the first Start() (the port is kept for restarts).
  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Reserves the port before the first start (a gateway configured before the IdP runs).
  void set_port(uint16_t port) { port_ = port; }
  uint16_t port() const { return port_; }

  // An access token for `client` (svc-dev, svc-devops, svc-sales, svc-none, other-app), or ""
  // with the reason in *error.
  std::string Token(const std::string& client, std::string* error = nullptr) const {
    net::HttpOptions o;
    o.timeout = std::chrono::milliseconds(5000);
    o.headers = {{"Authorization", net::BasicAuthorization(client, "secret")},
                 {"Content-Type", "application/x-www-form-urlencoded"}};
    auto reply = net::HttpPost(issuer() + "/token", "grant_type=client_credentials", o);
    if (!reply.ok() || reply->status != 200) {
      if (error) *error = reply.ok() ? reply->body : reply.status().message();
      return "";
    }
    auto j = nlohmann::json::parse(reply->body, nullptr, false);
    return j.is_object() && j.contains("access_token") ? j["access_token"].get<std::string>() : "";
  }

  // JWKS requests served since this start.
  int JwksRequests() const {
    const std::string text = process_.Log();
    int n = 0;
    for (size_t at = text.find("JWKS_REQUEST"); at != std::string::npos;
         at = text.find("JWKS_REQUEST", at + 1)) {
      ++n;
    }
    return n;
  }
  std::string Log() const { return process_.Log(); }

 private:
  std::filesystem::path dir_;
  ChildProcess process_;
  std::string log_;
  std::vector<std::string> env_;
  uint16_t port_ = 0;
  int starts_ = 0;
};

}  // namespace ordertrace::testing_support
