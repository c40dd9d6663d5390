// NotifiedLog: records replayed in order (a resolve forgets its episode, a storm's end only that
// storm), any byte in an order id, bad lines skipped and counted (never a crash), a torn last
// line, a rewrite that keeps the live records only, appends after it.
#include "alert/notified_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace ordertrace::alert {
namespace {

NotifiedEpisode Episode(std::string id, Nanos since, std::string stage = "SUBMITTED") {
  return NotifiedEpisode{std::move(id), since, std::move(stage), "mes"};
}

TEST(NotifiedLogTest, RecordsReplayInOrder) {
  const NotifiedEpisode a = Episode("A 1\n%-", 100), b = Episode("-", 200, "");
  const NotifiedStorm s{"SUBMITTED", "mes", 300, 40}, later{"SUBMITTED", "mes", 900, 5};
  std::string text = NotifiedLog::FiringRecord(a) + NotifiedLog::FiringRecord(b) +
                     NotifiedLog::StormRecord(s) + NotifiedLog::ResolvedRecord(b) +
                     NotifiedLog::FiringRecord(Episode("A 1\n%-", 150)) +
                     NotifiedLog::StormRecord(later) + NotifiedLog::StormEndedRecord(s);
  NotifiedState state;
  NotifiedParseStats stats;
  ParseNotified(text, &state, &stats);
  EXPECT_EQ(stats.records, 7u);
  EXPECT_EQ(stats.skipped, 0u);
  ASSERT_EQ(state.episodes.size(), 2u);  // a's two episodes; b resolved
  const auto& got = state.episodes.at({"A 1\n%-", 100});
  EXPECT_EQ(got.stage, "SUBMITTED");
  EXPECT_EQ(got.service, "mes");
  EXPECT_EQ(state.episodes.count({"-", 200}), 0u);
  ASSERT_EQ(state.storms.size(), 1u);  // the older storm's end does not end the later one
  EXPECT_EQ(state.storms.begin()->second.starts_at, 900);
  EXPECT_EQ(state.storms.begin()->second.count, 5u);

  // The empty stage and "-" survive a round trip.
  NotifiedState back;
  NotifiedParseStats back_stats;
  NotifiedState with_b = state;
  with_b.episodes[{"-", 200}] = b;
  with_b.sinks = NotifiedLog::Fingerprint({"https://chat.test/hook?token=x"});
  EXPECT_EQ(with_b.sinks.size(), 32u);
  EXPECT_NE(with_b.sinks, NotifiedLog::Fingerprint({"https://chat.test/hook?token=y"}));
  ParseNotified(SerializeNotified(with_b), &back, &back_stats);
  EXPECT_EQ(back_stats.skipped, 0u);
  ASSERT_EQ(back.episodes.count({"-", 200}), 1u);
  EXPECT_EQ(back.episodes.at({"-", 200}).stage, "");
  EXPECT_EQ(back.episodes.size(), 3u);
  EXPECT_EQ(back.sinks, with_b.sinks);
}

TEST(NotifiedLogTest, BadLinesAreSkippedAndCounted) {
  const std::string text = "# a comment\n\nF 100 A-1 S mes\nX 1 2\nF -5 A-2 S mes\nF 100 A-3 S\n" +
                           std::string(5000, 'F') + "\nR 100 %g0\nS 1 -2 S mes\nF 200 A-4 S m";
  NotifiedState state;
  NotifiedParseStats stats;
  ParseNotified(text, &state, &stats);
  EXPECT_EQ(stats.records, 1u);
  EXPECT_EQ(stats.skipped, 7u);
  EXPECT_EQ(stats.first_bad, 4u);
  EXPECT_EQ(stats.first_error, "unknown record type");
  EXPECT_EQ(state.episodes.size(), 1u);
}

TEST(NotifiedLogTest, RewriteKeepsTheLiveRecordsAndAppendsFollow) {
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   ("notified_log_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "alerts-notified.log").string();
  std::filesystem::remove(path);
  {
    NotifiedLog log(path);
    NotifiedState state;
    NotifiedParseStats stats;
    ASSERT_TRUE(log.Load(&state, &stats).ok());  // no file yet: nothing notified
    EXPECT_TRUE(state.episodes.empty());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log.AppendFiring(Episode(std::to_string(i), 1)).ok());
    for (int i = 0; i < 9; ++i) ASSERT_TRUE(log.AppendResolved(Episode(std::to_string(i), 1)).ok());
    EXPECT_EQ(log.records(), 19u);
    NotifiedState live;
    live.episodes[{"9", 1}] = Episode("9", 1);
    ASSERT_TRUE(log.Rewrite(live).ok());
    EXPECT_EQ(log.records(), 1u);
    ASSERT_TRUE(log.AppendStorm(NotifiedStorm{"S", "mes", 5, 101}).ok());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  }
  NotifiedLog log(path);
  NotifiedState state;
  NotifiedParseStats stats;
  ASSERT_TRUE(log.Load(&state, &stats).ok());
  EXPECT_EQ(stats.records, 2u);
  EXPECT_EQ(stats.skipped, 0u);
  EXPECT_EQ(state.episodes.size(), 1u);
  EXPECT_EQ(state.storms.size(), 1u);
  // A record too long to be read back is not written.
  EXPECT_FALSE(log.AppendFiring(Episode(std::string(3000, ' '), 1)).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ordertrace::alert
