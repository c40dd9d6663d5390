// A private Prometheus Alertmanager (Debian prometheus-alertmanager) and a local HTTP receiver
// for integration tests: Alertmanager on a free loopback port with its own storage and config
// and no clustering, stopped by pid; the receiver takes Alertmanager's webhook notifications (or
// the gateway's webhook sink) and keeps their JSON bodies.
//
// Header-only; the test links ot_receive and nlohmann_json.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"

namespace ordertrace::testing_support {

using nlohmann::json;

inline constexpr char kAlertmanagerBin[] = "/usr/bin/prometheus-alertmanager";

inline uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// A local HTTP receiver: Alertmanager's webhook receiver, the gateway's webhook sink, or an
// OTLP/HTTP upstream (any POST is answered 200 with an empty body).  Keeps every body as JSON
// (bodies()) and as received, with its path (raw_bodies()).
class Receiver {
 public:
  Receiver() {
    net::HttpServerOptions o;
    o.threads = 1;
    o.max_body_bytes = 64 << 20;
    server_ = std::make_unique<net::HttpServer>(o);
    server_->Route("POST", "/*", [this](net::HttpRequest& req, net::HttpResponse& res) {
      std::lock_guard lock(mu_);
      bodies_.push_back(json::parse(req.body, nullptr, false));
      raw_.emplace_back(req.path, req.body);
      res.status = 200;
    });
    started_ = server_->Start().ok();
  }
  ~Receiver() {
    if (started_) server_->Shutdown(std::chrono::milliseconds(1000));
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  std::vector<json> bodies() const {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  // The bodies POSTed to `path`, as received (after the server's gunzip), oldest first.
  std::vector<std::string> raw_bodies(const std::string& path) const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [p, body] : raw_) {
      if (p == path) out.push_back(body);
    }
    return out;
  }
  bool started() const { return started_; }

 private:
  mutable std::mutex mu_;
  std::vector<json> bodies_;
  std::vector<std::pair<std::string, std::string>> raw_;
  std::unique_ptr<net::HttpServer> server_;
  bool started_ = false;
};

// A private Alertmanager: free loopback port, own storage and config, no clustering; stopped
// by pid.  Its one receiver posts notifications (send_resolved) to `webhook_url`.
class Alertmanager {
 public:
  Alertmanager(const std::filesystem::path& dir, const std::string& webhook_url) : dir_(dir) {
    std::filesystem::create_directories(dir_ / "storage");
    std::ofstream(dir_ / "alertmanager.yml") << "route:\n"
                                                "  receiver: test\n"
                                                "  group_by: [alertname, order_id, stage]\n"
                                                "  group_wait: 100ms\n"
                                                "  group_interval: 1s\n"
                                                "  repeat_interval: 1h\n"
                                                "receivers:\n"
                                                "  - name: test\n"
                                                "    webhook_configs:\n"
                                                "      - url: "
                                             << webhook_url << "\n        send_resolved: true\n";
  }
  ~Alertmanager() { Stop(); }

  bool Start() {
    port_ = FreePort();
    const std::string log = (dir_ / "alertmanager.log").string();
    std::vector<std::string> args{
        kAlertmanagerBin, "--config.file=" + (dir_ / "alertmanager.yml").string(),
        "--web.listen-address=127.0.0.1:" + std::to_string(port_),
        "--storage.path=" + (dir_ / "storage").string(), "--cluster.listen-address="};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log.c_str(), "w");
      if (f != nullptr) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      ::execv(kAlertmanagerBin, argv.data());
      ::_exit(127);
    }
    return WaitFor(
        [&] {
          auto r = net::HttpGet(url(), "/-/ready", std::chrono::milliseconds(500));
          return r.ok() && r.value().status == 200;
        },
        std::chrono::milliseconds(15000));
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string Log() const {
    std::ifstream in(dir_ / "alertmanager.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // GET /api/v2/alerts (active, not resolved), filtered by label equality.
  json Alerts(const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
    auto r = net::HttpGet(url(), "/api/v2/alerts", std::chrono::milliseconds(5000));
    if (!r.ok() || r.value().status != 200) return json::array();
    json all = json::parse(r.value().body, nullptr, false);
    json out = json::array();
    if (!all.is_array()) return out;
    for (const auto& a : all) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        if (!a["labels"].contains(k) || a["labels"][k] != v) match = false;
      }
      if (match) out.push_back(a);
    }
    return out;
  }

 private:
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace ordertrace::testing_support
