#include "pipeline/ingest_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::pipeline {
namespace {

using namespace std::chrono_literals;

// A batch whose wire bytes are `bytes` long; its first byte tags it for order checks.
std::shared_ptr<const otlp::SpanBatch> MakeBatch(size_t bytes, char tag = 'x') {
  std::string wire(bytes, tag);
  return std::make_shared<otlp::SpanBatch>(std::move(wire), otlp::Protocol::kHttpProtobuf,
                                           otlp::Limits{});
}

// Records the tag of every batch it sees.
class RecordingStage : public Stage {
 public:
  void Process(const std::shared_ptr<const otlp::SpanBatch>& shared) noexcept override {
    const otlp::SpanBatch& batch = *shared;
    std::lock_guard<std::mutex> lock(mu_);
    tags_.push_back(batch.wire().empty() ? '\0' : batch.wire()[0]);
  }
  std::vector<char> tags() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tags_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<char> tags_;
};

// Blocks every batch until Release(), so tests can fill the queue behind it.
class GateStage : public Stage {
 public:
  void Process(const std::shared_ptr<const otlp::SpanBatch>&) noexcept override {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until the worker is inside Process() for the n-th time.
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return entered_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int entered_ = 0;
};

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

TEST(IngestQueueTest, RunsEveryStageInAcceptanceOrder) {
  metrics::Registry registry;
  RecordingStage first, second;
  IngestQueue queue({}, {&first, &second}, registry);
  for (char tag : std::string("abcdef")) ASSERT_TRUE(queue.Accept(MakeBatch(10, tag)).ok());
  queue.Close();
  EXPECT_EQ(first.tags(), (std::vector<char>{'a', 'b', 'c', 'd', 'e', 'f'}));
  EXPECT_EQ(second.tags(), first.tags());
  EXPECT_EQ(queue.queued_batches(), 0u);
  EXPECT_EQ(queue.queued_bytes(), 0u);
}

TEST(IngestQueueTest, RefusesWithRetryAfterWhenFullAndRecovers) {
  metrics::Registry registry;
  GateStage gate;
  IngestQueueOptions options;
  options.max_bytes = 100;
  options.retry_after = 750ms;
  IngestQueue queue(options, {&gate}, registry);

  ASSERT_TRUE(queue.Accept(MakeBatch(40)).ok());  // taken by the worker, held at the gate
  ASSERT_TRUE(gate.WaitEntered(1));
  ASSERT_TRUE(queue.Accept(MakeBatch(40)).ok());
  EXPECT_EQ(queue.queued_bytes(), 80u);  // the batch in the stage still counts

  Status full = queue.Accept(MakeBatch(40));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full.retry_after_ms(), 750);
  EXPECT_NE(full.message().find("full"), std::string::npos);
  EXPECT_TRUE(queue.Accept(MakeBatch(20)).ok());  // exactly at the bound still fits

  gate.Release();
  ASSERT_TRUE(WaitFor([&] { return queue.queued_batches() == 0; }));
  EXPECT_TRUE(queue.Accept(MakeBatch(40)).ok());
  queue.Close();
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_pipeline_refused_batches_total{reason=\"full\"} 1"),
            std::string::npos)
      << text;
}

TEST(IngestQueueTest, AcceptsABatchLargerThanTheBoundWhenEmpty) {
  metrics::Registry registry;
  RecordingStage stage;
  IngestQueueOptions options;
  options.max_bytes = 10;
  IngestQueue queue(options, {&stage}, registry);
  EXPECT_TRUE(queue.Accept(MakeBatch(1000, 'z')).ok());
  queue.Close();
  EXPECT_EQ(stage.tags(), std::vector<char>{'z'});
}

TEST(IngestQueueTest, CloseDrainsEverythingAcceptedThenRefuses) {
  metrics::Registry registry;
  GateStage gate;
  RecordingStage after;
  IngestQueue queue({}, {&gate, &after}, registry);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(queue.Accept(MakeBatch(100, 'a')).ok());
  ASSERT_TRUE(gate.WaitEntered(1));

  std::atomic<bool> closed{false};
  std::thread closer([&] {
    queue.Close();
    closed = true;
  });
  // Close() must wait for the held batches, and refuse new ones meanwhile.  Probes accepted
  // before Close() took effect are drained like any other batch.
  size_t probes_accepted = 0;
  ASSERT_TRUE(WaitFor([&] {
    Status s = queue.Accept(MakeBatch(1));
    if (s.ok()) ++probes_accepted;
    return s.code() == StatusCode::kUnavailable;
  }));
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(closed.load());
  gate.Release();
  closer.join();
  EXPECT_TRUE(closed.load());
  EXPECT_EQ(after.tags().size(), 50u + probes_accepted);

  Status late = queue.Accept(MakeBatch(1));
  EXPECT_EQ(late.code(), StatusCode::kUnavailable);
  EXPECT_GT(late.retry_after_ms(), 0);
  queue.Close();  // a second Close() is harmless
}

TEST(IngestQueueTest, ConcurrentProducersLoseNothing) {
  metrics::Registry registry;
  RecordingStage stage;
  IngestQueueOptions options;
  options.max_bytes = 64 * 1024;
  IngestQueue queue(options, {&stage}, registry);

  constexpr int kThreads = 4, kPerThread = 500;
  std::atomic<int> accepted{0}, throttled{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = queue.Accept(MakeBatch(512));
        if (s.ok())
          ++accepted;
        else if (s.code() == StatusCode::kResourceExhausted)
          ++throttled;
        else
          ADD_FAILURE() << s.ToString();
      }
    });
  }
  for (auto& p : producers) p.join();
  queue.Close();
  EXPECT_EQ(accepted + throttled, kThreads * kPerThread);
  EXPECT_EQ(stage.tags().size(), static_cast<size_t>(accepted.load()));
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_pipeline_batches_total " + std::to_string(accepted.load())),
            std::string::npos)
      << text;
}

TEST(IngestQueueTest, ExportsQueueGauges) {
  metrics::Registry registry;
  GateStage gate;
  IngestQueue queue({}, {&gate}, registry);
  ASSERT_TRUE(queue.Accept(MakeBatch(300)).ok());
  ASSERT_TRUE(gate.WaitEntered(1));
  ASSERT_TRUE(queue.Accept(MakeBatch(200)).ok());
  std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_pipeline_queue_bytes 500\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ordertrace_pipeline_queue_batches 2\n"), std::string::npos) << text;
  gate.Release();
  queue.Close();
  text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_pipeline_queue_bytes 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ordertrace_pipeline_batches_total 2\n"), std::string::npos) << text;
}

// The worker is woken by a batch when it sleeps, not while it collects after a run (unless the
// queue nears its bound); Close() ends the collecting at once.
TEST(IngestQueueTest, AfterARunTheWorkerCollectsUntilTheBoundNears) {
  metrics::Registry registry;
  RecordingStage stage;
  IngestQueueOptions options;
  options.max_bytes = 100;
  options.collect_window = 30s;
  IngestQueue queue(options, {&stage}, registry);
  ASSERT_TRUE(queue.Accept(MakeBatch(10, 'a')).ok());  // the worker sleeps: woken at once
  ASSERT_TRUE(WaitFor([&] { return stage.tags().size() == 1; }));
  std::this_thread::sleep_for(100ms);                  // the worker now collects for 30 s
  ASSERT_TRUE(queue.Accept(MakeBatch(10, 'b')).ok());  // 10 of 100 bytes: no wake-up
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(stage.tags().size(), 1u);
  ASSERT_TRUE(queue.Accept(MakeBatch(45, 'c')).ok());  // 55 of 100: past half, woken
  ASSERT_TRUE(WaitFor([&] { return stage.tags().size() == 3; }));
  EXPECT_EQ(stage.tags(), (std::vector<char>{'a', 'b', 'c'}));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(queue.Accept(MakeBatch(10, 'd')).ok());
  const auto t0 = std::chrono::steady_clock::now();
  queue.Close();  // runs 'd' without waiting out the 30 s
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_EQ(stage.tags().size(), 4u);
}

TEST(IngestQueueTest, RefusesANullBatch) {
  metrics::Registry registry;
  IngestQueue queue({}, {}, registry);
  EXPECT_EQ(queue.Accept(nullptr).code(), StatusCode::kInvalidArgument);
}

TEST(IngestQueueTest, DestructorDrains) {
  metrics::Registry registry;
  RecordingStage stage;
  {
    IngestQueue queue({}, {&stage}, registry);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(queue.Accept(MakeBatch(8)).ok());
  }
  EXPECT_EQ(stage.tags().size(), 10u);
}

}  // namespace
}  // namespace ordertrace::pipeline
