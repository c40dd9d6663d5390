#include "common/rate_limit.h"

#include <gtest/gtest.h>

#include <thread>

namespace ordertrace {
namespace {

TEST(PerSecondLimit, LetsNThroughASecondAndSaysHowManyItHeldBack) {
  PerSecondLimit limit(3);
  uint64_t left_out = 99;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limit.Admit(&left_out)) << i;
    EXPECT_EQ(left_out, 0u);
  }
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(limit.Admit(&left_out)) << i;
  // Past the second: the next one goes through and carries the count of those held back.
  std::this_thread::sleep_for(std::chrono::milliseconds(1050));
  ASSERT_TRUE(limit.Admit(&left_out));
  EXPECT_EQ(left_out, 7u);
  ASSERT_TRUE(limit.Admit(&left_out));
  EXPECT_EQ(left_out, 0u);
}

}  // namespace
}  // namespace ordertrace
