// The read-only scans by time of the JourneyStore (store.h ForEach...Since) and the stuck
// episodes they read: one typed suite run against every implementation, like
// store_contract_test.cc (kept apart so that file and this one change independently).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "journey/store/memory/memory_store.h"
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

using testing_stores::MemoryFactory;
using testing_stores::SqliteFactory;
using testing_stores::StoreTypes;

OrderRow Order(const std::string& id, Nanos first, Nanos last) {
  OrderRow o;
  o.order_id = id;
  o.stage = "SUBMITTED";
  o.first_ns = first;
  o.last_ns = last;
  return o;
}

Milestone MilestoneAt(const std::string& order, const std::string& stage, Nanos at) {
  Milestone m;
  m.order_id = order;
  m.stage = stage;
  m.at_ns = at;
  m.service = "svc";
  m.trace_id = std::string(32, 'a');
  m.span_id = std::string(16, 'b');
  return m;
}

Hop HopAt(const std::string& send_span, const std::string& order, Nanos published,
          Nanos processed) {
  Hop h;
  h.order_id = order;
  h.send_span_id = send_span;
  h.send_service = "crm";
  h.exchange = "orders";
  h.queue = "mes.orders";
  h.published_ns = published;
  h.processed_ns = processed;
  if (processed != 0) h.process_service = "mes";
  return h;
}

StuckEpisode Flag(const std::string& order, Nanos due, Nanos flagged) {
  return StuckEpisode{order, "SUBMITTED", StuckKind::kNextOverdue, "mes", due, flagged, 0};
}
StuckEpisode Clear(const std::string& order, Nanos cleared) {
  return StuckEpisode{order, {}, StuckKind::kNone, {}, 0, 0, cleared};
}

std::string SpanId(int i) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016x", i);
  return buf;
}

template <typename Factory>
class StoreScanContractTest : public testing_stores::StoreFixture<Factory> {
 protected:
  using testing_stores::StoreFixture<Factory>::store_;

  std::vector<std::string> OrdersSince(Nanos since) {
    std::vector<std::string> ids;
    EXPECT_TRUE(
        store_->ForEachOrderSince(since, [&](const OrderRow& o) { ids.push_back(o.order_id); })
            .ok());
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  std::vector<StuckEpisode> EpisodesSince(Nanos since) {
    std::vector<StuckEpisode> out;
    EXPECT_TRUE(
        store_->ForEachEpisodeSince(since, [&](const StuckEpisode& e) { out.push_back(e); }).ok());
    std::sort(out.begin(), out.end(), [](const StuckEpisode& a, const StuckEpisode& b) {
      return std::tie(a.order_id, a.flagged_ns) < std::tie(b.order_id, b.flagged_ns);
    });
    return out;
  }
};

TYPED_TEST_SUITE(StoreScanContractTest, StoreTypes);

TYPED_TEST(StoreScanContractTest, OrdersSinceTheirFirstSpan) {
  WriteBatch b;
  b.orders = {Order("old", kNow - 2 * kDay, kNow), Order("edge", kNow - kHour, kNow - kHour),
              Order("new", kNow - kSecond, kNow)};
  this->MustWrite(b);
  EXPECT_EQ(this->OrdersSince(kNow - kHour), (std::vector<std::string>{"edge", "new"}));
  EXPECT_EQ(this->OrdersSince(kNow), std::vector<std::string>{});
  EXPECT_EQ(this->OrdersSince(0).size(), 3u);
}

// More rows than one page of the SQLite scan (1000), with equal times across a page boundary:
// every row once.
TYPED_TEST(StoreScanContractTest, ScansPageThroughEqualTimes) {
  WriteBatch b;
  for (int i = 0; i < 2500; ++i) {
    const std::string id = "ORD-" + std::to_string(i);
    const Nanos t = kNow - kHour + (i / 700) * kSecond;  // 700 rows share each time
    b.orders.push_back(Order(id, t, t));
    b.milestones.push_back(MilestoneAt(id, "SUBMITTED", t));
    b.hops.push_back(HopAt(SpanId(i + 1), id, t, 0));
  }
  this->MustWrite(b);
  EXPECT_EQ(this->OrdersSince(kNow - kHour).size(), 2500u);
  size_t milestones = 0, hops = 0;
  std::vector<std::string> hop_ids;
  ASSERT_TRUE(
      this->store_->ForEachMilestoneSince(kNow - kHour, [&](const Milestone&) { ++milestones; })
          .ok());
  ASSERT_TRUE(this->store_
                  ->ForEachHopSince(kNow - kHour,
                                    [&](const Hop& h) {
                                      ++hops;
                                      hop_ids.push_back(h.send_span_id);
                                    })
                  .ok());
  EXPECT_EQ(milestones, 2500u);
  EXPECT_EQ(hops, 2500u);
  std::sort(hop_ids.begin(), hop_ids.end());
  EXPECT_EQ(std::unique(hop_ids.begin(), hop_ids.end()), hop_ids.end());
}

TYPED_TEST(StoreScanContractTest, MilestonesAndHopsSince) {
  WriteBatch b;
  b.milestones = {MilestoneAt("A", "SUBMITTED", kNow - 2 * kHour),
                  MilestoneAt("A", "PRICE_CALCULATED", kNow - 10 * kSecond)};
  b.hops = {HopAt(SpanId(1), "A", kNow - 2 * kHour, kNow - kHour),
            HopAt(SpanId(2), "A", kNow - 30 * kSecond, 0)};
  Hop process_only;  // the process side alone: no publish time, not in a scan by publish time
  process_only.send_span_id = SpanId(3);
  process_only.processed_ns = kNow;
  process_only.process_service = "mes";
  b.hops.push_back(process_only);
  this->MustWrite(b);
  std::vector<std::string> stages;
  ASSERT_TRUE(this->store_
                  ->ForEachMilestoneSince(kNow - kHour,
                                          [&](const Milestone& m) { stages.push_back(m.stage); })
                  .ok());
  EXPECT_EQ(stages, std::vector<std::string>{"PRICE_CALCULATED"});
  std::vector<Hop> hops;
  ASSERT_TRUE(
      this->store_->ForEachHopSince(kNow - kHour, [&](const Hop& h) { hops.push_back(h); }).ok());
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0], HopAt(SpanId(2), "A", kNow - 30 * kSecond, 0));
  // The process side merged into a hop of the window shows with it.
  WriteBatch process;
  Hop p;
  p.send_span_id = SpanId(2);
  p.processed_ns = kNow;
  p.process_service = "mes";
  process.hops.push_back(p);
  this->MustWrite(process);
  hops.clear();
  ASSERT_TRUE(
      this->store_->ForEachHopSince(kNow - kHour, [&](const Hop& h) { hops.push_back(h); }).ok());
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0].processed_ns, kNow);
  EXPECT_EQ(hops[0].process_service, "mes");
}

// A flag inserts an episode (a repeated write keeps the first); a clear ends the order's open
// episodes only; the scan returns episodes flagged or cleared since the time, and every open one.
TYPED_TEST(StoreScanContractTest, EpisodesFlagClearAndScan) {
  WriteBatch b;
  b.episodes = {Flag("A", kNow - 3 * kDay, kNow - 3 * kDay + kSecond),
                Flag("B", kNow - 2 * kDay, kNow - 2 * kDay + kSecond),
                Flag("C", kNow - kHour, kNow - kHour + kSecond)};
  this->MustWrite(b);
  WriteBatch again;  // an exporter-like retry of the same flag with other fields: first wins
  StuckEpisode other = Flag("C", kNow - kHour, kNow - kHour + kSecond);
  other.stage = "APPROVED";
  again.episodes = {other, Clear("A", kNow - 2 * kDay)};
  this->MustWrite(again);
  std::vector<StuckEpisode> all = this->EpisodesSince(0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].cleared_ns, kNow - 2 * kDay);
  EXPECT_EQ(all[1].cleared_ns, 0);
  EXPECT_EQ(all[2], Flag("C", kNow - kHour, kNow - kHour + kSecond));
  // Since a day ago: B (open, flagged earlier) and C; A ended two days ago.
  std::vector<StuckEpisode> day = this->EpisodesSince(kNow - kDay);
  ASSERT_EQ(day.size(), 2u);
  EXPECT_EQ(day[0].order_id, "B");
  EXPECT_EQ(day[1].order_id, "C");
  // B flagged again after a clear: two episodes, the second open.
  WriteBatch twice;
  twice.episodes = {Clear("B", kNow - kHour), Flag("B", kNow - 10 * kSecond, kNow - 5 * kSecond)};
  this->MustWrite(twice);
  day = this->EpisodesSince(kNow - kDay);
  ASSERT_EQ(day.size(), 3u);
  EXPECT_EQ(day[0].cleared_ns, kNow - kHour);
  EXPECT_EQ(day[1].order_id, "B");
  EXPECT_EQ(day[1].cleared_ns, 0);
  EXPECT_EQ(day[1].flagged_ns, kNow - 5 * kSecond);
}

// Retention removes an order's episodes with it, and ended episodes once older than the
// closed-orders retention; an ongoing one of a kept order stays.
TYPED_TEST(StoreScanContractTest, RetentionRemovesEpisodes) {
  WriteBatch b;
  b.orders = {Order("gone", kNow - 100 * kDay, kNow - 100 * kDay),
              Order("kept", kNow - 40 * kDay, kNow)};
  b.episodes = {Flag("gone", kNow - 100 * kDay, kNow - 100 * kDay),
                Flag("kept", kNow - 40 * kDay, kNow - 40 * kDay)};
  this->MustWrite(b);
  WriteBatch c;
  c.episodes = {Clear("kept", kNow - 35 * kDay), Flag("kept", kNow - kDay, kNow - kDay)};
  this->MustWrite(c);
  Retention r;  // closed orders 30 d, inactive 90 d
  ASSERT_TRUE(this->store_->EnforceRetention(kNow, r).ok());
  const std::vector<StuckEpisode> left = this->EpisodesSince(0);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].order_id, "kept");
  EXPECT_EQ(left[0].flagged_ns, kNow - kDay);
  EXPECT_EQ(this->OrdersSince(0), std::vector<std::string>{"kept"});
}

// A fresh directory under $TMPDIR from `pattern` (ending in XXXXXX); empty on an error.
fs::path TempDir(const char* pattern) {
  std::string tmpl = (fs::temp_directory_path() / pattern).string();
  if (mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

// Runs `sqls` on the file at `path`: back to an older layout, as an older build wrote it.
void Rewind(const std::string& path, std::initializer_list<const char*> sqls) {
  sqlite::Db db(path);
  ASSERT_TRUE(db.Open().ok());
  for (const char* sql : sqls) {
    const Status s = db.Exec(sql);
    ASSERT_TRUE(s.ok()) << sql << ": " << s.ToString();
  }
}

// One integer the file at `path` answers `sql` with; -1 on an error.
int64_t QueryFile(const std::string& path, const std::string& sql) {
  sqlite::Db db(path);
  if (!db.Open().ok()) return -1;
  auto v = db.QueryInt(sql);
  return v.ok() ? *v : -1;
}

// A version 2 file (before the episodes and the time indexes) is upgraded in place: its orders
// stay and are found by the scans, episodes are written and read from then on.
TEST(SqliteStoreScanTest, Version2FileIsUpgraded) {
  const fs::path dir = TempDir("ordertrace-scan-v2-XXXXXX");
  ASSERT_FALSE(dir.empty());
  const std::string path = (dir / "journeys.db").string();
  {
    auto store = SqliteFactory::Open(dir);
    ASSERT_NE(store, nullptr);
    WriteBatch b;
    b.orders = {Order("old", kNow - kHour, kNow)};
    ASSERT_TRUE(store->Write(b).ok());
  }
  // Back to the version 2 layout, as a build before the episodes wrote it.
  Rewind(path, {"DROP TABLE episodes", "DROP INDEX orders_first", "DROP INDEX milestones_at",
                "DROP INDEX hops_published", "PRAGMA user_version = 2"});
  auto store = SqliteFactory::Open(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(QueryFile(path, "PRAGMA user_version"), sqlite::kSchemaVersion);
  size_t orders = 0;
  ASSERT_TRUE(store->ForEachOrderSince(kNow - kDay, [&](const OrderRow&) { ++orders; }).ok());
  EXPECT_EQ(orders, 1u);
  WriteBatch b;
  b.episodes = {Flag("old", kNow - 10 * kSecond, kNow - 5 * kSecond)};
  ASSERT_TRUE(store->Write(b).ok());
  size_t episodes = 0;
  ASSERT_TRUE(
      store->ForEachEpisodeSince(kNow - kDay, [&](const StuckEpisode&) { ++episodes; }).ok());
  EXPECT_EQ(episodes, 1u);
  store.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A version 3 file (one index on cleared_ns, ongoing episodes under 0) gets the episodes'
// indexes by state (version 4); its episodes, ongoing and ended, are still found by the scan.
TEST(SqliteStoreScanTest, Version3FileGetsTheEpisodeIndexesByState) {
  const fs::path dir = TempDir("ordertrace-scan-v3-XXXXXX");
  ASSERT_FALSE(dir.empty());
  const std::string path = (dir / "journeys.db").string();
  {
    auto store = SqliteFactory::Open(dir);
    ASSERT_NE(store, nullptr);
    WriteBatch b;
    b.episodes = {Flag("ended", kNow - 3 * kDay, kNow - 3 * kDay),
                  Flag("open", kNow - 2 * kDay, kNow - 2 * kDay)};
    ASSERT_TRUE(store->Write(b).ok());
    b.episodes = {Clear("ended", kNow - 2 * kDay)};
    ASSERT_TRUE(store->Write(b).ok());
  }
  Rewind(path,
         {"DROP INDEX episodes_ended", "DROP INDEX episodes_open",
          "CREATE INDEX episodes_cleared ON episodes (cleared_ns)", "PRAGMA user_version = 3"});
  auto store = SqliteFactory::Open(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(QueryFile(path, "PRAGMA user_version"), sqlite::kSchemaVersion);
  EXPECT_EQ(QueryFile(path,
                      "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN "
                      "('episodes_ended', 'episodes_open')"),
            2);
  EXPECT_EQ(QueryFile(path,
                      "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = "
                      "'episodes_cleared'"),
            0);
  // Since a day ago: the ended episode is not (flagged and cleared before), the open one is.
  std::vector<std::string> seen;
  ASSERT_TRUE(store
                  ->ForEachEpisodeSince(kNow - kDay,
                                        [&](const StuckEpisode& e) { seen.push_back(e.order_id); })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>{"open"});
  seen.clear();
  ASSERT_TRUE(store
                  ->ForEachEpisodeSince(kNow - 4 * kDay,
                                        [&](const StuckEpisode& e) { seen.push_back(e.order_id); })
                  .ok());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"ended", "open"}));
  store.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace ordertrace::journey
