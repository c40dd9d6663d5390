#include "journey/known_ids.h"

#include <gtest/gtest.h>

#include <string>

namespace ordertrace::journey {
namespace {

TEST(KnownIds, NeverForgetsAnIdAndRarelyInventsOne) {
  KnownIds known(1000);  // small, so that it grows several times
  for (int i = 0; i < 100000; ++i) known.Add("ORD-" + std::to_string(i));
  for (int i = 0; i < 100000; ++i) {
    ASSERT_TRUE(known.MayContain("ORD-" + std::to_string(i))) << i;
  }
  int false_positives = 0;
  for (int i = 0; i < 100000; ++i) false_positives += known.MayContain("NEW-" + std::to_string(i));
  // ~1% per filter in the chain; the chain has 7 filters here.
  EXPECT_LT(false_positives, 5000);
  EXPECT_GT(known.bytes(), 100000u * 10 / 8);
}

TEST(RecentIds, RemembersTheLastCapacityIds) {
  RecentIds recent(3);
  recent.Add("a");
  recent.Add("b");
  recent.Add("a");  // twice: both copies count until they are evicted
  EXPECT_TRUE(recent.Contains("a"));
  EXPECT_TRUE(recent.Contains("b"));
  EXPECT_FALSE(recent.Contains("c"));
  recent.Add("c");  // evicts the first "a"; the second stays
  EXPECT_TRUE(recent.Contains("a"));
  recent.Add("d");  // evicts "b"
  EXPECT_FALSE(recent.Contains("b"));
  recent.Add("e");  // evicts the second "a"
  EXPECT_FALSE(recent.Contains("a"));
  EXPECT_TRUE(recent.Contains("c"));
  EXPECT_TRUE(recent.Contains("d"));
  EXPECT_TRUE(recent.Contains("e"));
}

}  // namespace
}  // namespace ordertrace::journey
