// The web UI on a running gateway's --http listener, served from ui.dir (a directory this test
// writes, standing in for the output of ui/build): the route index names it, /ui/ goes to the
// board, pages and assets come with their caching, gzip and security headers, nothing reaches a
// file outside, and the API beside it is unchanged.  Without ui.dir the answer depends on the
// build: the compiled-in UI (ORDERTRACE_UI=ON) or the 404 saying it was built without one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gateway/gateway.h"
#include "net/http_client.h"
#include "ui/assets.h"
#include "ui/ui_routes.h"

namespace ordertrace::gateway {
namespace {

using namespace std::chrono_literals;

class GatewayUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_gateway_ui_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "ui" / "assets");
    std::ofstream(dir_ / "ui" / "index.html")
        << "<!doctype html><script type=module src=/ui/assets/index-1a2b.js></script>\n";
    std::ofstream(dir_ / "ui" / "assets" / "index-1a2b.js") << std::string(5000, ';') << "\n";
    std::ofstream(dir_ / "secret.txt") << "outside the UI\n";
    config_.listen.otlp_grpc = "127.0.0.1:0";
    config_.listen.otlp_http = "127.0.0.1:0";
    config_.listen.http = "127.0.0.1:0";
    config_.data_dir = (dir_ / "data").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  net::HttpReply Send(uint16_t port, const char* method, const std::string& target,
                      net::HeaderList headers = {}) {
    net::Url url;
    url.scheme = "http";
    url.host = "127.0.0.1";
    url.port = port;
    net::HttpConnection connection(url, nullptr, /*keep_alive=*/false);
    net::HttpOutcome out = connection.Send(method, target, "", headers, 10s, uint64_t{1} << 20);
    EXPECT_TRUE(out.ok()) << method << " " << target << ": " << out.failure->Describe();
    return out.reply;
  }

  std::filesystem::path dir_;
  config::Config config_;
};

TEST_F(GatewayUiTest, ServesTheUiFromUiDir) {
  config_.ui.dir = (dir_ / "ui").string();
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  const uint16_t port = gw.http_port();

  EXPECT_NE(Send(port, "GET", "/").body.find("GET /ui/"), std::string::npos);
  const net::HttpReply root = Send(port, "GET", "/ui/");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(root.Header("Location"), "/ui/stuck");

  const net::HttpReply page = Send(port, "GET", "/ui/orders/ORD%2F42?tab=spans");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("index-1a2b.js"), std::string::npos);
  EXPECT_EQ(page.Header("Cache-Control"), "no-store");
  EXPECT_EQ(page.Header("Content-Security-Policy"), ui::kContentSecurityPolicy);
  EXPECT_EQ(page.Header("Referrer-Policy"), "same-origin");
  EXPECT_EQ(page.Header("Cross-Origin-Opener-Policy"), "same-origin");
  EXPECT_EQ(page.Header("Strict-Transport-Security"), "");  // plain HTTP here

  const net::HttpReply js =
      Send(port, "GET", "/ui/assets/index-1a2b.js", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(js.Header("Content-Encoding"), "gzip");
  EXPECT_EQ(js.Header("Vary"), "Accept-Encoding");
  EXPECT_LT(js.body.size(), 1000u);
  const net::HttpReply again =
      Send(port, "GET", "/ui/assets/index-1a2b.js",
           {{"If-None-Match", std::string(js.Header("ETag"))}, {"Accept-Encoding", "gzip"}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  const net::HttpReply head = Send(port, "HEAD", "/ui/assets/index-1a2b.js");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.Header("X-Content-Type-Options"), "nosniff");

  EXPECT_EQ(Send(port, "GET", "/ui/assets/missing-9.js").status, 404);
  for (const char* evil : {"/ui/../secret.txt", "/ui/assets/..%2f..%2fsecret.txt",
                           "/ui/assets/%2e%2e/%2e%2e/secret.txt", "/ui/%2e%2e/secret.txt"}) {
    const net::HttpReply r = Send(port, "GET", evil);
    EXPECT_TRUE(r.status == 400 || r.status == 404) << evil << " " << r.status;
    EXPECT_EQ(r.body.find("outside the UI"), std::string::npos) << evil;
  }
  EXPECT_EQ(Send(port, "POST", "/ui/stuck").status, 405);

  // The API beside it keeps its own headers; no CORS anywhere.
  const net::HttpReply health = Send(port, "GET", "/healthz", {{"Origin", "https://evil.test"}});
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Header("Access-Control-Allow-Origin"), "");
  EXPECT_EQ(Send(port, "GET", "/ui/stuck", {{"Origin", "https://evil.test"}})
                .Header("Access-Control-Allow-Origin"),
            "");
  gw.Stop();
}

TEST_F(GatewayUiTest, AUiDirWithoutIndexHtmlStopsTheStart) {
  std::filesystem::remove(dir_ / "ui" / "index.html");
  config_.ui.dir = (dir_ / "ui").string();
  Gateway gw(config_);
  const Status s = gw.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ui.dir"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("index.html"), std::string::npos) << s.message();
}

TEST_F(GatewayUiTest, WithoutUiDirTheBuildDecides) {
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  const net::HttpReply r = Send(gw.http_port(), "GET", "/ui/");
  if (ui::EmbeddedUi() == nullptr) {
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.body, ui::kBuiltWithoutUi);
    EXPECT_EQ(Send(gw.http_port(), "GET", "/").body.find("/ui/"), std::string::npos);
  } else {
    EXPECT_EQ(r.status, 302);
    EXPECT_EQ(Send(gw.http_port(), "GET", "/ui/stuck").status, 200);
  }
  EXPECT_EQ(r.Header("Content-Security-Policy"), ui::kContentSecurityPolicy);
  gw.Stop();
}

}  // namespace
}  // namespace ordertrace::gateway
