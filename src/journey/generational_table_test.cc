#include "journey/generational_table.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ordertrace::journey {
namespace {

struct Slot {
  uint64_t key;
  uint32_t value;
};

TEST(GenerationalTableTest, FindsWhatWasInsertedAndFillsThePayloadOnce) {
  GenerationalTable<Slot> t(100, 4);
  EXPECT_EQ(t.Find(7).slot, nullptr);
  bool inserted = false, rotated = false;
  Slot* s = t.Insert(7, &inserted, &rotated);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(inserted);
  EXPECT_FALSE(rotated);
  EXPECT_EQ(s->key, 7u);
  EXPECT_EQ(s->value, 0u);
  s->value = 42;
  s = t.Insert(7, &inserted, &rotated);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(s->value, 42u);
  const auto found = t.Find(7);
  ASSERT_NE(found.slot, nullptr);
  EXPECT_EQ(found.slot->value, 42u);
  EXPECT_EQ(found.index, t.current_index());
  EXPECT_EQ(t.size(), 1u);
}

TEST(GenerationalTableTest, GrowsPastItsInitialSlotsAndKeepsEveryKey) {
  GenerationalTable<Slot> t(1000, 4);  // 500 keys per generation, from 4 slots
  bool inserted = false, rotated = false;
  for (uint32_t k = 1; k <= 500; ++k) t.Insert(k, &inserted, &rotated)->value = k;
  EXPECT_FALSE(rotated);
  EXPECT_EQ(t.size(), 500u);
  for (uint32_t k = 1; k <= 500; ++k) {
    const auto f = t.Find(k);
    ASSERT_NE(f.slot, nullptr) << k;
    EXPECT_EQ(f.slot->value, k);
  }
  // At most half full: 500 keys in 1024 slots.
  EXPECT_EQ(t.bytes(), 1024 * sizeof(Slot));
}

TEST(GenerationalTableTest, RotatesAtHalfTheCapacityAndDropsTheOldestGeneration) {
  GenerationalTable<Slot> t(10, 16);  // 5 keys per generation
  bool inserted = false, rotated = false;
  for (uint64_t k = 1; k <= 5; ++k) t.Insert(k, &inserted, &rotated);
  const int first = t.current_index();
  t.Insert(6, &inserted, &rotated);
  EXPECT_TRUE(rotated) << "the sixth key starts a generation";
  EXPECT_NE(t.current_index(), first);
  EXPECT_EQ(t.Find(1).index, first);              // in the previous generation
  EXPECT_EQ(t.Find(6).index, t.current_index());  // in the current one
  EXPECT_NE(t.FindInPrevious(1), nullptr);
  EXPECT_EQ(t.FindInPrevious(6), nullptr);
  for (uint64_t k = 7; k <= 11; ++k) t.Insert(k, &inserted, &rotated);
  EXPECT_TRUE(rotated) << "the eleventh starts the third generation";
  for (uint64_t k = 1; k <= 5; ++k) EXPECT_EQ(t.Find(k).slot, nullptr) << k;
  for (uint64_t k = 6; k <= 11; ++k) EXPECT_NE(t.Find(k).slot, nullptr) << k;
  EXPECT_LE(t.size(), 10u);
}

TEST(GenerationalTableTest, ZeroCapacityHoldsNothingAndClearEmpties) {
  GenerationalTable<Slot> none(0, 4);
  bool inserted = true, rotated = true;
  EXPECT_EQ(none.Insert(3, &inserted, &rotated), nullptr);
  EXPECT_FALSE(inserted);
  EXPECT_EQ(none.Find(3).slot, nullptr);
  EXPECT_EQ(none.bytes(), 0u);

  GenerationalTable<Slot> t(8, 8);
  for (uint64_t k = 1; k <= 6; ++k) t.Insert(k, &inserted, &rotated);
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  for (uint64_t k = 1; k <= 6; ++k) EXPECT_EQ(t.Find(k).slot, nullptr) << k;
  t.Insert(2, &inserted, &rotated);
  EXPECT_TRUE(inserted);
  EXPECT_NE(t.Find(2).slot, nullptr);
}

}  // namespace
}  // namespace ordertrace::journey
