// The JourneyStore contract (store.h, semantics.h): one typed suite run against every
// implementation, plus the SQLite store's own cases (persistence, files that are not ours).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "journey/store/memory/memory_store.h"
#include "journey/store/semantics.h"
#include "journey/store/sqlite/db.h"
#include "journey/store/sqlite/schema.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "journey/store/store.h"
#include "journey/store/store_test_fixture.h"

namespace ordertrace::journey {
namespace {

namespace fs = std::filesystem;

constexpr Nanos kSecond = 1'000'000'000;
constexpr Nanos kHour = 3600 * kSecond;
constexpr Nanos kDay = 24 * kHour;
constexpr Nanos kNow = 1'750'000'000 * kSecond;

std::string Hex(uint64_t v, int digits = 16) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

SpanRecord MakeSpan(const std::string& order, uint64_t id, Nanos start, Nanos end) {
  SpanRecord s;
  s.order_id = order;
  s.trace_id = Hex(0xabc, 32);
  s.span_id = Hex(id);
  s.service = "checkout";
  s.name = "span-" + std::to_string(id);
  s.start_ns = start;
  s.end_ns = end;
  return s;
}

Milestone MakeMilestone(const std::string& order, const std::string& stage, Nanos at,
                        uint64_t span) {
  Milestone m;
  m.order_id = order;
  m.stage = stage;
  m.at_ns = at;
  m.service = "svc-" + std::to_string(span);
  m.trace_id = Hex(span + 1000, 32);
  m.span_id = Hex(span);
  return m;
}

Hop SendSide(uint64_t send, const std::string& order, const std::string& message, Nanos published) {
  Hop h;
  h.order_id = order;
  h.send_span_id = Hex(send);
  h.send_trace_id = Hex(send, 32);
  h.send_service = "orders";
  h.message_id = message;
  h.exchange = "orders";
  h.routing_key = "order.created";
  h.published_ns = published;
  return h;
}

Hop ProcessSide(uint64_t send, Nanos processed, const std::string& service, uint64_t span) {
  Hop h;
  h.send_span_id = Hex(send);
  h.queue = "billing.q";
  h.processed_ns = processed;
  h.process_service = service;
  h.process_span_id = Hex(span);
  h.process_trace_id = Hex(span, 32);
  return h;
}

OrderRow MakeOrder(const std::string& id, Nanos last_ns, bool closed = false,
                   StuckKind stuck = StuckKind::kNone, const std::string& stage = "created") {
  OrderRow o;
  o.order_id = id;
  o.stage = stage;
  o.stage_start_ns = last_ns - 2 * kSecond;
  o.stage_ns = last_ns - kSecond;
  o.first_ns = last_ns - kHour;
  o.last_ns = last_ns;
  o.last_service = "checkout";
  o.closed = closed;
  o.stuck = stuck;
  return o;
}

std::string OrderId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ORD-%06d", i);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Store factories.

using testing_stores::MemoryFactory;
using testing_stores::SqliteFactory;
using testing_stores::StoreTypes;

template <typename Factory>
class StoreContractTest : public testing_stores::StoreFixture<Factory> {
 public:  // the fill helpers below take the fixture
  using testing_stores::StoreFixture<Factory>::store_;

  Journey MustJourney(const std::string& id, size_t max_spans = 1000) {
    auto r = store_->GetJourney(id, max_spans);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok() || !r->has_value()) {
      ADD_FAILURE() << "no journey for " << id;
      return {};
    }
    return **r;
  }
  StoreStats MustStats() {
    auto r = store_->Stats();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : StoreStats{};
  }
  std::vector<std::string> Ids(const OrderQuery& q) {
    auto r = store_->ListOrders(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<std::string> ids;
    if (r.ok()) {
      for (const auto& o : r->orders) ids.push_back(o.order_id);
    }
    return ids;
  }
};

TYPED_TEST_SUITE(StoreContractTest, StoreTypes);

TYPED_TEST(StoreContractTest, RoundTripsEveryField) {
  SpanRecord s = MakeSpan("o-1", 1, 100, 200);
  s.parent_span_id = Hex(77);
  s.otel_status = 2;
  s.step = StepStatus::kTimeout;
  s.error = "payment.timeout";
  s.stage = "paid";
  s.heartbeat = true;
  s.hop = HopRole::kSend;
  s.message_id = "msg-1";
  s.exchange = "orders";
  s.routing_key = "order.paid";
  s.queue = "q";
  s.links = {Hex(5), Hex(6)};
  // Ids that are not lowercase hex round-trip as they were written.
  SpanRecord odd = MakeSpan("o-1", 2, 150, 250);
  odd.span_id = "NOT-HEX-ID";
  odd.trace_id = "ABCDEF0123456789ABCDEF0123456789";
  odd.parent_span_id = "abc";
  odd.links = {"x"};
  OrderRow o = MakeOrder("o-1", 250, false, StuckKind::kSilent, "paid");
  o.last_heartbeat_ns = 123;
  o.services = {{"checkout", 100}, {"we;ird=svc%", 150}, {"", 7}};
  o.spans = 2;
  o.open_hops = 1;
  o.stuck_since_ns = 999;
  o.deadline_ns = 888;
  o.expected_service = "billing";
  o.summary = "billing did not \"process\" paid";
  Hop h = SendSide(9, "o-1", "msg-1", 160);
  h.queue = "billing.q";
  Milestone m = MakeMilestone("o-1", "paid", 200, 1);

  WriteBatch b;
  b.spans = {s, odd};
  b.milestones = {m};
  b.hops = {h};
  b.orders = {o};
  this->MustWrite(b);

  const Journey j = this->MustJourney("o-1");
  EXPECT_EQ(j.order, o);
  ASSERT_EQ(j.spans.size(), 2u);
  EXPECT_EQ(j.spans[0], s);
  EXPECT_EQ(j.spans[1], odd);
  ASSERT_EQ(j.milestones.size(), 1u);
  EXPECT_EQ(j.milestones[0], m);
  ASSERT_EQ(j.hops.size(), 1u);
  EXPECT_EQ(j.hops[0], h);
  EXPECT_FALSE(j.spans_truncated);

  auto row = this->store_->GetOrder("o-1");
  ASSERT_TRUE(row.ok());
  ASSERT_TRUE(row->has_value());
  EXPECT_EQ(**row, o);
}

TYPED_TEST(StoreContractTest, UnknownOrderIsNullopt) {
  auto j = this->store_->GetJourney("nope");
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE(j->has_value());
  auto o = this->store_->GetOrder("nope");
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->has_value());
  auto h = this->store_->FindHop(Hex(1), "m");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
}

TYPED_TEST(StoreContractTest, DuplicateSpansKeptOnce) {
  WriteBatch b;
  b.spans = {MakeSpan("o-1", 1, 100, 200), MakeSpan("o-1", 2, 110, 210)};
  b.orders = {MakeOrder("o-1", 210)};
  this->MustWrite(b);

  // An exporter retry: the same spans again (one changed), in one batch with a duplicate.
  WriteBatch retry;
  SpanRecord changed = MakeSpan("o-1", 1, 100, 200);
  changed.name = "second copy";
  retry.spans = {changed, MakeSpan("o-1", 2, 110, 210), MakeSpan("o-1", 3, 120, 220),
                 MakeSpan("o-1", 3, 120, 220)};
  this->MustWrite(retry);

  const Journey j = this->MustJourney("o-1");
  ASSERT_EQ(j.spans.size(), 3u);
  EXPECT_EQ(j.spans[0].name, "span-1");  // the first written is kept
  EXPECT_EQ(this->MustStats().spans, 3u);

  // The same span id under another order is that order's span.
  WriteBatch other;
  other.spans = {MakeSpan("o-2", 1, 100, 200)};
  other.orders = {MakeOrder("o-2", 200)};
  this->MustWrite(other);
  EXPECT_EQ(this->MustJourney("o-2").spans.size(), 1u);
  EXPECT_EQ(this->MustJourney("o-1").spans.size(), 3u);
  EXPECT_EQ(this->MustStats().spans, 4u);
}

TYPED_TEST(StoreContractTest, MilestoneEarliestWinsRegardlessOfWriteOrder) {
  const Milestone early = MakeMilestone("a", "paid", 100, 1);
  const Milestone late = MakeMilestone("a", "paid", 500, 2);
  const Milestone tie = MakeMilestone("a", "paid", 100, 0);  // same time, smaller span id
  for (const std::string order : {"a", "b"}) {
    Milestone e = early, l = late, t = tie;
    e.order_id = l.order_id = t.order_id = order;
    WriteBatch first, second, third;
    first.milestones = {order == "a" ? e : l};
    second.milestones = {order == "a" ? l : t};
    third.milestones = {order == "a" ? t : e};
    first.orders = {MakeOrder(order, 600)};
    this->MustWrite(first);
    this->MustWrite(second);
    this->MustWrite(third);
    const Journey j = this->MustJourney(order);
    ASSERT_EQ(j.milestones.size(), 1u) << order;
    EXPECT_EQ(j.milestones[0], t) << order;
  }
  // Within one batch too.
  WriteBatch b;
  b.milestones = {MakeMilestone("c", "shipped", 900, 9), MakeMilestone("c", "shipped", 300, 8),
                  MakeMilestone("c", "created", 50, 7)};
  b.orders = {MakeOrder("c", 900)};
  this->MustWrite(b);
  const Journey j = this->MustJourney("c");
  ASSERT_EQ(j.milestones.size(), 2u);
  EXPECT_EQ(j.milestones[0], MakeMilestone("c", "created", 50, 7));  // by at_ns
  EXPECT_EQ(j.milestones[1], MakeMilestone("c", "shipped", 300, 8));
}

TYPED_TEST(StoreContractTest, HopMergesInEitherArrivalOrder) {
  const Hop send = SendSide(1, "o-1", "m-1", 1000);
  const Hop process = ProcessSide(1, 3000, "billing", 50);
  Hop expected = send;
  expected.queue = process.queue;
  expected.processed_ns = process.processed_ns;
  expected.process_service = process.process_service;
  expected.process_span_id = process.process_span_id;
  expected.process_trace_id = process.process_trace_id;

  // send first
  WriteBatch a1, a2;
  a1.hops = {send};
  a1.orders = {MakeOrder("o-1", 3000)};
  a2.hops = {process};
  this->MustWrite(a1);
  {
    auto open = this->store_->FindHop(send.send_span_id, "");
    ASSERT_TRUE(open.ok() && open->has_value());
    EXPECT_TRUE((*open)->open());
  }
  this->MustWrite(a2);
  auto got = this->store_->FindHop(send.send_span_id, "");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, expected);

  // process first (the process side of a hop for o-2)
  Hop send2 = SendSide(2, "o-2", "m-2", 1000);
  Hop process2 = ProcessSide(2, 3000, "billing", 50);
  Hop expected2 = expected;
  expected2.order_id = "o-2";
  expected2.send_span_id = send2.send_span_id;
  expected2.send_trace_id = send2.send_trace_id;
  expected2.message_id = "m-2";
  WriteBatch b1, b2;
  b1.hops = {process2};
  b2.hops = {send2};
  b2.orders = {MakeOrder("o-2", 3000)};
  this->MustWrite(b1);
  this->MustWrite(b2);
  got = this->store_->FindHop(send2.send_span_id, "");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, expected2);
  const Journey j = this->MustJourney("o-2");
  ASSERT_EQ(j.hops.size(), 1u);
  EXPECT_EQ(j.hops[0], expected2);

  // A redelivery processed earlier replaces the processing; later does not; both orders.
  Hop earlier = ProcessSide(1, 2000, "billing-2", 60);
  Hop later = ProcessSide(1, 4000, "billing-3", 70);
  WriteBatch c;
  c.hops = {later, earlier};
  this->MustWrite(c);
  got = this->store_->FindHop(send.send_span_id, "");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->processed_ns, 2000);
  EXPECT_EQ((*got)->process_service, "billing-2");
  EXPECT_EQ((*got)->process_span_id, Hex(60));
  EXPECT_EQ((*got)->published_ns, 1000);
  EXPECT_EQ((*got)->order_id, "o-1");
  EXPECT_EQ(this->MustStats().hops, 2u);
}

TYPED_TEST(StoreContractTest, OrderRowIsReplacedWhole) {
  OrderRow first = MakeOrder("o-1", 100, false, StuckKind::kNextOverdue, "created");
  first.services = {{"a", 1}, {"b", 2}};
  first.expected_service = "billing";
  first.summary = "overdue";
  WriteBatch b;
  b.orders = {first};
  this->MustWrite(b);
  OrderRow second = MakeOrder("o-1", 200, true, StuckKind::kNone, "delivered");
  b.orders = {second};
  this->MustWrite(b);
  auto got = this->store_->GetOrder("o-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, second);
  EXPECT_EQ(this->MustStats().orders, 1u);
}

// A verdict (the detector's flag, clear or new deadline) replaces the verdict fields only: the
// rest of the row, its partner included, stays; the stuck list sees it at once; a verdict for an
// order without a row changes nothing; one without an order id fails the whole batch.
TYPED_TEST(StoreContractTest, VerdictReplacesOnlyTheVerdictFields) {
  OrderRow row = MakeOrder("o-1", 100, false, StuckKind::kNone, "created");
  row.services = {{"a", 1}};
  row.expected_service = "billing";
  row.partner = "pse:k1:AAAAAAAAAAAAAAAAAAAAAA";
  row.partner_ns = 7;
  row.deadline_ns = 500;
  WriteBatch b;
  b.orders = {row, MakeOrder("o-2", 100)};
  this->MustWrite(b);

  OrderVerdict v;
  v.order_id = "o-1";
  v.stuck = StuckKind::kNotReceived;
  v.stuck_since_ns = 400;
  v.deadline_ns = 900;
  v.expected_service = "mes";
  v.summary = "order o-1 stuck";
  OrderVerdict unknown = v;
  unknown.order_id = "o-9";
  b = WriteBatch{};
  b.verdicts = {v, unknown};
  this->MustWrite(b);
  OrderRow want = row;
  ApplyVerdict(want, v);
  auto got = this->store_->GetOrder("o-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, want);
  EXPECT_FALSE(this->store_->GetOrder("o-9")->has_value());
  EXPECT_EQ(this->MustStats().orders, 2u);
  OrderQuery stuck;
  stuck.stuck = true;
  EXPECT_EQ(this->Ids(stuck), std::vector<std::string>{"o-1"});
  stuck.sort = OrderSort::kStuckSince;
  EXPECT_EQ(this->Ids(stuck), std::vector<std::string>{"o-1"});

  // Cleared: out of the stuck list again.
  v.stuck = StuckKind::kNone;
  v.stuck_since_ns = 0;
  v.summary.clear();
  b.verdicts = {v};
  this->MustWrite(b);
  ApplyVerdict(want, v);
  got = this->store_->GetOrder("o-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, want);
  stuck.sort = OrderSort::kOrderId;
  EXPECT_TRUE(this->Ids(stuck).empty());

  // A verdict without an order id: the whole batch fails, nothing of it applied.
  OrderVerdict bad = v;
  bad.order_id.clear();
  b = WriteBatch{};
  b.orders = {MakeOrder("o-3", 100)};
  b.verdicts = {bad};
  EXPECT_FALSE(this->store_->Write(b).ok());
  EXPECT_FALSE(this->store_->GetOrder("o-3")->has_value());
}

TYPED_TEST(StoreContractTest, OrderPartnerRoundTripsAndSpansDoNotKeepIt) {
  OrderRow o = MakeOrder("o-1", 250);
  o.partner = "pse:k1:AAAAAAAAAAAAAAAAAAAAAA";
  o.partner_ns = 100;
  SpanRecord s = MakeSpan("o-1", 1, 100, 200);
  s.partner = o.partner;
  WriteBatch b;
  b.spans = {s};
  b.orders = {o};
  this->MustWrite(b);
  const Journey j = this->MustJourney("o-1");
  EXPECT_EQ(j.order, o);
  ASSERT_EQ(j.spans.size(), 1u);
  EXPECT_EQ(j.spans[0].partner, "");  // the order keeps it, not each span
  s.partner.clear();
  EXPECT_EQ(j.spans[0], s);
  auto page = this->store_->ListOrders(OrderQuery{});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0].partner, o.partner);
}

// The earliest span's partner wins, whatever the order of the writes; a row written without a
// partner (the engine's rows usually are) keeps the stored one.
TYPED_TEST(StoreContractTest, OrderPartnerEarliestWinsRegardlessOfWriteOrder) {
  struct Cand {
    std::string partner;
    Nanos ns;
  };
  const std::vector<Cand> cands = {{"pse:k1:later", 300},
                                   {"", 0},
                                   {"pse:k1:b-same-time", 100},
                                   {"pse:k1:a-same-time", 100},
                                   {"pse:k1:latest", 900}};
  std::vector<size_t> perm = {0, 1, 2, 3, 4};
  int n = 0;
  do {
    const std::string order = "o-" + std::to_string(n++);
    for (size_t i : perm) {
      OrderRow o = MakeOrder(order, 1000 + static_cast<Nanos>(i));
      o.partner = cands[i].partner;
      o.partner_ns = cands[i].ns;
      WriteBatch b;
      b.orders = {o};
      this->MustWrite(b);
    }
    // One more row without a partner, as the engine writes on a detector tick.
    WriteBatch b;
    b.orders = {MakeOrder(order, 2000)};
    this->MustWrite(b);
    auto got = this->store_->GetOrder(order);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->partner, "pse:k1:a-same-time") << order;
    EXPECT_EQ((*got)->partner_ns, 100) << order;
    EXPECT_EQ((*got)->last_ns, 2000) << order;  // the rest of the row is replaced
  } while (std::next_permutation(perm.begin(), perm.end()));

  // Two rows of one order in one batch (a retried write appends) merge the same way.
  WriteBatch b;
  OrderRow first = MakeOrder("both", 10);
  first.partner = "pse:k1:second";
  first.partner_ns = 50;
  OrderRow second = MakeOrder("both", 20);
  second.partner = "pse:k1:first";
  second.partner_ns = 40;
  b.orders = {first, second, MakeOrder("both", 30)};
  this->MustWrite(b);
  auto got = this->store_->GetOrder("both");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->partner, "pse:k1:first");
  EXPECT_EQ((*got)->last_ns, 30);
}

TYPED_TEST(StoreContractTest, FailedWriteAppliesNothing) {
  WriteBatch ok;
  ok.orders = {MakeOrder("keep", 100)};
  ok.spans = {MakeSpan("keep", 1, 10, 20)};
  this->MustWrite(ok);

  WriteBatch bad;
  bad.spans = {MakeSpan("o-1", 2, 100, 200), MakeSpan("keep", 3, 30, 40)};
  bad.milestones = {MakeMilestone("o-1", "created", 200, 2),
                    MakeMilestone("keep", "created", 5, 3)};
  bad.hops = {SendSide(4, "o-1", "m-4", 150), ProcessSide(1, 300, "x", 9)};
  bad.orders = {MakeOrder("o-1", 200), MakeOrder("", 200)};  // an order row without id
  EXPECT_FALSE(this->store_->Write(bad).ok());

  auto j = this->store_->GetJourney("o-1");
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE(j->has_value());
  const Journey keep = this->MustJourney("keep");
  EXPECT_EQ(keep.spans.size(), 1u);
  EXPECT_TRUE(keep.milestones.empty());
  auto h = this->store_->FindHop(Hex(4), "m-4");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  h = this->store_->FindHop(Hex(1), "");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  const StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 1u);
  EXPECT_EQ(st.spans, 1u);
  EXPECT_EQ(st.hops, 0u);

  // The store still takes writes afterwards.
  bad.orders.pop_back();
  this->MustWrite(bad);
  EXPECT_EQ(this->MustJourney("o-1").spans.size(), 1u);
  EXPECT_EQ(this->MustStats().orders, 2u);
}

TYPED_TEST(StoreContractTest, GetJourneyKeepsTheLatestSpans) {
  WriteBatch b;
  for (int i = 0; i < 10; ++i) {
    // written out of order; spans 3 and 4 start at the same time
    const int k = (i * 7) % 10;
    const Nanos start = k == 4 ? 300 : k * 100;
    b.spans.push_back(MakeSpan("o-1", static_cast<uint64_t>(k), start, start + 50));
  }
  b.orders = {MakeOrder("o-1", 1000)};
  b.milestones = {MakeMilestone("o-1", "b", 400, 1), MakeMilestone("o-1", "a", 200, 2)};
  b.hops = {SendSide(30, "o-1", "m", 500), SendSide(20, "o-1", "m", 100)};
  this->MustWrite(b);

  Journey j = this->MustJourney("o-1", 3);
  EXPECT_TRUE(j.spans_truncated);
  ASSERT_EQ(j.spans.size(), 3u);
  EXPECT_EQ(j.spans[0].span_id, Hex(7));
  EXPECT_EQ(j.spans[1].span_id, Hex(8));
  EXPECT_EQ(j.spans[2].span_id, Hex(9));

  j = this->MustJourney("o-1", 7);
  ASSERT_EQ(j.spans.size(), 7u);
  EXPECT_EQ(j.spans[0].span_id, Hex(3));  // (300, id 3) before (300, id 4)
  EXPECT_EQ(j.spans[1].span_id, Hex(4));

  j = this->MustJourney("o-1", 10);
  EXPECT_FALSE(j.spans_truncated);
  ASSERT_EQ(j.spans.size(), 10u);
  for (size_t i = 1; i < j.spans.size(); ++i) {
    EXPECT_LE(j.spans[i - 1].start_ns, j.spans[i].start_ns);
  }
  j = this->MustJourney("o-1", 0);
  EXPECT_TRUE(j.spans.empty());
  EXPECT_TRUE(j.spans_truncated);

  ASSERT_EQ(j.milestones.size(), 2u);
  EXPECT_EQ(j.milestones[0].stage, "a");
  ASSERT_EQ(j.hops.size(), 2u);
  EXPECT_EQ(j.hops[0].send_span_id, Hex(20));  // by published_ns
}

// 60 orders: stuck every 3rd, closed every 4th, stage and services cycling.
template <typename T>
void FillListFixture(T* t) {
  WriteBatch b;
  const char* stages[] = {"created", "paid", "shipped"};
  for (int i = 0; i < 60; ++i) {
    OrderRow o = MakeOrder(OrderId(i), 1000 + i, i % 4 == 0,
                           i % 3 == 0 ? StuckKind::kNextOverdue : StuckKind::kNone, stages[i % 3]);
    o.last_service = i % 5 == 0 ? "billing" : "checkout";
    o.expected_service = i % 7 == 0 ? "billing" : "";
    b.orders.push_back(o);
  }
  t->MustWrite(b);
}

std::vector<std::string> Expected(bool (*pred)(int)) {
  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) {
    if (pred(i)) ids.push_back(OrderId(i));
  }
  return ids;
}

TYPED_TEST(StoreContractTest, ListOrdersFilters) {
  FillListFixture(this);
  OrderQuery q;
  q.limit = 1000;
  EXPECT_EQ(this->Ids(q), Expected([](int) { return true; }));
  q.stuck = true;
  EXPECT_EQ(this->Ids(q), Expected([](int i) { return i % 3 == 0; }));
  q.stuck = false;
  EXPECT_EQ(this->Ids(q), Expected([](int i) { return i % 3 != 0; }));
  q.stuck.reset();
  q.stages = {"paid"};
  EXPECT_EQ(this->Ids(q), Expected([](int i) { return i % 3 == 1; }));
  q.stages = {"nope"};
  EXPECT_TRUE(this->Ids(q).empty());
  q.stages.clear();
  q.services = {"billing"};
  EXPECT_EQ(this->Ids(q), Expected([](int i) { return i % 5 == 0 || i % 7 == 0; }));
  q.services.clear();
  q.include_closed = false;
  EXPECT_EQ(this->Ids(q), Expected([](int i) { return i % 4 != 0; }));
  q.stuck = true;
  q.stages = {"created"};
  q.services = {"billing"};
  EXPECT_EQ(this->Ids(q),
            Expected([](int i) { return i % 3 == 0 && i % 4 != 0 && (i % 5 == 0 || i % 7 == 0); }));
}

TYPED_TEST(StoreContractTest, ListOrdersCursorWalksAllPages) {
  FillListFixture(this);
  for (const size_t limit : {size_t{1}, size_t{7}, size_t{20}, size_t{60}, size_t{100}}) {
    for (const bool stuck_only : {false, true}) {
      OrderQuery q;
      q.limit = limit;
      if (stuck_only) q.stuck = true;
      std::vector<std::string> all;
      int pages = 0;
      while (true) {
        auto page = this->store_->ListOrders(q);
        ASSERT_TRUE(page.ok()) << page.status().ToString();
        ASSERT_LE(page->orders.size(), limit);
        for (const auto& o : page->orders) all.push_back(o.order_id);
        ++pages;
        ASSERT_LT(pages, 100);
        if (page->next_cursor.empty()) break;
        EXPECT_EQ(page->next_cursor, page->orders.back().order_id);
        q.cursor = page->next_cursor;
      }
      const auto expected = stuck_only ? Expected([](int i) { return i % 3 == 0; })
                                       : Expected([](int) { return true; });
      EXPECT_EQ(all, expected) << "limit " << limit;
      EXPECT_EQ(pages, static_cast<int>((expected.size() + limit - 1) / limit)) << limit;
    }
  }
}

std::string PartnerOf(int i) { return i % 10 == 9 ? "" : "pse:k1:P" + std::to_string(i % 3); }

TYPED_TEST(StoreContractTest, ListOrdersFiltersByPartnerAndComposes) {
  // 60 orders: partner P0, P1, P2 cycling (every 10th none); stuck every 4th.
  WriteBatch b;
  for (int i = 0; i < 60; ++i) {
    OrderRow o = MakeOrder(OrderId(i), 1000 + i, false,
                           i % 4 == 0 ? StuckKind::kNextOverdue : StuckKind::kNone);
    o.partner = PartnerOf(i);
    o.partner_ns = o.partner.empty() ? 0 : 500;
    b.orders.push_back(o);
  }
  this->MustWrite(b);
  auto expected = [](const std::vector<std::string>& partners, bool stuck_only) {
    std::vector<std::string> ids;
    for (int i = 0; i < 60; ++i) {
      if (stuck_only && i % 4 != 0) continue;
      if (std::find(partners.begin(), partners.end(), PartnerOf(i)) == partners.end()) continue;
      ids.push_back(OrderId(i));
    }
    return ids;
  };
  OrderQuery q;
  q.limit = 1000;
  q.partners = {"pse:k1:P1"};
  EXPECT_EQ(this->Ids(q), expected({"pse:k1:P1"}, false));
  EXPECT_FALSE(this->Ids(q).empty());
  // Any of several (a clear id's pseudonyms under each key).
  q.partners = {"pse:k2:unknown", "pse:k1:P2", "pse:k1:P0"};
  EXPECT_EQ(this->Ids(q), expected({"pse:k1:P2", "pse:k1:P0"}, false));
  q.partners = {"pse:k1:nobody"};
  EXPECT_TRUE(this->Ids(q).empty());
  // "" never matches the orders without a partner.
  q.partners = {""};
  EXPECT_TRUE(this->Ids(q).empty());
  // With the other filters and the cursor.
  q.partners = {"pse:k1:P1"};
  q.stuck = true;
  EXPECT_EQ(this->Ids(q), expected({"pse:k1:P1"}, true));
  q.stuck.reset();
  for (const size_t limit : {size_t{1}, size_t{3}, size_t{100}}) {
    q.limit = limit;
    q.cursor.clear();
    std::vector<std::string> all;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = this->store_->ListOrders(q);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ASSERT_LE(page->orders.size(), limit);
      for (const auto& o : page->orders) {
        EXPECT_EQ(o.partner, "pse:k1:P1");
        all.push_back(o.order_id);
      }
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    EXPECT_EQ(all, expected({"pse:k1:P1"}, false)) << "limit " << limit;
  }
}

// 48 orders for the sorts and the new filters: stuck every 2nd with kinds cycling and stuck
// times with ties; stages cycling with entry times with ties; a span per order in one of 4
// traces; a hop per order (messages m0..m5, queues qa/qb/""), open for every 3rd.
constexpr int kSortOrders = 48;
const StuckKind kKinds[] = {StuckKind::kNextOverdue, StuckKind::kNotReceived,
                            StuckKind::kMessageUnprocessed};
const char* const kSortStages[] = {"created", "paid", "shipped", "created"};
bool SortStuck(int i) { return i % 2 == 0; }
StuckKind SortKind(int i) { return SortStuck(i) ? kKinds[(i / 2) % 3] : StuckKind::kNone; }
std::string SortQueue(int i) { return i % 4 == 0 ? "" : (i % 4 == 1 ? "qa" : "qb"); }
bool SortHopOpen(int i) { return i % 3 == 0; }
std::string SortTrace(int i) { return Hex(0x7000 + i % 4, 32); }
std::string SortMessage(int i) { return "m" + std::to_string(i % 6); }

OrderRow SortRow(int i) {
  OrderRow o = MakeOrder(OrderId(i), 5000 + i, false, SortKind(i), kSortStages[i % 4]);
  o.stuck_since_ns = SortStuck(i) ? 100 + (i * 7) % 5 : 0;  // ties across orders
  o.stage_ns = 200 + (i * 5) % 9;
  o.expected_service = i % 5 == 0 ? "billing" : "crm";
  o.last_service = i % 7 == 0 ? "mes" : "checkout";
  return o;
}

template <typename T>
void FillSortFixture(T* t) {
  WriteBatch b;
  for (int i = 0; i < kSortOrders; ++i) {
    b.orders.push_back(SortRow(i));
    SpanRecord s = MakeSpan(OrderId(i), 0x100 + i, 10, 20);
    s.trace_id = SortTrace(i);
    b.spans.push_back(s);
    Hop h = SendSide(0x500 + i, OrderId(i), SortMessage(i), 1000 - i);
    h.queue = SortQueue(i);
    if (!SortHopOpen(i)) h.processed_ns = 2000;
    b.hops.push_back(h);
    if (i % 8 == 0) {  // a second open hop, published later: not the oldest
      Hop later = SendSide(0x900 + i, OrderId(i), "late", 3000);
      later.queue = "qc";
      b.hops.push_back(later);
    }
  }
  t->MustWrite(b);
}

// The ids `q` should list, by brute force over SortRow (independent of the stores' code).
std::vector<std::string> SortExpected(const OrderQuery& q) {
  struct E {
    Nanos key;
    std::string id;
  };
  std::vector<E> all;
  auto in = [](const auto& list, const auto& v) {
    return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
  };
  for (int i = 0; i < kSortOrders; ++i) {
    const OrderRow o = SortRow(i);
    const bool stuck_only = q.sort == OrderSort::kStuckSince ||
                            q.sort == OrderSort::kStuckSinceDesc || !q.kinds.empty();
    if ((stuck_only || q.stuck == true) && !SortStuck(i)) continue;
    if (q.stuck == false && SortStuck(i)) continue;
    if (!in(q.kinds, o.stuck) || !in(q.stages, o.stage)) continue;
    if (!q.services.empty() && !in(q.services, o.expected_service) &&
        !in(q.services, o.last_service)) {
      continue;
    }
    std::vector<std::string> open_queues;
    if (SortHopOpen(i)) open_queues.push_back(SortQueue(i));
    if (i % 8 == 0) open_queues.push_back("qc");
    if (!q.queues.empty() && std::none_of(open_queues.begin(), open_queues.end(),
                                          [&](const std::string& x) { return in(q.queues, x); })) {
      continue;
    }
    if (!q.trace_id.empty() && q.trace_id != SortTrace(i)) continue;
    if (!q.message_id.empty() && q.message_id != SortMessage(i) &&
        !(q.message_id == "late" && i % 8 == 0)) {
      continue;
    }
    Nanos key = 0;
    if (q.sort == OrderSort::kStuckSince || q.sort == OrderSort::kStuckSinceDesc) {
      key = o.stuck_since_ns;
    } else if (q.sort == OrderSort::kStageSince || q.sort == OrderSort::kStageSinceDesc) {
      key = o.stage_ns;
    }
    all.push_back({key, o.order_id});
  }
  const bool desc = q.sort == OrderSort::kStuckSinceDesc || q.sort == OrderSort::kStageSinceDesc;
  std::sort(all.begin(), all.end(), [desc](const E& a, const E& b) {
    return desc ? std::tie(b.key, b.id) < std::tie(a.key, a.id)
                : std::tie(a.key, a.id) < std::tie(b.key, b.id);
  });
  std::vector<std::string> ids;
  for (const E& e : all) ids.push_back(e.id);
  return ids;
}

constexpr OrderSort kAllSorts[] = {OrderSort::kOrderId, OrderSort::kStuckSince,
                                   OrderSort::kStuckSinceDesc, OrderSort::kStageSince,
                                   OrderSort::kStageSinceDesc};

// Walks every page of `q` (cursor and key from each page); checks the total on each page.
template <typename T>
std::vector<std::string> AllPages(T* t, OrderQuery q, size_t expected_total) {
  q.count_total = true;
  q.cursor.clear();
  q.cursor_key = 0;
  std::vector<std::string> ids;
  for (int pages = 0; pages < 200; ++pages) {
    auto page = t->store_->ListOrders(q);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    EXPECT_LE(page->orders.size(), PageLimit(q.limit));
    EXPECT_EQ(page->total, std::optional<uint64_t>(expected_total));
    for (const auto& o : page->orders) ids.push_back(o.order_id);
    if (page->next_cursor.empty()) break;
    EXPECT_EQ(page->next_cursor, page->orders.back().order_id);
    q.cursor = page->next_cursor;
    q.cursor_key = page->next_key;
  }
  return ids;
}

TYPED_TEST(StoreContractTest, ListOrdersSortsAndPagesOnKeyAndOrderId) {
  FillSortFixture(this);
  for (const OrderSort sort : kAllSorts) {
    for (const bool stuck_only : {false, true}) {
      for (const size_t limit : {size_t{1}, size_t{4}, size_t{7}, size_t{100}}) {
        OrderQuery q;
        q.sort = sort;
        q.limit = limit;
        if (stuck_only) q.stuck = true;
        const auto expected = SortExpected(q);
        EXPECT_FALSE(expected.empty());
        EXPECT_EQ(AllPages(this, q, expected.size()), expected)
            << OrderSortName(sort) << " stuck " << stuck_only << " limit " << limit;
        q.stages = {"created"};
        const auto in_stage = SortExpected(q);
        EXPECT_FALSE(in_stage.empty());
        EXPECT_EQ(AllPages(this, q, in_stage.size()), in_stage)
            << OrderSortName(sort) << " stage created, limit " << limit;
      }
    }
  }
  // Sorted by the time stuck, only stuck orders are listed (with stuck=false: none).
  OrderQuery q;
  q.sort = OrderSort::kStuckSince;
  q.limit = 1000;
  EXPECT_EQ(this->Ids(q).size(), static_cast<size_t>(kSortOrders / 2));
  q.stuck = false;
  EXPECT_TRUE(this->Ids(q).empty());
}

TYPED_TEST(StoreContractTest, ListOrdersFiltersAnyOfEachAllOfThem) {
  FillSortFixture(this);
  std::vector<OrderQuery> queries;
  auto add = [&](auto&& set) {
    OrderQuery q;
    q.limit = 1000;
    set(q);
    queries.push_back(q);
  };
  add([](OrderQuery& q) { q.kinds = {StuckKind::kNotReceived}; });
  add([](OrderQuery& q) { q.kinds = {StuckKind::kNotReceived, StuckKind::kMessageUnprocessed}; });
  add([](OrderQuery& q) { q.kinds = {StuckKind::kSilent}; });
  add([](OrderQuery& q) { q.stages = {"paid", "shipped"}; });
  add([](OrderQuery& q) { q.services = {"billing", "mes"}; });
  add([](OrderQuery& q) { q.queues = {"qa"}; });
  add([](OrderQuery& q) { q.queues = {"qb", "qc"}; });
  add([](OrderQuery& q) { q.queues = {"nowhere"}; });
  add([](OrderQuery& q) { q.trace_id = SortTrace(1); });
  add([](OrderQuery& q) { q.trace_id = Hex(0xdead, 32); });
  add([](OrderQuery& q) { q.message_id = "m2"; });
  add([](OrderQuery& q) { q.message_id = "late"; });
  add([](OrderQuery& q) { q.message_id = "nope"; });
  add([](OrderQuery& q) {
    q.stages = {"created", "paid"};
    q.kinds = {StuckKind::kNextOverdue, StuckKind::kNotReceived};
    q.services = {"crm"};
  });
  add([](OrderQuery& q) {
    q.queues = {"qa", "qb", "qc"};
    q.trace_id = SortTrace(0);
    q.sort = OrderSort::kStuckSinceDesc;
  });
  add([](OrderQuery& q) {
    q.message_id = "m0";
    q.stuck = false;
    q.sort = OrderSort::kStageSince;
  });
  for (size_t i = 0; i < queries.size(); ++i) {
    const auto expected = SortExpected(queries[i]);
    EXPECT_EQ(this->Ids(queries[i]), expected) << "query " << i;
    OrderQuery paged = queries[i];
    paged.limit = 3;
    EXPECT_EQ(AllPages(this, paged, expected.size()), expected) << "query " << i;
  }
}

TYPED_TEST(StoreContractTest, ListOrdersGivesEachOrdersOldestOpenHop) {
  FillSortFixture(this);
  OrderQuery q;
  q.limit = 1000;
  q.with_open_hop = true;
  auto page = this->store_->ListOrders(q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), static_cast<size_t>(kSortOrders));
  ASSERT_EQ(page->open_hop.size(), page->orders.size());
  EXPECT_FALSE(page->total.has_value());  // not asked
  for (int i = 0; i < kSortOrders; ++i) {
    const std::optional<Hop>& h = page->open_hop[i];
    if (SortHopOpen(i)) {
      ASSERT_TRUE(h.has_value()) << i;
      EXPECT_EQ(h->send_span_id, Hex(0x500 + i));
      EXPECT_EQ(h->message_id, SortMessage(i));
      EXPECT_EQ(h->queue, SortQueue(i));
      EXPECT_EQ(h->published_ns, 1000 - i);
    } else if (i % 8 == 0) {
      ASSERT_TRUE(h.has_value()) << i;
      EXPECT_EQ(h->send_span_id, Hex(0x900 + i));
    } else {
      EXPECT_FALSE(h.has_value()) << i;
    }
  }
  q.with_open_hop = false;
  page = this->store_->ListOrders(q);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->open_hop.empty());
}

TYPED_TEST(StoreContractTest, ForEachActiveOrderAndOpenHop) {
  // More than one SQLite page of 1000 rows.
  WriteBatch b;
  std::set<std::string> active;
  std::set<std::string> open;
  for (int i = 0; i < 2500; ++i) {
    const bool closed = i % 3 == 0;
    b.orders.push_back(MakeOrder(OrderId(i), 1000 + i, closed));
    if (!closed) active.insert(OrderId(i));
    const uint64_t send = 100000 + static_cast<uint64_t>(i);
    switch (i % 4) {
      case 0:  // open
        b.hops.push_back(SendSide(send, OrderId(i), "m" + std::to_string(i), 10));
        open.insert(Hex(send));
        break;
      case 1:  // processed
        b.hops.push_back(SendSide(send, OrderId(i), "m" + std::to_string(i), 10));
        b.hops.push_back(ProcessSide(send, 20, "billing", send));
        break;
      case 2:  // process side only: not open
        b.hops.push_back(ProcessSide(send, 20, "billing", send));
        break;
      default:
        break;
    }
  }
  this->MustWrite(b);
  std::multiset<std::string> seen;
  ASSERT_TRUE(this->store_
                  ->ForEachActiveOrder([&](const OrderRow& o) {
                    EXPECT_FALSE(o.closed);
                    seen.insert(o.order_id);
                  })
                  .ok());
  EXPECT_EQ(seen, std::multiset<std::string>(active.begin(), active.end()));
  std::multiset<std::string> hops;
  ASSERT_TRUE(this->store_
                  ->ForEachOpenHop([&](const Hop& h) {
                    EXPECT_TRUE(h.open());
                    EXPECT_NE(h.published_ns, 0);
                    hops.insert(h.send_span_id);
                  })
                  .ok());
  EXPECT_EQ(hops, std::multiset<std::string>(open.begin(), open.end()));
}

TYPED_TEST(StoreContractTest, ForEachOrderIdListsEveryOrderRowOnce) {
  {
    int calls = 0;
    ASSERT_TRUE(this->store_->ForEachOrderId([&](std::string_view) { ++calls; }).ok());
    EXPECT_EQ(calls, 0);  // empty store
  }
  // More than two SQLite pages of 1000 ids; active, closed and stuck orders; ids in no order.
  std::multiset<std::string> expected;
  for (int batch = 0; batch < 5; ++batch) {
    WriteBatch b;
    for (int i = 0; i < 500; ++i) {
      const int n = (i * 5 + batch) * 7919 % 100000;
      const std::string id = "o-" + std::to_string(n);
      b.orders.push_back(
          MakeOrder(id, 1000 + n, n % 3 == 0, n % 5 == 0 ? StuckKind::kSilent : StuckKind::kNone));
      expected.insert(id);
    }
    this->MustWrite(b);
  }
  // Rewriting an order keeps one id; spans and hops of an order without a row add none.
  WriteBatch again;
  again.orders.push_back(MakeOrder(*expected.begin(), kNow, true));
  again.spans.push_back(MakeSpan("spans-only", 1, 10, 20));
  again.hops.push_back(SendSide(7, "hops-only", "m-7", 10));
  this->MustWrite(again);
  std::multiset<std::string> seen;
  ASSERT_TRUE(this->store_->ForEachOrderId([&](std::string_view id) { seen.emplace(id); }).ok());
  EXPECT_EQ(seen.size(), 2500u);
  EXPECT_EQ(seen, expected);
  // Retention removes ids with their orders.
  Retention r;
  r.closed_orders = std::chrono::hours(1);
  r.inactive_orders = Duration(0);
  r.spans = Duration(0);
  auto removed = this->store_->EnforceRetention(kNow, r);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  std::multiset<std::string> left;
  ASSERT_TRUE(this->store_->ForEachOrderId([&](std::string_view id) { left.emplace(id); }).ok());
  EXPECT_EQ(left.size() + removed->orders_removed, 2500u);
  for (const auto& id : left) {
    auto o = this->store_->GetOrder(id);
    ASSERT_TRUE(o.ok() && o->has_value()) << id;
    EXPECT_TRUE(!(*o)->closed || (*o)->order_id == *expected.begin()) << id;
  }
}

TYPED_TEST(StoreContractTest, FindHopBySpanIdAndMessageId) {
  WriteBatch b;
  b.hops = {SendSide(1, "o-1", "m-1", 100), SendSide(2, "o-1", "m-2", 200),
            SendSide(3, "o-2", "m-2", 150), ProcessSide(4, 500, "billing", 44)};
  this->MustWrite(b);
  auto h = this->store_->FindHop(Hex(1), "");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->message_id, "m-1");
  h = this->store_->FindHop("", "m-1");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->send_span_id, Hex(1));
  // Two hops carry m-2: the earliest published.
  h = this->store_->FindHop("", "m-2");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->send_span_id, Hex(3));
  // The span id wins; an unknown span id falls back to the message id.
  h = this->store_->FindHop(Hex(2), "m-1");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->send_span_id, Hex(2));
  h = this->store_->FindHop(Hex(99), "m-1");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->send_span_id, Hex(1));
  h = this->store_->FindHop(Hex(99), "m-99");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  // A message id learnt through a merge is found.
  h = this->store_->FindHop("", "m-4");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  WriteBatch c;
  c.hops = {SendSide(4, "o-3", "m-4", 400)};
  this->MustWrite(c);
  h = this->store_->FindHop("", "m-4");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->send_span_id, Hex(4));
  EXPECT_EQ((*h)->processed_ns, 500);
}

// Three orders: closed and old, open and old, open and recent.  Each with spans (one old, one
// recent when the order is recent), a milestone and a hop.
template <typename T>
void FillRetentionFixture(T* t) {
  WriteBatch b;
  struct O {
    std::string id;
    bool closed;
    Nanos last;
  };
  const O orders[] = {{"closed-old", true, kNow - 40 * kDay},
                      {"closed-new", true, kNow - 1 * kDay},
                      {"open-old", false, kNow - 40 * kDay},
                      {"open-new", false, kNow - 1 * kHour}};
  uint64_t id = 1;
  for (const auto& o : orders) {
    b.orders.push_back(MakeOrder(o.id, o.last, o.closed));
    b.spans.push_back(MakeSpan(o.id, id++, o.last - 20 * kDay, o.last - 20 * kDay + kSecond));
    b.spans.push_back(MakeSpan(o.id, id++, o.last - kSecond, o.last));
    b.milestones.push_back(MakeMilestone(o.id, "created", o.last - 20 * kDay, id));
    b.hops.push_back(SendSide(1000 + id, o.id, "m-" + o.id, o.last - kSecond));
  }
  // A hop without an order, old.
  b.hops.push_back(ProcessSide(5000, kNow - 100 * kDay, "billing", 1));
  t->MustWrite(b);
}

TYPED_TEST(StoreContractTest, RetentionRemovesClosedOrdersWithTheirData) {
  FillRetentionFixture(this);
  Retention r;
  r.closed_orders = std::chrono::hours(24 * 30);
  r.inactive_orders = Duration::zero();
  r.spans = Duration::zero();
  auto res = this->store_->EnforceRetention(kNow, r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->orders_removed, 1u);
  EXPECT_EQ(res->spans_removed, 2u);
  auto j = this->store_->GetJourney("closed-old");
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE(j->has_value());
  auto h = this->store_->FindHop("", "m-closed-old");
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->has_value());
  EXPECT_EQ(this->MustJourney("closed-new").spans.size(), 2u);
  EXPECT_EQ(this->MustJourney("open-old").spans.size(), 2u);
  const StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 3u);
  EXPECT_EQ(st.spans, 6u);
  EXPECT_EQ(st.hops, 4u);  // 3 orders' hops + the orphan
  // Re-writing the removed order's spans recreates them (nothing left behind).
  WriteBatch b;
  b.orders = {MakeOrder("closed-old", kNow - 40 * kDay, true)};
  this->MustWrite(b);
  EXPECT_TRUE(this->MustJourney("closed-old").spans.empty());
  EXPECT_TRUE(this->MustJourney("closed-old").milestones.empty());
  EXPECT_TRUE(this->MustJourney("closed-old").hops.empty());
}

TYPED_TEST(StoreContractTest, RetentionRemovesOldSpansFromOpenOrders) {
  FillRetentionFixture(this);
  Retention r;
  r.closed_orders = Duration::zero();
  r.inactive_orders = Duration::zero();
  r.spans = std::chrono::hours(24 * 14);
  auto res = this->store_->EnforceRetention(kNow, r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->orders_removed, 0u);
  // old: both spans of closed-old and open-old; the first span of closed-new and open-new.
  EXPECT_EQ(res->spans_removed, 6u);
  const Journey old = this->MustJourney("open-old");
  EXPECT_TRUE(old.spans.empty());
  EXPECT_EQ(old.milestones.size(), 1u);
  EXPECT_EQ(old.hops.size(), 1u);
  EXPECT_EQ(old.order, MakeOrder("open-old", kNow - 40 * kDay));
  const Journey recent = this->MustJourney("open-new");
  ASSERT_EQ(recent.spans.size(), 1u);
  EXPECT_EQ(recent.spans[0].end_ns, kNow - kHour);
  const StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 4u);
  EXPECT_EQ(st.spans, 2u);
  EXPECT_EQ(st.hops, 5u);
}

TYPED_TEST(StoreContractTest, RetentionRemovesInactiveOrders) {
  FillRetentionFixture(this);
  Retention r;
  r.closed_orders = Duration::zero();
  r.inactive_orders = std::chrono::hours(24 * 30);
  r.spans = Duration::zero();
  auto res = this->store_->EnforceRetention(kNow, r);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->orders_removed, 2u);  // closed-old and open-old
  EXPECT_EQ(res->spans_removed, 4u);
  for (const char* gone : {"closed-old", "open-old"}) {
    auto j = this->store_->GetJourney(gone);
    ASSERT_TRUE(j.ok());
    EXPECT_FALSE(j->has_value()) << gone;
  }
  auto orphan = this->store_->FindHop(Hex(5000), "");
  ASSERT_TRUE(orphan.ok());
  EXPECT_FALSE(orphan->has_value());
  const StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 2u);
  EXPECT_EQ(st.spans, 4u);
  EXPECT_EQ(st.hops, 2u);
}

TYPED_TEST(StoreContractTest, RetentionZeroKeepsEverything) {
  FillRetentionFixture(this);
  Retention r;
  r.closed_orders = r.inactive_orders = r.spans = Duration::zero();
  auto res = this->store_->EnforceRetention(kNow, r);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->orders_removed, 0u);
  EXPECT_EQ(res->spans_removed, 0u);
  const StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 4u);
  EXPECT_EQ(st.spans, 8u);
  EXPECT_EQ(st.hops, 5u);
  // All three at once.
  res = this->store_->EnforceRetention(kNow, Retention{});
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->orders_removed, 1u);      // closed-old (open-old is not 90 days inactive)
  EXPECT_EQ(res->spans_removed, 2u + 4u);  // closed-old's, then the old ones of the others
  auto orphan = this->store_->FindHop(Hex(5000), "");
  ASSERT_TRUE(orphan.ok());
  EXPECT_FALSE(orphan->has_value());  // 100 days old
}

TYPED_TEST(StoreContractTest, Stats) {
  StoreStats st = this->MustStats();
  EXPECT_EQ(st.orders, 0u);
  EXPECT_EQ(st.spans, 0u);
  EXPECT_EQ(st.hops, 0u);
  WriteBatch b;
  for (int i = 0; i < 100; ++i) {
    b.orders.push_back(MakeOrder(OrderId(i), 1000));
    b.spans.push_back(MakeSpan(OrderId(i), 1, 10, 20));
    b.spans.push_back(MakeSpan(OrderId(i), 2, 10, 20));
    b.hops.push_back(SendSide(static_cast<uint64_t>(i), OrderId(i), "m", 5));
  }
  this->MustWrite(b);
  this->MustWrite(b);  // all duplicates / replacements / merges
  st = this->MustStats();
  EXPECT_EQ(st.orders, 100u);
  EXPECT_EQ(st.spans, 200u);
  EXPECT_EQ(st.hops, 100u);
  EXPECT_GT(st.bytes, 0u);
}

TYPED_TEST(StoreContractTest, ConcurrentReadersDuringWrites) {
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      int i = 0;
      while (!done.load()) {
        auto j = this->store_->GetJourney(OrderId(i++ % 50));
        if (!j.ok()) ++errors;
        if (j.ok() && j->has_value() && (*j)->order.order_id != OrderId((i - 1) % 50)) ++errors;
        OrderQuery q;
        q.limit = 10;
        q.stuck = r % 2 == 0;
        if (!this->store_->ListOrders(q).ok()) ++errors;
        if (!this->store_->Stats().ok()) ++errors;
      }
    });
  }
  for (int batch = 0; batch < 100; ++batch) {
    WriteBatch b;
    for (int i = 0; i < 5; ++i) {
      const int o = (batch * 5 + i) % 50;
      b.orders.push_back(MakeOrder(OrderId(o), 1000 + batch, false,
                                   batch % 2 ? StuckKind::kSilent : StuckKind::kNone));
      b.spans.push_back(MakeSpan(OrderId(o), static_cast<uint64_t>(batch), batch, batch + 1));
    }
    this->MustWrite(b);
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(this->MustStats().spans, 500u);
}

// ---------------------------------------------------------------------------------------------
// SQLite only.

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "ordertrace-sqlite-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "journeys.db").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Result<std::unique_ptr<JourneyStore>> Open() {
    SqliteStoreOptions options;
    options.path = path_;
    return OpenSqliteStore(options);
  }
  void WriteFile(const std::string& bytes) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  // Runs each statement on the file with a connection of its own (no store), failing the test
  // on an error.
  void ExecOnFile(std::initializer_list<const char*> sqls) {
    sqlite::Db db(path_);
    ASSERT_TRUE(db.Open().ok());
    for (const char* sql : sqls) {
      const Status s = db.Exec(sql);
      ASSERT_TRUE(s.ok()) << sql << ": " << s.ToString();
    }
  }
  // What the store's Settle(max) leaves deferred; 99 (and a test failure) on an error.
  static size_t Deferred(JourneyStore& store, size_t max = 0) {
    auto left = store.Settle(max);
    EXPECT_TRUE(left.ok()) << left.status().ToString();
    return left.ok() ? *left : 99;
  }
  // One integer read from the file the same way; -1 (and a test failure) on an error.
  int64_t QueryFile(const std::string& sql) {
    sqlite::Db db(path_);
    if (!db.Open().ok()) return -1;
    auto v = db.QueryInt(sql);
    EXPECT_TRUE(v.ok()) << sql << ": " << v.status().ToString();
    return v.ok() ? *v : -1;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, DataSurvivesReopen) {
  WriteBatch b;
  for (int i = 0; i < 30; ++i) {
    b.orders.push_back(MakeOrder(OrderId(i), 1000 + i, i % 2 == 0));
    b.spans.push_back(MakeSpan(OrderId(i), 1, 10, 20));
    b.milestones.push_back(MakeMilestone(OrderId(i), "created", 20, 1));
    b.hops.push_back(SendSide(static_cast<uint64_t>(i), OrderId(i), "m", 5));
  }
  Journey before;
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Write(b).ok());
    auto j = (*store)->GetJourney(OrderId(7));
    ASSERT_TRUE(j.ok() && j->has_value());
    before = **j;
  }
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto j = (*store)->GetJourney(OrderId(7));
  ASSERT_TRUE(j.ok() && j->has_value());
  EXPECT_EQ((*j)->order, before.order);
  EXPECT_EQ((*j)->spans, before.spans);
  EXPECT_EQ((*j)->milestones, before.milestones);
  EXPECT_EQ((*j)->hops, before.hops);
  auto st = (*store)->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->orders, 30u);
  EXPECT_EQ(st->spans, 30u);
  EXPECT_EQ(st->hops, 30u);
  EXPECT_GT(st->bytes, 4096u);
  int active = 0;
  ASSERT_TRUE((*store)->ForEachActiveOrder([&](const OrderRow&) { ++active; }).ok());
  EXPECT_EQ(active, 15);
}

// A version 1 file (before orders.partner) is upgraded in place: its rows stay, they have no
// partner, and partners written afterwards are kept and found through the new index.
TEST_F(SqliteStoreTest, Version1FileIsUpgraded) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    WriteBatch b;
    b.orders = {MakeOrder("old-1", 1000), MakeOrder("old-2", 1001)};
    b.spans = {MakeSpan("old-1", 1, 10, 20)};
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  {
    // Back to the version 1 layout, as a build before the partner wrote it.
    sqlite::Db db(path_);
    ASSERT_TRUE(db.Open().ok());
    // (and without the order list's indexes, which came after version 2).
    for (const char* sql :
         {"DROP INDEX orders_partner", "DROP INDEX orders_stuck_since",
          "DROP INDEX orders_stuck_stage", "DROP INDEX orders_stuck_stage_ns",
          "DROP INDEX spans_trace", "DROP INDEX hops_open_queue",
          "ALTER TABLE orders DROP COLUMN partner", "ALTER TABLE orders DROP COLUMN partner_ns",
          "PRAGMA user_version = 1"}) {
      const Status s = db.Exec(sql);
      ASSERT_TRUE(s.ok()) << sql << ": " << s.ToString();
    }
  }
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  {
    sqlite::Db db(path_);
    ASSERT_TRUE(db.Open().ok());
    auto version = db.QueryInt("PRAGMA user_version");
    ASSERT_TRUE(version.ok());
    EXPECT_EQ(*version, sqlite::kSchemaVersion);
    auto index = db.QueryInt(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN ('orders_partner', "
        "'orders_stuck_since', 'orders_stuck_stage', 'orders_stuck_stage_ns', 'spans_trace', "
        "'hops_open_queue')");
    ASSERT_TRUE(index.ok());
    EXPECT_EQ(*index, 6);
  }
  auto old = (*store)->GetOrder("old-1");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ(**old, MakeOrder("old-1", 1000));
  EXPECT_EQ((*store)->GetJourney("old-1")->value().spans.size(), 1u);

  OrderRow o = MakeOrder("old-2", 1002);
  o.partner = "pse:k1:P";
  o.partner_ns = 5;
  WriteBatch b;
  b.orders = {o};
  ASSERT_TRUE((*store)->Write(b).ok());
  OrderQuery q;
  q.partners = {"pse:k1:P"};
  auto page = (*store)->ListOrders(q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0], o);
  store->reset();
  // Opening the upgraded file again changes nothing.
  auto again = Open();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto got = (*again)->GetOrder("old-2");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, o);
}

// A version 3 file (spans WITHOUT ROWID clustered by (order_id, span_id), orders_last on last_ns,
// the open hops' indexes by span id and order) is upgraded in place: its spans, hops and orders
// stay, the merge rules hold on the new tables, and retention finds old orders by last_bucket.
TEST_F(SqliteStoreTest, Version3FileIsUpgraded) {
  constexpr Nanos kT = 1'700'000'000 * kSecond;
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    WriteBatch b;
    b.orders = {MakeOrder("o-1", kT), MakeOrder("o-old", kT - 100 * kHour)};
    b.spans = {MakeSpan("o-1", 1, kT - 20, kT - 10), MakeSpan("o-1", 2, kT - 5, kT)};
    b.hops = {SendSide(7, "o-1", "m-7", kT - 10), SendSide(8, "o-1", "m-8", kT - 9),
              ProcessSide(8, kT - 1, "billing", 9)};
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  // Back to the version 3 layout, as a build before version 4 wrote it.
  ASSERT_NO_FATAL_FAILURE(ExecOnFile(
      {"CREATE TABLE spans_old AS SELECT * FROM spans", "DROP TABLE spans",
       "CREATE TABLE spans (order_id TEXT NOT NULL, span_id NOT NULL, trace_id NOT NULL, "
       "parent_span_id NOT NULL, service TEXT NOT NULL, name TEXT NOT NULL, start_ns INTEGER "
       "NOT NULL, end_ns INTEGER NOT NULL, flags INTEGER NOT NULL, error TEXT NOT NULL, "
       "stage TEXT NOT NULL, message_id TEXT NOT NULL, exchange TEXT NOT NULL, routing_key "
       "TEXT NOT NULL, queue TEXT NOT NULL, links TEXT, PRIMARY KEY (order_id, span_id)) "
       "WITHOUT ROWID",
       "INSERT INTO spans SELECT * FROM spans_old", "DROP TABLE spans_old",
       "CREATE INDEX spans_start ON spans (order_id, start_ns)",
       "CREATE INDEX spans_end ON spans (end_ns)", "CREATE INDEX spans_trace ON spans (trace_id)",
       "DROP INDEX orders_last", "ALTER TABLE orders DROP COLUMN last_bucket",
       "CREATE INDEX orders_last ON orders (last_ns)", "DROP INDEX hops_open",
       "CREATE INDEX hops_open ON hops (send_span_id) WHERE published_ns <> 0 AND "
       "processed_ns = 0",
       "DROP INDEX hops_open_queue",
       "CREATE INDEX hops_open_queue ON hops (queue, order_id) WHERE published_ns <> 0 AND "
       "processed_ns = 0",
       "PRAGMA user_version = 3"}));
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(QueryFile("PRAGMA user_version"), sqlite::kSchemaVersion);
  // The new forms: a rowid spans table with its key, the indexes by publish time and bucket.
  EXPECT_EQ(QueryFile("SELECT count(rowid) FROM spans"), 2);
  EXPECT_EQ(
      QueryFile(
          "SELECT count(*) FROM sqlite_schema WHERE (name = 'spans_key' AND sql LIKE "
          "'%UNIQUE%(order_id, span_id)%') OR (name = 'hops_open' AND sql LIKE '%(published_ns, "
          "send_span_id)%') OR (name = 'hops_open_queue' AND sql LIKE '%(queue, published_ns)%') "
          "OR (name = 'orders_last' AND sql LIKE '%(last_bucket)%') OR name = 'spans_trace' OR "
          "name = 'spans_end' OR name = 'spans_start'"),
      6);  // spans_start is gone
  auto journey = (*store)->GetJourney("o-1");
  ASSERT_TRUE(journey.ok() && journey->has_value());
  ASSERT_EQ((*journey)->spans.size(), 2u);
  EXPECT_EQ((*journey)->spans[0], MakeSpan("o-1", 1, kT - 20, kT - 10));
  EXPECT_EQ((*journey)->hops.size(), 2u);
  // A span written again keeps the first; a new one is added.
  WriteBatch again;
  SpanRecord changed = MakeSpan("o-1", 2, kT - 5, kT);
  changed.name = "changed";
  again.spans = {changed, MakeSpan("o-1", 3, kT + 1, kT + 2)};
  ASSERT_TRUE((*store)->Write(again).ok());
  journey = (*store)->GetJourney("o-1");
  ASSERT_TRUE(journey.ok() && journey->has_value());
  ASSERT_EQ((*journey)->spans.size(), 3u);
  EXPECT_EQ((*journey)->spans[1].name, "span-2");
  auto stats = (*store)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->spans, 3u);
  // The open hop (7) is found; the processed one (8) is not.
  std::vector<std::string> open;
  ASSERT_TRUE((*store)->ForEachOpenHop([&](const Hop& h) { open.push_back(h.send_span_id); }).ok());
  EXPECT_EQ(open, std::vector<std::string>{Hex(7)});
  // Retention reads the backfilled bucket: the inactive order goes, the recent one stays.
  Retention r;
  r.inactive_orders = std::chrono::hours(50);
  r.closed_orders = Duration(0);
  r.spans = Duration(0);
  auto removed = (*store)->EnforceRetention(kT, r);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(removed->orders_removed, 1u);
  EXPECT_FALSE((*store)->GetOrder("o-old")->has_value());
  EXPECT_TRUE((*store)->GetOrder("o-1")->has_value());
}

// The verdict log (verdict_log.h): verdicts and episodes are appended, not written in place,
// and every reader sees them all the same: GetOrder and GetJourney by the overlay, the list
// and the scans after a fold, a whole row written after them replaces their verdict and keeps
// their episodes; entries survive a restart; Settle folds them into the tables.
TEST_F(SqliteStoreTest, VerdictLogDefersAndEveryReaderSeesIt) {
  constexpr Nanos kT = 1'700'000'000 * kSecond;
  auto flag = [](const std::string& id, StuckKind kind, Nanos since) {
    OrderVerdict v;
    v.order_id = id;
    v.stuck = kind;
    v.stuck_since_ns = since;
    v.deadline_ns = since - kSecond;
    v.expected_service = "mes";
    v.summary = "order " + id + " stuck";
    return v;
  };
  auto episode = [](const OrderVerdict& v, Nanos flagged) {
    return StuckEpisode{v.order_id,       "created", v.stuck, v.expected_service,
                        v.stuck_since_ns, flagged,   0};
  };
  const OrderVerdict v1 = flag("o-1", StuckKind::kNotReceived, kT + 10);
  const OrderVerdict v2 = flag("o-2", StuckKind::kSilent, kT + 20);
  OrderRow o1 = MakeOrder("o-1", kT);
  OrderRow o2 = MakeOrder("o-2", kT);
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    WriteBatch b;
    b.orders = {o1, o2, MakeOrder("o-3", kT)};
    ASSERT_TRUE((*store)->Write(b).ok());
    b = WriteBatch{};
    b.verdicts = {v1, v2};
    b.episodes = {episode(v1, kT + 11), episode(v2, kT + 21)};
    ASSERT_TRUE((*store)->Write(b).ok());
    // Deferred: four entries in the log, the orders table not yet changed.
    EXPECT_EQ(Deferred(**store), 4u);
    EXPECT_EQ(QueryFile("SELECT count(*) FROM verdict_log"), 4);
    EXPECT_EQ(QueryFile("SELECT count(*) FROM orders WHERE stuck <> 0"), 0);
    EXPECT_EQ(QueryFile("SELECT count(*) FROM episodes"), 0);
    // The overlay.
    ApplyVerdict(o1, v1);
    ApplyVerdict(o2, v2);
    auto got = (*store)->GetOrder("o-1");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, o1);
    auto journey = (*store)->GetJourney("o-2");
    ASSERT_TRUE(journey.ok() && journey->has_value());
    EXPECT_EQ((*journey)->order, o2);
    EXPECT_EQ(Deferred(**store), 4u);  // reads by id fold nothing
    // o-2's whole row, cleared (the engine's Apply path), with its clear: the row wins over
    // the logged verdict, whose episode is kept and then ended.
    OrderRow o2_clear = MakeOrder("o-2", kT + 30);
    b = WriteBatch{};
    b.orders = {o2_clear};
    b.episodes = {{"o-2", {}, StuckKind::kNone, {}, 0, 0, kT + 31}};
    ASSERT_TRUE((*store)->Write(b).ok());
    EXPECT_EQ(Deferred(**store), 3u);  // o-2's two folded, its clear logged
    got = (*store)->GetOrder("o-2");
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, o2_clear);
    // A scan of the episodes overlays the log's flags and clears (o-1's flag, o-2's clear of
    // its folded episode) and folds nothing.
    std::vector<StuckEpisode> episodes;
    ASSERT_TRUE((*store)
                    ->ForEachEpisodeSince(0, [&](const StuckEpisode& e) { episodes.push_back(e); })
                    .ok());
    std::sort(episodes.begin(), episodes.end(),
              [](const auto& a, const auto& b) { return a.order_id < b.order_id; });
    StuckEpisode e2 = episode(v2, kT + 21);
    e2.cleared_ns = kT + 31;
    EXPECT_EQ(episodes, (std::vector<StuckEpisode>{episode(v1, kT + 11), e2}));
    EXPECT_EQ(Deferred(**store), 3u);
    EXPECT_EQ(QueryFile("SELECT count(*) FROM episodes"), 1);  // o-2's, as folded
    // Since after both flags: o-2's ended episode still counts (cleared after), o-1's ongoing.
    episodes.clear();
    ASSERT_TRUE(
        (*store)
            ->ForEachEpisodeSince(kT + 30, [&](const StuckEpisode& e) { episodes.push_back(e); })
            .ok());
    EXPECT_EQ(episodes.size(), 2u);
    episodes.clear();
    ASSERT_TRUE(
        (*store)
            ->ForEachEpisodeSince(kT + 32, [&](const StuckEpisode& e) { episodes.push_back(e); })
            .ok());
    EXPECT_EQ(episodes, (std::vector<StuckEpisode>{episode(v1, kT + 11)}));  // only the ongoing
    // Settled, the tables give the same.
    EXPECT_EQ(Deferred(**store, 100), 0u);
    EXPECT_EQ(QueryFile("SELECT count(*) FROM verdict_log"), 0);
    episodes.clear();
    ASSERT_TRUE((*store)
                    ->ForEachEpisodeSince(0, [&](const StuckEpisode& e) { episodes.push_back(e); })
                    .ok());
    std::sort(episodes.begin(), episodes.end(),
              [](const auto& a, const auto& b) { return a.order_id < b.order_id; });
    EXPECT_EQ(episodes, (std::vector<StuckEpisode>{episode(v1, kT + 11), e2}));
    // Logged again, and the store closed with the entry in the log.
    const OrderVerdict v3 = flag("o-3", StuckKind::kNextOverdue, kT + 40);
    b = WriteBatch{};
    b.verdicts = {v3};
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(Deferred(**store), 1u);  // counted when opened
  OrderRow o3 = MakeOrder("o-3", kT);
  ApplyVerdict(o3, flag("o-3", StuckKind::kNextOverdue, kT + 40));
  auto got = (*store)->GetOrder("o-3");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, o3);
  // The scans of order rows (the engine's recovery, the flow map's) overlay too, folding nothing.
  std::vector<OrderRow> active, since;
  ASSERT_TRUE((*store)->ForEachActiveOrder([&](const OrderRow& o) { active.push_back(o); }).ok());
  ASSERT_TRUE((*store)->ForEachOrderSince(0, [&](const OrderRow& o) { since.push_back(o); }).ok());
  for (const auto* rows : {&active, &since}) {
    auto it = std::find_if(rows->begin(), rows->end(),
                           [](const OrderRow& o) { return o.order_id == "o-3"; });
    ASSERT_NE(it, rows->end());
    EXPECT_EQ(*it, o3);
  }
  EXPECT_EQ(Deferred(**store), 1u);
  // A list that may not wait: the tables as they are, each row overlaid, the entries counted.
  // o-2 (cleared in the table) is not listed, o-3 (stuck in the log only) cannot be yet.
  OrderQuery stuck;
  stuck.stuck = true;
  stuck.settle_wait = Duration(0);
  auto page = (*store)->ListOrders(stuck);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0], o1);
  EXPECT_EQ(page->unsettled, 1u);
  OrderQuery all;
  all.settle_wait = Duration(0);
  page = (*store)->ListOrders(all);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 3u);
  EXPECT_EQ(page->orders[2], o3);  // overlaid
  EXPECT_EQ(page->unsettled, 1u);
  EXPECT_EQ(Deferred(**store), 1u);
  // The list folds, then reads.
  stuck.settle_wait.reset();
  page = (*store)->ListOrders(stuck);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 2u);
  EXPECT_EQ(page->orders[0], o1);
  EXPECT_EQ(page->orders[1], o3);
  EXPECT_EQ(page->unsettled, 0u);
  EXPECT_EQ(QueryFile("SELECT count(*) FROM verdict_log"), 0);
  // Settle folds what the list did not: a new entry, folded in steps of one.  Before that, a
  // list that may not wait leaves out o-3, stuck in the table and cleared in the log.
  WriteBatch more;
  more.verdicts = {flag("o-3", StuckKind::kNone, 0), flag("o-1", StuckKind::kSilent, kT + 50)};
  ASSERT_TRUE((*store)->Write(more).ok());
  stuck.settle_wait = Duration(0);
  page = (*store)->ListOrders(stuck);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->orders.size(), 1u);
  EXPECT_EQ(page->orders[0].order_id, "o-1");
  EXPECT_EQ(page->orders[0].stuck, StuckKind::kSilent);
  EXPECT_EQ(page->unsettled, 2u);
  EXPECT_EQ(Deferred(**store, 1), 1u);
  EXPECT_EQ(Deferred(**store, 1), 0u);
  EXPECT_EQ(QueryFile("SELECT count(*) FROM verdict_log"), 0);
  EXPECT_EQ(QueryFile("SELECT stuck FROM orders WHERE order_id = 'o-1'"),
            static_cast<int64_t>(StuckKind::kSilent));
  EXPECT_EQ(QueryFile("SELECT stuck FROM orders WHERE order_id = 'o-3'"), 0);
}

// A version 4 file (no verdict log) gets the log when opened; its rows stay as they were.
TEST_F(SqliteStoreTest, Version4FileIsUpgraded) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    WriteBatch b;
    b.orders = {MakeOrder("o-1", 100, false, StuckKind::kSilent)};
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  ASSERT_NO_FATAL_FAILURE(ExecOnFile({"DROP TABLE verdict_log", "PRAGMA user_version = 4"}));
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(QueryFile("PRAGMA user_version"), sqlite::kSchemaVersion);
  EXPECT_EQ(QueryFile("SELECT count(*) FROM sqlite_schema WHERE name IN ('verdict_log', "
                      "'verdict_log_order')"),
            2);
  WriteBatch b;
  OrderVerdict v;
  v.order_id = "o-1";
  b.verdicts = {v};
  ASSERT_TRUE((*store)->Write(b).ok());
  auto got = (*store)->GetOrder("o-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->stuck, StuckKind::kNone);
}

// ?partner= reads the partial index orders_partner, not the whole table, alone or with the
// other filters: SQLite's plan of the store's own query.
TEST_F(SqliteStoreTest, PartnerFilterUsesItsIndex) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  sqlite::Db db(path_);
  ASSERT_TRUE(db.Open().ok());
  for (int filters = 0; filters < 16; ++filters) {
    for (const size_t partners : {size_t{1}, size_t{3}}) {
      OrderQuery q;
      if (filters & 1) q.stuck = true;
      if (filters & 2) q.stages = {"created"};
      if (filters & 4) q.services = {"billing"};
      if (filters & 8) q.include_closed = false;
      q.partners.assign(partners, "pse:k1:P");
      const std::string sql = "EXPLAIN QUERY PLAN " + sqlite::ListOrdersSql(q);
      auto s = db.Statement(sql);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      std::string plan;
      ASSERT_TRUE(sqlite::ForEachRow(*s, [&](const sqlite::Stmt& row) {
                    plan += row.ColText(3) + "\n";
                  }).ok());
      EXPECT_NE(plan.find("INDEX orders_partner (partner=? AND order_id>?)"), std::string::npos)
          << sql << "\n"
          << plan;
      EXPECT_EQ(plan.find("SCAN"), std::string::npos) << sql << "\n" << plan;
    }
  }
}

// The query plans of the order list's sorts and filters (EXPLAIN QUERY PLAN of the store's own
// SQL): the stuck list sorted by the time stuck walks a stuck index in order (no sort of every
// stuck order per page), alone or with a stage; the other filters read their indexes.
TEST_F(SqliteStoreTest, SortedStuckListAndFiltersUseIndexes) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  sqlite::Db db(path_);
  ASSERT_TRUE(db.Open().ok());
  auto plan_of = [&](const std::string& sql) {
    auto s = db.Statement("EXPLAIN QUERY PLAN " + sql);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    std::string plan;
    if (s.ok()) {
      EXPECT_TRUE(sqlite::ForEachRow(*s, [&](const sqlite::Stmt& row) {
                    plan += row.ColText(3) + "\n";
                  }).ok());
    }
    return plan;
  };
  for (const OrderSort sort : {OrderSort::kStuckSince, OrderSort::kStuckSinceDesc}) {
    for (const bool cursor : {false, true}) {
      OrderQuery q;
      q.sort = sort;
      q.stuck = true;
      if (cursor) q.cursor = "ORD-1";
      std::string plan = plan_of(sqlite::ListOrdersSql(q));
      EXPECT_NE(plan.find("INDEX orders_stuck_since"), std::string::npos) << plan;
      EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
      q.stages = {"created"};
      plan = plan_of(sqlite::ListOrdersSql(q));
      EXPECT_NE(plan.find("INDEX orders_stuck_stage (stage=?"), std::string::npos) << plan;
      EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
      // The count reads the index alone (a covering index: no lookup of each stuck order).
      plan = plan_of(sqlite::CountOrdersSql(q));
      EXPECT_NE(plan.find("COVERING INDEX orders_stuck_stage (stage=?)"), std::string::npos)
          << plan;
      q.stages.clear();
      plan = plan_of(sqlite::CountOrdersSql(q));
      EXPECT_NE(plan.find("COVERING INDEX orders_stuck_"), std::string::npos) << plan;
      q.kinds = {StuckKind::kSilent, StuckKind::kNotReceived};
      plan = plan_of(sqlite::CountOrdersSql(q));
      EXPECT_NE(plan.find("COVERING INDEX orders_stuck_"), std::string::npos) << plan;
    }
  }
  OrderQuery q;
  q.stuck = true;
  q.sort = OrderSort::kStageSince;
  EXPECT_NE(plan_of(sqlite::ListOrdersSql(q)).find("INDEX orders_stuck_stage_ns"),
            std::string::npos);
  q = OrderQuery{};
  q.trace_id = Hex(1, 32);
  EXPECT_NE(plan_of(sqlite::ListOrdersSql(q)).find("INDEX spans_trace"), std::string::npos);
  q = OrderQuery{};
  q.queues = {"qa", "qb"};
  EXPECT_NE(plan_of(sqlite::ListOrdersSql(q)).find("INDEX hops_open_queue"), std::string::npos);
  q = OrderQuery{};
  q.message_id = "m";
  EXPECT_NE(plan_of(sqlite::ListOrdersSql(q)).find("INDEX hops_message"), std::string::npos);
}

TEST_F(SqliteStoreTest, GarbageFileIsAnErrorNotACrash) {
  WriteFile(std::string(8192, '\x5a'));
  auto store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInternal);
  EXPECT_NE(store.status().message().find(path_), std::string::npos) << store.status().message();
  EXPECT_NE(store.status().message().find("not a database"), std::string::npos)
      << store.status().message();
}

TEST_F(SqliteStoreTest, DamagedPagesAreErrorsNotCrashes) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int batch = 0; batch < 20; ++batch) {
      WriteBatch b;
      for (int i = 0; i < 50; ++i) {
        const int o = batch * 50 + i;
        b.orders.push_back(MakeOrder(OrderId(o), 1000));
        for (uint64_t k = 0; k < 4; ++k) b.spans.push_back(MakeSpan(OrderId(o), k, 10, 20));
      }
      ASSERT_TRUE((*store)->Write(b).ok());
    }
  }  // closed: checkpointed into the main file
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 16u * 4096u);
  {
    // Overwrite the back half of the file: the schema and counters (first pages) stay
    // readable, so the store opens and the damage shows up in the data.
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    const auto from = (size / 4096 / 2) * 4096;
    f.seekp(static_cast<std::streamoff>(from));
    const std::string junk(size - from, '\xa5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  // Whatever the damage hits answers with an error (or, where it misses, data); no crash.
  int errors = 0;
  std::string message;
  auto note = [&](const Status& st) {
    if (st.ok()) return;
    ++errors;
    if (message.empty()) message = st.message();
  };
  for (int i = 0; i < 1000; i += 37) note((*store)->GetJourney(OrderId(i)).status());
  OrderQuery q;
  q.limit = 1000;
  note((*store)->ListOrders(q).status());
  WriteBatch b;
  b.orders = {MakeOrder("new", 1)};
  note((*store)->Write(b));
  note((*store)->EnforceRetention(kNow, Retention{}).status());
  note((*store)->ForEachActiveOrder([](const OrderRow&) {}));
  EXPECT_GT(errors, 0);
  EXPECT_NE(message.find(path_), std::string::npos) << message;
  EXPECT_NE(message.find("malformed"), std::string::npos) << message;
}

TEST_F(SqliteStoreTest, ForeignDatabaseIsRefused) {
  // A valid store whose header says "newer": patch user_version (bytes 60..63, big-endian).
  {
    auto store = Open();
    ASSERT_TRUE(store.ok());
  }
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(60);
    const char v99[4] = {0, 0, 0, 99};
    f.write(v99, 4);
  }
  auto newer = Open();
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.status().message().find("newer"), std::string::npos) << newer.status().message();
  EXPECT_NE(newer.status().message().find(path_), std::string::npos);
  // Another application id (bytes 68..71).
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(60);
    const char v1[4] = {0, 0, 0, 1};
    f.write(v1, 4);
    f.seekp(68);
    const char other[4] = {'A', 'B', 'C', 'D'};
    f.write(other, 4);
  }
  auto foreign = Open();
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.status().message().find("not an ordertrace journey store"), std::string::npos)
      << foreign.status().message();
}

TEST_F(SqliteStoreTest, MissingDirectoryIsAnError) {
  SqliteStoreOptions options;
  options.path = (dir_ / "no" / "such" / "dir" / "journeys.db").string();
  auto store = OpenSqliteStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(options.path), std::string::npos)
      << store.status().message();
}

TEST_F(SqliteStoreTest, ReadOnlyFileFailsWritesAtomically) {
  {
    auto store = Open();
    ASSERT_TRUE(store.ok());
    WriteBatch b;
    b.orders = {MakeOrder("o-1", 1)};
    ASSERT_TRUE((*store)->Write(b).ok());
  }
  if (geteuid() == 0) GTEST_SKIP() << "root ignores file permissions";
  fs::permissions(path_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  auto store = Open();
  if (!store.ok()) {
    EXPECT_NE(store.status().message().find(path_), std::string::npos);
    return;
  }
  WriteBatch b;
  b.orders = {MakeOrder("o-2", 1)};
  b.spans = {MakeSpan("o-2", 1, 1, 2)};
  EXPECT_FALSE((*store)->Write(b).ok());
  auto j = (*store)->GetJourney("o-2");
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE(j->has_value());
}

}  // namespace
}  // namespace ordertrace::journey
