#include "cli/watch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/api_access.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "support/tls_files.h"

namespace ordertrace::cli {
namespace {

// A /metrics page as the gateway writes it (trimmed), with the broker's queue gauges.
constexpr char kMetrics[] = R"(# HELP ordertrace_journey_active_orders_by_stage Active orders.
# TYPE ordertrace_journey_active_orders_by_stage gauge
ordertrace_journey_active_orders_by_stage{stage="PRICE_CALCULATED"} 7
ordertrace_journey_active_orders_by_stage{stage="SUBMITTED"} 1234
ordertrace_journey_active_orders_by_stage{stage="none"} 0
ordertrace_journey_stage_index{stage="PRICE_CALCULATED"} 1
ordertrace_journey_stage_index{stage="SUBMITTED"} 0
ordertrace_journey_stage_index{stage="none"} -1
ordertrace_journey_stuck_orders_by_stage{stage="SUBMITTED",service="mes",kind="not_received"} 2
ordertrace_journey_stuck_orders_by_stage{stage="SUBMITTED",service="mes",kind="silent"} 1
ordertrace_journey_stuck_orders 3
ordertrace_journey_closed_total 40
ordertrace_receiver_accepted_spans_total{protocol="http_protobuf"} 1000
ordertrace_receiver_accepted_spans_total{protocol="grpc"} 500
ordertrace_journey_flagged_total{kind="silent"} 1
ordertrace_journey_flagged_total{kind="not_received"} 2
ordertrace_journey_cleared_total 0
ordertrace_broker_up 1
ordertrace_broker_queue_messages_ready{queue="crm.prices"} 1204
ordertrace_broker_queue_messages_unacknowledged{queue="crm.prices"} 3
ordertrace_broker_queue_consumers{queue="crm.prices"} 0
ordertrace_broker_queue_messages_ready{queue="mes.calculate"} 0
ordertrace_broker_queue_consumers{queue="mes.calculate"} 1
weird_line_without_value
bad{label="unterminated 5
escaped{path="a\"b\\c"} 2.5 1700000000000
)";

constexpr char kStuck[] = R"({"orders":[
 {"order_id":"ORD-1","stage":"SUBMITTED","stuck_kind":"not_received",
  "summary":"order ORD-1 stuck in SUBMITTED for 9s: mes never picked it up"},
 {"order_id":"ORD-2","stage":"SUBMITTED","stuck_kind":"silent","summary":"no heartbeat"}],
 "next_cursor":null})";

TEST(WatchTest, ParsesTheExpositionFormat) {
  const auto samples = ParseMetrics(kMetrics);
  // 22 good sample lines; the line without a value and the unterminated label are skipped.
  ASSERT_EQ(samples.size(), 22u);
  EXPECT_EQ(samples[1].name, "ordertrace_journey_active_orders_by_stage");
  EXPECT_EQ(samples[1].labels.at("stage"), "SUBMITTED");
  EXPECT_EQ(samples[1].value, 1234);
  EXPECT_EQ(samples[5].value, -1);
  EXPECT_EQ(samples[6].labels.at("kind"), "not_received");
  EXPECT_EQ(samples.back().name, "escaped");
  EXPECT_EQ(samples.back().labels.at("path"), "a\"b\\c");
  EXPECT_EQ(samples.back().value, 2.5);  // the timestamp after it is ignored
}

TEST(WatchTest, FrameShowsStagesTotalsQueuesAndStuckOrders) {
  const std::string f = RenderWatch(ParseMetrics(kMetrics), kStuck, "HEADER", 10, 0);
  EXPECT_EQ(f.rfind("HEADER\n", 0), 0u);
  // Stages in the rules' order (the index metric, not the page's), stuck summed over service
  // and kind, thousands separators; "none" with no order in it is not a row.
  const size_t sub = f.find("SUBMITTED                       1,234        3  <-");
  const size_t price = f.find("PRICE_CALCULATED                    7        0\n");
  ASSERT_NE(sub, std::string::npos) << f;
  ASSERT_NE(price, std::string::npos) << f;
  EXPECT_LT(sub, price);
  EXPECT_EQ(f.find("(no milestone yet)"), std::string::npos);
  EXPECT_NE(f.find("closed 40 · spans accepted 1,500 · flagged 3 · cleared 0"), std::string::npos)
      << f;
  EXPECT_EQ(f.find("alerts sent"), std::string::npos);  // no alerting metrics on this page
  EXPECT_NE(f.find("RabbitMQ: up"), std::string::npos);
  EXPECT_NE(f.find("crm.prices                    1,204          3          0  <- no consumer"),
            std::string::npos)
      << f;
  EXPECT_NE(f.find("mes.calculate                     0          0          1\n"),
            std::string::npos)
      << f;
  EXPECT_NE(f.find("STUCK ORDERS: 3"), std::string::npos) << f;
  EXPECT_NE(f.find("ORD-1                  SUBMITTED              not_received         order ORD-1 "
                   "stuck in SUBMITTED for 9s: mes never picked it up"),
            std::string::npos)
      << f;
}

TEST(WatchTest, BrokerDownNoJourneysAndBadListAreSaid) {
  const std::string metrics =
      "ordertrace_broker_up 0\n"
      "ordertrace_broker_queue_consumers{queue=\"q\"} 1\n";
  const std::string f = RenderWatch(ParseMetrics(metrics), "not json", "H", 10, 0);
  EXPECT_NE(f.find("journeys: are they enabled?"), std::string::npos) << f;
  EXPECT_NE(f.find("RabbitMQ: UNREACHABLE"), std::string::npos) << f;
  EXPECT_EQ(f.find("QUEUE"), std::string::npos) << f;  // stale queue figures are not shown
  EXPECT_NE(f.find("STUCK ORDERS: 0 (the list could not be read)"), std::string::npos) << f;
}

TEST(WatchTest, LinesAreCutToTheWidthByCharacters) {
  const std::string stuck =
      R"({"orders":[{"order_id":"O","stage":"S","stuck_kind":"k","summary":"ab–cdefghijklmnopqrstuvwxyz"}]})";
  const std::string f = RenderWatch({}, stuck, "H", 10, 72);
  size_t start = 0;
  while (start < f.size()) {
    const size_t end = f.find('\n', start);
    size_t cols = 0;
    for (size_t i = start; i < end; ++i) cols += (static_cast<unsigned char>(f[i]) & 0xC0) != 0x80;
    EXPECT_LE(cols, 72u) << f.substr(start, end - start);
    start = end + 1;
  }
  EXPECT_NE(f.find("ab–cd"), std::string::npos) << f;  // the multi-byte dash kept whole
}

TEST(WatchTest, BrokerNotesJoinTheSummaries) {
  const std::string list = R"({"orders":[
    {"order_id":"A","summary":"order A stuck in PRICE_CALCULATED for 9s: crm has not processed it"},
    {"order_id":"B","summary":"order B stuck; queue q: 1 ready"},
    {"order_id":"C","summary":"order C stuck"},
    {"order_id":"D","summary":"order D stuck"}],"next_cursor":null})";
  std::vector<std::string> asked;
  const std::string out = WithBrokerNotes(list, 3, [&](const std::string& id) -> std::string {
    asked.push_back(id);
    if (id == "A") {
      return R"({"diagnosis":{"open_hops":[{"broker":"queue crm.prices: 0 ready, 2 unacked, 1 consumers"},{"broker":null}],"broker":"RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) during this stage"}})";
    }
    if (id == "B")
      return R"({"diagnosis":{"open_hops":[{"broker":"queue q: 1 ready"}],"broker":null}})";
    return "not json";  // C: the order view failed; D: past the limit, never asked
  });
  EXPECT_EQ(asked, (std::vector<std::string>{"A", "B", "C"}));
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["orders"][0]["summary"],
            "order A stuck in PRICE_CALCULATED for 9s: crm has not processed it; queue crm.prices: "
            "0 ready, 2 unacked, 1 consumers; RabbitMQ was unreachable 14:02:11Z–14:02:40Z (29s) "
            "during this stage");
  EXPECT_EQ(j["orders"][1]["summary"], "order B stuck; queue q: 1 ready");  // said once
  EXPECT_EQ(j["orders"][2]["summary"], "order C stuck");
  EXPECT_EQ(j["orders"][3]["summary"], "order D stuck");
  EXPECT_EQ(WithBrokerNotes("oops", 3, [](const std::string&) { return std::string(); }), "oops");
}

TEST(WatchTest, LimitCapsTheList) {
  const std::string f = RenderWatch(ParseMetrics(kMetrics), kStuck, "H", 1, 0);
  EXPECT_NE(f.find("ORD-1"), std::string::npos);
  EXPECT_EQ(f.find("ORD-2"), std::string::npos);
  EXPECT_NE(f.find("(the oldest 1)"), std::string::npos) << f;
}

// A page of 30 stuck orders (the gateway counts 120) with long, wide and hostile summaries.
std::string ManyStuck() {
  nlohmann::json orders = nlohmann::json::array();
  for (int i = 0; i < 30; ++i) {
    orders.push_back({{"order_id", "ORD-" + std::to_string(i)},
                      {"stage", "SUBMITTED"},
                      {"stuck_kind", "not_received"},
                      {"summary", "order ORD-" + std::to_string(i) +
                                      " stuck in SUBMITTED – 注文 waited ≥ 9s \x1b[31mred\x1b[0m " +
                                      std::string(150, 'x')}});
  }
  return nlohmann::json{{"orders", orders}, {"next_cursor", nullptr}}.dump();
}

// kMetrics, with the gateway counting 120 stuck orders.
std::string MetricsWith120Stuck() {
  std::string m = kMetrics;
  const std::string three = "ordertrace_journey_stuck_orders 3\n";
  m.replace(m.find(three), three.size(), "ordertrace_journey_stuck_orders 120\n");
  return m;
}

std::vector<std::string> LinesOf(const std::string& frame) {
  std::vector<std::string> out;
  for (size_t start = 0; start < frame.size();) {
    const size_t end = frame.find('\n', start);
    out.push_back(frame.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Every line within `width` display columns, at most `height` lines, `rows` order rows, and
// the last line "… N more" for the 120 - rows not listed (when `more`).
void ExpectFits(const std::string& frame, size_t width, size_t height, size_t rows, bool more) {
  const std::vector<std::string> lines = LinesOf(frame);
  EXPECT_LE(lines.size(), height) << frame;
  size_t listed = 0;
  for (const std::string& l : lines) {
    EXPECT_LE(DisplayColumns(l), width) << l;
    EXPECT_EQ(l.find('\x1b'), std::string::npos) << l;  // no escape from telemetry
    listed += l.starts_with("ORD-");
  }
  EXPECT_EQ(listed, rows) << frame;
  if (more) {
    EXPECT_EQ(lines.back(), "… " + std::to_string(120 - rows) + " more") << frame;
  }
}

// 15 lines come before the list at these metrics: header, stages, totals, RabbitMQ and its
// queues, the list's title and column names.
TEST(WatchTest, FrameFitsTheTerminal200x50) {
  const std::string metrics = MetricsWith120Stuck();
  const std::string f = RenderWatch(ParseMetrics(metrics), ManyStuck(), "H", 30, 200, 50);
  // All 30 fetched rows fit; the next line says how many the gateway has beyond them.
  ExpectFits(f, 200, 50, 30, true);
  EXPECT_EQ(LinesOf(f).size(), 46u);
  EXPECT_NE(f.find("注文"), std::string::npos) << f;  // wide characters kept whole
}

TEST(WatchTest, FrameFitsTheTerminal80x24) {
  const std::string metrics = MetricsWith120Stuck();
  const std::string f = RenderWatch(ParseMetrics(metrics), ManyStuck(), "H", 30, 80, 24);
  ExpectFits(f, 80, 24, 8, true);  // 9 rows left: 8 orders and "… 112 more"
  EXPECT_EQ(LinesOf(f).size(), 24u);
}

TEST(WatchTest, FrameFitsTheTerminal40x10) {
  const std::string metrics = MetricsWith120Stuck();
  const std::string f = RenderWatch(ParseMetrics(metrics), ManyStuck(), "H", 30, 40, 10);
  // The figures above the list fill the 10 rows: the frame is cut there.
  ExpectFits(f, 40, 10, 0, false);
  EXPECT_EQ(LinesOf(f).size(), 10u);
}

TEST(WatchTest, FitLineCutsByDisplayColumnsNeverMidSequence) {
  EXPECT_EQ(FitLine("abcdef", 4), "abcd");
  EXPECT_EQ(FitLine("ab–cd", 3), "ab–");
  EXPECT_EQ(FitLine("a注文b", 2), "a");  // the wide character would need columns 2-3
  EXPECT_EQ(FitLine("a注文b", 3), "a注");
  EXPECT_EQ(DisplayColumns("a注文b"), 6u);
  EXPECT_EQ(DisplayColumns("e\xCC\x81"), 1u);  // e + combining acute
  EXPECT_EQ(FitLine("x\x1b[2Jy\tz", 0), "x?[2Jy?z");
  EXPECT_EQ(FitLine("bad \xC3", 0), "bad ?");
}

TEST(WatchTest, TerminalSizeFromTheEnvironmentElse80x24) {
  const int fd = ::open("/dev/null", O_WRONLY);
  ASSERT_GE(fd, 0);
  TerminalSize s = TerminalSizeOf(fd, nullptr, nullptr);
  EXPECT_EQ(s.columns, 80u);
  EXPECT_EQ(s.rows, 24u);
  s = TerminalSizeOf(fd, "132", "43");
  EXPECT_EQ(s.columns, 132u);
  EXPECT_EQ(s.rows, 43u);
  s = TerminalSizeOf(fd, "wide", "-3");
  EXPECT_EQ(s.columns, 80u);
  EXPECT_EQ(s.rows, 24u);
  ::close(fd);
}

// --- ApiClient (cli/api_access.h): the token and the CA file, against an HTTPS server -------

class ApiAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_api_access_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(files_.Make(dir_.string())) << "openssl failed";
    net::TlsServerOptions tls;
    tls.cert_file = files_.server_cert;
    tls.key_file = files_.server_key;
    auto context = net::TlsServerContext::Create(tls);
    ASSERT_TRUE(context.ok()) << context.status().message();
    net::HttpServerOptions options;
    options.tls = context.value();
    server_ = std::make_unique<net::HttpServer>(options);
    server_->Route("GET", "/metrics", [this](net::HttpRequest& req, net::HttpResponse& res) {
      std::lock_guard<std::mutex> lock(mu_);
      authorization_ = std::string(req.Header("authorization"));
      res.status = authorization_ == "Bearer good" ? 200 : 401;
    });
    ASSERT_TRUE(server_->Start().ok());
    api_ = "https://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::seconds(1));
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  // ApiClient::Make with these variables only.
  Result<ApiClient> Make(const ApiAccess& access, std::map<std::string, std::string> env = {},
                         const std::string& api = "") {
    return ApiClient::Make(api.empty() ? api_ : api, access,
                           [env = std::move(env)](const char* name) -> const char* {
                             auto it = env.find(name);
                             return it == env.end() ? nullptr : it->second.c_str();
                           });
  }
  // The status of GET /metrics and the Authorization header the server saw.
  int Status(const ApiClient& client, std::string* authorization = nullptr) {
    auto reply = client.Get("/metrics");
    EXPECT_TRUE(reply.ok()) << reply.status().message();
    std::lock_guard<std::mutex> lock(mu_);
    if (authorization) *authorization = authorization_;
    return reply.ok() ? reply->status : 0;
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles files_;
  std::unique_ptr<net::HttpServer> server_;
  std::string api_;
  std::mutex mu_;
  std::string authorization_;
};

TEST_F(ApiAccessTest, TokenFileFirstLineTrimmedOverHttpsWithTheCaFile) {
  ApiAccess access;
  access.token_file = WriteFile("token", "  good \nsecond line\n");
  access.ca_file = files_.ca_cert;
  auto client = Make(access);
  ASSERT_TRUE(client.ok()) << client.status().message();
  EXPECT_TRUE(client->has_token());
  std::string seen;
  EXPECT_EQ(Status(*client, &seen), 200);
  EXPECT_EQ(seen, "Bearer good");
}

TEST_F(ApiAccessTest, TheFlagsWinOverTheEnvironment) {
  ApiAccess access;
  access.token_file = WriteFile("token", "good\n");
  access.ca_file = files_.ca_cert;
  auto client =
      Make(access, {{"ORDERTRACE_TOKEN", "bad"}, {"ORDERTRACE_CA_FILE", files_.foreign_ca_cert}});
  ASSERT_TRUE(client.ok()) << client.status().message();
  EXPECT_EQ(Status(*client), 200);

  // Without the flags, the variables.
  auto from_env =
      Make(ApiAccess{}, {{"ORDERTRACE_TOKEN", " good "}, {"ORDERTRACE_CA_FILE", files_.ca_cert}});
  ASSERT_TRUE(from_env.ok()) << from_env.status().message();
  std::string seen;
  EXPECT_EQ(Status(*from_env, &seen), 200);
  EXPECT_EQ(seen, "Bearer good");
}

TEST_F(ApiAccessTest, NoTokenSendsNoHeaderAndTheRefusalIsExplained) {
  ApiAccess access;
  access.ca_file = files_.ca_cert;
  auto client = Make(access);
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE(client->has_token());
  std::string seen = "x";
  EXPECT_EQ(Status(*client, &seen), 401);
  EXPECT_EQ(seen, "");
  EXPECT_EQ(ExplainRefusal(401, false), "the API wants a token: --token-file or ORDERTRACE_TOKEN");
  EXPECT_NE(ExplainRefusal(401, true).find("did not accept the token"), std::string::npos);
  EXPECT_NE(ExplainRefusal(403, true).find("Developer or DevOps role"), std::string::npos);
  EXPECT_NE(ExplainRefusal(503, true), "");
  EXPECT_EQ(ExplainRefusal(404, true), "");
}

TEST_F(ApiAccessTest, AServerOfAnotherCaIsRefused) {
  ApiAccess access;
  access.ca_file = files_.foreign_ca_cert;
  auto client = Make(access, {{"ORDERTRACE_TOKEN", "good"}});
  ASSERT_TRUE(client.ok());
  auto reply = client->Get("/metrics");
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("certificate verify failed"), std::string::npos)
      << reply.status().message();
  EXPECT_EQ(reply.status().message().find("good"), std::string::npos);
  // The system's CAs (no CA file) do not know the test CA either.
  EXPECT_FALSE(Make(ApiAccess{})->Get("/metrics").ok());
}

TEST_F(ApiAccessTest, BadFilesAndUnsafeUsesAreNamedNeverTheToken) {
  ApiAccess missing;
  missing.token_file = (dir_ / "nope").string();
  auto m = Make(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            "--token-file '" + missing.token_file + "': No such file or directory");

  ApiAccess empty;
  empty.token_file = WriteFile("empty", "\n");
  EXPECT_NE(Make(empty).status().message().find("is empty"), std::string::npos);

  ApiAccess spaced;
  spaced.token_file = WriteFile("spaced", "sec ret\n");
  auto sp = Make(spaced);
  ASSERT_FALSE(sp.ok());
  EXPECT_EQ(sp.status().message().find("sec ret"), std::string::npos);
  EXPECT_FALSE(Make(ApiAccess{}, {{"ORDERTRACE_TOKEN", "a\x01b"}}).ok());

  ApiAccess bad_ca;
  bad_ca.ca_file = (dir_ / "no-ca.pem").string();
  auto ca = Make(bad_ca);
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.status().message().find("--ca-file: cannot read the CA file"), std::string::npos)
      << ca.status().message();
  auto ca_env = Make(ApiAccess{}, {{"ORDERTRACE_CA_FILE", bad_ca.ca_file}});
  ASSERT_FALSE(ca_env.ok());
  EXPECT_NE(ca_env.status().message().find("ORDERTRACE_CA_FILE"), std::string::npos);

  // A token never crosses the network in clear text, except to loopback.
  auto remote = Make(ApiAccess{}, {{"ORDERTRACE_TOKEN", "s3cret"}}, "http://10.1.2.3:8080");
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.status().message(),
            "refusing to send the token over plain http:// to 10.1.2.3: use https://");
  EXPECT_TRUE(Make(ApiAccess{}, {{"ORDERTRACE_TOKEN", "s3cret"}}, "http://127.0.0.1:8080").ok());
  EXPECT_TRUE(Make(ApiAccess{}, {{"ORDERTRACE_TOKEN", "s3cret"}}, "http://localhost:8080").ok());
  EXPECT_TRUE(Make(ApiAccess{}, {}, "http://10.1.2.3:8080").ok());  // no token: nothing to leak
}

}  // namespace
}  // namespace ordertrace::cli
