#include "net/http_server.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "net/url.h"

namespace ordertrace::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string Gzip(const std::string& in, int window_bits = 15 + 16) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A blocking HTTP/1.1 client over one connection.
class Client {
 public:
  explicit Client(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  http::response<http::string_body> Send(
      http::verb method, const std::string& target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    return Read();
  }

  http::response<http::string_body> Read() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(socket_, buffer_, parser);
    return parser.release();
  }

  void WriteRaw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  // Everything until the server closes the connection.
  std::string ReadUntilClose() {
    std::string out(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
    char chunk[4096];
    beast::error_code ec;
    while (true) {
      size_t n = socket_.read_some(asio::buffer(chunk), ec);
      out.append(chunk, n);
      if (ec) break;
    }
    return out;
  }

  // True when the server has closed the connection (reads EOF within `wait`).
  bool ClosedByServer(std::chrono::milliseconds wait) {
    socket_.non_blocking(true);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    char c;
    while (std::chrono::steady_clock::now() < deadline) {
      beast::error_code ec;
      socket_.read_some(asio::buffer(&c, 1), ec);
      if (ec == asio::error::eof || ec == asio::error::connection_reset) return true;
      if (ec != asio::error::would_block) return false;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options);
    server_->Route("GET", "/hello", [this](HttpRequest& req, HttpResponse& res) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        peers_.insert(req.peer);
      }
      res.body = "hello " + req.query;
    });
    server_->Route("POST", "/echo", [this](HttpRequest& req, HttpResponse& res) {
      ++echo_calls_;
      res.content_type = "application/octet-stream";
      res.headers.emplace_back("X-Received-Bytes", std::to_string(req.received_bytes));
      res.body = req.body;
    });
    server_->Route("PUT", "/echo", [](HttpRequest&, HttpResponse& res) { res.body = "put"; });
    server_->Route("POST", "/throw",
                   [](HttpRequest&, HttpResponse&) { throw std::runtime_error("handler bug"); });
    server_->OnReject("/echo", [this](const HttpRequest& req, HttpResponse& res) {
      std::lock_guard<std::mutex> lock(mu_);
      rejected_.push_back(res.status);
      res.headers.emplace_back("X-Rejected-Path", req.path);
    });
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(1s);
  }

  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::set<std::string> peers_;
  std::vector<int> rejected_;
  std::atomic<int> echo_calls_{0};
};

TEST_F(HttpServerTest, RoutesExactPathsAndAnswers404ForOthers) {
  StartServer();
  Client c(server_->port());
  auto res = c.Send(http::verb::get, "/hello?name=x");
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "hello name=x");
  EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");

  res = c.Send(http::verb::get, "/hello/more");
  EXPECT_EQ(res.result_int(), 404);
  EXPECT_NE(res.body().find("/hello/more"), std::string::npos);
  res = c.Send(http::verb::get, "/");
  EXPECT_EQ(res.result_int(), 404);
}

TEST_F(HttpServerTest, WrongMethodGets405WithAllow) {
  StartServer();
  Client c(server_->port());
  auto res = c.Send(http::verb::delete_, "/echo");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[http::field::allow], "POST, PUT");
  res = c.Send(http::verb::post, "/hello", "x");
  EXPECT_EQ(res.result_int(), 405);
  EXPECT_EQ(res[http::field::allow], "GET");
}

TEST(HttpServerHeadTest, HeadGetsTheHeadersAndLengthWithoutTheBody) {
  HttpServer server(HttpServerOptions{});
  for (const char* method : {"GET", "HEAD"}) {
    server.Route(method, "/page", [](HttpRequest&, HttpResponse& res) {
      res.content_type = "text/html";
      res.body = "<p>hello</p>";
    });
  }
  ASSERT_TRUE(server.Start().ok());
  // One keep-alive connection: a body after the HEAD's headers would corrupt the next answer.
  HttpConnection c(ParseUrl("http://127.0.0.1:" + std::to_string(server.port())).value());
  for (int i = 0; i < 2; ++i) {
    HttpOutcome head = c.Send("HEAD", "/page", {}, {}, 5s, 1 << 20);
    ASSERT_TRUE(head.ok()) << head.failure->Describe();
    EXPECT_EQ(head.reply.status, 200);
    EXPECT_EQ(head.reply.content_type, "text/html");
    EXPECT_EQ(head.reply.Header("Content-Length"), "12");
    EXPECT_EQ(head.reply.body, "");
    HttpOutcome get = c.Send("GET", "/page", {}, {}, 5s, 1 << 20);
    ASSERT_TRUE(get.ok()) << get.failure->Describe();
    EXPECT_EQ(get.reply.body, "<p>hello</p>");
  }
  // A HEAD the server refuses goes without a body too.
  HttpOutcome missing = c.Send("HEAD", "/nothing", {}, {}, 5s, 1 << 20);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing.reply.status, 404);
  EXPECT_EQ(missing.reply.body, "");
  EXPECT_EQ(c.Send("GET", "/page", {}, {}, 5s, 1 << 20).reply.body, "<p>hello</p>");
  server.Shutdown(1s);
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  StartServer();
  Client c(server_->port());
  for (int i = 0; i < 300; ++i) {
    auto res = c.Send(http::verb::get, "/hello?i=" + std::to_string(i));
    ASSERT_EQ(res.result_int(), 200);
    ASSERT_EQ(res.body(), "hello i=" + std::to_string(i));
    ASSERT_TRUE(res.keep_alive());
  }
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(peers_.size(), 1u);  // one connection served them all
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer();
  Client c(server_->port());
  c.WriteRaw(
      "GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /hello?n=3 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.Read().body(), "hello n=1");
  EXPECT_EQ(c.Read().body(), "abc");
  EXPECT_EQ(c.Read().body(), "hello n=3");
}

// Bodies with a Content-Length are read past Beast's parser, straight into the request's
// string: large ones over many socket reads, small ones from what came with the header, and
// never a byte of the next request.  The same with one event loop per thread.
TEST_F(HttpServerTest, BodiesArriveWholeAndPipelinedRequestsStayApart) {
  for (bool loop_per_thread : {false, true}) {
    SCOPED_TRACE(loop_per_thread ? "loop per thread" : "shared loop");
    HttpServerOptions o;
    o.loop_per_thread = loop_per_thread;
    o.threads = 3;
    StartServer(o);
    std::string large(3 << 20, '\0');
    for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>((i * 7919) >> 5);
    for (int connection = 0; connection < 4; ++connection) {  // spread over the loops
      Client c(server_->port());
      auto res = c.Send(http::verb::post, "/echo", large);
      ASSERT_EQ(res.result_int(), 200);
      EXPECT_EQ(res.body(), large);
      EXPECT_EQ(res["X-Received-Bytes"], std::to_string(large.size()));
      // One write: a large body, a small one, a chunked one and a GET back to back.
      c.WriteRaw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                 std::to_string(large.size()) + "\r\n\r\n" + large +
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nsmall"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                 "GET /hello?n=4 HTTP/1.1\r\nHost: x\r\n\r\n");
      EXPECT_EQ(c.Read().body(), large);
      EXPECT_EQ(c.Read().body(), "small");
      EXPECT_EQ(c.Read().body(), "abcde");
      EXPECT_EQ(c.Read().body(), "hello n=4");
    }
    server_->Shutdown(1s);
    server_.reset();
  }
}

TEST_F(HttpServerTest, ABodyTrickledInWithinTheReadTimeoutIsServed) {
  HttpServerOptions o;
  o.read_timeout = 2s;
  StartServer(o);
  Client c(server_->port());
  c.WriteRaw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01");
  for (const char* piece : {"234", "5", "6789"}) {
    std::this_thread::sleep_for(50ms);
    c.WriteRaw(piece);
  }
  EXPECT_EQ(c.Read().body(), "0123456789");
}

// Slowloris: a client that keeps sending, a byte at a time, never finishes within the read
// timeout and is cut off, in the header and in the body alike; the server goes on serving.
TEST_F(HttpServerTest, ATricklingClientIsCutAfterTheReadTimeout) {
  for (const char* start : {"POST /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000"
                            "\r\n\r\n"}) {
    for (bool loop_per_thread : {false, true}) {
      HttpServerOptions o;
      o.read_timeout = 300ms;
      o.loop_per_thread = loop_per_thread;
      StartServer(o);
      Client c(server_->port());
      c.WriteRaw(start);
      const auto t0 = std::chrono::steady_clock::now();
      bool cut = false;
      while (!cut && std::chrono::steady_clock::now() - t0 < 5s) {
        std::this_thread::sleep_for(30ms);
        try {
          c.WriteRaw("x");
        } catch (const boost::system::system_error&) {
          cut = true;  // the server closed: the write failed
        }
        cut = cut || c.ClosedByServer(1ms);
      }
      const auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_TRUE(cut);
      EXPECT_GE(took, 250ms);
      EXPECT_LT(took, 3s);
      EXPECT_EQ(echo_calls_.load(), 0);
      EXPECT_EQ(Client(server_->port()).Send(http::verb::get, "/hello").result_int(), 200);
      server_->Shutdown(1s);
      server_.reset();
    }
  }
}

TEST_F(HttpServerTest, BodyOverLimitGets413WithReasonAndClose) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  StartServer(o);
  Client c(server_->port());
  auto res = c.Send(http::verb::post, "/echo", std::string(1024, 'a'));
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body().size(), 1024u);

  res = c.Send(http::verb::post, "/echo", std::string(1025, 'a'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_NE(res.body().find("exceeds the limit of 1024 bytes"), std::string::npos) << res.body();
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res["X-Rejected-Path"], "/echo");  // the reject hook ran
  EXPECT_EQ(echo_calls_.load(), 1);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(rejected_, std::vector<int>{413});
}

TEST_F(HttpServerTest, LargeBodyOverLimitStillGetsTheResponse) {
  HttpServerOptions o;
  o.max_body_bytes = 64 * 1024;
  StartServer(o);
  Client c(server_->port());
  // The client sends all 8 MB before reading: the server must answer and drain, not reset.
  std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n";
  std::thread writer([&] {
    try {
      c.WriteRaw(head + std::string(8 << 20, 'z'));
    } catch (...) {  // the server may close before all of it is sent
    }
  });
  const std::string got = c.ReadUntilClose();
  writer.join();
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got.substr(0, 200);
}

TEST_F(HttpServerTest, GzipBodyIsDecoded) {
  StartServer();
  Client c(server_->port());
  const std::string plain(100000, 'x');
  const std::string gz = Gzip(plain);
  auto res = c.Send(http::verb::post, "/echo", gz, {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), plain);
  EXPECT_EQ(res["X-Received-Bytes"], std::to_string(gz.size()));
}

TEST_F(HttpServerTest, ConcatenatedGzipMembersAndDeflateAreDecoded) {
  StartServer();
  Client c(server_->port());
  auto res =
      c.Send(http::verb::post, "/echo", Gzip("abc") + Gzip("def"), {{"Content-Encoding", "GZIP"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "abcdef");
  res = c.Send(http::verb::post, "/echo", Gzip("zlib", 15), {{"Content-Encoding", "deflate"}});
  EXPECT_EQ(res.body(), "zlib");
  res = c.Send(http::verb::post, "/echo", Gzip("raw", -15), {{"Content-Encoding", "deflate"}});
  EXPECT_EQ(res.body(), "raw");
  res = c.Send(http::verb::post, "/echo", "same", {{"Content-Encoding", "identity"}});
  EXPECT_EQ(res.body(), "same");
  res = c.Send(http::verb::post, "/echo", "", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "");
}

TEST_F(HttpServerTest, GzipBombGets413) {
  HttpServerOptions o;
  o.max_body_bytes = 1 << 20;
  StartServer(o);
  Client c(server_->port());
  const std::string bomb = Gzip(std::string(64 << 20, '\0'));  // 64 MB of zeros, ~64 KB
  ASSERT_LT(bomb.size(), o.max_body_bytes);
  auto res = c.Send(http::verb::post, "/echo", bomb, {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_NE(res.body().find("limit of 1048576 bytes"), std::string::npos) << res.body();
  EXPECT_EQ(echo_calls_.load(), 0);
  // Exactly at the limit is fine.
  res = c.Send(http::verb::post, "/echo", Gzip(std::string(1 << 20, 'q')),
               {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body().size(), 1u << 20);
}

TEST_F(HttpServerTest, CorruptOrTruncatedGzipGets400) {
  StartServer();
  Client c(server_->port());
  std::string corrupt = Gzip(std::string(10000, 'y'));
  for (size_t i = 12; i < corrupt.size() - 8; ++i)
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  auto res = c.Send(http::verb::post, "/echo", corrupt, {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_NE(res.body().find("invalid gzip body"), std::string::npos) << res.body();

  const std::string whole = Gzip(std::string(10000, 'y'));
  res = c.Send(http::verb::post, "/echo", whole.substr(0, whole.size() / 2),
               {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_NE(res.body().find("truncated"), std::string::npos) << res.body();

  res = c.Send(http::verb::post, "/echo", "not gzip at all", {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(res.result_int(), 400);
  EXPECT_EQ(echo_calls_.load(), 0);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(rejected_, (std::vector<int>{400, 400, 400}));
}

TEST_F(HttpServerTest, UnknownContentEncodingGets415) {
  StartServer();
  Client c(server_->port());
  auto res = c.Send(http::verb::post, "/echo", "data", {{"Content-Encoding", "br"}});
  EXPECT_EQ(res.result_int(), 415);
  EXPECT_NE(res.body().find("unsupported Content-Encoding \"br\""), std::string::npos);
  EXPECT_TRUE(res.keep_alive());  // the body was read in full: the connection stays usable
  res = c.Send(http::verb::get, "/hello");
  EXPECT_EQ(res.result_int(), 200);
}

TEST_F(HttpServerTest, GarbageGets400AndCloseAndServerKeepsServing) {
  StartServer();
  {
    Client c(server_->port());
    c.WriteRaw("\x16\x03\x01\x02\x00 this is not HTTP\r\n\r\n");
    const std::string got = c.ReadUntilClose();
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_NE(got.find("malformed HTTP request"), std::string::npos);
  }
  {
    Client c(server_->port());
    c.WriteRaw("POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
    EXPECT_EQ(c.ReadUntilClose().rfind("HTTP/1.1 400", 0), 0u);
  }
  {
    Client c(server_->port());
    c.WriteRaw("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    EXPECT_EQ(c.ReadUntilClose().rfind("HTTP/1.1 400", 0), 0u);
  }
  {
    Client c(server_->port());
    c.WriteRaw("GET /hello HTTP/1.1\r\nX: " + std::string(100000, 'h') + "\r\n\r\n");
    EXPECT_EQ(c.ReadUntilClose().rfind("HTTP/1.1 431", 0), 0u);
  }
  {
    Client c(server_->port());
    c.WriteRaw("GET /hel");  // and hang up mid-request
  }
  Client c(server_->port());
  EXPECT_EQ(c.Send(http::verb::get, "/hello").result_int(), 200);
}

TEST_F(HttpServerTest, ExpectContinueIsHonoured) {
  StartServer();
  Client c(server_->port());
  c.WriteRaw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  auto interim = c.Read();
  EXPECT_EQ(interim.result_int(), 100);
  c.WriteRaw("body");
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "body");
}

TEST_F(HttpServerTest, HandlerExceptionGets500AndConnectionSurvives) {
  StartServer();
  Client c(server_->port());
  auto res = c.Send(http::verb::post, "/throw", "x");
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_EQ(res.body(), "internal error\n");
  EXPECT_EQ(c.Send(http::verb::get, "/hello").result_int(), 200);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  HttpServerOptions o;
  o.idle_timeout = 200ms;
  StartServer(o);
  Client c(server_->port());
  EXPECT_EQ(c.Send(http::verb::get, "/hello").result_int(), 200);
  EXPECT_TRUE(c.ClosedByServer(3s));
}

TEST_F(HttpServerTest, SlowRequestIsCutAfterReadTimeout) {
  HttpServerOptions o;
  o.read_timeout = 200ms;
  StartServer(o);
  Client c(server_->port());
  c.WriteRaw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part");
  EXPECT_TRUE(c.ClosedByServer(3s));
  EXPECT_EQ(echo_calls_.load(), 0);
}

TEST_F(HttpServerTest, GracefulShutdownFinishesInFlightRequest) {
  HttpServerOptions o;
  o.port = 0;
  HttpServer server(o);
  std::promise<void> entered;
  server.Route("POST", "/slow", [&entered](HttpRequest& req, HttpResponse& res) {
    entered.set_value();
    std::this_thread::sleep_for(400ms);
    res.body = "done " + req.body;
  });
  server.Route("GET", "/fast", [](HttpRequest&, HttpResponse& res) { res.body = "fast"; });
  ASSERT_TRUE(server.Start().ok());
  const uint16_t port = server.port();

  Client idle(port);  // a keep-alive connection between requests
  EXPECT_EQ(idle.Send(http::verb::get, "/fast").body(), "fast");

  Client busy(port);
  auto reply = std::async(std::launch::async,
                          [&busy] { return busy.Send(http::verb::post, "/slow", "work"); });
  entered.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  server.Shutdown(5s);
  const auto took = std::chrono::steady_clock::now() - t0;

  auto res = reply.get();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "done work");
  EXPECT_FALSE(res.keep_alive());  // Connection: close while draining
  EXPECT_LT(took, 3s);             // waited for the request, not for the idle connection
  EXPECT_TRUE(idle.ClosedByServer(1s));
  // Nothing listens any more.
  asio::io_context ioc;
  tcp::socket s(ioc);
  beast::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  EXPECT_TRUE(ec);
}

TEST_F(HttpServerTest, ShutdownWithALoopPerThreadClosesIdleConnectionsAtOnce) {
  HttpServerOptions o;
  o.loop_per_thread = true;
  o.threads = 2;
  StartServer(o);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {  // both loops get some
    clients.push_back(std::make_unique<Client>(server_->port()));
    EXPECT_EQ(clients.back()->Send(http::verb::get, "/hello").result_int(), 200);
  }
  const auto t0 = std::chrono::steady_clock::now();
  server_->Shutdown(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  for (auto& c : clients) EXPECT_TRUE(c->ClosedByServer(1s));
  server_.reset();
}

TEST_F(HttpServerTest, ShutdownGivesUpOnAHandlerPastTheDrainDeadline) {
  HttpServerOptions o;
  HttpServer server(o);
  std::promise<void> entered;
  server.Route("GET", "/stuck", [&entered](HttpRequest&, HttpResponse&) {
    entered.set_value();
    std::this_thread::sleep_for(1500ms);
  });
  ASSERT_TRUE(server.Start().ok());
  Client c(server.port());
  c.WriteRaw("GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n");
  entered.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  server.Shutdown(100ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(HttpServerTest, PortInUseIsAClearError) {
  StartServer();
  HttpServerOptions o;
  o.port = server_->port();
  HttpServer second(o);
  Status s = second.Start();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "cannot listen on 127.0.0.1:" + std::to_string(o.port) + ": Address already in use");
}

TEST_F(HttpServerTest, BadHostIsAClearError) {
  HttpServerOptions o;
  o.host = "no-such-host.invalid";
  HttpServer server(o);
  Status s = server.Start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("cannot listen on no-such-host.invalid:0: ", 0), 0u) << s.message();
}

TEST(HttpRequestTest, HeaderLookupIsCaseInsensitive) {
  HttpRequest req;
  req.headers = {{"content-type", "application/json"}, {"x-a", "1"}};
  EXPECT_EQ(req.Header("content-type"), "application/json");
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_EQ(req.Header("x-b"), "");
}

}  // namespace
}  // namespace ordertrace::net
