#include "journey/hops.h"

#include <gtest/gtest.h>

#include <string>

namespace ordertrace::journey {
namespace {

SpanRecord Process(int i) {
  SpanRecord r;
  r.span_id = "p" + std::to_string(i);
  r.parent_span_id = "s" + std::to_string(i);
  r.message_id = "m" + std::to_string(i);
  r.hop = HopRole::kProcess;
  return r;
}

SpanRecord Send(int i) {
  SpanRecord r;
  r.span_id = "s" + std::to_string(i);
  r.message_id = "m" + std::to_string(i);
  r.hop = HopRole::kSend;
  return r;
}

TEST(OpenHopsTest, AnOrphanIsFoundByItsPublishAndForgotten) {
  OpenHops hops(10);
  hops.RememberOrphan(Process(1));
  const OpenHops::Orphan* o = hops.FindOrphan(Send(1));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->process.span_id, "p1");
  SpanRecord by_parent = Send(1);
  by_parent.message_id.clear();  // found through the span id its process names as parent
  EXPECT_NE(hops.FindOrphan(by_parent), nullptr);
  hops.ForgetOrphan(Send(1));
  EXPECT_EQ(hops.FindOrphan(Send(1)), nullptr);
  EXPECT_EQ(hops.orphans(), 0u);
}

TEST(OpenHopsTest, BeyondCapacityTheOldestOrphanGoes) {
  OpenHops hops(3);
  for (int i = 0; i < 4; ++i) hops.RememberOrphan(Process(i));
  EXPECT_EQ(hops.orphans(), 3u);
  EXPECT_EQ(hops.FindOrphan(Send(0)), nullptr);
  for (int i = 1; i < 4; ++i) EXPECT_NE(hops.FindOrphan(Send(i)), nullptr) << i;
}

// What the memory follows: the orphans waiting now, not every one seen (a ring of capacity
// slots kept ~850 bytes per slot once it had filled).
TEST(OpenHopsTest, ForgottenOrphansHoldNothing) {
  OpenHops hops(100000);
  hops.RememberOrphan(Process(-1));  // waits for ever: its number stays at the front
  for (int i = 0; i < 50000; ++i) {
    hops.RememberOrphan(Process(i));
    hops.ForgetOrphan(Send(i));
  }
  EXPECT_EQ(hops.orphans(), 1u);
  EXPECT_NE(hops.FindOrphan(Send(-1)), nullptr);
}

}  // namespace
}  // namespace ordertrace::journey
