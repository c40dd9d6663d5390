#include "audit/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::audit {
namespace {

using Json = nlohmann::json;

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_audit_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "audit.log").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
};

AuditEvent Sample() {
  AuditEvent e;
  e.event = "api_request";
  e.outcome = "denied";
  e.reason = "missing_role";
  e.request_id = "0b6f2f9e-5a55-4f4e-9f39-0b1c2d3e4f50";
  e.actor.method = "bearer";
  e.actor.sub = "sam";
  e.actor.iss = "https://idp.example";
  e.actor.name = "Sam";
  e.actor.client_id = "ordertrace-cli";
  e.actor.roles = {};
  e.source.ip = "10.0.0.7";
  e.source.port = 51234;
  e.source.forwarded_for = "203.0.113.9";
  e.http.method = "GET";
  e.http.route = "/api/v1/orders/{id}";
  e.http.status = 403;
  e.http.latency_ms = 1.25;
  e.resource = {{"type", "order"}, {"id", "A-1"}};
  e.user_agent = "curl/8.0";
  return e;
}

TEST_F(AuditLogTest, FormatHasEveryField) {
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1765038017123));
  const Json j = Json::parse(AuditLog::Format(Sample(), at));
  EXPECT_EQ(j["ts"], "2025-12-06T16:20:17.123Z");
  EXPECT_EQ(j["audit_id"], "0b6f2f9e-5a55-4f4e-9f39-0b1c2d3e4f50");
  EXPECT_EQ(j["event"], "api_request");
  EXPECT_EQ(j["outcome"], "denied");
  EXPECT_EQ(j["reason"], "missing_role");
  EXPECT_EQ(j["actor"]["sub"], "sam");
  EXPECT_EQ(j["actor"]["iss"], "https://idp.example");
  EXPECT_EQ(j["actor"]["name"], "Sam");
  EXPECT_TRUE(j["actor"]["roles"].is_array());
  EXPECT_EQ(j["actor"]["auth"], "bearer");
  EXPECT_EQ(j["actor"]["client_id"], "ordertrace-cli");
  EXPECT_EQ(j["source"]["ip"], "10.0.0.7");
  EXPECT_EQ(j["source"]["port"], 51234);
  EXPECT_EQ(j["source"]["forwarded_for"], "203.0.113.9");
  EXPECT_EQ(j["http"]["method"], "GET");
  EXPECT_EQ(j["http"]["route"], "/api/v1/orders/{id}");
  EXPECT_EQ(j["http"]["status"], 403);
  EXPECT_DOUBLE_EQ(j["http"]["latency_ms"].get<double>(), 1.25);
  EXPECT_EQ(j["resource"]["type"], "order");
  EXPECT_EQ(j["resource"]["id"], "A-1");
  EXPECT_EQ(j["user_agent"], "curl/8.0");
}

TEST_F(AuditLogTest, EventsWithoutARequestGetAnIdAndNoHttp) {
  AuditEvent e;
  e.event = "connection_refused";
  e.outcome = "denied";
  e.reason = "not_allowed";
  e.source.ip = "192.0.2.1";
  const Json a = Json::parse(AuditLog::Format(e, std::chrono::system_clock::now()));
  const Json b = Json::parse(AuditLog::Format(e, std::chrono::system_clock::now()));
  EXPECT_EQ(a["audit_id"].get<std::string>().size(), 36u);
  EXPECT_NE(a["audit_id"], b["audit_id"]);
  EXPECT_FALSE(a.contains("http"));
  EXPECT_TRUE(a["resource"].is_object());
}

TEST_F(AuditLogTest, HostileStringsStayInsideOneLineOfValidJson) {
  AuditEvent e = Sample();
  e.user_agent =
      std::string("evil\n{\"event\":\"forged\"}\r\t\x01\x7f\"\\") + std::string(1000, 'A');
  e.resource = {{"id", "A-1\n\"},\"outcome\":\"allowed"}, {"x\"y", "\xff\xfe bad utf-8"}};
  e.actor.sub = std::string("nul\0inside", 10);
  const std::string line = AuditLog::Format(e, std::chrono::system_clock::now());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  const Json j = Json::parse(line);
  EXPECT_EQ(j["outcome"], "denied");
  EXPECT_EQ(j["event"], "api_request");
  EXPECT_EQ(j["resource"]["id"], "A-1\n\"},\"outcome\":\"allowed");
  EXPECT_LE(j["user_agent"].get<std::string>().size(), AuditLog::kMaxUserAgentBytes);
  EXPECT_EQ(j["actor"]["sub"].get<std::string>().size(), 10u);
}

TEST_F(AuditLogTest, TruncatedUserAgentIsStillValidUtf8) {
  AuditEvent e = Sample();
  e.user_agent = std::string(255, 'a') + "\xc3\xa9";  // é cut in the middle at 256 bytes
  const Json j = Json::parse(AuditLog::Format(e, std::chrono::system_clock::now()));
  EXPECT_EQ(j["user_agent"].get<std::string>().substr(0, 255), std::string(255, 'a'));
}

TEST_F(AuditLogTest, FileIsCreated0600AndAppended) {
  {
    std::ofstream(path_) << "{\"earlier\":1}\n";
    ::chmod(path_.c_str(), 0644);
  }
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status().message();
  (*log)->Record(Sample());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "{\"earlier\":1}");
  EXPECT_EQ(Json::parse(lines[1])["reason"], "missing_role");

  const std::string fresh = (dir_ / "new.log").string();
  auto other = AuditLog::Open(fresh);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AuditLogTest, OpenErrorNamesTheFile) {
  auto log = AuditLog::Open((dir_ / "missing" / "audit.log").string());
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("audit.file"), std::string::npos);
  EXPECT_NE(log.status().message().find("missing/audit.log"), std::string::npos);
}

TEST_F(AuditLogTest, ReopenAfterRenameWritesTheNewFile) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  (*log)->Record(Sample());
  std::filesystem::rename(path_, path_ + ".1");  // logrotate
  (*log)->Record(Sample());                      // still the old file
  ASSERT_TRUE((*log)->Reopen().ok());
  (*log)->Record(Sample());
  EXPECT_EQ(Lines(path_ + ".1").size(), 2u);
  EXPECT_EQ(Lines(path_).size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(AuditLogTest, WriteFailuresAreCounted) {
  metrics::Registry registry;
  auto log = AuditLog::Open("/dev/full", &registry);
  ASSERT_TRUE(log.ok()) << log.status().message();
  (*log)->Record(Sample());
  (*log)->Record(Sample());
  EXPECT_NE(registry.Serialize().find("ordertrace_audit_write_errors_total 2"), std::string::npos)
      << registry.Serialize();
}

TEST_F(AuditLogTest, ConcurrentRecordsKeepLinesWhole) {
  auto log = AuditLog::Open(path_);
  ASSERT_TRUE(log.ok());
  constexpr int kThreads = 8, kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AuditEvent e = Sample();
      e.user_agent = std::string(200, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i) {
        e.request_id = std::to_string(t) + "-" + std::to_string(i);
        (*log)->Record(e);
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const std::string& line : lines) {
    const Json j = Json::parse(line);
    const std::string ua = j["user_agent"];
    EXPECT_EQ(ua, std::string(200, ua[0]));
  }
}

}  // namespace
}  // namespace ordertrace::audit
