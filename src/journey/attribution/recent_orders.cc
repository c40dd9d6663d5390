#include "journey/attribution/recent_orders.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace ordertrace::journey {
namespace {

// splitmix64's finaliser.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

constexpr size_t kInitialSlots = 1024;

}  // namespace

uint64_t TraceKey(const otlp::TraceId& trace) {
  const uint64_t k = Mix(Load64(trace.data()) ^ Mix(Load64(trace.data() + 8)));
  return k == 0 || k == UINT64_MAX ? 1 : k;
}

uint64_t SpanKey(const otlp::TraceId& trace, const otlp::SpanId& span) {
  const uint64_t k = Mix(Load64(span.data()) ^ (TraceKey(trace) * 0x9e3779b97f4a7c15ULL));
  return k == 0 || k == UINT64_MAX ? 1 : k;
}

RecentOrders::Generation::Generation(size_t slots) : keys(slots, 0), refs(slots, 0) {}

size_t RecentOrders::Generation::Slot(uint64_t key) const {
  const size_t mask = keys.size() - 1;
  size_t i = static_cast<size_t>(key) & mask;
  while (keys[i] != 0 && keys[i] != key) i = (i + 1) & mask;
  return i;
}

uint32_t RecentOrders::Generation::Intern(std::string_view order) {
  if (last_ref != UINT32_MAX && orders[last_ref] == order) return last_ref;
  auto it = index.find(order);
  if (it == index.end()) {
    orders.emplace_back(order);
    order_bytes += orders.back().capacity() + 1;
    const auto ref = static_cast<uint32_t>(orders.size() - 1);
    it = index.emplace(std::string_view(orders.back()), ref).first;
  }
  last_ref = it->second;
  return it->second;
}

RecentOrders::RecentOrders(size_t capacity)
    : per_generation_(std::max<size_t>(capacity / 2, 1)),
      gens_{Generation(kInitialSlots), Generation(kInitialSlots)} {}

std::string_view RecentOrders::Find(uint64_t key) const {
  for (int g : {current_, 1 - current_}) {
    const Generation& gen = gens_[g];
    if (gen.count == 0) continue;
    const size_t i = gen.Slot(key);
    if (gen.keys[i] == key) return gen.orders[gen.refs[i]];
  }
  return {};
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
  Generation* gen = Current();
  size_t i = gen->Slot(key);
  if (gen->keys[i] == key) {
    if (overwrite) gen->refs[i] = gen->Intern(order);
    return;
  }
  if (gen->count >= per_generation_) {
    // The generation is full: the older one goes, this one becomes the older.
    // The new generation starts at the size the last one reached: it will fill as far.
    const size_t slots = gen->keys.size();
    current_ = 1 - current_;
    gens_[current_] = Generation(slots);
    gen = Current();
    i = gen->Slot(key);
  } else if ((gen->count + 1) * 2 > gen->keys.size()) {
    // Keep the load at or below 1/2: grow and re-insert.
    Generation bigger(gen->keys.size() * 2);
    bigger.orders = std::move(gen->orders);
    bigger.index = std::move(gen->index);
    bigger.order_bytes = gen->order_bytes;
    for (size_t s = 0; s < gen->keys.size(); ++s) {
      if (gen->keys[s] == 0) continue;
      const size_t j = bigger.Slot(gen->keys[s]);
      bigger.keys[j] = gen->keys[s];
      bigger.refs[j] = gen->refs[s];
    }
    bigger.count = gen->count;
    *gen = std::move(bigger);
    i = gen->Slot(key);
  }
  gen->keys[i] = key;
  gen->refs[i] = gen->Intern(order);
  ++gen->count;
}

size_t RecentOrders::size() const { return gens_[0].count + gens_[1].count; }

size_t RecentOrders::bytes() const {
  size_t n = 0;
  for (const Generation& g : gens_) {
    n += g.keys.capacity() * (sizeof(uint64_t) + sizeof(uint32_t));
    // Interned ids: the string, the deque slot, the index node (key view, value, next
    // pointer, hash, allocator header) and its bucket.
    n += g.order_bytes + g.orders.size() * (sizeof(std::string) + 64);
  }
  return n;
}

}  // namespace ordertrace::journey
