#include "journey/store/memory/memory_store.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "common/thread_annotations.h"
#include "journey/store/semantics.h"

namespace ordertrace::journey {

namespace {

bool HopOpen(const Hop& h) { return h.published_ns != 0 && h.processed_ns == 0; }

template <typename T>
bool AnyOf(const std::vector<T>& any, const T& v) {
  return any.empty() || std::find(any.begin(), any.end(), v) != any.end();
}

size_t StringBytes(const std::string& s) { return s.size(); }

size_t SpanBytes(const SpanRecord& s) {
  size_t n = sizeof(SpanRecord) + StringBytes(s.order_id) + StringBytes(s.trace_id) +
             StringBytes(s.span_id) + StringBytes(s.parent_span_id) + StringBytes(s.service) +
             StringBytes(s.name) + StringBytes(s.error) + StringBytes(s.stage) +
             StringBytes(s.message_id) + StringBytes(s.exchange) + StringBytes(s.routing_key) +
             StringBytes(s.queue);
  for (const auto& l : s.links) n += sizeof(std::string) + l.size();
  return n;
}

size_t HopBytes(const Hop& h) {
  return sizeof(Hop) + h.order_id.size() + h.send_span_id.size() + h.send_trace_id.size() +
         h.send_service.size() + h.message_id.size() + h.exchange.size() + h.routing_key.size() +
         h.queue.size() + h.process_service.size() + h.process_span_id.size() +
         h.process_trace_id.size();
}

size_t OrderBytes(const OrderRow& o) {
  size_t n = sizeof(OrderRow) + o.order_id.size() + o.stage.size() + o.last_service.size() +
             o.expected_service.size() + o.summary.size() + o.partner.size();
  for (const auto& [svc, ns] : o.services) n += sizeof(std::pair<std::string, Nanos>) + svc.size();
  return n;
}

class MemoryStore final : public JourneyStore {
 public:
  Status Write(const WriteBatch& batch) override {
    for (const auto& o : batch.orders) {
      if (o.order_id.empty()) return Status::InvalidArgument("order row without an order_id");
    }
    for (const auto& v : batch.verdicts) {
      if (v.order_id.empty()) return Status::InvalidArgument("verdict without an order_id");
    }
    MutexLock lock(mu_);
    for (const auto& s : batch.spans) {
      auto [it, inserted] = per_order_[s.order_id].spans.try_emplace(s.span_id, s);
      if (inserted) it->second.partner.clear();  // kept per order, not per span
    }
    for (const auto& m : batch.milestones) {
      auto& stored = per_order_[m.order_id].milestones;
      auto it = stored.find(m.stage);
      if (it == stored.end()) {
        stored.emplace(m.stage, m);
      } else if (MilestoneEarlier(m, it->second)) {
        it->second = m;
      }
    }
    for (const auto& h : batch.hops) PutHop(h);
    for (const auto& o : batch.orders) {
      auto [it, inserted] = orders_.try_emplace(o.order_id, o);
      if (inserted) continue;
      OrderRow row = o;
      KeepPartner(row, it->second);
      it->second = std::move(row);
    }
    for (const auto& e : batch.episodes) PutEpisode(e);
    for (const auto& v : batch.verdicts) {
      const auto it = orders_.find(v.order_id);
      if (it != orders_.end()) ApplyVerdict(it->second, v);  // no row: skipped (store.h)
    }
    return Status::Ok();
  }

  Result<std::optional<Journey>> GetJourney(std::string_view order_id, size_t max_spans) override {
    MutexLock lock(mu_);
    const auto row = orders_.find(order_id);
    if (row == orders_.end()) return std::optional<Journey>();
    Journey j;
    j.order = row->second;
    const auto po = per_order_.find(order_id);
    if (po != per_order_.end()) {
      for (const auto& [stage, m] : po->second.milestones) j.milestones.push_back(m);
      std::sort(j.milestones.begin(), j.milestones.end(),
                [](const Milestone& a, const Milestone& b) {
                  if (a.at_ns != b.at_ns) return a.at_ns < b.at_ns;
                  return a.stage < b.stage;
                });
      for (const auto& [id, s] : po->second.spans) j.spans.push_back(s);
      std::sort(j.spans.begin(), j.spans.end(), [](const SpanRecord& a, const SpanRecord& b) {
        if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
        return a.span_id < b.span_id;
      });
      if (j.spans.size() > max_spans) {
        j.spans.erase(j.spans.begin(), j.spans.end() - static_cast<ptrdiff_t>(max_spans));
        j.spans_truncated = true;
      }
    }
    const auto hops = hops_by_order_.find(order_id);
    if (hops != hops_by_order_.end()) {
      for (const auto& id : hops->second) j.hops.push_back(hops_.at(id));
      std::sort(j.hops.begin(), j.hops.end(), [](const Hop& a, const Hop& b) {
        if (a.published_ns != b.published_ns) return a.published_ns < b.published_ns;
        return a.send_span_id < b.send_span_id;
      });
    }
    return std::optional<Journey>(std::move(j));
  }

  Result<std::optional<OrderRow>> GetOrder(std::string_view order_id) override {
    MutexLock lock(mu_);
    const auto it = orders_.find(order_id);
    if (it == orders_.end()) return std::optional<OrderRow>();
    return std::optional<OrderRow>(it->second);
  }

  Result<OrderPage> ListOrders(const OrderQuery& query) override {
    const size_t limit = PageLimit(query.limit);
    MutexLock lock(mu_);
    // Every match, sorted (a test store: no index).
    std::vector<const OrderRow*> matches;
    for (const auto& [id, o] : orders_) {
      if (OrderMatches(o, query) && Matches(o, query)) matches.push_back(&o);
    }
    const OrderSort sort = query.sort;
    std::sort(matches.begin(), matches.end(), [sort](const OrderRow* a, const OrderRow* b) {
      return OrderSortBefore(sort, OrderSortKey(*a, sort), a->order_id, OrderSortKey(*b, sort),
                             b->order_id);
    });
    OrderPage page;
    if (query.count_total) page.total = matches.size();
    const Nanos cursor_key = sort == OrderSort::kOrderId ? 0 : query.cursor_key;
    for (const OrderRow* o : matches) {
      const Nanos key = OrderSortKey(*o, sort);
      if (!query.cursor.empty() &&
          !OrderSortBefore(sort, cursor_key, query.cursor, key, o->order_id)) {
        continue;
      }
      if (page.orders.size() == limit) {
        page.next_cursor = page.orders.back().order_id;
        page.next_key = OrderSortKey(page.orders.back(), sort);
        break;
      }
      page.orders.push_back(*o);
      if (query.with_open_hop) page.open_hop.push_back(OldestOpenHop(o->order_id));
    }
    return page;
  }

  Status ForEachActiveOrder(const std::function<void(const OrderRow&)>& fn) override {
    std::vector<OrderRow> copy;
    {
      MutexLock lock(mu_);
      for (const auto& [id, o] : orders_) {
        if (!o.closed) copy.push_back(o);
      }
    }
    for (const auto& o : copy) fn(o);
    return Status::Ok();
  }

  Status ForEachOpenHop(const std::function<void(const Hop&)>& fn) override {
    std::vector<Hop> copy;
    {
      MutexLock lock(mu_);
      for (const auto& [id, h] : hops_) {
        if (HopOpen(h)) copy.push_back(h);
      }
    }
    for (const auto& h : copy) fn(h);
    return Status::Ok();
  }

  Status ForEachOrderId(const std::function<void(std::string_view)>& fn) override {
    std::vector<std::string> copy;
    {
      MutexLock lock(mu_);
      copy.reserve(orders_.size());
      for (const auto& [id, o] : orders_) copy.push_back(id);
    }
    for (const auto& id : copy) fn(id);
    return Status::Ok();
  }

  Status ForEachRecentSpan(size_t limit,
                           const std::function<void(std::string_view, std::string_view,
                                                    std::string_view)>& fn) override {
    struct Row {
      Nanos end_ns;
      std::string trace_id, span_id, order_id;
    };
    std::vector<Row> rows;
    {
      MutexLock lock(mu_);
      for (const auto& [order, po] : per_order_) {
        for (const auto& [sid, sp] : po.spans) {
          rows.push_back({sp.end_ns, sp.trace_id, sp.span_id, sp.order_id});
        }
      }
    }
    const size_t n = std::min(limit, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<ptrdiff_t>(n), rows.end(),
                      [](const Row& a, const Row& b) { return a.end_ns > b.end_ns; });
    for (size_t i = 0; i < n; ++i) fn(rows[i].trace_id, rows[i].span_id, rows[i].order_id);
    return Status::Ok();
  }

  Result<std::optional<Hop>> FindHop(std::string_view send_span_id,
                                     std::string_view message_id) override {
    MutexLock lock(mu_);
    if (!send_span_id.empty()) {
      const auto it = hops_.find(send_span_id);
      if (it != hops_.end()) return std::optional<Hop>(it->second);
    }
    if (!message_id.empty()) {
      const auto ids = hops_by_message_.find(message_id);
      if (ids != hops_by_message_.end()) {
        const Hop* best = nullptr;
        for (const auto& id : ids->second) {
          const Hop& h = hops_.at(id);
          if (best == nullptr || h.published_ns < best->published_ns) best = &h;
        }
        if (best != nullptr) return std::optional<Hop>(*best);
      }
    }
    return std::optional<Hop>();
  }

  Result<RetentionResult> EnforceRetention(Nanos now, const Retention& retention) override {
    RetentionResult result;
    MutexLock lock(mu_);
    const auto closed_cutoff = RetentionCutoff(now, retention.closed_orders);
    const auto inactive_cutoff = RetentionCutoff(now, retention.inactive_orders);
    const auto span_cutoff = RetentionCutoff(now, retention.spans);
    std::vector<std::string> expired;
    for (const auto& [id, o] : orders_) {
      if ((closed_cutoff && o.closed && o.last_ns < *closed_cutoff) ||
          (inactive_cutoff && o.last_ns < *inactive_cutoff)) {
        expired.push_back(id);
      }
    }
    for (const auto& id : expired) {
      episodes_.erase(episodes_.lower_bound({id, 0}),
                      episodes_.upper_bound({id, std::numeric_limits<Nanos>::max()}));
      orders_.erase(id);
      ++result.orders_removed;
      const auto po = per_order_.find(id);
      if (po != per_order_.end()) {
        result.spans_removed += po->second.spans.size();
        per_order_.erase(po);
      }
      const auto hops = hops_by_order_.find(id);
      if (hops != hops_by_order_.end()) {
        const std::set<std::string> ids = hops->second;
        for (const auto& hop_id : ids) EraseHop(hop_id);
      }
    }
    if (inactive_cutoff) {
      const auto orphans = hops_by_order_.find(std::string());
      if (orphans != hops_by_order_.end()) {
        const std::set<std::string> ids = orphans->second;
        for (const auto& hop_id : ids) {
          const Hop& h = hops_.at(hop_id);
          if (std::max(h.published_ns, h.processed_ns) < *inactive_cutoff) EraseHop(hop_id);
        }
      }
    }
    if (closed_cutoff) {
      std::erase_if(episodes_, [&](const auto& e) {
        return e.second.cleared_ns != 0 && e.second.cleared_ns < *closed_cutoff;
      });
    }
    if (span_cutoff) {
      for (auto po = per_order_.begin(); po != per_order_.end();) {
        auto& spans = po->second.spans;
        for (auto it = spans.begin(); it != spans.end();) {
          if (it->second.end_ns < *span_cutoff) {
            it = spans.erase(it);
            ++result.spans_removed;
          } else {
            ++it;
          }
        }
        if (spans.empty() && po->second.milestones.empty()) {
          po = per_order_.erase(po);
        } else {
          ++po;
        }
      }
    }
    return result;
  }

  Result<StoreStats> Stats() override {
    MutexLock lock(mu_);
    StoreStats stats;
    stats.orders = orders_.size();
    stats.hops = hops_.size();
    for (const auto& [id, o] : orders_) stats.bytes += OrderBytes(o);
    for (const auto& [id, po] : per_order_) {
      stats.spans += po.spans.size();
      for (const auto& [sid, s] : po.spans) stats.bytes += SpanBytes(s);
      stats.bytes += po.milestones.size() * sizeof(Milestone);
    }
    for (const auto& [id, h] : hops_) stats.bytes += HopBytes(h);
    return stats;
  }

  Status ForEachOrderSince(Nanos since, const std::function<void(const OrderRow&)>& fn) override {
    return CopyThenCall<OrderRow>(
        [&](std::vector<OrderRow>* out) {
          mu_.AssertHeld();  // called by CopyThenCall under the lock
          for (const auto& [id, o] : orders_) {
            if (o.first_ns >= since) out->push_back(o);
          }
        },
        fn);
  }

  Status ForEachMilestoneSince(Nanos since,
                               const std::function<void(const Milestone&)>& fn) override {
    return CopyThenCall<Milestone>(
        [&](std::vector<Milestone>* out) {
          mu_.AssertHeld();  // called by CopyThenCall under the lock
          for (const auto& [id, po] : per_order_) {
            for (const auto& [stage, m] : po.milestones) {
              if (m.at_ns >= since) out->push_back(m);
            }
          }
        },
        fn);
  }

  Status ForEachHopSince(Nanos since, const std::function<void(const Hop&)>& fn) override {
    return CopyThenCall<Hop>(
        [&](std::vector<Hop>* out) {
          mu_.AssertHeld();  // called by CopyThenCall under the lock
          for (const auto& [id, h] : hops_) {
            if (h.published_ns != 0 && h.published_ns >= since) out->push_back(h);
          }
        },
        fn);
  }

  Status ForEachEpisodeSince(Nanos since,
                             const std::function<void(const StuckEpisode&)>& fn) override {
    return CopyThenCall<StuckEpisode>(
        [&](std::vector<StuckEpisode>* out) {
          mu_.AssertHeld();  // called by CopyThenCall under the lock
          for (const auto& [key, e] : episodes_) {
            if (EpisodeSince(e, since)) out->push_back(e);
          }
        },
        fn);
  }

 private:
  struct PerOrder {
    std::map<std::string, SpanRecord, std::less<>> spans;      // by span_id
    std::map<std::string, Milestone, std::less<>> milestones;  // by stage
  };

  // The filters on the order's spans and hops.
  bool Matches(const OrderRow& o, const OrderQuery& q) const REQUIRES(mu_) {
    if (!q.trace_id.empty()) {
      const auto po = per_order_.find(o.order_id);
      if (po == per_order_.end()) return false;
      const auto& spans = po->second.spans;
      if (std::none_of(spans.begin(), spans.end(),
                       [&](const auto& s) { return s.second.trace_id == q.trace_id; })) {
        return false;
      }
    }
    if (!q.message_id.empty() || !q.queues.empty()) {
      const auto ids = hops_by_order_.find(o.order_id);
      if (ids == hops_by_order_.end()) return false;
      bool message = q.message_id.empty();
      bool queue = q.queues.empty();
      for (const auto& id : ids->second) {
        const Hop& h = hops_.at(id);
        if (h.message_id == q.message_id) message = true;
        if (HopOpen(h) && AnyOf(q.queues, h.queue)) queue = true;
      }
      if (!message || !queue) return false;
    }
    return true;
  }

  std::optional<Hop> OldestOpenHop(const std::string& order_id) const REQUIRES(mu_) {
    const auto ids = hops_by_order_.find(order_id);
    if (ids == hops_by_order_.end()) return std::nullopt;
    const Hop* best = nullptr;
    for (const auto& id : ids->second) {
      const Hop& h = hops_.at(id);
      if (!HopOpen(h)) continue;
      if (best == nullptr || h.published_ns < best->published_ns ||
          (h.published_ns == best->published_ns && h.send_span_id < best->send_span_id)) {
        best = &h;
      }
    }
    if (best == nullptr) return std::nullopt;
    return *best;
  }

  void PutHop(const Hop& h) REQUIRES(mu_) {
    auto it = hops_.find(h.send_span_id);
    if (it == hops_.end()) {
      hops_.emplace(h.send_span_id, h);
      hops_by_order_[h.order_id].insert(h.send_span_id);
      if (!h.message_id.empty()) hops_by_message_[h.message_id].insert(h.send_span_id);
      return;
    }
    Hop& stored = it->second;
    const std::string old_order = stored.order_id;
    const std::string old_message = stored.message_id;
    MergeHop(stored, h);
    if (stored.order_id != old_order) {
      Unindex(hops_by_order_, old_order, stored.send_span_id);
      hops_by_order_[stored.order_id].insert(stored.send_span_id);
    }
    if (stored.message_id != old_message) {
      if (!old_message.empty()) Unindex(hops_by_message_, old_message, stored.send_span_id);
      hops_by_message_[stored.message_id].insert(stored.send_span_id);
    }
  }

  void EraseHop(const std::string& id) REQUIRES(mu_) {
    const auto it = hops_.find(id);
    if (it == hops_.end()) return;
    Unindex(hops_by_order_, it->second.order_id, id);
    if (!it->second.message_id.empty()) Unindex(hops_by_message_, it->second.message_id, id);
    hops_.erase(it);
  }

  void PutEpisode(const StuckEpisode& e) REQUIRES(mu_) { journey::PutEpisode(episodes_, e); }

  // Copies under the lock (`collect`), calls `fn` without it.
  template <typename Row, typename Collect, typename Fn>
  Status CopyThenCall(Collect collect, const Fn& fn) EXCLUDES(mu_) {
    std::vector<Row> rows;
    {
      MutexLock lock(mu_);
      collect(&rows);
    }
    for (const Row& r : rows) fn(r);
    return Status::Ok();
  }

  using Index = std::map<std::string, std::set<std::string>, std::less<>>;
  static void Unindex(Index& index, const std::string& key, const std::string& id) {
    const auto it = index.find(key);
    if (it == index.end()) return;
    it->second.erase(id);
    if (it->second.empty()) index.erase(it);
  }

  Mutex mu_;
  std::map<std::string, OrderRow, std::less<>> orders_ GUARDED_BY(mu_);
  std::map<std::string, PerOrder, std::less<>> per_order_ GUARDED_BY(mu_);
  std::map<std::string, Hop, std::less<>> hops_ GUARDED_BY(mu_);  // by send_span_id
  Index hops_by_order_ GUARDED_BY(mu_);                           // order_id -> send_span_ids
  Index hops_by_message_ GUARDED_BY(mu_);                         // message_id -> send_span_ids
  EpisodeMap episodes_ GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<JourneyStore> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace ordertrace::journey
