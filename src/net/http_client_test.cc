#include "net/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "net/http_server.h"

namespace ordertrace::net {
namespace {

using namespace std::chrono_literals;

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpServer>(HttpServerOptions{});
    server_->Route("GET", "/hello", [](HttpRequest& req, HttpResponse& res) {
      res.content_type = "application/json";
      res.headers.emplace_back("X-Echo", std::string(req.Header("x-test")));
      res.body = "{\"accept\":\"" + std::string(req.Header("accept")) + "\"}";
    });
    server_->Route("POST", "/echo", [this](HttpRequest& req, HttpResponse& res) {
      ++posts_;
      peers_.push_back(req.peer);
      res.status = 201;
      res.headers.emplace_back("Retry-After", "7");
      res.body = std::string(req.Header("content-type")) + "|" + std::string(req.Header("host")) +
                 "|" + req.body;
    });
    server_->Route("GET", "/slow", [](HttpRequest&, HttpResponse& res) {
      std::this_thread::sleep_for(600ms);
      res.body = "late";
    });
    server_->Route("GET", "/big",
                   [](HttpRequest&, HttpResponse& res) { res.body.assign(2 << 20, 'x'); });
    ASSERT_TRUE(server_->Start().ok());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  std::unique_ptr<HttpServer> server_;
  std::string base_;
  std::atomic<int> posts_{0};
  std::vector<std::string> peers_;  // handlers run one at a time here (one client)
};

TEST_F(HttpClientTest, GetSendsHeadersAndReturnsTheReply) {
  HttpOptions o;
  o.headers = {{"X-Test", "42"}};
  auto r = HttpGet(base_ + "/ignored/", "/hello", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->body, "{\"accept\":\"application/json\"}");
  EXPECT_EQ(r->Header("x-echo"), "42");
  EXPECT_EQ(r->Header("X-ECHO"), "42");
  EXPECT_EQ(r->Header("absent"), "");

  auto missing = HttpGet(server_->port(), "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);  // any status is a reply
}

TEST_F(HttpClientTest, PostSendsTheBody) {
  HttpOptions o;
  o.headers = {{"Content-Type", "text/plain"}};
  auto r = HttpPost(base_ + "/echo", "payload", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "text/plain|127.0.0.1:" + std::to_string(server_->port()) + "|payload");
  EXPECT_EQ(r->Header("retry-after"), "7");
}

TEST_F(HttpClientTest, TimeoutBodyLimitAndRefusedAreErrors) {
  const auto began = std::chrono::steady_clock::now();
  auto slow = HttpGet(base_, "/slow", 200ms);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(slow.status().message(), "GET " + base_ + "/slow: read timed out after 200ms");
  EXPECT_LT(std::chrono::steady_clock::now() - began, 550ms);

  HttpOptions o;
  o.max_body_bytes = 1 << 20;
  auto big = HttpGet(base_, "/big", o);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().message(),
            "GET " + base_ + "/big: response body larger than 1048576 bytes");

  const uint16_t port = server_->port();
  server_->Shutdown(100ms);
  auto refused = HttpPost("http://127.0.0.1:" + std::to_string(port) + "/echo", "x", {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("connect: Connection refused"), std::string::npos)
      << refused.status().message();
}

TEST_F(HttpClientTest, BadUrlsAreInvalidArgument) {
  auto r = HttpPost("am:9093", "", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = HttpGet("http://u:secret@h:1", "/x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("secret"), std::string::npos);
}

TEST_F(HttpClientTest, ConnectionIsKeptAliveAcrossRequests) {
  auto url = ParseUrl(base_ + "/echo");
  ASSERT_TRUE(url.ok());
  HttpConnection connection(*url);
  for (int i = 0; i < 3; ++i) {
    HttpOutcome out = connection.Send("POST", url->target, "b" + std::to_string(i), {}, 2s, 1024);
    ASSERT_TRUE(out.ok()) << out.failure->Describe();
    EXPECT_EQ(out.reply.status, 201);
    EXPECT_TRUE(connection.connected());
  }
  ASSERT_EQ(peers_.size(), 3u);
  EXPECT_EQ(peers_[0], peers_[2]);  // one connection, one client port
}

TEST_F(HttpClientTest, FailuresAreClassified) {
  auto url = ParseUrl(base_);
  ASSERT_TRUE(url.ok());
  HttpConnection slow(*url);
  HttpOutcome out = slow.Send("GET", "/slow", "", {}, 150ms, 1024);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.failure->kind, HttpFailure::Kind::kTimeout);
  EXPECT_EQ(out.failure->step, HttpFailure::Step::kRead);

  out = slow.Send("GET", "/big", "", {}, 2s, 1024);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.failure->kind, HttpFailure::Kind::kTooLarge);

  // Not an HTTP server: a listener that answers garbage.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = acceptor.local_endpoint().port();
  std::thread peer([&] {
    boost::asio::ip::tcp::socket s(io);
    acceptor.accept(s);
    boost::system::error_code ec;
    boost::asio::write(s, boost::asio::buffer(std::string("SSH-2.0-OpenSSH\r\n\r\n")), ec);
    std::this_thread::sleep_for(100ms);
  });
  HttpConnection garbage(ParseUrl("http://127.0.0.1:" + std::to_string(port)).value());
  out = garbage.Send("GET", "/", "", {}, 2s, 1024);
  peer.join();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.failure->kind, HttpFailure::Kind::kProtocol) << out.failure->Describe();

  HttpConnection refused(ParseUrl("http://127.0.0.1:" + std::to_string(port)).value());
  acceptor.close();
  out = refused.Send("GET", "/", "", {}, 2s, 1024);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.failure->kind, HttpFailure::Kind::kConnect);
  EXPECT_EQ(out.failure->step, HttpFailure::Step::kConnect);
}

TEST(BasicAuthorizationTest, EncodesUserAndPassword) {
  EXPECT_EQ(BasicAuthorization("guest", "wrong"), "Basic Z3Vlc3Q6d3Jvbmc=");
  EXPECT_EQ(BasicAuthorization("a", ""), "Basic YTo=");
}

}  // namespace
}  // namespace ordertrace::net
