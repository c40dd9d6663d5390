#include "api/routes.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace ordertrace::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string body;
};

Reply Get(uint16_t port, const std::string& target) {
  boost::asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return {static_cast<int>(res.result_int()), std::string(res[http::field::content_type]),
          res.body()};
}

TEST(RoutesTest, HandlersAnswerWithoutAServer) {
  receive::HttpRequest req;
  receive::HttpResponse res;
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
  receive::HttpServerOptions options;
  options.name = "api";
  options.port = 0;
  receive::HttpServer server(options);
  RegisterRoutes(server, readiness, registry);
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();
  ASSERT_NE(port, 0);

  Reply r = Get(port, "/healthz");
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

}  // namespace
}  // namespace ordertrace::api
