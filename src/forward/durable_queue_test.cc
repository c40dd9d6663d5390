#include "forward/durable_queue.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ordertrace::forward {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uint64_t kHeader = 20;  // magic | length | crc32c | id
constexpr uint64_t kAll = ~uint64_t{0};

// Bitwise CRC32C, independent of the implementation under test.
uint32_t ReferenceCrc32c(std::string_view data) {
  uint32_t crc = ~0u;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

uint32_t LoadU32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}
uint64_t LoadU64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

std::vector<std::string> SegmentFiles(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seg-", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Payloads(const std::vector<QueueRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.payload);
  return out;
}

// Everything the consumer can get now.
std::vector<QueueRecord> Drain(DurableQueue& q) {
  std::vector<QueueRecord> all;
  while (true) {
    auto batch = q.Next(kAll, 0ms);
    if (batch.empty()) return all;
    for (auto& r : batch) all.push_back(std::move(r));
  }
}

// A payload that identifies its producer and sequence number and whose filler can be checked:
// u64 producer | u64 seq | filler.
std::string TaggedPayload(uint64_t producer, uint64_t seq) {
  std::string p(16 + (seq * 7919 + producer * 31) % 3000, '\0');
  std::memcpy(p.data(), &producer, 8);
  std::memcpy(p.data() + 8, &seq, 8);
  for (size_t i = 16; i < p.size(); ++i) p[i] = static_cast<char>('a' + (producer + seq + i) % 26);
  return p;
}

bool ParseTagged(const std::string& p, uint64_t* producer, uint64_t* seq) {
  if (p.size() < 16) return false;
  std::memcpy(producer, p.data(), 8);
  std::memcpy(seq, p.data() + 8, 8);
  return p == TaggedPayload(*producer, *seq);
}

class DurableQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');  // parameterized tests: "Name/0"
    root_ = fs::temp_directory_path() /
            ("ordertrace_durable_queue_test_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(root_);
    dir_ = root_ / "queue";
    options_.dir = dir_;
    options_.max_bytes = 1 << 20;
    options_.segment_bytes = 1 << 20;
    options_.retry_after = 250ms;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<DurableQueue> Open(RecoveryReport* report = nullptr) {
    auto q = DurableQueue::Open(options_, report);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    if (!q.ok()) return nullptr;
    return std::move(q).value();
  }

  fs::path root_;
  fs::path dir_;
  DurableQueueOptions options_;
};

TEST_F(DurableQueueTest, AppendNextAckRoundTrip) {
  auto q = Open();
  ASSERT_TRUE(q);
  EXPECT_EQ(q->records(), 0u);
  EXPECT_EQ(q->oldest_age_ms(), 0);
  ASSERT_TRUE(q->Append("a").ok());
  ASSERT_TRUE(q->Append("bb").ok());
  ASSERT_TRUE(q->Append("").ok());  // empty payloads are records too
  ASSERT_TRUE(q->Append("dddd").ok());
  EXPECT_EQ(q->records(), 4u);
  EXPECT_EQ(q->bytes(), 4 * kHeader + 7);
  EXPECT_GE(q->oldest_age_ms(), 0);

  auto got = q->Next(kAll, 0ms);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(Payloads(got), (std::vector<std::string>{"a", "bb", "", "dddd"}));
  for (size_t i = 1; i < got.size(); ++i) EXPECT_GT(got[i].id, got[i - 1].id);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  EXPECT_NEAR(static_cast<double>(got[0].appended_unix_ms), static_cast<double>(now_ms), 60000);
  EXPECT_TRUE(q->Next(kAll, 0ms).empty()) << "handed out once until Rewind()";

  ASSERT_TRUE(q->Ack(got[1].id).ok());
  EXPECT_EQ(q->records(), 2u);
  EXPECT_EQ(q->bytes(), 2 * kHeader + 4);
  ASSERT_TRUE(q->Ack(got[3].id).ok());
  EXPECT_EQ(q->records(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  EXPECT_EQ(q->oldest_age_ms(), 0);
  EXPECT_TRUE(q->Ack(got[3].id).ok()) << "acknowledging again is a no-op";
}

TEST_F(DurableQueueTest, NextHonoursMaxBytesButReturnsAtLeastOne) {
  auto q = Open();
  ASSERT_TRUE(q);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(q->Append(std::string(100, static_cast<char>('a' + i))).ok());
  EXPECT_EQ(q->Next(250, 0ms).size(), 2u);
  auto one = q->Next(0, 0ms);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].payload, std::string(100, 'c'));
  EXPECT_EQ(q->Next(kAll, 0ms).size(), 2u);
}

TEST_F(DurableQueueTest, RewindHandsOutTheUnacknowledgedAgain) {
  auto q = Open();
  ASSERT_TRUE(q);
  for (const char* p : {"1", "2", "3"}) ASSERT_TRUE(q->Append(p).ok());
  auto first = q->Next(kAll, 0ms);
  ASSERT_EQ(first.size(), 3u);
  q->Rewind();
  EXPECT_EQ(Payloads(q->Next(kAll, 0ms)), (std::vector<std::string>{"1", "2", "3"}));
  ASSERT_TRUE(q->Ack(first[0].id).ok());
  q->Rewind();
  auto again = q->Next(kAll, 0ms);
  EXPECT_EQ(Payloads(again), (std::vector<std::string>{"2", "3"}));
  EXPECT_EQ(again[0].id, first[1].id);
}

TEST_F(DurableQueueTest, NextWaitsForAnAppend) {
  auto q = Open();
  ASSERT_TRUE(q);
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(q->Append("late").ok());
  });
  auto got = q->Next(kAll, 10s);
  producer.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "late");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(q->Next(kAll, 30ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 25ms);
}

TEST_F(DurableQueueTest, OnDiskFormatIsAsDocumented) {
  options_.max_bytes = 4 << 20;
  options_.segment_bytes = 4 << 20;
  auto q = Open();
  ASSERT_TRUE(q);
  std::vector<std::string> payloads = {"123456789"};
  for (size_t n = 0; n < 70; ++n) {
    std::string p(n, '\0');
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<char>(i * 37 + n);
    payloads.push_back(p);
  }
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  payloads.push_back(big);
  for (const auto& p : payloads) ASSERT_TRUE(q->Append(p).ok());
  auto got = q->Next(kAll, 0ms);
  ASSERT_EQ(got.size(), payloads.size());

  const auto files = SegmentFiles(dir_);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0], "seg-" + std::string(19, '0') + "1.log");
  const std::string data = ReadFile(dir_ / files[0]);
  size_t off = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_LE(off + kHeader, data.size());
    EXPECT_EQ(data.substr(off, 4), "OTQ1");
    EXPECT_EQ(LoadU32(data, off + 4), payloads[i].size());
    EXPECT_EQ(LoadU32(data, off + 8), ReferenceCrc32c(payloads[i])) << "record " << i;
    EXPECT_EQ(LoadU64(data, off + 12), got[i].id);
    EXPECT_EQ(data.substr(off + kHeader, payloads[i].size()), payloads[i]);
    off += kHeader + payloads[i].size();
  }
  EXPECT_EQ(off, data.size());
  EXPECT_EQ(LoadU32(data, 8), 0xE3069283u) << "the CRC32C check value";

  ASSERT_TRUE(q->Ack(got[2].id).ok());
  const std::string cursor = ReadFile(dir_ / "cursor");
  ASSERT_EQ(cursor.size(), 16u);
  EXPECT_EQ(cursor.substr(0, 4), "OTQC");
  EXPECT_EQ(LoadU64(cursor, 4), got[2].id);
  EXPECT_EQ(LoadU32(cursor, 12), ReferenceCrc32c(cursor.substr(0, 12)));
  EXPECT_FALSE(fs::exists(dir_ / "cursor.tmp"));
}

TEST_F(DurableQueueTest, IdsStrictlyIncreaseAcrossReopens) {
  uint64_t max_id = 0;
  for (int round = 0; round < 4; ++round) {
    auto q = Open();
    ASSERT_TRUE(q);
    if (round == 2) {
      // Everything was acknowledged: every segment is gone, only the cursor keeps the floor.
      EXPECT_TRUE(SegmentFiles(dir_).empty());
      EXPECT_EQ(q->records(), 0u);
    }
    ASSERT_TRUE(q->Append("x").ok());
    ASSERT_TRUE(q->Append("y").ok());
    auto all = Drain(*q);  // after a restart: the unacknowledged records of earlier rounds too
    ASSERT_GE(all.size(), 2u);
    const size_t n = all.size();
    EXPECT_EQ(all[n - 2].payload, "x");
    EXPECT_GT(all[n - 2].id, max_id) << "round " << round;
    EXPECT_GT(all[n - 1].id, all[n - 2].id);
    max_id = all[n - 1].id;
    if (round == 1) {
      ASSERT_TRUE(q->Ack(max_id).ok());
    }
  }
}

TEST_F(DurableQueueTest, FullQueueIsResourceExhaustedUntilAcked) {
  options_.max_bytes = 3 * (kHeader + 100);
  auto q = Open();
  ASSERT_TRUE(q);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->Append(std::string(100, 'a')).ok());
  EXPECT_EQ(q->bytes(), options_.max_bytes);
  Status full = q->Append(std::string(100, 'b'));
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(full.retry_after_ms(), 250);
  EXPECT_EQ(q->Append("").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(q->records(), 3u);

  auto got = q->Next(0, 0ms);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(q->Ack(got[0].id).ok());
  EXPECT_TRUE(q->Append(std::string(100, 'b')).ok());
  EXPECT_EQ(q->Append("c").code(), StatusCode::kResourceExhausted);
}

TEST_F(DurableQueueTest, RecordLargerThanTheQueueGoesOnlyIntoAnEmptyQueue) {
  options_.max_bytes = 100;
  options_.segment_bytes = 64;
  auto q = Open();
  ASSERT_TRUE(q);
  const std::string big(1000, 'B');
  ASSERT_TRUE(q->Append(big).ok());
  EXPECT_EQ(q->bytes(), kHeader + 1000);
  EXPECT_EQ(q->Append("small").code(), StatusCode::kResourceExhausted);
  auto got = q->Next(0, 0ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, big);
  ASSERT_TRUE(q->Ack(got[0].id).ok());
  EXPECT_TRUE(q->Append("small").ok());
  EXPECT_EQ(q->Next(kAll, 0ms)[0].payload, "small");
}

TEST_F(DurableQueueTest, RestartRecoversUnacknowledgedRecordsInOrder) {
  std::vector<QueueRecord> before;
  {
    auto q = Open();
    ASSERT_TRUE(q);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(q->Append("record-" + std::to_string(i)).ok());
    before = q->Next(kAll, 0ms);
    ASSERT_EQ(before.size(), 10u);
    ASSERT_TRUE(q->Ack(before[3].id).ok());
  }
  RecoveryReport report;
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.records, 6u);
  EXPECT_EQ(report.bytes, 6 * (kHeader + 8));
  EXPECT_EQ(report.torn_records, 0u);
  EXPECT_EQ(report.torn_bytes, 0u);
  EXPECT_EQ(q->records(), 6u);
  EXPECT_EQ(q->bytes(), report.bytes);
  auto after = q->Next(kAll, 0ms);
  ASSERT_EQ(after.size(), 6u);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i + 4].id);
    EXPECT_EQ(after[i].payload, before[i + 4].payload);
    EXPECT_GT(after[i].appended_unix_ms, 0);
  }
}

TEST_F(DurableQueueTest, OldestAgeAfterRestartComesFromTheSegmentFile) {
  {
    auto q = Open();
    ASSERT_TRUE(q);
    ASSERT_TRUE(q->Append("old").ok());
  }
  const auto files = SegmentFiles(dir_);
  ASSERT_EQ(files.size(), 1u);
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = ::time(nullptr) - 3600;
  times[0].tv_nsec = times[1].tv_nsec = 0;
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir_ / files[0]).c_str(), times, 0), 0);
  auto q = Open();
  ASSERT_TRUE(q);
  EXPECT_GE(q->oldest_age_ms(), 3599 * 1000);
  EXPECT_LT(q->oldest_age_ms(), 3700 * 1000);
}

enum class Damage { kTruncateInPayload, kTruncateInHeader, kFlipPayloadByte, kGarbageAppended };

class TornTailTest : public DurableQueueTest, public ::testing::WithParamInterface<Damage> {};

TEST_P(TornTailTest, BadLastRecordIsDroppedAndTheQueueKeepsWorking) {
  std::vector<QueueRecord> written;
  {
    auto q = Open();
    ASSERT_TRUE(q);
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(q->Append(std::string(100, static_cast<char>('a' + i))).ok());
    written = q->Next(kAll, 0ms);
    ASSERT_EQ(written.size(), 5u);
  }
  const auto files = SegmentFiles(dir_);
  ASSERT_EQ(files.size(), 1u);
  const fs::path seg = dir_ / files[0];
  std::string data = ReadFile(seg);
  ASSERT_EQ(data.size(), 5 * (kHeader + 100));
  uint64_t expect_torn_bytes = kHeader + 100;
  uint64_t expect_records = 4;
  switch (GetParam()) {
    case Damage::kTruncateInPayload:
      data.resize(data.size() - 37);
      expect_torn_bytes -= 37;
      break;
    case Damage::kTruncateInHeader:
      data.resize(4 * (kHeader + 100) + 9);
      expect_torn_bytes = 9;
      break;
    case Damage::kFlipPayloadByte:
      data[data.size() - 50] ^= 0x01;
      break;
    case Damage::kGarbageAppended:  // a record header that never got its payload
      data += std::string("OTQ1\xff\xff\x00\x00", 8) + std::string(12, '\x7f');
      expect_torn_bytes = 20;
      expect_records = 5;
      break;
  }
  WriteFile(seg, data);

  RecoveryReport report;
  {
    auto q = Open(&report);
    ASSERT_TRUE(q);
    EXPECT_EQ(report.torn_records, 1u);
    EXPECT_EQ(report.torn_bytes, expect_torn_bytes);
    EXPECT_EQ(report.records, expect_records);
    EXPECT_EQ(fs::file_size(seg), expect_records * (kHeader + 100)) << "truncated on disk";
    auto got = q->Next(kAll, 0ms);
    ASSERT_EQ(got.size(), expect_records);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].id, written[i].id);
      EXPECT_EQ(got[i].payload, written[i].payload);
    }
    ASSERT_TRUE(q->Append("after recovery").ok());
    auto more = q->Next(kAll, 0ms);
    ASSERT_EQ(more.size(), 1u);
    EXPECT_GT(more[0].id, got.back().id);
  }
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.torn_records, 0u);
  EXPECT_EQ(report.torn_bytes, 0u);
  EXPECT_EQ(report.records, expect_records + 1);
  auto all = q->Next(kAll, 0ms);
  ASSERT_EQ(all.size(), expect_records + 1);
  EXPECT_EQ(all.back().payload, "after recovery");
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].id, all[i - 1].id);
}

INSTANTIATE_TEST_SUITE_P(Damages, TornTailTest,
                         ::testing::Values(Damage::kTruncateInPayload, Damage::kTruncateInHeader,
                                           Damage::kFlipPayloadByte, Damage::kGarbageAppended));

TEST_F(DurableQueueTest, CorruptionInAnEarlierSegmentCutsOnlyThatSegment) {
  options_.segment_bytes = 2 * (kHeader + 100);  // two records per segment
  std::vector<QueueRecord> written;
  {
    auto q = Open();
    ASSERT_TRUE(q);
    for (int i = 0; i < 6; ++i)
      ASSERT_TRUE(q->Append(std::string(100, static_cast<char>('a' + i))).ok());
    written = q->Next(kAll, 0ms);
  }
  const auto files = SegmentFiles(dir_);
  ASSERT_EQ(files.size(), 3u);
  std::string data = ReadFile(dir_ / files[0]);
  data[kHeader + 100 + 4] ^= 0x40;  // the second record's length
  WriteFile(dir_ / files[0], data);
  RecoveryReport report;
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.torn_records, 1u);
  EXPECT_EQ(report.records, 5u);
  auto got = q->Next(kAll, 0ms);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].payload, written[0].payload);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_EQ(got[i].payload, written[i + 1].payload);
}

TEST_F(DurableQueueTest, SegmentsRollAndAcknowledgedOnesAreDeleted) {
  options_.segment_bytes = 2 * (kHeader + 100);
  auto q = Open();
  ASSERT_TRUE(q);
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(q->Append(std::string(100, 'r')).ok());
  auto files = SegmentFiles(dir_);
  ASSERT_EQ(files.size(), 5u);  // 2 + 2 + 2 + 2 + 1
  auto got = q->Next(kAll, 0ms);
  ASSERT_EQ(got.size(), 9u);
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(files[i], "seg-" + std::string(19, '0') + std::to_string(got[2 * i].id) + ".log");
    EXPECT_EQ(fs::file_size(dir_ / files[i]), (i < 4 ? 2 : 1) * (kHeader + 100));
  }

  ASSERT_TRUE(q->Ack(got[2].id).ok());  // the first segment and half of the second
  EXPECT_EQ(SegmentFiles(dir_), std::vector<std::string>(files.begin() + 1, files.end()));
  ASSERT_TRUE(q->Ack(got[3].id).ok());
  EXPECT_EQ(SegmentFiles(dir_), std::vector<std::string>(files.begin() + 2, files.end()));
  ASSERT_TRUE(q->Ack(got[8].id).ok());
  // The active segment stays (it is written to) until it rolls or the next start.
  EXPECT_EQ(SegmentFiles(dir_), std::vector<std::string>{files[4]});
  EXPECT_EQ(q->records(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  q.reset();
  q = Open();
  ASSERT_TRUE(q);
  EXPECT_TRUE(SegmentFiles(dir_).empty());
  ASSERT_TRUE(q->Append("next").ok());
  EXPECT_GT(q->Next(kAll, 0ms)[0].id, got[8].id);
}

TEST_F(DurableQueueTest, CorruptCursorMeansEverythingOnDiskIsSentAgain) {
  {
    auto q = Open();
    ASSERT_TRUE(q);
    for (const char* p : {"1", "2", "3"}) ASSERT_TRUE(q->Append(p).ok());
    ASSERT_TRUE(q->Ack(q->Next(0, 0ms)[0].id).ok());
  }
  WriteFile(dir_ / "cursor", "garbage");
  auto q = Open();
  ASSERT_TRUE(q);
  EXPECT_EQ(Payloads(q->Next(kAll, 0ms)), (std::vector<std::string>{"1", "2", "3"}));
}

TEST_F(DurableQueueTest, SecondOpenOfTheSameDirectoryIsRefused) {
  auto q = Open();
  ASSERT_TRUE(q);
  auto second = DurableQueue::Open(options_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status().ToString();
  q.reset();
  EXPECT_TRUE(DurableQueue::Open(options_).ok());
}

TEST_F(DurableQueueTest, OpenOnAFileIsAnErrorNotACrash) {
  fs::create_directories(root_);
  WriteFile(root_ / "file", "x");
  options_.dir = root_ / "file";
  auto q = DurableQueue::Open(options_);
  EXPECT_FALSE(q.ok());
  options_.dir = root_ / "file" / "below";
  EXPECT_FALSE(DurableQueue::Open(options_).ok());
}

TEST_F(DurableQueueTest, CloseWakesABlockedNextAndRefusesAppends) {
  auto q = Open();
  ASSERT_TRUE(q);
  std::atomic<bool> returned{false};
  std::vector<QueueRecord> got{QueueRecord{}};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread consumer([&] {
    got = q->Next(kAll, 30s);
    returned = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(returned.load());
  q->Close();
  consumer.join();
  EXPECT_TRUE(got.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  Status s = q->Append("late");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_TRUE(q->Next(kAll, 0ms).empty());
}

TEST_F(DurableQueueTest, ConcurrentAppendsAreAllRecoveredWithoutDuplicates) {
  options_.segment_bytes = 64 << 10;  // many rolls under contention
  options_.max_bytes = 64 << 20;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  {
    auto q = Open();
    ASSERT_TRUE(q);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          if (!q->Append(TaggedPayload(t, i)).ok()) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(q->records(), uint64_t{kThreads * kPerThread});
  }
  EXPECT_GT(SegmentFiles(dir_).size(), 10u);
  RecoveryReport report;
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.torn_records, 0u);
  auto all = Drain(*q);
  ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
  std::vector<int64_t> last(kThreads, -1);
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t t = 0, seq = 0;
    ASSERT_TRUE(ParseTagged(all[i].payload, &t, &seq));
    ASSERT_LT(t, uint64_t{kThreads});
    EXPECT_EQ(static_cast<int64_t>(seq), last[t] + 1) << "per producer: in order, no gap, no dup";
    last[t] = static_cast<int64_t>(seq);
    if (i > 0) {
      EXPECT_GT(all[i].id, all[i - 1].id);
    }
  }
}

TEST_F(DurableQueueTest, ConsumerKeepsUpWithConcurrentProducers) {
  options_.segment_bytes = 32 << 10;
  options_.max_bytes = 256 << 10;  // small: producers hit ResourceExhausted and retry
  options_.fsync = false;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  auto q = Open();
  ASSERT_TRUE(q);
  std::vector<std::thread> producers;
  std::atomic<int> throttled{0};
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread;) {
        Status s = q->Append(TaggedPayload(t, i));
        if (s.ok()) {
          ++i;
        } else {
          ASSERT_EQ(s.code(), StatusCode::kResourceExhausted);
          ++throttled;
          std::this_thread::sleep_for(1ms);
        }
      }
    });
  }
  std::vector<int64_t> last(kThreads, -1);
  int received = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (received < kThreads * kPerThread && std::chrono::steady_clock::now() < deadline) {
    auto batch = q->Next(16 << 10, 100ms);
    for (const auto& r : batch) {
      uint64_t t = 0, seq = 0;
      ASSERT_TRUE(ParseTagged(r.payload, &t, &seq));
      EXPECT_EQ(static_cast<int64_t>(seq), last[t] + 1);
      last[t] = static_cast<int64_t>(seq);
      ++received;
    }
    if (!batch.empty()) {
      ASSERT_TRUE(q->Ack(batch.back().id).ok());
    }
  }
  for (auto& th : producers) th.join();
  EXPECT_EQ(received, kThreads * kPerThread);
  EXPECT_EQ(q->records(), 0u);
  EXPECT_EQ(q->bytes(), 0u);
  EXPECT_LE(SegmentFiles(dir_).size(), 1u);
}

TEST_F(DurableQueueTest, GroupCommitSharesSyncsBetweenConcurrentAppends) {
  options_.max_bytes = 64 << 20;
  options_.segment_bytes = 64 << 20;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  auto q = Open();
  ASSERT_TRUE(q);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) EXPECT_TRUE(q->Append(TaggedPayload(t, i)).ok());
    });
  }
  for (auto& th : threads) th.join();
  const uint64_t records = kThreads * kPerThread;
  std::printf("group commit: %llu records, %llu fdatasync calls\n",
              static_cast<unsigned long long>(records),
              static_cast<unsigned long long>(q->syncs()));
  EXPECT_GT(q->syncs(), 0u);
  EXPECT_LT(q->syncs(), records);
}

TEST_F(DurableQueueTest, WithoutFsyncThereAreNoSyncsPerAppend) {
  options_.fsync = false;
  auto q = Open();
  ASSERT_TRUE(q);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(q->Append("x").ok());
  EXPECT_EQ(q->syncs(), 0u);
  EXPECT_EQ(q->Next(kAll, 0ms).size(), 50u);
  q->Close();
  EXPECT_EQ(q->syncs(), 1u) << "one sync at a clean close";
}

// A write error (here: the file size limit, EFBIG) fails that append with Unavailable, leaves no
// partial record behind, and the queue works again once the error goes away.  Run in a child
// process so the limit cannot touch the test runner's own files.
TEST_F(DurableQueueTest, WriteErrorFailsTheAppendCleanly) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    auto opened = DurableQueue::Open(options_);
    if (!opened.ok()) ::_exit(10);
    auto q = std::move(opened).value();
    struct rlimit old {};
    ::getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit small = old;
    small.rlim_cur = 8192;
    if (::setrlimit(RLIMIT_FSIZE, &small) != 0) ::_exit(11);
    int ok = 0;
    Status s;
    for (int i = 0; i < 20; ++i) {
      s = q->Append(std::string(1000, static_cast<char>('a' + i)));
      if (!s.ok()) break;
      ++ok;
    }
    if (ok != 8) ::_exit(12);  // 8 * 1020 bytes fit under 8192, the 9th does not
    if (s.code() != StatusCode::kUnavailable) ::_exit(13);
    if (s.message().find("large") == std::string::npos) ::_exit(14);  // "File too large"
    if (q->Append(std::string(100, 'z')).code() != StatusCode::kUnavailable) ::_exit(15);
    if (::setrlimit(RLIMIT_FSIZE, &old) != 0) ::_exit(16);
    if (!q->Append("after").ok()) ::_exit(17);
    if (q->records() != 9) ::_exit(18);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  RecoveryReport report;
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.torn_records, 0u);
  auto all = q->Next(kAll, 0ms);
  ASSERT_EQ(all.size(), 9u);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(all[i].payload, std::string(1000, static_cast<char>('a' + i)));
  EXPECT_EQ(all[8].payload, "after");
}

// The child appends from several threads and reports each record Append() returned OK for;
// its consumer reports each record before acknowledging it.  SIGKILL mid-way; every record
// reported OK must be on disk or acknowledged, nothing corrupted, nothing twice.
TEST_F(DurableQueueTest, SigkillLosesNothingAcknowledged) {
  options_.segment_bytes = 32 << 10;
  options_.max_bytes = 8 << 20;
  struct Msg {
    uint64_t kind;  // 1 = appended OK, 2 = about to be acknowledged
    uint64_t producer;
    uint64_t seq;
  };
  static_assert(sizeof(Msg) <= PIPE_BUF, "atomic pipe writes");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto opened = DurableQueue::Open(options_);
    if (!opened.ok()) ::_exit(2);
    DurableQueue* q = opened.value().get();
    auto send = [&](const Msg& m) {
      if (::write(fds[1], &m, sizeof m) != static_cast<ssize_t>(sizeof m)) ::_exit(3);
    };
    std::vector<std::thread> threads;
    for (uint64_t t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t seq = 0;; ++seq) {
          while (true) {
            Status s = q->Append(TaggedPayload(t, seq));
            if (s.ok()) break;
            if (s.code() != StatusCode::kResourceExhausted) ::_exit(4);
            std::this_thread::sleep_for(1ms);
          }
          send(Msg{1, t, seq});
        }
      });
    }
    threads.emplace_back([&] {
      while (true) {
        std::this_thread::sleep_for(5ms);  // slower than the producers: a backlog builds up
        auto batch = q->Next(4 << 10, 100ms);
        for (const auto& r : batch) {
          uint64_t t = 0, seq = 0;
          if (!ParseTagged(r.payload, &t, &seq)) ::_exit(5);
          send(Msg{2, t, seq});
        }
        if (!batch.empty() && !q->Ack(batch.back().id).ok()) ::_exit(6);
      }
    });
    for (auto& th : threads) th.join();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::set<std::pair<uint64_t, uint64_t>> ok, acking;
  auto read_msgs = [&](bool until_eof, size_t want_ok) {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline && (until_eof || ok.size() < want_ok)) {
      struct pollfd p = {fds[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      Msg m;
      const ssize_t n = ::read(fds[0], &m, sizeof m);
      if (n == 0) return;  // the child is gone
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof m));
      (m.kind == 1 ? ok : acking).insert({m.producer, m.seq});
    }
  };
  read_msgs(false, 3000);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  read_msgs(true, 0);
  ::close(fds[0]);
  ASSERT_GE(ok.size(), 3000u);
  EXPECT_GT(acking.size(), 0u);

  RecoveryReport report;
  auto q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_LE(report.torn_records, 1u) << "at most the record being written when killed";
  std::set<std::pair<uint64_t, uint64_t>> recovered;
  std::map<uint64_t, uint64_t> next_seq;
  for (const auto& r : Drain(*q)) {
    uint64_t t = 0, seq = 0;
    ASSERT_TRUE(ParseTagged(r.payload, &t, &seq)) << "corrupt record " << r.id;
    EXPECT_TRUE(recovered.insert({t, seq}).second) << "duplicate " << t << "/" << seq;
    if (next_seq.count(t)) {
      EXPECT_GT(seq, next_seq[t]) << "out of order";
    }
    next_seq[t] = seq;
  }
  size_t lost = 0;
  for (const auto& key : ok) {
    if (!recovered.count(key) && !acking.count(key)) ++lost;
  }
  EXPECT_EQ(lost, 0u) << "of " << ok.size() << " acknowledged appends";
  std::printf(
      "sigkill: %zu appends reported OK, %zu handed to the consumer, %zu recovered, "
      "%llu torn\n",
      ok.size(), acking.size(), recovered.size(),
      static_cast<unsigned long long>(report.torn_records));

  ASSERT_TRUE(q->Append("after the crash").ok());
  q.reset();
  q = Open(&report);
  ASSERT_TRUE(q);
  EXPECT_EQ(report.torn_records, 0u);
  EXPECT_EQ(report.records, recovered.size() + 1);
}

}  // namespace
}  // namespace ordertrace::forward
