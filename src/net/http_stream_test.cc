// Streamed answers both ways: HttpServer's HttpResponse::body_source (chunked or with a
// Content-Length, a source failing half-way, HEAD, HTTP/1.0, keep-alive after it, a client that
// stops reading) and HttpConnection's SendStreaming / ReadBody (pieces as they arrive, one
// deadline, the size limit, reuse of the connection).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/url.h"

namespace ordertrace::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// What a source went through.
struct SourceLog {
  std::atomic<int> pulls{0};
  std::atomic<bool> released{false};
};

// Piece i: "<i>:" then filler up to `size` bytes.
std::string Piece(int i, size_t size) {
  std::string s = std::to_string(i) + ":";
  s.resize(size, static_cast<char>('a' + i % 26));
  return s;
}

std::string Pieces(int n, size_t size) {
  std::string out;
  for (int i = 0; i < n; ++i) out += Piece(i, size);
  return out;
}

// `n` pieces of `size` bytes, then the end; kError instead of piece `fail_at`.  Before piece
// `wait_at`, waits for `go` (at most 5 s).
BodySource Numbered(int n, size_t size, std::shared_ptr<SourceLog> log, int fail_at = -1,
                    int wait_at = -1, std::shared_future<void> go = {}) {
  struct State {
    std::shared_ptr<SourceLog> log;
    int next = 0;
    ~State() { log->released = true; }
  };
  auto state = std::make_shared<State>();
  state->log = std::move(log);
  return [state, n, size, fail_at, wait_at, go] {
    ++state->log->pulls;
    BodyChunk c;
    if (state->next == wait_at && go.valid()) go.wait_for(5s);
    if (state->next == fail_at) {
      c.kind = BodyChunk::Kind::kError;
    } else if (state->next < n) {
      c.kind = BodyChunk::Kind::kData;
      c.data = Piece(state->next++, size);
    }
    return c;
  };
}

// Reads until `n` bytes of the body are in (a piece may arrive in parts).
std::string ReadAtLeast(HttpConnection& c, size_t n) {
  std::string out;
  while (out.size() < n) {
    HttpBodyPiece p = c.ReadBody(64 * 1024);
    EXPECT_TRUE(p.ok()) << p.failure->Describe();
    if (!p.ok() || p.end) break;
    out += p.data;
  }
  return out;
}

// A raw socket: the request as bytes, everything until the server closes.
std::string RawExchange(uint16_t port, const std::string& request) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(s, asio::buffer(request));
  std::string out;
  char buf[4096];
  boost::system::error_code ec;
  while (!ec) {
    const size_t n = s.read_some(asio::buffer(buf), ec);
    out.append(buf, n);
  }
  return out;
}

class HttpStreamTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions o = {}) {
    server_ = std::make_unique<HttpServer>(o);
    for (const char* method : {"GET", "HEAD"}) {
      server_->Route(method, "/stream", [this](HttpRequest& req, HttpResponse& res) {
        res.content_type = "text/plain";
        res.body = "ignored";
        if (req.query == "length") res.content_length = 200 * 1000;
        if (req.query == "long") res.content_length = 200 * 1000 + 1;   // one byte short
        if (req.query == "short") res.content_length = 200 * 1000 - 1;  // one byte over
        res.body_source = Numbered(200, 1000, log_, req.query == "fail" ? 50 : -1);
      });
    }
    server_->Route("GET", "/peer",
                   [](HttpRequest& req, HttpResponse& res) { res.body = req.peer; });
    ASSERT_TRUE(server_->Start().ok());
    url_ = ParseUrl("http://127.0.0.1:" + std::to_string(server_->port())).value();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(1s);
  }

  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<SourceLog> log_ = std::make_shared<SourceLog>();
  Url url_;
};

TEST_F(HttpStreamTest, AChunkedBodyArrivesWholeInOrderAndTheConnectionStaysOpen) {
  Start();
  HttpConnection c(url_);
  const std::string peer = c.Send("GET", "/peer", {}, {}, 5s, 1024).reply.body;
  for (int i = 0; i < 2; ++i) {
    HttpOutcome out = c.Send("GET", "/stream", {}, {}, 5s, 1 << 20);
    ASSERT_TRUE(out.ok()) << out.failure->Describe();
    EXPECT_EQ(out.reply.status, 200);
    EXPECT_EQ(out.reply.content_type, "text/plain");
    EXPECT_EQ(out.reply.Header("Transfer-Encoding"), "chunked");
    EXPECT_EQ(out.reply.Header("Content-Length"), "");
    EXPECT_EQ(out.reply.body, Pieces(200, 1000));
  }
  // Keep-alive after streamed answers: the same connection still serves.
  EXPECT_EQ(c.Send("GET", "/peer", {}, {}, 5s, 1024).reply.body, peer);
  EXPECT_TRUE(log_->released);
}

TEST_F(HttpStreamTest, AContentLengthIsSentAndMustBeMet) {
  Start();
  HttpConnection c(url_);
  HttpOutcome out = c.Send("GET", "/stream?length", {}, {}, 5s, 1 << 20);
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.Header("Content-Length"), "200000");
  EXPECT_EQ(out.reply.Header("Transfer-Encoding"), "");
  EXPECT_EQ(out.reply.body, Pieces(200, 1000));
  EXPECT_TRUE(c.connected());

  // A source that falls short of its length, or runs past it: cut off, never complete.
  for (const char* target : {"/stream?long", "/stream?short"}) {
    HttpConnection d(url_);
    HttpOutcome cut = d.Send("GET", target, {}, {}, 5s, 1 << 20);
    ASSERT_FALSE(cut.ok()) << target;
    EXPECT_EQ(cut.failure->kind, HttpFailure::Kind::kConnect) << cut.failure->Describe();
  }
}

TEST_F(HttpStreamTest, ASourceFailingHalfWayTruncatesTheAnswer) {
  Start();
  const std::string got =
      RawExchange(server_->port(), "GET /stream?fail HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got.substr(0, 200);
  EXPECT_NE(got.find(Piece(49, 1000)), std::string::npos);  // what came before the failure
  EXPECT_EQ(got.find(Piece(50, 1000)), std::string::npos);
  // No terminating chunk: the client cannot take it for the whole answer.
  EXPECT_NE(got.substr(got.size() - 5), "0\r\n\r\n");
  HttpConnection c(url_);
  HttpOutcome out = c.Send("GET", "/stream?fail", {}, {}, 5s, 1 << 20);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.failure->kind, HttpFailure::Kind::kConnect) << out.failure->Describe();
  EXPECT_TRUE(log_->released);
}

TEST_F(HttpStreamTest, HeadGetsTheHeadersWithoutPullingTheSource) {
  Start();
  HttpConnection c(url_);
  HttpOutcome head = c.Send("HEAD", "/stream?length", {}, {}, 5s, 1 << 20);
  ASSERT_TRUE(head.ok()) << head.failure->Describe();
  EXPECT_EQ(head.reply.Header("Content-Length"), "200000");
  EXPECT_EQ(head.reply.body, "");
  head = c.Send("HEAD", "/stream", {}, {}, 5s, 1 << 20);  // length unknown: none said
  ASSERT_TRUE(head.ok()) << head.failure->Describe();
  EXPECT_EQ(head.reply.Header("Content-Length"), "");
  EXPECT_EQ(log_->pulls.load(), 0);
  EXPECT_TRUE(log_->released);
  // The connection is still in step.
  EXPECT_EQ(c.Send("GET", "/stream", {}, {}, 5s, 1 << 20).reply.body, Pieces(200, 1000));
}

TEST_F(HttpStreamTest, AnHttp10ClientGetsTheBodyUntilTheClose) {
  Start();
  const std::string got = RawExchange(server_->port(), "GET /stream HTTP/1.0\r\n\r\n");
  const size_t body = got.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(got.find("chunked"), std::string::npos);
  EXPECT_EQ(got.substr(body + 4), Pieces(200, 1000));
}

TEST_F(HttpStreamTest, AClientThatStopsReadingIsClosedAfterTheWriteTimeout) {
  HttpServerOptions o;
  o.read_timeout = 300ms;
  server_ = std::make_unique<HttpServer>(o);
  server_->Route("GET", "/endless", [this](HttpRequest&, HttpResponse& res) {
    res.body_source = Numbered(1 << 30, 64 * 1024, log_);
  });
  ASSERT_TRUE(server_->Start().ok());
  asio::io_context ioc;
  tcp::socket s(ioc);
  s.open(tcp::v4());
  s.set_option(asio::socket_base::receive_buffer_size(4096));
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  asio::write(s, asio::buffer(std::string("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")));
  // Never read: the server's writes stall once the socket buffers are full.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!log_->released && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(log_->released);
  EXPECT_GT(log_->pulls.load(), 0);
  // The server goes on serving.
  HttpConnection c(ParseUrl("http://127.0.0.1:" + std::to_string(server_->port())).value());
  EXPECT_EQ(c.Send("GET", "/nothing", {}, {}, 5s, 1024).reply.status, 404);
}

TEST_F(HttpStreamTest, ReadBodyGivesEachPieceAsItArrives) {
  std::promise<void> go;
  std::shared_future<void> released = go.get_future().share();
  server_ = std::make_unique<HttpServer>(HttpServerOptions{});
  server_->Route("GET", "/slow", [&](HttpRequest&, HttpResponse& res) {
    res.body_source = Numbered(10, 1000, log_, -1, /*wait_at=*/1, released);
  });
  server_->Route("GET", "/peer", [](HttpRequest& req, HttpResponse& res) { res.body = req.peer; });
  ASSERT_TRUE(server_->Start().ok());
  HttpConnection c(ParseUrl("http://127.0.0.1:" + std::to_string(server_->port())).value());
  const std::string peer = c.Send("GET", "/peer", {}, {}, 5s, 1024).reply.body;

  HttpOutcome out = c.SendStreaming("GET", "/slow", {}, 10s, 1 << 20);
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_EQ(out.reply.body, "");
  EXPECT_TRUE(c.body_pending());
  // The first piece while the server still holds back the second.
  const std::string first = ReadAtLeast(c, 1000);
  EXPECT_EQ(first, Piece(0, 1000));
  go.set_value();
  std::string rest;
  bool end = false;
  while (!end) {
    HttpBodyPiece p = c.ReadBody(300);  // smaller than a piece: split across reads
    ASSERT_TRUE(p.ok()) << p.failure->Describe();
    EXPECT_LE(p.data.size(), 300u);
    rest += p.data;
    end = p.end;
  }
  EXPECT_EQ(first + rest, Pieces(10, 1000));
  EXPECT_FALSE(c.body_pending());
  // Read to the end: the connection serves the next request.
  EXPECT_EQ(c.Send("GET", "/peer", {}, {}, 5s, 1024).reply.body, peer);
}

TEST_F(HttpStreamTest, ReadBodyKeepsTheDeadlineAndTheLimit) {
  std::promise<void> never;
  std::shared_future<void> held = never.get_future().share();
  server_ = std::make_unique<HttpServer>(HttpServerOptions{});
  server_->Route("GET", "/stall", [&](HttpRequest&, HttpResponse& res) {
    res.body_source = Numbered(10, 1000, log_, -1, /*wait_at=*/1, held);
  });
  server_->Route("GET", "/stream", [this](HttpRequest& req, HttpResponse& res) {
    if (req.query == "length") res.content_length = 20 * 1000;
    res.body_source = Numbered(20, 1000, log_);
  });
  ASSERT_TRUE(server_->Start().ok());
  const Url url = ParseUrl("http://127.0.0.1:" + std::to_string(server_->port())).value();

  // One deadline for the whole request: the header in time, the body not.
  HttpConnection slow(url);
  const auto began = std::chrono::steady_clock::now();
  ASSERT_TRUE(slow.SendStreaming("GET", "/stall", {}, 300ms, 1 << 20).ok());
  EXPECT_EQ(ReadAtLeast(slow, 1000), Piece(0, 1000));
  HttpBodyPiece p = slow.ReadBody(64 * 1024);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.failure->kind, HttpFailure::Kind::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 2s);
  EXPECT_FALSE(slow.connected());
  never.set_value();

  // The limit, counted as the body arrives (chunked) or by the Content-Length up front.
  HttpConnection c(url);
  ASSERT_TRUE(c.SendStreaming("GET", "/stream", {}, 5s, 5000).ok());
  size_t got = 0;
  HttpBodyPiece q;
  do {
    q = c.ReadBody(1024);
    got += q.data.size();
  } while (q.ok() && !q.end);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.failure->kind, HttpFailure::Kind::kTooLarge);
  EXPECT_EQ(q.failure->Describe(), "response body larger than 5000 bytes");
  EXPECT_LE(got, 5000u);
  EXPECT_FALSE(c.connected());
  HttpOutcome big = c.SendStreaming("GET", "/stream?length", {}, 5s, 5000);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.failure->kind, HttpFailure::Kind::kTooLarge);

  // An answer left half-read is dropped with its connection; the next request reconnects.
  ASSERT_TRUE(c.SendStreaming("GET", "/stream", {}, 5s, 1 << 20).ok());
  ASSERT_TRUE(c.ReadBody(10).ok());
  HttpOutcome next = c.Send("GET", "/stream?length", {}, {}, 5s, 1 << 20);
  ASSERT_TRUE(next.ok()) << next.failure->Describe();
  EXPECT_EQ(next.reply.body, Pieces(20, 1000));
}

}  // namespace
}  // namespace ordertrace::net
