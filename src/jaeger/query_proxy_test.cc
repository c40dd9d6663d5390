// QueryProxy alone: the path mapping, the header lists both ways, what goes to the audit, and
// the answers of its own (not configured, Jaeger down, too large, too slow, busy) against a fake
// Jaeger (an HttpServer on loopback) and behind a test listener.  The real Jaeger behind the real
// gateway is tests/jaeger/proxy_test.cc.
#include "jaeger/query_proxy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "support/tls_files.h"

namespace ordertrace::jaeger {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

std::string Find(const net::HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

std::string Target(std::string_view base, std::string_view path, std::string_view query) {
  auto r = QueryProxy::UpstreamTarget(base, path, query);
  return r.ok() ? r.value() : "<error: " + r.status().message() + ">";
}

TEST(QueryProxyTest, MapsPathsUnderJaegerOntoTheBasePath) {
  EXPECT_EQ(Target("/jaeger", "/jaeger/api/traces/abc", ""), "/jaeger/api/traces/abc");
  EXPECT_EQ(Target("/jaeger", "/jaeger/api/traces", "service=a&limit=2"),
            "/jaeger/api/traces?service=a&limit=2");
  EXPECT_EQ(Target("/jaeger", "/jaeger", ""), "/jaeger");
  EXPECT_EQ(Target("/jaeger/", "/jaeger/", ""), "/jaeger/");
  EXPECT_EQ(Target("", "/jaeger/search", "x=1"), "/search?x=1");
  EXPECT_EQ(Target("", "/jaeger", ""), "/");
  EXPECT_EQ(Target("/tools/jaeger", "/jaeger/static/a.js", ""), "/tools/jaeger/static/a.js");
  // Encoded bytes travel as written.
  EXPECT_EQ(Target("/jaeger", "/jaeger/api/services/a%20b/operations", ""),
            "/jaeger/api/services/a%20b/operations");

  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/jaegerx", "").ok());
  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/api/v1/orders", "").ok());
  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/jaeger/../metrics", "").ok());
  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/jaeger/api/%2e%2e/x", "").ok());
  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/jaeger/./x", "").ok());
  EXPECT_FALSE(QueryProxy::UpstreamTarget("/jaeger", "/jaeger/%2E", "").ok());
  // Dots inside a segment are a name, not a step.
  EXPECT_TRUE(QueryProxy::UpstreamTarget("/jaeger", "/jaeger/static/main.1..2.js", "").ok());
}

TEST(QueryProxyTest, SendsOnlyTheSafeRequestHeaders) {
  net::HttpRequest req;
  req.peer = "10.0.0.7:51234";
  req.headers = {{"accept", "application/json"},
                 {"accept-encoding", "gzip"},
                 {"accept-language", "de"},
                 {"if-none-match", "\"e1\""},
                 {"if-modified-since", "Tue, 01 Dec 2026 00:00:00 GMT"},
                 {"cookie", "ot_session=secret"},
                 {"authorization", "Bearer secret"},
                 {"connection", "keep-alive, x-secret"},
                 {"x-secret", "1"},
                 {"te", "trailers"},
                 {"upgrade", "websocket"},
                 {"proxy-authorization", "Basic c2VjcmV0"},
                 {"x-forwarded-for", "6.6.6.6"},
                 {"host", "gateway.example"}};
  const net::HeaderList out = QueryProxy::UpstreamHeaders(req, "rid-1");
  EXPECT_EQ(Find(out, "Accept"), "application/json");
  EXPECT_EQ(Find(out, "Accept-Encoding"), "gzip");
  EXPECT_EQ(Find(out, "Accept-Language"), "de");
  EXPECT_EQ(Find(out, "If-None-Match"), "\"e1\"");
  EXPECT_EQ(Find(out, "If-Modified-Since"), "Tue, 01 Dec 2026 00:00:00 GMT");
  // The client as the gateway knows it, never what an untrusted client claimed.
  EXPECT_EQ(Find(out, "X-Forwarded-For"), "10.0.0.7");
  EXPECT_EQ(Find(out, "X-Request-Id"), "rid-1");
  EXPECT_EQ(out.size(), 7u);
  for (const auto& [k, v] : out) EXPECT_EQ(v.find("secret"), std::string::npos) << k;

  req.forwarded_for = "192.0.2.4";  // named by a trusted proxy
  EXPECT_EQ(Find(QueryProxy::UpstreamHeaders(req, ""), "X-Forwarded-For"), "192.0.2.4");
}

TEST(QueryProxyTest, PassesBackOnlyTheSafeResponseHeaders) {
  net::HttpReply reply;
  reply.status = 200;
  reply.headers = {{"Content-Type", "application/json"},
                   {"Content-Encoding", "gzip"},
                   {"ETag", "\"v1\""},
                   {"Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT"},
                   {"Vary", "Accept-Encoding"},
                   {"Cache-Control", "max-age=3600"},
                   {"Set-Cookie", "jaeger=1"},
                   {"Connection", "close"},
                   {"Keep-Alive", "timeout=5"},
                   {"Transfer-Encoding", "chunked"},
                   {"Content-Length", "99"},
                   {"Content-Security-Policy", "default-src *"},
                   {"Access-Control-Allow-Origin", "*"}};
  const net::HeaderList api = QueryProxy::DownstreamHeaders(reply, "/jaeger/api/traces", "/jaeger");
  EXPECT_EQ(Find(api, "Content-Encoding"), "gzip");
  EXPECT_EQ(Find(api, "ETag"), "\"v1\"");
  EXPECT_EQ(Find(api, "Last-Modified"), "Tue, 01 Dec 2026 00:00:00 GMT");
  EXPECT_EQ(Find(api, "Vary"), "Accept-Encoding");
  EXPECT_EQ(Find(api, "Cache-Control"), "<absent>");  // the API's answers stay no-store
  EXPECT_EQ(api.size(), 4u);
  const net::HeaderList ui = QueryProxy::DownstreamHeaders(reply, "/jaeger/static/a.js", "/jaeger");
  EXPECT_EQ(Find(ui, "Cache-Control"), "max-age=3600");
  EXPECT_EQ(ui.size(), 5u);

  auto location = [](std::string where, std::string base) {
    net::HttpReply r;
    r.status = 301;
    r.headers = {{"Location", std::move(where)}};
    return Find(QueryProxy::DownstreamHeaders(r, "/jaeger", base), "Location");
  };
  EXPECT_EQ(location("/jaeger/", "/jaeger"), "/jaeger/");
  EXPECT_EQ(location("/jaeger/search?x=1", "/jaeger"), "/jaeger/search?x=1");
  EXPECT_EQ(location("http://127.0.0.1:16686/jaeger/x", "/jaeger"), "/jaeger/x");
  EXPECT_EQ(location("/other/x", "/jaeger"), "<absent>");  // outside Jaeger's base path
  EXPECT_EQ(location("/jaegerx", "/jaeger"), "<absent>");
  EXPECT_EQ(location("/x", ""), "/jaeger/x");
  EXPECT_EQ(location("/q/jaeger/x", "/q/jaeger"), "/jaeger/x");
  EXPECT_EQ(location("search", "/jaeger"), "search");  // relative: unchanged
}

TEST(QueryProxyTest, DescribesTheTraceOrTheSearchForTheAudit) {
  auto d =
      QueryProxy::Describe("/jaeger/api/traces/4bf92f3577b34da6a3ce929d0e0e4736", "start=1&end=2");
  EXPECT_EQ(d.route, "/jaeger/api/traces/{id}");
  EXPECT_EQ(d.resource,
            (Pairs{{"type", "trace"}, {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"}}));
  d = QueryProxy::Describe("/jaeger/trace/abc", "uiFind=def");
  EXPECT_EQ(d.route, "/jaeger/trace/{id}");
  EXPECT_EQ(d.resource, (Pairs{{"type", "trace"}, {"trace_id", "abc"}}));
  d = QueryProxy::Describe("/jaeger/api/v3/traces/abc", "");
  EXPECT_EQ(d.route, "/jaeger/api/v3/traces/{id}");
  EXPECT_EQ(d.resource, (Pairs{{"type", "trace"}, {"trace_id", "abc"}}));

  d = QueryProxy::Describe("/jaeger/api/traces",
                           "service=crm&operation=create%20order&tags=%7B%22order.id%22%3A%22A-"
                           "1%22%7D&limit=20&start=1&end=2&lookback=1h");
  EXPECT_EQ(d.route, "/jaeger/api/traces");
  EXPECT_EQ(d.resource, (Pairs{{"type", "search"},
                               {"service", "crm"},
                               {"operation", "create order"},
                               {"tags", "{\"order.id\":\"A-1\"}"},
                               {"limit", "20"}}));
  d = QueryProxy::Describe("/jaeger/search", "traceID=a&traceID=b");
  EXPECT_EQ(d.route, "/jaeger/search");
  EXPECT_EQ(d.resource, (Pairs{{"type", "search"}, {"trace_ids", "a,b"}}));
  d = QueryProxy::Describe("/jaeger/api/v3/traces",
                           "query.service_name=crm&query.attributes=%7B%7D&query.num_traces=5");
  EXPECT_EQ(d.resource,
            (Pairs{{"type", "search"}, {"service", "crm"}, {"tags", "{}"}, {"limit", "5"}}));
  d = QueryProxy::Describe("/jaeger/api/traces", "service=%zz");
  EXPECT_EQ(d.resource.size(), 2u);
  EXPECT_EQ(d.resource[1].first, "query");

  // Long values are cut; anything else is audited by its (decoded) path.
  d = QueryProxy::Describe("/jaeger/api/traces", "tags=" + std::string(5000, 'x'));
  ASSERT_EQ(d.resource.size(), 2u);
  EXPECT_LE(d.resource[1].second.size(), QueryProxy::kMaxAuditValueBytes + 3);
  d = QueryProxy::Describe("/jaeger/api/services/a%20b/operations", "");
  EXPECT_EQ(d.route, "/jaeger/{path}");
  EXPECT_EQ(d.resource, (Pairs{{"path", "/jaeger/api/services/a b/operations"}}));
  d = QueryProxy::Describe("/jaeger/" + std::string(1000, 'p'), "");
  EXPECT_LE(d.resource[0].second.size(), QueryProxy::kMaxAuditValueBytes + 3);
}

TEST(QueryProxyTest, RefusesABadUrlOrCaFile) {
  QueryProxyOptions o;
  o.query_url = "ftp://127.0.0.1/jaeger";
  EXPECT_FALSE(QueryProxy::Create(o, nullptr).ok());
  o.query_url = "http://127.0.0.1:1/jaeger?x=1";
  EXPECT_FALSE(QueryProxy::Create(o, nullptr).ok());
  o.query_url = "https://127.0.0.1:1/jaeger";
  o.ca_file = "/nonexistent/ca.pem";
  auto r = QueryProxy::Create(o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("jaeger.ca_file"), std::string::npos);
}

// A fake Jaeger and a listener with the proxy on it (no guard: the wrapper records the event).
class ProxyFixture : public ::testing::Test {
 protected:
  void StartProxy(QueryProxyOptions options) {
    auto p = QueryProxy::Create(std::move(options), &registry_);
    ASSERT_TRUE(p.ok()) << p.status().message();
    proxy_ = std::move(p).value();
    net::HttpServerOptions so;
    so.threads = 4;
    so.security_headers = true;
    front_ = std::make_unique<net::HttpServer>(so);
    RegisterQueryProxy(
        *front_, *proxy_, [this](std::string route, ProxyDescriber describe, ProxyHandler handler) {
          return [this, route, describe, handler](net::HttpRequest& req, net::HttpResponse& res) {
            audit::AuditEvent event;
            event.http.route = route;
            event.request_id = "rid";
            describe(req, event);
            handler(req, res, event);
            std::lock_guard<std::mutex> lock(mu_);
            events_.push_back(event);
          };
        });
    ASSERT_TRUE(front_->Start().ok());
  }
  net::HttpReply Get(const std::string& target, net::HeaderList headers = {},
                     const std::string& method = "GET") {
    net::HttpConnection c(
        net::ParseUrl("http://127.0.0.1:" + std::to_string(front_->port())).value(), nullptr,
        false);
    net::HttpOutcome out = c.Send(method, target, {}, headers, std::chrono::seconds(10), 1 << 20);
    EXPECT_TRUE(out.ok()) << out.failure->Describe();
    return out.reply;
  }
  uint64_t Counted(const std::string& result) {
    const std::string text = registry_.Serialize();
    const std::string key = "ordertrace_jaeger_proxy_requests_total{result=\"" + result + "\"} ";
    const size_t at = text.find(key);
    return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
  }
  void TearDown() override {
    if (front_) front_->Shutdown();
    if (jaeger_) jaeger_->Shutdown();
  }

  metrics::Registry registry_;
  std::unique_ptr<QueryProxy> proxy_;
  std::unique_ptr<net::HttpServer> front_;
  std::unique_ptr<net::HttpServer> jaeger_;
  std::mutex mu_;
  std::vector<audit::AuditEvent> events_;
};

TEST_F(ProxyFixture, ForwardsToJaegerAndBack) {
  std::mutex seen_mu;
  net::HttpRequest seen;
  jaeger_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
  jaeger_->Route("GET", "/jaeger/*", [&](net::HttpRequest& req, net::HttpResponse& res) {
    {
      std::lock_guard<std::mutex> lock(seen_mu);
      seen = req;
    }
    res.headers = {{"ETag", "\"e\""}, {"Set-Cookie", "j=1"}};
    if (req.Header("if-none-match") == "\"e\"") {  // the browser's copy is current
      res.status = 304;
      res.content_type.clear();
      return;
    }
    res.content_type = "application/json";
    res.body = "{\"data\":[{\"traceID\":\"abc\"}]}";
  });
  ASSERT_TRUE(jaeger_->Start().ok());
  QueryProxyOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(jaeger_->port()) + "/jaeger";
  StartProxy(o);

  net::HttpReply r = Get(
      "/jaeger/api/traces/abc?start=1",
      {{"Accept", "application/json"}, {"Cookie", "ot_session=s"}, {"Authorization", "Bearer t"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, "{\"data\":[{\"traceID\":\"abc\"}]}");
  EXPECT_EQ(r.Header("ETag"), "\"e\"");
  EXPECT_EQ(r.Header("Set-Cookie"), "");
  EXPECT_EQ(r.Header("Cache-Control"), "no-store");  // the listener's
  {
    std::lock_guard<std::mutex> lock(seen_mu);
    EXPECT_EQ(seen.path, "/jaeger/api/traces/abc");
    EXPECT_EQ(seen.query, "start=1");
    EXPECT_EQ(seen.Header("accept"), "application/json");
    EXPECT_EQ(seen.Header("cookie"), "");
    EXPECT_EQ(seen.Header("authorization"), "");
    EXPECT_EQ(seen.Header("x-request-id"), "rid");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ASSERT_EQ(events_.size(), 1u);
    EXPECT_EQ(events_[0].http.route, "/jaeger/api/traces/{id}");
    EXPECT_EQ(events_[0].resource, (Pairs{{"type", "trace"}, {"trace_id", "abc"}}));
  }

  // A revalidation: 304 without a Content-Type that would re-type the cached copy.
  net::HttpReply cached = Get("/jaeger/static/main.js", {{"If-None-Match", "\"e\""}});
  EXPECT_EQ(cached.status, 304);
  EXPECT_EQ(cached.Header("Content-Type"), "");
  EXPECT_EQ(cached.Header("ETag"), "\"e\"");

  // HEAD: the GET's headers and length, no body.
  net::HttpReply head = Get("/jaeger/api/traces/abc", {}, "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.Header("Content-Length"), "28");

  // Read-only: Jaeger's POST endpoints are not served.
  net::HttpReply post = Get("/jaeger/api/archive/abc", {}, "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.Header("Allow"), "GET, HEAD");

  EXPECT_EQ(Get("/jaeger/../metrics").status, 400);
  EXPECT_EQ(Counted("ok"), 3u);
  EXPECT_EQ(Counted("client_error"), 1u);
  EXPECT_NE(registry_.Serialize().find("ordertrace_jaeger_proxy_request_duration_seconds_count 3"),
            std::string::npos);
}

TEST_F(ProxyFixture, AnswersClearlyWhenJaegerCannotAnswer) {
  jaeger_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
  std::atomic<bool> slow{false};
  jaeger_->Route("GET", "/jaeger/*", [&](net::HttpRequest& req, net::HttpResponse& res) {
    if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(700));
    res.body = req.path == "/jaeger/big" ? std::string(5000, 'x') : "small";
    res.status = req.path == "/jaeger/missing" ? 404 : 200;
  });
  ASSERT_TRUE(jaeger_->Start().ok());
  QueryProxyOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(jaeger_->port()) + "/jaeger";
  o.max_response_bytes = 4096;
  o.timeout = std::chrono::milliseconds(300);
  o.max_concurrent = 1;
  StartProxy(o);

  EXPECT_EQ(Get("/jaeger/small").status, 200);
  EXPECT_EQ(Get("/jaeger/missing").status, 404);
  net::HttpReply big = Get("/jaeger/big");
  EXPECT_EQ(big.status, 502);
  EXPECT_EQ(big.body, "Jaeger's answer is larger than 4096 bytes (jaeger.max_response_bytes)\n");

  slow = true;
  // Two at once with room for one: one waits for Jaeger (and times out), the other is busy.
  net::HttpReply a, b;
  std::thread t([&] { a = Get("/jaeger/small"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  b = Get("/jaeger/small");
  t.join();
  // Which one came first is up to the scheduler.
  const net::HttpReply& waited = a.status == 504 ? a : b;
  const net::HttpReply& refused = a.status == 504 ? b : a;
  EXPECT_EQ(waited.status, 504) << waited.body;
  EXPECT_NE(waited.body.find("Jaeger did not answer within 300ms"), std::string::npos);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.Header("Retry-After"), "1");
  slow = false;

  jaeger_->Shutdown();
  net::HttpReply down = Get("/jaeger/small");
  EXPECT_EQ(down.status, 502);
  EXPECT_EQ(down.body.rfind("Jaeger is not reachable: connect: ", 0), 0u) << down.body;

  EXPECT_EQ(Counted("ok"), 1u);
  EXPECT_EQ(Counted("client_error"), 1u);
  EXPECT_EQ(Counted("too_large"), 1u);
  EXPECT_EQ(Counted("timeout"), 1u);
  EXPECT_EQ(Counted("busy"), 1u);
  EXPECT_EQ(Counted("upstream_error"), 1u);
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(events_.size(), 6u);
  EXPECT_EQ(events_[5].reason, "jaeger_unreachable");
}

TEST_F(ProxyFixture, VerifiesAnHttpsJaegerWithTheCaFile) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("ordertrace_query_proxy_tls_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  testing_support::TlsFiles files;
  ASSERT_TRUE(files.Make(dir.string()));
  net::TlsServerOptions so;
  so.cert_file = files.server_cert;
  so.key_file = files.server_key;
  auto tls = net::TlsServerContext::Create(so);
  ASSERT_TRUE(tls.ok()) << tls.status().message();
  net::HttpServerOptions jo;
  jo.tls = std::move(tls).value();
  jaeger_ = std::make_unique<net::HttpServer>(jo);
  jaeger_->Route("GET", "/jaeger/*",
                 [](net::HttpRequest&, net::HttpResponse& res) { res.body = "over TLS"; });
  ASSERT_TRUE(jaeger_->Start().ok());
  const std::string url = "https://127.0.0.1:" + std::to_string(jaeger_->port()) + "/jaeger";

  QueryProxyOptions o;
  o.query_url = url;
  o.ca_file = files.ca_cert;
  StartProxy(o);
  net::HttpReply r = Get("/jaeger/api/services");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "over TLS");
  front_->Shutdown();

  // The system's CAs do not know the test CA: refused, and said so.
  o.ca_file.clear();
  StartProxy(o);
  r = Get("/jaeger/api/services");
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(r.body.rfind("Jaeger is not reachable: TLS handshake: ", 0), 0u) << r.body;
  EXPECT_NE(r.body.find("certificate verify failed"), std::string::npos) << r.body;
  std::filesystem::remove_all(dir);
}

// A fake Jaeger whose answer comes in `pieces` pieces of `size` bytes (no Content-Length:
// chunked), holding back piece `wait_at` until `go` is ready (at most 5 s; `waited_out` says
// when that ran out).
struct SlowAnswer {
  int pieces = 16;
  size_t size = 64 * 1024;
  int wait_at = -1;
  std::shared_future<void> go;
  std::shared_ptr<std::atomic<bool>> waited_out = std::make_shared<std::atomic<bool>>(false);
};

net::BodySource Slowly(const SlowAnswer& a) {
  auto next = std::make_shared<int>(0);
  return [a, next] {
    net::BodyChunk c;
    if (*next == a.wait_at && a.go.valid() &&
        a.go.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      *a.waited_out = true;
    }
    if (*next < a.pieces) {
      c.kind = net::BodyChunk::Kind::kData;
      c.data.assign(a.size, static_cast<char>('a' + *next % 26));
      ++*next;
    }
    return c;
  };
}

// Reads the streamed answer until its end or a failure; the bytes read.
std::string ReadAll(net::HttpConnection& c, bool* complete) {
  std::string out;
  while (true) {
    net::HttpBodyPiece p = c.ReadBody(64 * 1024);
    out += p.data;
    if (!p.ok() || p.end) {
      *complete = p.ok();
      return out;
    }
  }
}

TEST_F(ProxyFixture, StreamsJaegersAnswerAsItArrives) {
  std::promise<void> first_read;
  SlowAnswer answer;
  answer.wait_at = 1;  // the first piece, then nothing until the client has it
  answer.go = first_read.get_future().share();
  jaeger_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
  jaeger_->Route("GET", "/jaeger/*", [answer](net::HttpRequest&, net::HttpResponse& res) {
    res.content_type = "application/json";
    res.body_source = Slowly(answer);
  });
  ASSERT_TRUE(jaeger_->Start().ok());
  QueryProxyOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(jaeger_->port()) + "/jaeger";
  o.max_concurrent = 1;
  StartProxy(o);

  net::HttpConnection c(
      net::ParseUrl("http://127.0.0.1:" + std::to_string(front_->port())).value());
  net::HttpOutcome out =
      c.SendStreaming("GET", "/jaeger/api/traces/abc", {}, std::chrono::seconds(10), 64 << 20);
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
  EXPECT_EQ(out.reply.content_type, "application/json");
  EXPECT_EQ(out.reply.Header("Transfer-Encoding"), "chunked");
  // Jaeger's first piece reaches the client while Jaeger still holds back the rest: a proxy
  // that read the whole answer first would never pass this (the fake waits for this read).
  net::HttpBodyPiece first = c.ReadBody(64 * 1024);
  ASSERT_TRUE(first.ok()) << first.failure->Describe();
  ASSERT_FALSE(first.data.empty());
  EXPECT_FALSE(first.end);
  EXPECT_EQ(first.data[0], 'a');
  // The request still holds its place with Jaeger while its answer streams: a second is busy.
  EXPECT_EQ(Get("/jaeger/api/services").status, 503);
  first_read.set_value();
  bool complete = false;
  const std::string body = first.data + ReadAll(c, &complete);
  EXPECT_TRUE(complete);
  ASSERT_EQ(body.size(), 16u * 64 * 1024);
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(body[static_cast<size_t>(i) * 64 * 1024], static_cast<char>('a' + i)) << i;
  }
  EXPECT_FALSE(*answer.waited_out);
  // Over: counted, its place released, the connection to Jaeger reused.
  EXPECT_EQ(Counted("ok"), 1u);
  EXPECT_EQ(Counted("busy"), 1u);
  bool again_complete = false;
  ASSERT_TRUE(
      c.SendStreaming("GET", "/jaeger/api/traces/abc", {}, std::chrono::seconds(10), 64 << 20)
          .ok());
  EXPECT_EQ(ReadAll(c, &again_complete).size(), 16u * 64 * 1024);
  EXPECT_TRUE(again_complete);
}

TEST_F(ProxyFixture, CutsOffAnAnswerThatPassesTheLimitOrTheTimeoutMidStream) {
  std::promise<void> never;
  SlowAnswer stalls;
  stalls.wait_at = 2;
  stalls.size = 1000;
  stalls.go = never.get_future().share();
  SlowAnswer grows;
  grows.pieces = 40;
  grows.size = 16 * 1024;  // 640 KiB, over the limit of 100 KiB
  jaeger_ = std::make_unique<net::HttpServer>(net::HttpServerOptions{});
  jaeger_->Route("GET", "/jaeger/*",
                 [stalls, grows](net::HttpRequest& req, net::HttpResponse& res) {
                   res.body_source = Slowly(req.path == "/jaeger/stalls" ? stalls : grows);
                 });
  ASSERT_TRUE(jaeger_->Start().ok());
  QueryProxyOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(jaeger_->port()) + "/jaeger";
  o.max_response_bytes = 100 * 1024;
  o.timeout = std::chrono::milliseconds(500);
  o.max_concurrent = 1;
  StartProxy(o);
  const net::Url front =
      net::ParseUrl("http://127.0.0.1:" + std::to_string(front_->port())).value();

  // Too large, found out half-way: what came before the limit, then the connection closes
  // without the end of the answer.
  net::HttpConnection a(front);
  net::HttpOutcome out =
      a.SendStreaming("GET", "/jaeger/grows", {}, std::chrono::seconds(10), 64 << 20);
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  EXPECT_EQ(out.reply.status, 200);
  bool complete = true;
  const std::string cut = ReadAll(a, &complete);
  EXPECT_FALSE(complete);
  EXPECT_LE(cut.size(), 100u * 1024);
  EXPECT_EQ(Counted("too_large"), 1u);

  // Jaeger stalls after two pieces: cut off at jaeger.timeout.
  net::HttpConnection b(front);
  const auto began = std::chrono::steady_clock::now();
  out = b.SendStreaming("GET", "/jaeger/stalls", {}, std::chrono::seconds(10), 64 << 20);
  ASSERT_TRUE(out.ok()) << out.failure->Describe();
  complete = true;
  EXPECT_EQ(ReadAll(b, &complete).size(), 2000u);
  EXPECT_FALSE(complete);
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(3));
  EXPECT_EQ(Counted("timeout"), 1u);
  never.set_value();

  // Each released its place: the next request goes through (the stall is over now).
  net::HttpReply after = Get("/jaeger/stalls");
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body.size(), 16u * 1000);
}

TEST_F(ProxyFixture, SaysWhenJaegerIsNotConfigured) {
  StartProxy(QueryProxyOptions{});
  for (const char* target : {"/jaeger", "/jaeger/", "/jaeger/api/traces/abc"}) {
    net::HttpReply r = Get(target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.body, "the Jaeger query service is not configured (jaeger.query_url)\n");
  }
}

}  // namespace
}  // namespace ordertrace::jaeger
