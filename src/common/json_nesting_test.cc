#include "common/json_nesting.h"

#include <gtest/gtest.h>

#include <string>

namespace ordertrace {
namespace {

TEST(JsonNesting, CountsArraysAndObjects) {
  EXPECT_TRUE(JsonNestingWithin("", 0));
  EXPECT_TRUE(JsonNestingWithin("1", 0));
  EXPECT_FALSE(JsonNestingWithin("[]", 0));
  EXPECT_TRUE(JsonNestingWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(JsonNestingWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(JsonNestingWithin("[][][][]", 1));  // siblings, not nesting
  EXPECT_FALSE(JsonNestingWithin(std::string(100000, '['), 64));
}

TEST(JsonNesting, BracketsInStringsDoNotCount) {
  EXPECT_TRUE(JsonNestingWithin(R"(["[[[[{{{{"])", 1));
  EXPECT_TRUE(JsonNestingWithin(R"(["\"[[[[", "\\"])", 1));  // escaped quotes stay in the string
  EXPECT_FALSE(JsonNestingWithin(R"(["\\", [[]]])", 2));     // an escaped backslash ends it
}

}  // namespace
}  // namespace ordertrace
