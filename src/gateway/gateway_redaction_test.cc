// The gateway's redaction: its keys from redaction.* (created in the data directory when none is
// configured), a key rotation on SIGHUP (the config file read again), a bad reload that keeps the
// old keys, the counters on /metrics, the debug log, and the errors at start.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "api/routes.h"
#include "common/log.h"
#include "gateway/gateway.h"
#include "gateway/running_gateway_for_test.h"
#include "net/http_client.h"
#include "redact/pseudonym.h"
#include "support/otlp_requests.h"

namespace ordertrace::gateway {
namespace {

using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string body;
};

Reply Request(uint16_t port, const char* method, const std::string& target,
              const std::string& body = {}) {
  net::Url url;
  url.scheme = "http";
  url.host = "127.0.0.1";
  url.port = port;
  net::HttpConnection connection(url, nullptr, /*keep_alive=*/false);
  net::HeaderList headers;
  if (!body.empty()) headers.emplace_back("Content-Type", "application/x-protobuf");
  net::HttpOutcome out = connection.Send(method, target, body, headers, 10s, uint64_t{64} << 20);
  EXPECT_TRUE(out.ok()) << method << " " << target << ": " << out.failure->Describe();
  return {out.reply.status, out.reply.body};
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// One span of order `order`, named `name`, from partner `partner`.
std::string OrderSpan(const std::string& order, const std::string& name,
                      const std::string& partner) {
  static int n = 0;
  ++n;
  const uint64_t now =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  testing_support::RequestBuilder b;
  b.Resource("crm").Scope();
  b.Add(testing_support::SpanBuilder(name)
            .Ids(std::string(15, '\x31') + static_cast<char>(n),
                 std::string(7, '\x32') + static_cast<char>(n))
            .Times(now, now + 1000)
            .Attr("order.id", order)
            .Attr("order.stage", "SUBMITTED")
            .Attr("partner.id", partner));
  return b.Serialized();
}

class GatewayRedactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_gateway_redaction_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.listen.otlp_grpc = "127.0.0.1:0";
    config_.listen.otlp_http = "127.0.0.1:0";
    config_.listen.http = "127.0.0.1:0";
    config_.data_dir = (dir_ / "data").string();
    config_.journeys.store = "memory";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A key file of `secret` (mode 0600 unless told otherwise).
  std::string KeyFile(const std::string& name, const std::string& secret, mode_t mode = 0600) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << secret;
    ::chmod(path.c_str(), mode);
    return path;
  }
  static config::Config::Redaction::Key Key(std::string id, std::string file) {
    config::Config::Redaction::Key k;
    k.id = std::move(id);
    k.file = std::move(file);
    return k;
  }
  std::string AuditPath() const { return config_.data_dir + "/audit.log"; }

  // The span names of order `id` as the API returns them.
  static std::string Journey(uint16_t api, const std::string& id) {
    for (int i = 0; i < 200; ++i) {
      Reply r = Request(api, "GET", "/api/v1/orders/" + id);
      if (r.status == 200) return r.body;
      std::this_thread::sleep_for(10ms);
    }
    return "";
  }
  // Polls until the journey of `id` holds `needle`.
  static bool JourneyShows(uint16_t api, const std::string& id, const std::string& needle) {
    for (int i = 0; i < 200; ++i) {
      if (Journey(api, id).find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::filesystem::path dir_;
  config::Config config_;
};

const std::string kSecret1(32, 'a');
const std::string kSecret2(40, 'b');

std::string PseudonymUnder(const std::string& id, const std::string& secret,
                           const std::string& label, const std::string& value) {
  auto p = redact::Pseudonymizer::Create({redact::PseudonymKey{id, secret}}).value();
  return p->Pseudonym(label, value);
}

// The rotation: k2 listed first and SIGHUP; new spans carry pse:k2:, a pse:k1: value made
// before passes unchanged (k1 is still known), the counters go on, and the audit says which key
// ids (never a key).
TEST_F(GatewayRedactionTest, SighupRotatesToTheKeyListedFirst) {
  config_.redaction.keys = {Key("k1", KeyFile("k1.key", kSecret1))};
  config::Config rotated = config_;
  rotated.redaction.keys = {Key("k2", KeyFile("k2.key", kSecret2)), config_.redaction.keys[0]};
  // Read on the gateway's thread when SIGHUP arrives (a signal is no happens-before for TSan).
  std::atomic<bool> rotate{false};
  Gateway gw(config_);
  gw.SetConfigLoader([&]() -> Result<config::Config> { return rotate.load() ? rotated : config_; });
  RunningGateway running(gw);
  ASSERT_TRUE(running.WaitReady());
  const uint16_t api = gw.http_port(), otlp = gw.otlp_http_port();

  const std::string mail_k1 = PseudonymUnder("k1", kSecret1, "email", "ivan@example.org");
  EXPECT_EQ(
      Request(otlp, "POST", "/v1/traces", OrderSpan("ROT-1", "mail Ivan@Example.org", "P-ROT"))
          .status,
      200);
  EXPECT_TRUE(JourneyShows(api, "ROT-1", "mail " + mail_k1)) << Journey(api, "ROT-1");

  rotate = true;
  ASSERT_TRUE(running.Hup());
  const std::string mail_k2 = PseudonymUnder("k2", kSecret2, "email", "ivan@example.org");
  bool rotated_seen = false;
  for (int i = 0; i < 300 && !rotated_seen; ++i) {
    const std::string order = "ROT-2-" + std::to_string(i);
    Request(otlp, "POST", "/v1/traces", OrderSpan(order, "mail ivan@example.org", "P-ROT"));
    rotated_seen = JourneyShows(api, order, "mail pse:k2:");
  }
  ASSERT_TRUE(rotated_seen);
  EXPECT_EQ(
      Request(otlp, "POST", "/v1/traces", OrderSpan("ROT-3", "mail Ivan@example.org", "P")).status,
      200);
  EXPECT_TRUE(JourneyShows(api, "ROT-3", "mail " + mail_k2)) << Journey(api, "ROT-3");
  // A value a gateway in front made under k1 (still listed) passes unchanged.
  EXPECT_EQ(
      Request(otlp, "POST", "/v1/traces", OrderSpan("ROT-4", "from " + mail_k1, mail_k1)).status,
      200);
  EXPECT_TRUE(JourneyShows(api, "ROT-4", "from " + mail_k1)) << Journey(api, "ROT-4");

  const std::string metrics = Request(api, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("ordertrace_redaction_values_total{action=\"pseudonymised\",detector="
                         "\"email\"}"),
            std::string::npos);
  EXPECT_EQ(metrics.find("ivan"), std::string::npos);
  EXPECT_EQ(metrics.find("P-ROT"), std::string::npos);
  EXPECT_TRUE(running.Stop().ok());

  std::string audit;
  for (const std::string& line : Lines(AuditPath())) {
    if (line.find("redaction_keys_reloaded") != std::string::npos) audit += line;
  }
  EXPECT_NE(audit.find("\"outcome\":\"allowed\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"reason\":\"rotated\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"current_key_id\":\"k2\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"key_ids\":\"k2,k1\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"previous_key_ids\":\"k1\""), std::string::npos) << audit;
  for (const std::string& line : Lines(AuditPath())) {
    EXPECT_EQ(line.find(kSecret1), std::string::npos);
    EXPECT_EQ(line.find(kSecret2), std::string::npos);
  }
}

// A reload whose key file is bad keeps the keys in force: the error names the config key and
// the file, never its contents; the audit says it failed.
TEST_F(GatewayRedactionTest, ABadReloadKeepsTheOldKeys) {
  config_.redaction.keys = {Key("k1", KeyFile("k1.key", kSecret1))};
  config::Config bad = config_;
  const std::string short_secret = "short-SECRET-content";
  bad.redaction.keys = {Key("k2", KeyFile("k2.key", short_secret)), config_.redaction.keys[0]};
  config::Config readable = config_;
  readable.redaction.keys = {Key("k2", KeyFile("k2-open.key", kSecret2, 0644))};
  config::Config next = bad;
  Gateway gw(config_);
  gw.SetConfigLoader([&]() -> Result<config::Config> { return next; });
  ASSERT_TRUE(gw.Start().ok());

  Status s = gw.ReloadRedaction();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("redaction.keys[0].file"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(bad.redaction.keys[0].file), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("fewer than 32 bytes"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(short_secret), std::string::npos) << s.message();
  next = readable;
  s = gw.ReloadRedaction();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("readable by others"), std::string::npos) << s.message();
  next.redaction.keys = {Key("k2", (dir_ / "missing.key").string())};
  s = gw.ReloadRedaction();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing.key"), std::string::npos) << s.message();
  next = config_;
  next.redaction.pseudonymise_keys = {"order.id"};  // the entity key
  s = gw.ReloadRedaction();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("redaction.pseudonymise_keys"), std::string::npos) << s.message();

  const uint16_t api = gw.http_port();
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces",
                    OrderSpan("BAD-1", "mail ivan@example.org", "P-1"))
                .status,
            200);
  EXPECT_TRUE(JourneyShows(api, "BAD-1",
                           "mail " + PseudonymUnder("k1", kSecret1, "email", "ivan@example.org")));
  // A reload that changes nothing is not audited on its own (config_reload covers the SIGHUP).
  next = config_;
  EXPECT_TRUE(gw.ReloadRedaction().ok());
  gw.Stop();
  std::vector<std::string> lines;
  for (const std::string& line : Lines(AuditPath())) {
    EXPECT_EQ(line.find(short_secret), std::string::npos) << line;
    if (line.find("\"event\":\"redaction_keys_reloaded\"") != std::string::npos) {
      lines.push_back(line);
    }
  }
  ASSERT_EQ(lines.size(), 4u);  // the failures; the reload that changed nothing is not there
  for (const std::string& line : lines) {
    EXPECT_NE(line.find("\"outcome\":\"error\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"key_ids_in_force\":\"k1\""), std::string::npos) << line;
    EXPECT_EQ(line.find(short_secret), std::string::npos) << line;
  }
}

// Another secret in the file of a key id already in use: taken (the file is the truth), but
// audited as key_replaced, since the id's old pseudonyms can no longer be looked up.
TEST_F(GatewayRedactionTest, AKeyFileThatChangedUnderItsIdIsAudited) {
  config_.redaction.keys = {Key("k1", KeyFile("k1.key", kSecret1))};
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  KeyFile("k1.key", kSecret2);
  ASSERT_TRUE(gw.ReloadRedaction().ok());
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces",
                    OrderSpan("REP-1", "mail ivan@example.org", "P-1"))
                .status,
            200);
  EXPECT_TRUE(JourneyShows(gw.http_port(), "REP-1",
                           "mail " + PseudonymUnder("k1", kSecret2, "email", "ivan@example.org")));
  gw.Stop();
  std::string audit;
  for (const std::string& line : Lines(AuditPath())) {
    if (line.find("redaction_keys_reloaded") != std::string::npos) audit += line;
  }
  EXPECT_NE(audit.find("\"reason\":\"key_replaced\""), std::string::npos) << audit;
}

// Without a configured key the gateway creates one (0600) in its data directory, and keeps it.
TEST_F(GatewayRedactionTest, WithoutAKeyOneIsCreatedInTheDataDirectory) {
  std::string first;
  for (int run = 0; run < 2; ++run) {
    Gateway gw(config_);
    ASSERT_TRUE(gw.Start().ok());
    const std::string path = config_.data_dir + "/pseudonym.key";
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_GE(std::filesystem::file_size(path), 32u);
    std::ifstream in(path, std::ios::binary);
    const std::string secret((std::istreambuf_iterator<char>(in)), {});
    if (run == 0) first = secret;
    EXPECT_EQ(secret, first);  // the second start reads the same key
    gw.Stop();
  }
}

// Errors at start name the config key and the file, never a key's contents.
TEST_F(GatewayRedactionTest, StartErrorsNameTheKey) {
  const std::string secret = "tiny-SECRET";
  config_.redaction.keys = {Key("k1", KeyFile("k1.key", secret))};
  {
    Gateway gw(config_);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("redaction.keys[0].file: key file '" + (dir_ / "k1.key").string()),
              std::string::npos)
        << s.message();
    EXPECT_EQ(s.message().find(secret), std::string::npos) << s.message();
  }
  config_.redaction.keys.clear();
  config_.redaction.pseudonymise_keys = {"order.id"};
  {
    Gateway gw(config_);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message().rfind("redaction.pseudonymise_keys: ", 0), 0u) << s.message();
    EXPECT_NE(s.message().find("entity key 'order.id'"), std::string::npos) << s.message();
  }
  config_.redaction.pseudonymise_keys.clear();
  config_.redaction.safe_keys = {"partner.id"};  // a default pseudonymised key
  {
    Gateway gw(config_);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'partner.id' is listed under both pseudonymise_keys and "
                               "safe_keys"),
              std::string::npos)
        << s.message();
  }
  config_.redaction.safe_keys.clear();
  config_.redaction.default_region = "XX";
  {
    Gateway gw(config_);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message().rfind("redaction.default_region: ", 0), 0u) << s.message();
  }
}

// Configured keys join the built-in rules: a pseudonymised key, a dropped one, a safe one.
TEST_F(GatewayRedactionTest, ConfiguredKeysJoinTheDefaults) {
  config_.redaction.pseudonymise_keys = {"app.buyer"};
  config_.redaction.safe_keys = {"app.contact"};
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  testing_support::RequestBuilder b;
  b.Resource("crm").Scope();
  b.Add(testing_support::SpanBuilder("POST /orders")
            .Ids(std::string(16, '\x41'), std::string(8, '\x42'))
            .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull)
            .Attr("order.id", "CFG-1")
            .Attr("app.buyer", "Buyer-77")
            .Attr("app.contact", "desk@example.org")
            .Attr("partner.id", "P-9"));
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces", b.Serialized()).status, 200);
  const uint16_t api = gw.http_port();
  bool counted = false;
  for (int i = 0; i < 200 && !counted; ++i) {
    counted = Request(api, "GET", "/metrics")
                  .body.find(
                      "ordertrace_redaction_values_total{action=\"pseudonymised\","
                      "detector=\"key\"} 2") != std::string::npos;
    if (!counted) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(counted) << Request(api, "GET", "/metrics").body;
  const std::string metrics = Request(api, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("ordertrace_redaction_values_total{action=\"pseudonymised\",detector="
                         "\"email\"} 0"),
            std::string::npos);  // app.contact is safe: its e-mail is kept
  gw.Stop();
}

// The journeys' entity key comes from the rules file: one the redaction changes is refused at
// start and on a rules reload (orders are found by it).
TEST_F(GatewayRedactionTest, TheRulesEntityKeyIsNeverRedacted) {
  const std::string rules = "entity: {key: order.id}\nstages: [A, B]\ngrace: 30s\n";
  const std::string by_partner = "entity: {key: partner.id}\nstages: [A, B]\ngrace: 30s\n";
  const std::string path = (dir_ / "rules.yaml").string();
  std::ofstream(path) << by_partner;
  config_.journeys.rules = path;
  {
    Gateway gw(config_);
    Status s = gw.Start();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("entity key 'partner.id'"), std::string::npos) << s.message();
  }
  std::ofstream(path, std::ios::trunc) << rules;
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  std::ofstream(path, std::ios::trunc) << by_partner;
  Status s = gw.ReloadRules();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("the rules' entity key 'partner.id' is pseudonymised or dropped"),
            std::string::npos)
      << s.message();
  gw.Stop();
}

// redaction.debug: which rule fired, where, under which key; never the value.
TEST_F(GatewayRedactionTest, DebugModeLogsTheRuleNeverTheValue) {
  ASSERT_TRUE(log::Init("debug", log::Format::kLogfmt));
  config_.redaction.debug = true;
  Gateway gw(config_);
  ASSERT_TRUE(gw.Start().ok());
  testing::internal::CaptureStderr();
  EXPECT_EQ(Request(gw.otlp_http_port(), "POST", "/v1/traces",
                    OrderSpan("DBG-1", "mail Canary.Debug@example.org", "P-CANARY-DBG"))
                .status,
            200);
  EXPECT_TRUE(JourneyShows(gw.http_port(), "DBG-1", "mail pse:k1:"));
  gw.Stop();
  const std::string logged = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(log::Init("info", log::Format::kLogfmt));
  EXPECT_NE(logged.find("msg=\"redaction rule fired\" carrier=span_attribute "
                        "rule=pseudonymise_key detector=key key=partner.id"),
            std::string::npos)
      << logged;
  EXPECT_NE(logged.find("carrier=span_name rule=detector detector=email key=-"), std::string::npos)
      << logged;
  for (const char* canary : {"CANARY", "Canary", "canary"}) {
    EXPECT_EQ(logged.find(canary), std::string::npos) << canary << "\n" << logged;
  }
}

}  // namespace
}  // namespace ordertrace::gateway
