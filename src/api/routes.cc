#include "api/routes.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdio>
#include <string>

namespace ordertrace::api {
namespace {

// Whether `authorization` is "Bearer <t>" (scheme case-insensitive) with SHA-256(t) equal to
// `sha256_hex`; the hashes are compared in constant time.
bool MetricsTokenMatches(std::string_view authorization, const std::string& sha256_hex) {
  const size_t space = authorization.find(' ');
  if (space != 6) return false;
  for (size_t i = 0; i < 6; ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != "bearer"[i]) return false;
  }
  std::string_view token = authorization.substr(7);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (token.empty() ||
      EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return false;
  }
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < len; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  return sha256_hex.size() == 2 * len && CRYPTO_memcmp(hex, sha256_hex.data(), 2 * len) == 0;
}

}  // namespace

const char* Readiness::Name(State s) {
  switch (s) {
    case State::kStarting:
      return "starting";
    case State::kReady:
      return "ready";
    case State::kDraining:
      return "draining";
  }
  return "unknown";
}

net::HttpHandler HealthzHandler() {
  return [](net::HttpRequest&, net::HttpResponse& res) {
    res.status = 200;
    res.body = "ok";
  };
}

net::HttpHandler ReadyzHandler(const Readiness* readiness) {
  return [readiness](net::HttpRequest&, net::HttpResponse& res) {
    const Readiness::State state = readiness->state();
    res.status = state == Readiness::State::kReady ? 200 : 503;
    res.body = Readiness::Name(state);
  };
}

net::HttpHandler MetricsHandler(const metrics::Registry* registry, std::string token_sha256) {
  return [registry, token_sha256](net::HttpRequest& req, net::HttpResponse& res) {
    if (!token_sha256.empty() && !MetricsTokenMatches(req.Header("authorization"), token_sha256)) {
      res.status = 401;
      res.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"ordertrace-metrics\"");
      res.body = "metrics need Authorization: Bearer <token> (auth.metrics_token_sha256)\n";
      return;
    }
    res.status = 200;
    res.content_type = kMetricsContentType;
    res.body = registry->Serialize();
  };
}

void RegisterRoutes(net::HttpServer& server, const Readiness& readiness,
                    const metrics::Registry& registry, std::string metrics_token_sha256, bool ui) {
  server.Route("GET", "/healthz", HealthzHandler());
  server.Route("GET", "/readyz", ReadyzHandler(&readiness));
  server.Route("GET", "/metrics", MetricsHandler(&registry, std::move(metrics_token_sha256)));
  server.Route("GET", "/", [ui](net::HttpRequest&, net::HttpResponse& res) {
    res.body = "ordertrace gateway\n";
    if (ui) res.body += "  GET /ui/      the web UI (stuck orders board: /ui/stuck)\n";
    res.body +=
        "  GET /healthz  liveness\n"
        "  GET /readyz   readiness (503 while starting or draining)\n"
        "  GET /metrics  Prometheus metrics\n";
  });
}

}  // namespace ordertrace::api
