#include "ingest_log/stage_consumer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ingest_log/log_sink.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::ingest_log {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

// One request of `spans` spans named "<name>-<i>".
std::string Request(const std::string& name, int spans = 1) {
  RequestBuilder b;
  b.Resource("svc");
  for (int i = 0; i < spans; ++i) {
    b.Add(SpanBuilder(name + "-" + std::to_string(i))
              .Ids(std::string(16, '\x01'), std::string(7, '\x02') + static_cast<char>(i + 1))
              .Times(1'700'000'000'000'000'000ull, 1'700'000'000'005'000'000ull));
  }
  return b.Build().SerializeAsString();
}

// Records what it is given; holds the batch of the span named `hold` until `release` is set
// (as attribution holds the request of a span that waits for its ancestor).
class RecordingStage : public pipeline::Stage {
 public:
  void Process(const std::shared_ptr<const otlp::SpanBatch>& batch) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    for (const otlp::SpanRef& s : batch->spans()) {
      names.emplace_back(s.name);
      if (names.back() == hold) held = batch;
    }
    ++processed;
  }
  bool Flush(bool final) noexcept override {
    std::lock_guard<std::mutex> lock(mu);
    ++flushes;
    if (final) ++final_flushes;
    if (release.load() || final) held.reset();
    return true;
  }
  std::mutex mu;
  std::vector<std::string> names;
  std::string hold;
  std::shared_ptr<const otlp::SpanBatch> held;
  std::atomic<bool> release{false};
  int processed = 0;
  int flushes = 0;
  int final_flushes = 0;
};

bool WaitFor(const std::function<bool()>& f, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

class StageConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("stage_consumer_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    LogOptions o;
    o.dir = dir_;
    o.consumers = {"journeys"};
    auto log = DurableLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(log).value();
  }
  void TearDown() override {
    log_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  std::unique_ptr<DurableLog> log_;
  metrics::Registry registry_;
};

TEST_F(StageConsumerTest, ReadsManyRecordsPerRoundAndAcknowledgesAfterTheFlush) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(log_->Append(Request("r" + std::to_string(i))).ok());
  RecordingStage stage;
  DurableLog::Consumer& c = *log_->consumer("journeys");
  StageConsumer consumer(c, {&stage}, {}, registry_);
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] { return c.lag_records() == 0; }));
  {
    std::lock_guard<std::mutex> lock(stage.mu);
    EXPECT_EQ(stage.processed, 20);
    ASSERT_EQ(stage.names.size(), 20u);
    EXPECT_EQ(stage.names.front(), "r0-0");
    EXPECT_EQ(stage.names.back(), "r19-0");
    EXPECT_LT(stage.flushes, 20) << "one flush per round of many records, not per record";
  }
  consumer.Stop();
  EXPECT_EQ(stage.final_flushes, 1);
  EXPECT_NE(registry_.Serialize().find(
                "ordertrace_ingest_log_consumed_records_total{consumer=\"journeys\"} 20"),
            std::string::npos);
}

TEST_F(StageConsumerTest, ABatchAStageHoldsKeepsTheCursorBeforeIt) {
  RecordingStage stage;
  stage.hold = "r2-0";
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log_->Append(Request("r" + std::to_string(i))).ok());
  DurableLog::Consumer& c = *log_->consumer("journeys");
  StageConsumer consumer(c, {&stage}, {}, registry_);
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] { return consumer.records_read() == 5; }));
  std::this_thread::sleep_for(300ms);  // a few idle rounds
  EXPECT_EQ(c.acked_id(), 2u) << "r2 is held: the cursor stays before it";
  EXPECT_EQ(c.lag_records(), 3u);
  stage.release = true;
  EXPECT_TRUE(WaitFor([&] { return c.lag_records() == 0; }));
  consumer.Stop();
}

TEST_F(StageConsumerTest, StopDrainsTheLogAndEndsHeldWork) {
  RecordingStage stage;
  stage.hold = "r0-0";
  DurableLog::Consumer& c = *log_->consumer("journeys");
  {
    StageConsumer consumer(c, {&stage}, {}, registry_);
    consumer.Start();
    LogSink sink(*log_);
    for (int i = 0; i < 8; ++i) {
      auto batch = otlp::DecodeExportRequest(Request("r" + std::to_string(i), 3),
                                             otlp::Protocol::kGrpc, otlp::Limits{});
      ASSERT_TRUE(batch.ok());
      ASSERT_TRUE(sink.Accept(*batch).ok());
    }
    consumer.Stop();  // the final Flush() releases r0: everything is acknowledged
  }
  EXPECT_EQ(c.lag_records(), 0u);
  EXPECT_EQ(stage.final_flushes, 1);
  EXPECT_EQ(stage.names.size(), 24u);
}

TEST_F(StageConsumerTest, ARestartReplaysWhatWasNotAcknowledged) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log_->Append(Request("r" + std::to_string(i))).ok());
  // Read and "crash" before acknowledging: the consumer's thread never ran.
  DurableLog::Consumer& c = *log_->consumer("journeys");
  EXPECT_EQ(c.Next(~uint64_t{0}, 0ms).size(), 3u);
  log_.reset();
  LogOptions o;
  o.dir = dir_;
  o.consumers = {"journeys"};
  log_ = std::move(DurableLog::Open(o)).value();
  RecordingStage stage;
  StageConsumer consumer(*log_->consumer("journeys"), {&stage}, {}, registry_);
  consumer.Start();
  ASSERT_TRUE(WaitFor([&] { return log_->consumer("journeys")->lag_records() == 0; }));
  consumer.Stop();
  EXPECT_EQ(stage.names, (std::vector<std::string>{"r0-0", "r1-0", "r2-0"}));
}

}  // namespace
}  // namespace ordertrace::ingest_log
