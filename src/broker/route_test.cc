#include "broker/route.h"

#include <gtest/gtest.h>

namespace ordertrace::broker {
namespace {

TEST(TopicTest, AmqpTopicRules) {
  EXPECT_TRUE(TopicMatches("price.calculate", "price.calculate"));
  EXPECT_FALSE(TopicMatches("price.calculate", "price.calculated"));
  EXPECT_TRUE(TopicMatches("price.*", "price.calculate"));
  EXPECT_FALSE(TopicMatches("price.*", "price"));
  EXPECT_FALSE(TopicMatches("price.*", "price.calculate.unrouted"));
  EXPECT_TRUE(TopicMatches("price.#", "price"));
  EXPECT_TRUE(TopicMatches("price.#", "price.calculate.unrouted"));
  EXPECT_TRUE(TopicMatches("#", "anything.at.all"));
  EXPECT_TRUE(TopicMatches("#", ""));
  EXPECT_TRUE(TopicMatches("", ""));
  EXPECT_FALSE(TopicMatches("", "a"));
  EXPECT_FALSE(TopicMatches("*", ""));
  EXPECT_TRUE(TopicMatches("*.*.done", "order.42.done"));
  EXPECT_TRUE(TopicMatches("order.#.done", "order.done"));
  EXPECT_TRUE(TopicMatches("order.#.done", "order.a.b.c.done"));
  EXPECT_FALSE(TopicMatches("order.#.done", "order.a.b.c.done.not"));
  EXPECT_TRUE(TopicMatches("#.done", "done"));
  EXPECT_TRUE(TopicMatches("*.#", "a"));
  EXPECT_FALSE(TopicMatches("*.#", ""));
  EXPECT_TRUE(TopicMatches("#.#", "a.b"));
  EXPECT_TRUE(TopicMatches("a.*.#.z", "a.b.z"));
  EXPECT_FALSE(TopicMatches("a.*.#.z", "a.z"));
  // Empty words are words.
  EXPECT_TRUE(TopicMatches("a.*.c", "a..c"));
  // A hostile pattern stays fast (no exponential backtracking).
  std::string pattern, key;
  for (int i = 0; i < 200; ++i) pattern += "#.";
  pattern += "x";
  for (int i = 0; i < 2000; ++i) key += "a.";
  key += "y";
  EXPECT_FALSE(TopicMatches(pattern, key));
}

Snapshot Topology() {
  Snapshot s;
  s.queues = {{"/", "audit", 0, 0, 0, 0, 0, 0},
              {"/", "crm.prices", 1204, 3, 0, 0, 0, 0},
              {"/", "mes.calculate", 5, 0, 1, 0, 0, 0},
              {"/", "mirror", 0, 0, 0, 0, 0, 0}};
  s.exchanges = {
      {"/", "", "direct"},          {"/", "orders", "direct"},        {"/", "events", "topic"},
      {"/", "broadcast", "fanout"}, {"/", "hdrs", "headers"},         {"/", "relay", "topic"},
      {"/", "loop", "fanout"},      {"/", "with-ae", "direct", "ae"}, {"/", "ae", "fanout"}};
  s.bindings = {{"/", "orders", "crm.prices", "queue", "price.calculated"},
                {"/", "orders", "mes.calculate", "queue", "price.calculate"},
                {"/", "events", "audit", "queue", "order.*.done"},
                {"/", "events", "relay", "exchange", "order.#"},
                {"/", "relay", "mirror", "queue", "#.shipped"},
                {"/", "broadcast", "audit", "queue", ""},
                {"/", "broadcast", "mirror", "queue", "ignored"},
                {"/", "loop", "loop", "exchange", ""},
                {"/", "loop", "audit", "queue", ""},
                {"/", "with-ae", "crm.prices", "queue", "price.calculated"},
                {"/", "ae", "mirror", "queue", ""}};
  return s;
}

TEST(RouteTest, DirectExactKey) {
  const Snapshot s = Topology();
  Route r = ResolveRoute(s, "orders", "price.calculated");
  EXPECT_EQ(r.kind, Route::Kind::kQueues);
  EXPECT_EQ(r.queues, std::vector<std::string>{"crm.prices"});
  EXPECT_EQ(r.exchange_type, "direct");
  EXPECT_EQ(ResolveRoute(s, "orders", "price.calculate.unrouted").kind, Route::Kind::kUnrouted);
  EXPECT_EQ(ResolveRoute(s, "orders", "price.*").kind, Route::Kind::kUnrouted);
}

TEST(RouteTest, DefaultExchangeIsTheQueueName) {
  const Snapshot s = Topology();
  Route r = ResolveRoute(s, "", "mes.calculate");
  EXPECT_EQ(r.kind, Route::Kind::kQueues);
  EXPECT_EQ(r.queues, std::vector<std::string>{"mes.calculate"});
  EXPECT_EQ(ResolveRoute(s, "", "no.such.queue").kind, Route::Kind::kUnrouted);
}

TEST(RouteTest, TopicFollowsExchangeBindings) {
  const Snapshot s = Topology();
  Route r = ResolveRoute(s, "events", "order.42.done");
  EXPECT_EQ(r.kind, Route::Kind::kQueues);
  EXPECT_EQ(r.queues, std::vector<std::string>{"audit"});
  r = ResolveRoute(s, "events", "order.42.shipped");  // via relay (order.# then #.shipped)
  EXPECT_EQ(r.queues, std::vector<std::string>{"mirror"});
  EXPECT_EQ(ResolveRoute(s, "events", "invoice.1.done").kind, Route::Kind::kUnrouted);
}

TEST(RouteTest, FanoutHeadersLoopsAndUnknownExchanges) {
  const Snapshot s = Topology();
  Route r = ResolveRoute(s, "broadcast", "whatever");
  EXPECT_EQ(r.queues, (std::vector<std::string>{"audit", "mirror"}));
  r = ResolveRoute(s, "hdrs", "x");
  EXPECT_EQ(r.kind, Route::Kind::kHeaders);
  EXPECT_EQ(r.exchange_type, "headers");
  r = ResolveRoute(s, "loop", "x");  // bound to itself: the loop is cut
  EXPECT_EQ(r.queues, std::vector<std::string>{"audit"});
  EXPECT_EQ(ResolveRoute(s, "nope", "x").kind, Route::Kind::kNoExchange);
}

TEST(RouteTest, AlternateExchangeTakesWhatNothingMatches) {
  const Snapshot s = Topology();
  EXPECT_EQ(ResolveRoute(s, "with-ae", "price.calculated").queues,
            std::vector<std::string>{"crm.prices"});
  Route r = ResolveRoute(s, "with-ae", "price.calculate.unrouted");
  EXPECT_EQ(r.kind, Route::Kind::kQueues);
  EXPECT_EQ(r.queues, std::vector<std::string>{"mirror"});
}

}  // namespace
}  // namespace ordertrace::broker
