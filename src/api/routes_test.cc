#include "api/routes.h"

#include <gtest/gtest.h>

#include <string>

#include "net/http_client.h"

namespace ordertrace::api {
namespace {

net::HttpReply Get(uint16_t port, const std::string& target) {
  auto r = net::HttpGet(port, target);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : net::HttpReply{};
}

TEST(RoutesTest, HandlersAnswerWithoutAServer) {
  net::HttpRequest req;
  net::HttpResponse res;
  HealthzHandler()(req, res);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "ok");

  Readiness readiness;
  auto readyz = ReadyzHandler(&readiness);
  readyz(req, res);
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "starting");
  readiness.Set(Readiness::State::kReady);
  readyz(req, res);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "ready");
  readiness.Set(Readiness::State::kDraining);
  readyz(req, res);
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.body, "draining");

  metrics::Registry registry;
  registry.AddCounter("ordertrace_test_total", "A test counter.").With({}).Inc(3);
  MetricsHandler (&registry)(req, res);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, kMetricsContentType);
  EXPECT_NE(res.body.find("ordertrace_test_total 3\n"), std::string::npos) << res.body;
}

TEST(RoutesTest, ServesOverHttp) {
  metrics::Registry registry;
  registry.AddGauge("ordertrace_test_gauge", "A test gauge.").With({}).Set(7);
  Readiness readiness;
  net::HttpServerOptions options;
  options.name = "api";
  options.port = 0;
  net::HttpServer server(options);
  RegisterRoutes(server, readiness, registry);
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();
  ASSERT_NE(port, 0);

  net::HttpReply r = Get(port, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");

  r = Get(port, "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "starting");
  readiness.Set(Readiness::State::kReady);
  r = Get(port, "/readyz");
  EXPECT_EQ(r.status, 200);

  r = Get(port, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kMetricsContentType);
  EXPECT_NE(r.body.find("# TYPE ordertrace_test_gauge gauge\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("ordertrace_test_gauge 7\n"), std::string::npos) << r.body;

  r = Get(port, "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("/metrics"), std::string::npos);
  EXPECT_EQ(Get(port, "/nope").status, 404);

  server.Shutdown();
}

TEST(RoutesTest, MetricsCanRequireAStaticToken) {
  metrics::Registry registry;
  // sha256("test") (printf test | sha256sum)
  auto handler =
      MetricsHandler(&registry, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  auto status_with = [&](const std::string& authorization) {
    net::HttpRequest req;
    if (!authorization.empty()) req.headers.emplace_back("authorization", authorization);
    net::HttpResponse res;
    handler(req, res);
    return res.status;
  };
  EXPECT_EQ(status_with(""), 401);
  EXPECT_EQ(status_with("Bearer nope"), 401);
  EXPECT_EQ(status_with("Basic test"), 401);
  EXPECT_EQ(status_with("Bearer test"), 200);
  EXPECT_EQ(status_with("bearer test"), 200);
}

}  // namespace
}  // namespace ordertrace::api
