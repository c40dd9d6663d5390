#include "journey/attribution/recent_orders.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/mix64.h"

namespace ordertrace::journey {
namespace {

uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

constexpr size_t kInitialSlots = 1024;

}  // namespace

uint64_t TraceKey(const otlp::TraceId& trace) {
  const uint64_t k = Mix64(Load64(trace.data()) ^ Mix64(Load64(trace.data() + 8)));
  return k == 0 || k == UINT64_MAX ? 1 : k;
}

uint64_t SpanKey(const otlp::TraceId& trace, const otlp::SpanId& span) {
  const uint64_t k = Mix64(Load64(span.data()) ^ (TraceKey(trace) * 0x9e3779b97f4a7c15ULL));
  return k == 0 || k == UINT64_MAX ? 1 : k;
}

uint32_t RecentOrders::Orders::Intern(std::string_view order) {
  // Only a run of one order shares its copy: spans of an order come in runs (a request, a
  // trace), and a hash index of every id cost a cache miss per run (more than the copies).
  if (last_ref != UINT32_MAX && ids[last_ref] == order) return last_ref;
  ids.emplace_back(order);
  bytes += ids.back().capacity() + 1;
  last_ref = static_cast<uint32_t>(ids.size() - 1);
  return last_ref;
}

RecentOrders::RecentOrders(size_t capacity)
    : table_(std::max<size_t>(capacity, 2), kInitialSlots) {}

std::string_view RecentOrders::Find(uint64_t key) const {
  const auto found = table_.Find(key);
  if (found.slot == nullptr) return {};
  return orders_[found.index].ids[found.slot->ref];
}

void RecentOrders::Insert(uint64_t key, std::string_view order) {
  // Only the current generation is looked at: a key of the older one inserted again (a span
  // exported twice) gets a second, newer copy, which Find sees first; not looking saves a cache
  // miss per insert.
  Put(key, order, /*overwrite=*/false);
}

bool RecentOrders::Merge(uint64_t key, std::string_view order) {
  const std::string_view known = Find(key);
  if (known.empty()) {
    Put(key, order, /*overwrite=*/false);
    return true;
  }
  if (known == order || known == kAmbiguous) return true;
  Put(key, kAmbiguous, /*overwrite=*/true);
  return false;
}

void RecentOrders::Put(uint64_t key, std::string_view order, bool overwrite) {
  bool inserted = false, rotated = false;
  Slot* slot = table_.Insert(key, &inserted, &rotated);
  Orders& ids = orders_[table_.current_index()];
  if (rotated) ids = Orders();  // the generation dropped: its ids go with it
  if (inserted || overwrite) slot->ref = ids.Intern(order);
}

size_t RecentOrders::size() const { return table_.size(); }

size_t RecentOrders::bytes() const {
  size_t n = table_.bytes();
  for (const Orders& o : orders_) n += o.bytes + o.ids.size() * sizeof(std::string);
  return n;
}

}  // namespace ordertrace::journey
