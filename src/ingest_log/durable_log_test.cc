// The ingest log's consumers, budget, restart and failure behaviour.  The single-consumer core
// (record format, torn tails, group commit, SIGKILL) is tested through DurableQueue in
// src/forward/durable_queue_test.cc, which is this log with the one consumer `forward`.
#include "ingest_log/durable_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::ingest_log {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uint64_t kHeader = 20;
constexpr uint64_t kAll = ~uint64_t{0};

std::vector<std::string> Payloads(const std::vector<LogRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.payload);
  return out;
}

std::vector<std::string> Files(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

class DurableLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ingest_log_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    options_.dir = dir_;
    options_.consumers = {"journeys", "forward"};
    options_.retry_after = 1500ms;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<DurableLog> Open(RecoveryReport* report = nullptr) {
    auto log = DurableLog::Open(options_, report);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(log).value() : nullptr;
  }

  fs::path dir_;
  LogOptions options_;
};

TEST_F(DurableLogTest, ConsumersReadAndAcknowledgeIndependently) {
  auto log = Open();
  ASSERT_TRUE(log);
  for (const char* p : {"a", "bb", "ccc", "dddd", "eeeee"}) ASSERT_TRUE(log->Append(p).ok());
  DurableLog::Consumer* j = log->consumer("journeys");
  DurableLog::Consumer* f = log->consumer("forward");
  ASSERT_TRUE(j && f);
  EXPECT_EQ(log->consumer("other"), nullptr);

  auto all = f->Next(kAll, 0ms);
  ASSERT_EQ(all.size(), 5u);
  ASSERT_TRUE(f->Ack(all.back().id).ok());
  auto two = j->Next(3, 0ms);  // "a" + "bb"
  EXPECT_EQ(Payloads(two), (std::vector<std::string>{"a", "bb"}));
  ASSERT_TRUE(j->Ack(two.back().id).ok());

  EXPECT_EQ(f->lag_records(), 0u);
  EXPECT_EQ(f->lag_bytes(), 0u);
  EXPECT_EQ(j->lag_records(), 3u);
  EXPECT_EQ(j->lag_bytes(), 3 * kHeader + 3 + 4 + 5);
  // The log keeps what the slowest consumer still needs.
  EXPECT_EQ(log->records(), 3u);
  EXPECT_EQ(log->bytes(), 3 * kHeader + 3 + 4 + 5);
  EXPECT_EQ(Payloads(j->Next(kAll, 0ms)), (std::vector<std::string>{"ccc", "dddd", "eeeee"}));
  EXPECT_TRUE(f->Next(kAll, 0ms).empty());
}

TEST_F(DurableLogTest, ASegmentIsDeletedOnlyWhenEveryConsumerPassedIt) {
  options_.segment_bytes = 3 * (kHeader + 10);  // three records of 10 bytes per segment
  auto log = Open();
  ASSERT_TRUE(log);
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(log->Append(std::string(10, 'a' + i)).ok());
  ASSERT_EQ(Files(dir_, "seg-").size(), 3u);
  DurableLog::Consumer* j = log->consumer("journeys");
  DurableLog::Consumer* f = log->consumer("forward");
  auto all = f->Next(kAll, 0ms);
  ASSERT_EQ(all.size(), 9u);
  ASSERT_TRUE(f->Ack(all.back().id).ok());
  EXPECT_EQ(Files(dir_, "seg-").size(), 3u) << "journeys still needs them";
  auto first4 = j->Next(4 * 10, 0ms);
  ASSERT_EQ(first4.size(), 4u);
  ASSERT_TRUE(j->Ack(first4.back().id).ok());
  EXPECT_EQ(Files(dir_, "seg-").size(), 2u) << "the first segment is behind both";
  auto rest = j->Next(kAll, 0ms);
  ASSERT_TRUE(j->Ack(rest.back().id).ok());
  EXPECT_EQ(Files(dir_, "seg-").size(), 1u) << "the active segment stays";
  EXPECT_EQ(log->records(), 0u);
}

TEST_F(DurableLogTest, ARestartResumesEachConsumerFromItsCursor) {
  {
    auto log = Open();
    ASSERT_TRUE(log);
    for (int i = 1; i <= 6; ++i) ASSERT_TRUE(log->Append("r" + std::to_string(i)).ok());
    auto f = log->consumer("forward")->Next(kAll, 0ms);
    ASSERT_TRUE(log->consumer("forward")->Ack(f[3].id).ok());  // r1..r4
    auto j = log->consumer("journeys")->Next(kAll, 0ms);
    ASSERT_TRUE(log->consumer("journeys")->Ack(j[1].id).ok());  // r1..r2
  }
  // The forwarder's cursor keeps the forward queue's name; the others get their own.
  EXPECT_EQ(Files(dir_, "cursor"), (std::vector<std::string>{"cursor", "cursor-journeys"}));
  RecoveryReport report;
  auto log = Open(&report);
  ASSERT_TRUE(log);
  EXPECT_EQ(report.records, 4u);  // r3..r6: what journeys still needs
  EXPECT_EQ(Payloads(log->consumer("forward")->Next(kAll, 0ms)),
            (std::vector<std::string>{"r5", "r6"}));
  EXPECT_EQ(Payloads(log->consumer("journeys")->Next(kAll, 0ms)),
            (std::vector<std::string>{"r3", "r4", "r5", "r6"}));
  // Ids go on after the highest one on disk.
  ASSERT_TRUE(log->Append("r7").ok());
  auto r7 = log->consumer("forward")->Next(kAll, 0ms);
  ASSERT_EQ(r7.size(), 1u);
  EXPECT_EQ(r7[0].payload, "r7");
}

// horizon_unix_ms(): the append time of the oldest record a consumer has not acknowledged (the
// journey detector judges no deadline past it), unknown for records found on disk at Open().
TEST_F(DurableLogTest, AConsumersHorizonIsItsOldestUnacknowledgedAppend) {
  using Consumer = DurableLog::Consumer;
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  {
    auto log = Open();
    ASSERT_TRUE(log);
    Consumer* j = log->consumer("journeys");
    EXPECT_EQ(j->horizon_unix_ms(), Consumer::kCaughtUp);  // nothing appended
    const int64_t before = now_ms();
    ASSERT_TRUE(log->Append("r1").ok());
    const int64_t after_r1 = now_ms();
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(log->Append("r2").ok());
    EXPECT_GE(j->horizon_unix_ms(), before);
    EXPECT_LE(j->horizon_unix_ms(), after_r1);
    auto read = j->Next(kAll, 0ms);
    ASSERT_EQ(read.size(), 2u);
    EXPECT_LE(j->horizon_unix_ms(), after_r1) << "read is not acknowledged";
    ASSERT_TRUE(j->Ack(read[0].id).ok());
    EXPECT_GT(j->horizon_unix_ms(), after_r1) << "r2's append time";
    EXPECT_NE(j->horizon_unix_ms(), Consumer::kCaughtUp);
    ASSERT_TRUE(j->Ack(read[1].id).ok());
    EXPECT_EQ(j->horizon_unix_ms(), Consumer::kCaughtUp);
    ASSERT_TRUE(log->Append("r3").ok());  // left for the restart
  }
  auto log = Open();
  ASSERT_TRUE(log);
  Consumer* j = log->consumer("journeys");
  EXPECT_EQ(j->horizon_unix_ms(), Consumer::kHorizonUnknown) << "r3, found on disk";
  const int64_t before_r4 = now_ms();
  ASSERT_TRUE(log->Append("r4").ok());
  EXPECT_EQ(j->horizon_unix_ms(), Consumer::kHorizonUnknown) << "r3 still before it";
  auto read = j->Next(kAll, 0ms);
  ASSERT_EQ(read.size(), 2u);
  ASSERT_TRUE(j->Ack(read[0].id).ok());
  EXPECT_GE(j->horizon_unix_ms(), before_r4);
  EXPECT_LE(j->horizon_unix_ms(), now_ms());
  ASSERT_TRUE(j->Ack(read[1].id).ok());
  EXPECT_EQ(j->horizon_unix_ms(), Consumer::kCaughtUp);
}

TEST_F(DurableLogTest, UnacknowledgedRecordsAreHandedOutAgainAfterRewindOrRestart) {
  {
    auto log = Open();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("x").ok());
    ASSERT_TRUE(log->Append("y").ok());
    DurableLog::Consumer* j = log->consumer("journeys");
    EXPECT_EQ(j->Next(kAll, 0ms).size(), 2u);
    EXPECT_TRUE(j->Next(kAll, 0ms).empty());
    j->Rewind();
    EXPECT_EQ(j->Next(kAll, 0ms).size(), 2u);
  }
  auto log = Open();
  ASSERT_TRUE(log);
  EXPECT_EQ(Payloads(log->consumer("journeys")->Next(kAll, 0ms)),
            (std::vector<std::string>{"x", "y"}));
}

TEST_F(DurableLogTest, ANewConsumerStartsAtTheEndAndADroppedOneReleasesItsRecords) {
  options_.consumers = {"forward"};
  {
    auto log = Open();
    ASSERT_TRUE(log);
    for (const char* p : {"old1", "old2", "old3"}) ASSERT_TRUE(log->Append(p).ok());
  }
  options_.consumers = {"forward", "journeys"};
  {
    auto log = Open();
    ASSERT_TRUE(log);
    DurableLog::Consumer* j = log->consumer("journeys");
    EXPECT_EQ(j->lag_records(), 0u);
    EXPECT_TRUE(j->Next(kAll, 0ms).empty()) << "journeys did not exist when these came";
    ASSERT_TRUE(log->Append("new").ok());
    EXPECT_EQ(Payloads(j->Next(kAll, 0ms)), (std::vector<std::string>{"new"}));
    EXPECT_EQ(Payloads(log->consumer("forward")->Next(kAll, 0ms)),
              (std::vector<std::string>{"old1", "old2", "old3", "new"}));
    ASSERT_TRUE(j->Ack(4).ok());
  }
  // Forwarding turned off: its cursor goes, and with it what only it needed.
  options_.consumers = {"journeys"};
  RecoveryReport report;
  auto log = Open(&report);
  ASSERT_TRUE(log);
  EXPECT_EQ(report.records, 0u);
  EXPECT_EQ(log->records(), 0u);
  EXPECT_EQ(Files(dir_, "cursor"), (std::vector<std::string>{"cursor-journeys"}));
  EXPECT_TRUE(Files(dir_, "seg-").empty());
}

TEST_F(DurableLogTest, TheBudgetCountsFromTheOldestRecordAnyConsumerNeeds) {
  options_.max_bytes = 4 * (kHeader + 100);
  auto log = Open();
  ASSERT_TRUE(log);
  DurableLog::Consumer* f = log->consumer("forward");
  DurableLog::Consumer* j = log->consumer("journeys");
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(log->Append(std::string(100, 'a')).ok());
    auto r = f->Next(kAll, 0ms);
    ASSERT_TRUE(f->Ack(r.back().id).ok());  // the forwarder keeps up
  }
  // Journeys lags: it holds all four, and the log is full.
  Status full = log->Append(std::string(100, 'b'));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(full.retry_after_ms(), 1500);
  EXPECT_EQ(log->refused().full, 1u);
  auto two = j->Next(200, 0ms);
  ASSERT_EQ(two.size(), 2u);
  ASSERT_TRUE(j->Ack(two.back().id).ok());
  EXPECT_TRUE(log->Append(std::string(100, 'b')).ok());
  EXPECT_EQ(j->lag_records(), 3u);
  EXPECT_EQ(f->lag_records(), 1u);
}

// A full disk: the append is Unavailable with the retry delay (503 to the client), the partial
// record is cut away, and appends work again once the disk does.  Nothing acknowledged is lost.
TEST_F(DurableLogTest, AWriteErrorIsUnavailableAndLosesNothing) {
  {
    auto log = Open();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("before1").ok());
    ASSERT_TRUE(log->Append("before2").ok());
    log->InjectFaultForTest(DurableLog::Fault::kWrite, ENOSPC, 2);
    for (int i = 0; i < 2; ++i) {
      Status s = log->Append("refused");
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
      EXPECT_EQ(s.retry_after_ms(), 1500);
      EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
    }
    log->InjectFaultForTest(DurableLog::Fault::kWrite, EIO, 1);
    EXPECT_EQ(log->Append("refused").code(), StatusCode::kUnavailable);
    EXPECT_EQ(log->refused().disk_full, 2u);
    EXPECT_EQ(log->refused().io, 1u);
    ASSERT_TRUE(log->Append("after").ok());
    EXPECT_EQ(Payloads(log->consumer("forward")->Next(kAll, 0ms)),
              (std::vector<std::string>{"before1", "before2", "after"}));
  }
  RecoveryReport report;
  auto log = Open(&report);
  ASSERT_TRUE(log);
  EXPECT_EQ(report.torn_records, 0u) << "the partial records were cut away at once";
  EXPECT_EQ(Payloads(log->consumer("journeys")->Next(kAll, 0ms)),
            (std::vector<std::string>{"before1", "before2", "after"}));
}

// A failed fdatasync: the records written since the last good sync are taken back (their
// appends fail, nobody was answered OK), the next appends go to a new segment.
TEST_F(DurableLogTest, AFailedSyncTakesBackWhatItCoveredAndTheLogGoesOn) {
  {
    auto log = Open();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("synced").ok());
    log->InjectFaultForTest(DurableLog::Fault::kSync, ENOSPC, 1);
    Status s = log->Append("lost-to-the-sync");
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_EQ(log->refused().disk_full, 1u);
    EXPECT_EQ(log->records(), 1u);
    ASSERT_TRUE(log->Append("after").ok());
    EXPECT_EQ(Payloads(log->consumer("forward")->Next(kAll, 0ms)),
              (std::vector<std::string>{"synced", "after"}));
    EXPECT_EQ(Files(dir_, "seg-").size(), 2u);
  }
  auto log = Open();
  ASSERT_TRUE(log);
  EXPECT_EQ(Payloads(log->consumer("journeys")->Next(kAll, 0ms)),
            (std::vector<std::string>{"synced", "after"}));
}

TEST_F(DurableLogTest, ConsumerNamesAreChecked) {
  options_.consumers = {"forward", "forward"};
  EXPECT_FALSE(DurableLog::Open(options_).ok());
  options_.consumers = {"Bad/Name"};
  EXPECT_FALSE(DurableLog::Open(options_).ok());
  options_.consumers = {};
  EXPECT_FALSE(DurableLog::Open(options_).ok());
}

TEST_F(DurableLogTest, MetricsNameEveryConsumerAndReason) {
  auto log = Open();
  ASSERT_TRUE(log);
  metrics::Registry registry;
  log->RegisterMetrics(registry);
  ASSERT_TRUE(log->Append("abc").ok());
  const std::string m = registry.Serialize();
  for (const char* line :
       {"ordertrace_ingest_log_records 1\n", "ordertrace_ingest_log_bytes 23\n",
        "ordertrace_ingest_log_appends_total 1\n", "ordertrace_ingest_log_syncs_total 1\n",
        "ordertrace_ingest_log_refused_total{reason=\"disk_full\"} 0\n",
        "ordertrace_ingest_log_consumer_lag_records{consumer=\"journeys\"} 1\n",
        "ordertrace_ingest_log_consumer_lag_records{consumer=\"forward\"} 1\n",
        "ordertrace_ingest_log_consumer_lag_bytes{consumer=\"forward\"} 23\n",
        "ordertrace_ingest_log_consumer_lag_seconds{consumer=\"forward\"} "}) {
    EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
  }
}

TEST_F(DurableLogTest, AnOldForwardQueueIsMovedIntoTheLog) {
  const fs::path old_dir = dir_ / "forward-queue";
  {
    LogOptions o;
    o.dir = old_dir;
    o.consumers = {"forward"};
    auto old = DurableLog::Open(o);
    ASSERT_TRUE(old.ok());
    for (const char* p : {"sent", "unsent1", "unsent2"}) ASSERT_TRUE((*old)->Append(p).ok());
    ASSERT_TRUE((*old)->consumer("forward")->Ack(1).ok());
  }
  options_.dir = dir_ / "log";
  auto log = Open();
  ASSERT_TRUE(log);
  auto moved = ImportForwardQueue(old_dir, *log);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 2u);
  EXPECT_FALSE(fs::exists(old_dir));
  EXPECT_EQ(Payloads(log->consumer("forward")->Next(kAll, 0ms)),
            (std::vector<std::string>{"unsent1", "unsent2"}));
  auto none = ImportForwardQueue(old_dir, *log);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
}

}  // namespace
}  // namespace ordertrace::ingest_log
