// API latency added by a cached bearer-token check (docs/benchmarks.md, "API sign-in"): the
// same guarded route (GET /api/v1/broker, a fixed body) served by the gateway's HttpServer on
// one thread, as the API listener runs, asked over one keep-alive connection with
//   - AllowAll (no sign-in: the baseline),
//   - an RS256 access token (RSA 2048) checked by the BearerAuthorizer against a cached JWKS,
//   - an ES256 access token (P-256), the same way;
// and, apart, the cost of JwtVerifier::Verify alone.  Prints p50/p99 per case in µs and the
// added p99, then one JSON line.
//
//   ordertrace-bench-auth [--requests N]   (default 20000 per case)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "api/bearer_authorizer.h"
#include "api/journey_api.h"
#include "common/log.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "support/jwt_mint.h"

namespace {

using namespace ordertrace;
using nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr char kIssuer[] = "https://idp.example/realms/corp";
constexpr char kAudience[] = "urn:ordertrace:api";

struct Percentiles {
  double p50 = 0, p99 = 0;
};

Percentiles Of(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  Percentiles p;
  p.p50 = us[us.size() / 2];
  p.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  return p;
}

// Latencies (µs) of `n` GETs over one keep-alive connection to a server guarded by `auth`.
std::vector<double> ServeAndMeasure(const api::Authorizer& auth, const std::string& token, int n) {
  api::ApiGuard guard(auth);
  net::HttpServerOptions o;
  o.threads = 1;  // as the API listener
  net::HttpServer server(o);
  api::RegisterBrokerRoute(server, guard, [] { return std::string(R"({"broker":"bench"})"); });
  if (!server.Start().ok()) return {};
  auto url = net::ParseUrl("http://127.0.0.1:" + std::to_string(server.port()));
  net::HttpConnection connection(*url);
  net::HeaderList headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n + n / 10; ++i) {  // the first tenth warms up
    const auto t0 = Steady::now();
    auto out =
        connection.Send("GET", "/api/v1/broker", "", headers, std::chrono::seconds(5), 1 << 20);
    const double d = std::chrono::duration<double, std::micro>(Steady::now() - t0).count();
    if (!out.ok() || out.reply.status != 200) {
      std::fprintf(stderr, "request failed: %d\n", out.ok() ? out.reply.status : -1);
      return {};
    }
    if (i >= n / 10) us.push_back(d);
  }
  server.Shutdown();
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--requests") == 0) n = std::max(100, std::atoi(argv[i + 1]));
  }
  (void)ordertrace::log::Init(
      "warn", ordertrace::log::Format::kLogfmt);  // the servers' start/stop lines are noise here
  const testing_support::TestKey rsa = testing_support::TestKey::Rsa(2048);
  const testing_support::TestKey ec = testing_support::TestKey::EcP256();
  auto set = auth::KeySet::Parse(json{{"keys", {rsa.Jwk("rsa-1"), ec.Jwk("ec-1")}}}.dump());
  auth::StaticKeySource keys(std::make_shared<const auth::KeySet>(std::move(set).value()));
  const SystemClock clock;
  const int64_t now = clock.Now() / 1'000'000'000;
  const json claims = {{"iss", kIssuer},      {"aud", kAudience},
                       {"sub", "bench"},      {"exp", now + 3600},
                       {"iat", now},          {"client_id", "svc-bench"},
                       {"roles", {"DevOps"}}, {"jti", "0123456789abcdef"}};
  const std::string rs256 = testing_support::MintJwt(
      json{{"alg", "RS256"}, {"typ", "at+jwt"}, {"kid", "rsa-1"}}, claims, rsa);
  const std::string es256 = testing_support::MintJwt(
      json{{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", "ec-1"}}, claims, ec);

  auth::JwtVerifierOptions vo;
  vo.issuer = kIssuer;
  vo.audience = kAudience;
  auto verifier = auth::JwtVerifier::Create(vo);
  auto roles = auth::RoleMapper::Create({});
  api::BearerAuthorizer bearer(verifier.value(), roles.value(), keys, clock);
  api::AllowAll allow;

  // Verify() alone.
  auto verify_only = [&](const std::string& token) {
    std::vector<double> us;
    for (int i = 0; i < n; ++i) {
      const auto t0 = Steady::now();
      auto r = verifier->Verify(token, *keys.Keys(), clock.Now());
      us.push_back(std::chrono::duration<double, std::micro>(Steady::now() - t0).count());
      if (!r.ok()) std::fprintf(stderr, "verify failed: %s\n", r.reason.c_str());
    }
    return Of(us);
  };
  const Percentiles v_rs = verify_only(rs256), v_es = verify_only(es256);
  const auto base_raw = ServeAndMeasure(allow, "", n);
  const auto rs_raw = ServeAndMeasure(bearer, rs256, n);
  const auto es_raw = ServeAndMeasure(bearer, es256, n);
  if (base_raw.empty() || rs_raw.empty() || es_raw.empty()) return 1;
  const Percentiles base = Of(base_raw), rs = Of(rs_raw), es = Of(es_raw);

  std::printf("requests per case: %d (one keep-alive connection, 1 server thread)\n", n);
  std::printf("%-28s %10s %10s\n", "case", "p50 µs", "p99 µs");
  std::printf("%-28s %10.1f %10.1f\n", "Verify() RS256 (RSA 2048)", v_rs.p50, v_rs.p99);
  std::printf("%-28s %10.1f %10.1f\n", "Verify() ES256 (P-256)", v_es.p50, v_es.p99);
  std::printf("%-28s %10.1f %10.1f\n", "GET, no sign-in (AllowAll)", base.p50, base.p99);
  std::printf("%-28s %10.1f %10.1f\n", "GET, RS256 bearer", rs.p50, rs.p99);
  std::printf("%-28s %10.1f %10.1f\n", "GET, ES256 bearer", es.p50, es.p99);
  std::printf("added by the check, p99: RS256 %.1f µs, ES256 %.1f µs\n", rs.p99 - base.p99,
              es.p99 - base.p99);
  std::printf(R"({"requests":%d,"verify_rs256_p50_us":%.1f,"verify_rs256_p99_us":%.1f,)"
              R"("verify_es256_p50_us":%.1f,"verify_es256_p99_us":%.1f,"get_allowall_p50_us":%.1f,)"
              R"("get_allowall_p99_us":%.1f,"get_rs256_p50_us":%.1f,"get_rs256_p99_us":%.1f,)"
              R"("get_es256_p50_us":%.1f,"get_es256_p99_us":%.1f})"
              "\n",
              n, v_rs.p50, v_rs.p99, v_es.p50, v_es.p99, base.p50, base.p99, rs.p50, rs.p99, es.p50,
              es.p99);
  return 0;
}
