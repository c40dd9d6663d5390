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

RecentOrders::Generation::Generation(size_t n) : slots(n, Slot{0, 0}) {}

size_t RecentOrders::Generation::Find(uint64_t key) const {
  const size_t mask = slots.size() - 1;
  size_t i = static_cast<size_t>(key) & mask;
  while (slots[i].key != 0 && slots[i].key != key) i = (i + 1) & mask;
  return i;
}

uint32_t RecentOrders::Generation::Intern(std::string_view order) {
  // Only a run of one order shares its copy: spans of an order come in runs (a request, a
  // trace), and a hash index of every id cost a cache miss per run (more than the copies).
  if (last_ref != UINT32_MAX && orders[last_ref] == order) return last_ref;
  orders.emplace_back(order);
  order_bytes += orders.back().capacity() + 1;
  last_ref = static_cast<uint32_t>(orders.size() - 1);
  return last_ref;
}

RecentOrders::RecentOrders(size_t capacity)
    : per_generation_(std::max<size_t>(capacity / 2, 1)),
      gens_{Generation(kInitialSlots), Generation(kInitialSlots)} {}

std::string_view RecentOrders::Find(uint64_t key) const {
  for (int g : {current_, 1 - current_}) {
    const Generation& gen = gens_[g];
    if (gen.count == 0) continue;
    const Slot& slot = gen.slots[gen.Find(key)];
    if (slot.key == key) return gen.orders[slot.ref];
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
  size_t i = gen->Find(key);
  if (gen->slots[i].key == key) {
    if (overwrite) gen->slots[i].ref = gen->Intern(order);
    return;
  }
  if (gen->count >= per_generation_) {
    // The generation is full: the older one goes, this one becomes the older.  The new
    // generation starts at the size the last one reached: it will fill as far.
    const size_t n = gen->slots.size();
    current_ = 1 - current_;
    gens_[current_] = Generation(n);
    gen = Current();
    i = gen->Find(key);
  } else if ((gen->count + 1) * 2 > gen->slots.size()) {
    // Keep the load at or below 1/2: grow and re-insert.
    Generation bigger(gen->slots.size() * 2);
    bigger.orders = std::move(gen->orders);
    bigger.order_bytes = gen->order_bytes;
    bigger.last_ref = gen->last_ref;
    for (const Slot& s : gen->slots) {
      if (s.key != 0) bigger.slots[bigger.Find(s.key)] = s;
    }
    bigger.count = gen->count;
    *gen = std::move(bigger);
    i = gen->Find(key);
  }
  gen->slots[i] = Slot{key, gen->Intern(order)};
  ++gen->count;
}

size_t RecentOrders::size() const { return gens_[0].count + gens_[1].count; }

size_t RecentOrders::bytes() const {
  size_t n = 0;
  for (const Generation& g : gens_) {
    n += g.slots.capacity() * sizeof(Slot);
    // Order ids: the strings and their deque slots.
    n += g.order_bytes + g.orders.size() * sizeof(std::string);
  }
  return n;
}

}  // namespace ordertrace::journey
