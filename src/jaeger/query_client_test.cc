#include "jaeger/query_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.h"

namespace ordertrace::jaeger {
namespace {

using namespace std::chrono_literals;
using Outcome = TraceAnswer::Outcome;

const std::string kFound = "0af7651916cd43dd8448eb211c80319c";

// Jaeger's v1 answer for one trace with one span.
std::string TraceBody(const std::string& trace_id, const std::string& span_id) {
  return R"({"data":[{"traceID":")" + trace_id + R"(","spans":[{"traceID":")" + trace_id +
         R"(","spanID":")" + span_id +
         R"(","operationName":"POST /orders","references":[],"startTime":1700000000000000,)"
         R"("duration":10000,"tags":[{"key":"order.id","type":"string","value":"O-1"}],)"
         R"("logs":[],"processID":"p1","warnings":null}],"processes":{"p1":{"serviceName":"crm",)"
         R"("tags":[]}},"warnings":null}],"total":0,"limit":0,"offset":0,"errors":null})";
}

constexpr char kNotFound[] =
    R"({"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]})";

// A fake Jaeger query service under /jaeger: the trace id in the path picks the answer.
class QueryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<net::HttpServer>(Options());
    server_->Route(
        "GET", "/jaeger/api/traces/*", [this](net::HttpRequest& req, net::HttpResponse& res) {
          const std::string id = req.path.substr(std::string("/jaeger/api/traces/").size());
          {
            std::lock_guard<std::mutex> lock(mu_);
            targets_.push_back(req.path + (req.query.empty() ? "" : "?" + req.query));
          }
          res.content_type = "application/json";
          if (id == "missing") {
            res.status = 404;
            res.body = kNotFound;
          } else if (id == "notjson") {
            res.body = "{\"data\": [tru";
          } else if (id == "deep") {
            res.body = std::string(100000, '[') + std::string(100000, ']');
          } else if (id == "shape") {
            res.body = R"({"data":[{"spans":{"a":1}}]})";
          } else if (id == "empty") {
            res.body = R"({"data":[],"errors":null})";
          } else if (id == "big") {
            res.body = TraceBody(id, std::string(300000, 'a'));
          } else if (id == "slow") {
            std::this_thread::sleep_for(1500ms);
            res.body = TraceBody(id, "1111111111111111");
          } else if (id == "boom") {
            res.status = 500;
            res.body = R"({"data":null,"errors":[{"code":500,"msg":"badger: \u0007 closed"}]})";
          } else {
            res.body = TraceBody(id, "b7ad6b7169203331");
          }
        });
    ASSERT_TRUE(server_->Start().ok());
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/jaeger";
  }

  // The server's threads write targets_: stop them before the members go.
  void TearDown() override { server_.reset(); }

  static net::HttpServerOptions Options() {
    net::HttpServerOptions o;
    o.threads = 4;
    return o;
  }

  std::unique_ptr<QueryClient> Client(QueryClientOptions o = {}) {
    if (o.query_url.empty()) o.query_url = url_;
    auto c = QueryClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return c.ok() ? std::move(c.value()) : nullptr;
  }

  std::vector<std::string> Targets() {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }

  std::unique_ptr<net::HttpServer> server_;
  std::string url_;
  std::mutex mu_;
  std::vector<std::string> targets_;
};

TraceQuery Query(std::string id, Nanos first = 0, Nanos last = 0) {
  TraceQuery q;
  q.trace_id = std::move(id);
  q.first_ns = first;
  q.last_ns = last;
  return q;
}

TEST_F(QueryClientTest, ReadsATraceWithTimeBoundsWidenedForClockSkew) {
  auto client = Client();
  ASSERT_TRUE(client);
  const Nanos first = 1'700'000'000'000'000'000;
  const Nanos last = first + 5'000'000'000;
  const TraceAnswer a = client->GetTrace(Query(kFound, first, last));
  ASSERT_EQ(a.outcome, Outcome::kFound) << a.error;
  EXPECT_EQ(a.trace_id, kFound);
  ASSERT_EQ(a.spans.size(), 1u);
  EXPECT_EQ(a.spans[0]["spanID"], "b7ad6b7169203331");
  EXPECT_EQ(a.processes["p1"]["serviceName"], "crm");
  EXPECT_GT(a.bytes, 0u);
  // µs, one hour either side.
  ASSERT_EQ(Targets().size(), 1u);
  EXPECT_EQ(Targets()[0], "/jaeger/api/traces/" + kFound +
                              "?start=" + std::to_string(first / 1000 - 3'600'000'000LL) +
                              "&end=" + std::to_string(last / 1000 + 3'600'000'000LL));
}

TEST_F(QueryClientTest, WithoutTimesNoBoundsAreSent) {
  auto client = Client();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->GetTrace(Query(kFound)).outcome, Outcome::kFound);
  EXPECT_EQ(Targets().at(0), "/jaeger/api/traces/" + kFound);
}

TEST_F(QueryClientTest, MissingTracesAreMissingNotErrors) {
  auto client = Client();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->GetTrace(Query("missing")).outcome, Outcome::kMissing);
  EXPECT_EQ(client->GetTrace(Query("empty")).outcome, Outcome::kMissing);
}

TEST_F(QueryClientTest, MalformedAnswersFailWithAReason) {
  auto client = Client();
  ASSERT_TRUE(client);
  TraceAnswer a = client->GetTrace(Query("notjson"));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_EQ(a.error.rfind("Jaeger's answer is not JSON (at byte", 0), 0u) << a.error;
  a = client->GetTrace(Query("deep"));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_EQ(a.error, "Jaeger's answer nests deeper than 64 levels");
  a = client->GetTrace(Query("shape"));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_NE(a.error.find("not the v1 trace JSON"), std::string::npos) << a.error;
  a = client->GetTrace(Query("boom"));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_EQ(a.error, "Jaeger answered HTTP 500: badger: ? closed");
}

// A 404 that is not Jaeger's own (a query_url without the base path) is no "missing".
TEST_F(QueryClientTest, AWrongBasePathIsNamed) {
  QueryClientOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(server_->port());
  auto client = Client(o);
  ASSERT_TRUE(client);
  const TraceAnswer a = client->GetTrace(Query(kFound));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_NE(a.error.find("is jaeger.query_url right"), std::string::npos) << a.error;
}

TEST_F(QueryClientTest, TooLargeAnswersAreRefused) {
  QueryClientOptions o;
  o.max_response_bytes = 100000;
  auto client = Client(o);
  ASSERT_TRUE(client);
  const TraceAnswer a = client->GetTrace(Query("big"));
  EXPECT_EQ(a.outcome, Outcome::kFailed);
  EXPECT_NE(a.error.find("too large (jaeger.max_response_bytes"), std::string::npos) << a.error;
  EXPECT_NE(a.error.find("100000 bytes"), std::string::npos) << a.error;
}

// The size budget is for one read-back's answers together: once spent, the rest is not asked.
TEST_F(QueryClientTest, TheSizeBudgetCoversTheWholeReadBack) {
  const size_t one = TraceBody("aaaa", "b7ad6b7169203331").size();
  QueryClientOptions o;
  o.parallel = 1;
  o.max_response_bytes = one * 2;
  auto client = Client(o);
  ASSERT_TRUE(client);
  const auto answers = client->GetTraces({Query("aaaa"), Query("bbbb"), Query("cccc")});
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].outcome, Outcome::kFound);
  EXPECT_EQ(answers[1].outcome, Outcome::kFound);
  EXPECT_EQ(answers[2].outcome, Outcome::kNotAsked);
  EXPECT_NE(answers[2].error.find("jaeger.max_response_bytes"), std::string::npos);
}

TEST_F(QueryClientTest, ASlowJaegerTimesOutAndTheRestIsNotAsked) {
  QueryClientOptions o;
  o.timeout = 300ms;
  o.parallel = 1;
  auto client = Client(o);
  ASSERT_TRUE(client);
  const auto t0 = std::chrono::steady_clock::now();
  const auto answers = client->GetTraces({Query("slow"), Query(kFound)});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1200ms);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].outcome, Outcome::kFailed);
  EXPECT_EQ(answers[0].error.rfind("Jaeger did not answer in time (jaeger.timeout): ", 0), 0u)
      << answers[0].error;
  EXPECT_EQ(answers[1].outcome, Outcome::kNotAsked);
  EXPECT_NE(answers[1].error.find("ran out"), std::string::npos) << answers[1].error;
}

TEST_F(QueryClientTest, SeveralTracesAtOnceKeepTheirOrder) {
  QueryClientOptions o;
  o.parallel = 3;
  auto client = Client(o);
  ASSERT_TRUE(client);
  std::vector<TraceQuery> queries;
  for (int i = 0; i < 10; ++i) queries.push_back(Query("t" + std::to_string(i)));
  queries.push_back(Query("missing"));
  const auto answers = client->GetTraces(queries);
  ASSERT_EQ(answers.size(), 11u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(answers[i].trace_id, "t" + std::to_string(i));
    ASSERT_EQ(answers[i].outcome, Outcome::kFound) << answers[i].error;
    EXPECT_EQ(answers[i].spans[0]["traceID"], "t" + std::to_string(i));
  }
  EXPECT_EQ(answers[10].outcome, Outcome::kMissing);
  EXPECT_EQ(Targets().size(), 11u);
}

uint16_t ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // bound, never listened on: connections are refused
  return ntohs(addr.sin_port);
}

TEST(QueryClient, AJaegerThatIsDownIsNotReachable) {
  QueryClientOptions o;
  o.query_url = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/jaeger";
  auto client = QueryClient::Create(o);
  ASSERT_TRUE(client.ok());
  const auto answers = (*client)->GetTraces({Query(kFound), Query("other")});
  for (const TraceAnswer& a : answers) {
    EXPECT_EQ(a.outcome, Outcome::kFailed);
    EXPECT_EQ(a.error, "Jaeger is not reachable: connect: Connection refused");
  }
}

TEST(QueryClient, CreateChecksItsOptions) {
  QueryClientOptions o;
  o.query_url = "ftp://jaeger/jaeger";
  EXPECT_FALSE(QueryClient::Create(o).ok());
  o.query_url = "http://user:secret@jaeger:16686/jaeger";
  auto c = QueryClient::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().find("secret"), std::string::npos) << c.status().message();
  o.query_url = "http://jaeger:16686/jaeger?x=1";
  EXPECT_FALSE(QueryClient::Create(o).ok());
  o.query_url = "https://jaeger:16686/jaeger";
  o.ca_file = "/nonexistent/ca.pem";
  c = QueryClient::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind("jaeger.ca_file: ", 0), 0u) << c.status().message();
  o.ca_file.clear();
  o.parallel = 0;
  EXPECT_FALSE(QueryClient::Create(o).ok());
  o.parallel = 4;
  EXPECT_TRUE(QueryClient::Create(o).ok());
}

TEST(ParseTraceAnswer, JudgesJaegersAnswers) {
  EXPECT_EQ(ParseTraceAnswer("t", 200, TraceBody("t", "1111111111111111")).outcome,
            Outcome::kFound);
  EXPECT_EQ(ParseTraceAnswer("t", 404, kNotFound).outcome, Outcome::kMissing);
  EXPECT_EQ(ParseTraceAnswer("t", 404, "404 page not found\n").outcome, Outcome::kFailed);
  EXPECT_EQ(ParseTraceAnswer("t", 200, "[]").outcome, Outcome::kFailed);
  EXPECT_EQ(ParseTraceAnswer("t", 200, "").outcome, Outcome::kFailed);
  EXPECT_EQ(ParseTraceAnswer("t", 200, R"({"data":[1]})").outcome, Outcome::kFailed);
  EXPECT_EQ(ParseTraceAnswer("t", 200, R"({"data":[{"spans":[],"processes":[]}]})").outcome,
            Outcome::kFailed);
  EXPECT_EQ(ParseTraceAnswer("t", 200, R"({"data":[{"spans":[]}]})").outcome, Outcome::kFound);
  // Brackets inside strings do not count towards the nesting.
  EXPECT_EQ(ParseTraceAnswer("t", 200,
                             R"({"data":[{"spans":[{"x":")" + std::string(200, '[') + R"("}]}]})")
                .outcome,
            Outcome::kFound);
  const TraceAnswer a = ParseTraceAnswer("t", 502, std::string(1000, 'x'));
  EXPECT_EQ(a.error, "Jaeger answered HTTP 502");
}

}  // namespace
}  // namespace ordertrace::jaeger
