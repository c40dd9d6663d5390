#include "journey/attribution/attributor.h"

#include <algorithm>
#include <utility>

namespace ordertrace::journey {

const char* AttributedViaName(AttributedVia v) {
  switch (v) {
    case AttributedVia::kCarried:
      return "carried";
    case AttributedVia::kParent:
      return "parent";
    case AttributedVia::kLink:
      return "link";
    case AttributedVia::kPublish:
      return "publish";
    case AttributedVia::kTrace:
      return "trace";
    default:
      return "";
  }
}

struct Attributor::Metrics {
  explicit Metrics(metrics::Registry& r) {
    auto& spans = r.AddCounter(
        "ordertrace_attribution_spans_total",
        "Spans given an order, by how it was found: carried (the span's "
        "own order.id), parent, link, publish (the message its parent or "
        "link published, as the engine knows it), trace (the only order of the span's trace).",
        {"via"});
    for (int v = 0; v < static_cast<int>(AttributedVia::kCount); ++v) {
      via[v] = &spans.With({AttributedViaName(static_cast<AttributedVia>(v))});
    }
    waited = &r.AddCounter("ordertrace_attribution_waited_total",
                           "Spans without an order whose ancestor was not known on arrival: "
                           "they waited in the pending set.")
                  .With({});
    auto& given_up = r.AddCounter("ordertrace_attribution_given_up_total",
                                  "Pending spans whose wait ended without an order: no_ancestor "
                                  "(no known parent, link or single-order trace), ambiguous "
                                  "(their trace carries several order ids).",
                                  {"reason"});
    given_up_none = &given_up.With({"no_ancestor"});
    given_up_ambiguous = &given_up.With({"ambiguous"});
    overflow = &r.AddCounter("ordertrace_attribution_overflow_total",
                             "Pending spans whose wait was cut short because the pending set was "
                             "full (journeys.attribution.max_pending_spans / max_pending_bytes).")
                    .With({});
    conflicts = &r.AddCounter("ordertrace_attribution_conflicts_total",
                              "Spans whose parent and links (or two links) belong to different "
                              "orders (the parent, else the first link, wins).")
                     .With({});
    pending_spans =
        &r.AddGauge("ordertrace_attribution_pending_spans", "Spans waiting for their ancestor.")
             .With({});
    pending_bytes = &r.AddGauge("ordertrace_attribution_pending_bytes",
                                "Bytes the pending set holds (the requests of waiting spans).")
                         .With({});
    tracked_spans = &r.AddGauge("ordertrace_attribution_tracked_spans",
                                "Spans whose order is remembered for their descendants.")
                         .With({});
    tracked_bytes = &r.AddGauge("ordertrace_attribution_tracked_bytes",
                                "Memory of the span and trace → order tables.")
                         .With({});
  }
  metrics::Counter* via[static_cast<int>(AttributedVia::kCount)];
  metrics::Counter* waited;
  metrics::Counter* given_up_none;
  metrics::Counter* given_up_ambiguous;
  metrics::Counter* overflow;
  metrics::Counter* conflicts;
  metrics::Gauge* pending_spans;
  metrics::Gauge* pending_bytes;
  metrics::Gauge* tracked_spans;
  metrics::Gauge* tracked_bytes;
};

namespace {

// What one pending span costs besides its request: the entry, its index and waiter nodes.
constexpr uint64_t kPendingEntryBytes = 320;

// The memory a held request costs: its wire bytes and its span index.
uint64_t HeldBytes(const otlp::SpanBatch& b) {
  return b.wire().size() + b.spans().size() * sizeof(otlp::SpanRef) +
         b.resources().size() * sizeof(otlp::ResourceRef) +
         b.scopes().size() * sizeof(otlp::ScopeRef);
}

}  // namespace

Attributor::Attributor(AttributionOptions options, metrics::Registry* registry)
    : options_(options),
      spans_(options.max_tracked_spans),
      traces_(options.max_tracked_traces),
      metrics_(registry != nullptr ? std::make_unique<Metrics>(*registry) : nullptr) {}

Attributor::~Attributor() = default;

void Attributor::SetPublishLookup(PublishLookup lookup) {
  MutexLock lock(mu_);
  publish_ = std::move(lookup);
}

void Attributor::Remember(const otlp::TraceId& trace, const otlp::SpanId& span,
                          std::string_view order) {
  if (order.empty()) return;
  MutexLock lock(mu_);
  spans_.Insert(SpanKey(trace, span), order);
  traces_.Merge(TraceKey(trace), order);
}

Attributor::PendingSpan* Attributor::Pending(uint64_t id) {
  if (id < slab_base_ || id - slab_base_ >= slab_.size() - head_) return nullptr;
  PendingSpan* p = &slab_[head_ + (id - slab_base_)];
  return p->done ? nullptr : p;
}

Attributor::Group* Attributor::FindGroup(uint64_t trace_key) {
  if (trace_key == cached_trace_ && cached_group_ != nullptr) return cached_group_;
  auto it = groups_.find(trace_key);
  if (it == groups_.end()) return nullptr;
  cached_trace_ = trace_key;
  cached_group_ = &it->second;
  return cached_group_;
}

uint64_t Attributor::PendingByKey(Group* g, uint64_t key) {
  if (g == nullptr) return 0;
  if (g->by_key) {
    const uint64_t* id = g->by_key->Find(key);
    return id == nullptr ? 0 : *id;
  }
  for (uint64_t id : g->ids) {
    const PendingSpan* p = Pending(id);
    if (p != nullptr && p->key == key) return id;
  }
  return 0;
}

void Attributor::ChildrenOf(Group* g, uint64_t parent_key, std::vector<uint64_t>* ids) {
  if (g == nullptr) return;
  if (g->by_parent) {
    auto [begin, end] = g->by_parent->equal_range(parent_key);
    for (auto it = begin; it != end; ++it) ids->push_back(it->second);
    return;
  }
  for (uint64_t id : g->ids) {
    const PendingSpan* p = Pending(id);
    if (p != nullptr && p->parent_key == parent_key) ids->push_back(id);
  }
}

std::string_view Attributor::Lookup(uint64_t parent_key, const std::vector<uint64_t>& links,
                                    AttributedVia* via) {
  std::string_view found;
  if (parent_key != 0) {
    found = spans_.Find(parent_key);
    if (!found.empty()) *via = AttributedVia::kParent;
  }
  for (uint64_t link : links) {
    const std::string_view o = spans_.Find(link);
    if (o.empty()) continue;
    if (found.empty()) {
      found = o;
      *via = AttributedVia::kLink;
    } else if (o != found) {
      ++stats_.conflicts;
      if (metrics_) metrics_->conflicts->Inc();
    }
  }
  return found;
}

void Attributor::TrackTrace(uint64_t trace_key, std::string_view order) {
  if (trace_key == last_trace_key_ && order == last_trace_order_) return;
  traces_.Merge(trace_key, order);
  last_trace_key_ = trace_key;
  last_trace_order_.assign(order);
}

void Attributor::Track(uint64_t key, uint64_t trace_key, std::string_view order, AttributedVia via,
                       const FactExtractor& extractor, std::vector<SpanRecord>* out) {
  spans_.Insert(key, order);
  TrackTrace(trace_key, order);
  ++stats_.attributed[static_cast<int>(via)];
  if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
  if (live_ != 0) ResolveWaiters({key, trace_key}, extractor, out);
}

void Attributor::ResolveWaiters(Resolved first, const FactExtractor& extractor,
                                std::vector<SpanRecord>* out) {
  std::vector<Resolved> work{first};
  std::vector<std::pair<uint64_t, AttributedVia>> found;
  std::vector<uint64_t> ids;
  std::string order;
  while (!work.empty() && live_ != 0) {
    const Resolved r = work.back();
    work.pop_back();
    found.clear();
    ids.clear();
    ChildrenOf(FindGroup(r.trace_key), r.key, &ids);
    for (uint64_t id : ids) found.emplace_back(id, AttributedVia::kParent);
    if (!link_waiters_.empty()) {
      auto [begin, end] = link_waiters_.equal_range(r.key);
      for (auto it = begin; it != end; ++it) found.emplace_back(it->second, AttributedVia::kLink);
    }
    if (found.empty()) continue;
    order.assign(spans_.Find(r.key));
    if (order.empty()) continue;
    for (const auto& [id, via] : found) {
      PendingSpan* p = Pending(id);
      if (p == nullptr) continue;
      const otlp::SpanBatch& batch = *held_[p->batch - held_base_].batch;
      ExtractStats again;
      extractor.ExtractSpan(batch, batch.spans()[p->span_index], order,
                            /*keep_unowned_process=*/false, out, &again);
      const Resolved child{p->key, p->trace_key};
      spans_.Insert(child.key, order);
      TrackTrace(child.trace_key, order);
      ++stats_.attributed[static_cast<int>(via)];
      if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
      Finish(id);
      work.push_back(child);
    }
  }
}

namespace {

// The order a span's parent or links give, asked by the extractor only when the span carries
// none of its own.
template <typename F>
struct LazyOrder final : FactExtractor::OrderSource {
  explicit LazyOrder(F f) : fn(std::move(f)) {}
  std::string_view OrderOf() override { return fn(); }
  F fn;
};

}  // namespace

void Attributor::Process(const std::shared_ptr<const otlp::SpanBatch>& batch,
                         const FactExtractor& extractor, Nanos now, std::vector<SpanRecord>* out,
                         ExtractStats* stats) {
  ExtractStats local;
  if (stats == nullptr) stats = &local;
  MutexLock lock(mu_);
  const std::vector<otlp::SpanRef>& spans = batch->spans();
  std::vector<uint64_t> links;
  uint64_t held = 0;  // this batch's id in held_, once a span of it waits
  uint64_t trace_key = 0;
  const otlp::TraceId* trace = nullptr;
  bool trace_touched = false;  // whether trace_key has tracked spans
  for (uint32_t i = 0; i < spans.size(); ++i) {
    const otlp::SpanRef& span = spans[i];
    if (trace == nullptr || span.trace_id != *trace) {
      trace = &span.trace_id;
      trace_key = TraceKey(span.trace_id);
      trace_touched = trace_key == last_trace_key_ || !traces_.Find(trace_key).empty();
    }
    links.clear();
    AttributedVia via = AttributedVia::kCarried;
    std::string assigned;
    auto source = LazyOrder([&]() -> std::string_view {
      mu_.AssertHeld();  // called by ExtractSpan below, within this function's lock
      if (span.links > 0) {
        const uint64_t parent_key =
            span.has_parent() ? SpanKey(span.trace_id, span.parent_span_id) : 0;
        batch->ForEachLink(span, [&](const otlp::LinkView& l) {
          const uint64_t k = SpanKey(l.trace_id, l.span_id);
          if (k != parent_key) links.push_back(k);
        });
      }
      // A parent is worth looking up only in a trace with tracked spans.
      const uint64_t parent_key =
          trace_touched && span.has_parent() ? SpanKey(span.trace_id, span.parent_span_id) : 0;
      if (parent_key == 0 && links.empty()) return {};
      assigned.assign(Lookup(parent_key, links, &via));
      return assigned;
    });
    const FactExtractor::SpanFacts facts =
        extractor.ExtractSpan(*batch, span, &source, /*keep_unowned_process=*/true, out, stats);
    const uint64_t key = SpanKey(span.trace_id, span.span_id);
    if (facts.has_order) {
      const std::string& order = out->back().order_id;
      Track(key, trace_key, order, facts.carried ? AttributedVia::kCarried : via, extractor, out);
      trace_touched = true;
      continue;
    }
    // No order yet.  A process span went to the engine without one all the same (appended by
    // ExtractSpan): its message id may close an open hop at once, as before attribution, and
    // waiting would delay a message processed just in time into a false flag; if it is
    // attributed later, the engine folds its record a second time, which changes nothing.
    // This batch is held from its first waiting span on (again if its waits all ended).
    if (held < held_base_ || held_[held - held_base_].batch == nullptr) {
      held_.push_back({batch, 0});
      held = held_base_ + held_.size() - 1;
      stats_.pending_bytes += HeldBytes(*batch);
    }
    AddPending(held, span, i, key, trace_key, facts.process_hop, links, now);
  }
  // The bounds: the oldest waits end early.
  while (
      (live_ > options_.max_pending_spans || stats_.pending_bytes > options_.max_pending_bytes) &&
      wait_cursor_ < slab_base_ + (slab_.size() - head_)) {
    const uint64_t id = wait_cursor_++;
    PendingSpan* p = Pending(id);
    if (p == nullptr || p->deferred) continue;
    ++stats_.overflow;
    if (metrics_) metrics_->overflow->Inc();
    EndWait(id, extractor, out);
  }
  Publish();
}

void Attributor::AddPending(uint64_t batch, const otlp::SpanRef& span, uint32_t index, uint64_t key,
                            uint64_t trace_key, bool process_hop,
                            const std::vector<uint64_t>& links, Nanos now) {
  const uint64_t id = slab_base_ + (slab_.size() - head_);
  slab_.emplace_back();
  PendingSpan& p = slab_.back();
  p.done = false;
  p.batch = batch;
  p.span_index = index;
  p.process_hop = process_hop;
  p.key = key;
  p.trace_key = trace_key;
  if (span.has_parent()) {
    p.parent = span.parent_span_id;
    p.parent_key = SpanKey(span.trace_id, span.parent_span_id);
  }
  if (!links.empty()) {
    PendingLinks& l = links_[id];
    l.keys = links;
    held_[batch - held_base_].batch->ForEachLink(span, [&](const otlp::LinkView& v) {
      if (SpanKey(v.trace_id, v.span_id) != p.parent_key) l.ids.push_back(v.span_id);
    });
    for (uint64_t k : l.keys) link_waiters_.emplace(k, id);
    p.has_links = true;
  }
  const Nanos wait = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.wait).count();
  p.expires = now > kForever - wait ? kForever : now + wait;

  Group* g = FindGroup(trace_key);
  if (g == nullptr) {
    g = &groups_[trace_key];
    cached_trace_ = trace_key;
    cached_group_ = g;
  }
  g->ids.push_back(id);
  ++g->live;
  if (g->by_key) {
    g->by_key->Put(key, id);
    g->by_parent->emplace(p.parent_key, id);
  } else if (g->live > kIndexedGroup) {
    g->by_key = std::make_unique<FlatIndex>();
    g->by_parent = std::make_unique<std::unordered_multimap<uint64_t, uint64_t>>();
    for (uint64_t m : g->ids) {
      if (const PendingSpan* q = Pending(m)) {
        g->by_key->Put(q->key, m);
        g->by_parent->emplace(q->parent_key, m);
      }
    }
  }

  ++held_[batch - held_base_].live;
  ++live_;
  stats_.pending_bytes += kPendingEntryBytes + links.size() * 48;
  ++stats_.waited;
  if (metrics_) metrics_->waited->Inc();
}

void Attributor::Finish(uint64_t id) {
  PendingSpan* p = Pending(id);
  if (p == nullptr) return;
  p->done = true;
  size_t link_count = 0;
  if (p->has_links) {
    auto l = links_.find(id);
    if (l != links_.end()) {
      for (uint64_t k : l->second.keys) {
        auto [begin, end] = link_waiters_.equal_range(k);
        for (auto w = begin; w != end; ++w) {
          if (w->second == id) {
            link_waiters_.erase(w);
            break;
          }
        }
      }
      link_count = l->second.keys.size();
      links_.erase(l);
    }
  }
  if (Group* g = FindGroup(p->trace_key)) {
    if (--g->live == 0) {
      groups_.erase(p->trace_key);
      cached_trace_ = 0;
      cached_group_ = nullptr;
    } else {
      if (g->by_key) {
        g->by_key->Erase(p->key);
        auto [begin, end] = g->by_parent->equal_range(p->parent_key);
        for (auto it = begin; it != end; ++it) {
          if (it->second == id) {
            g->by_parent->erase(it);
            break;
          }
        }
      }
      // Finished ids are skipped; drop them when they outnumber the live ones.
      if (g->ids.size() >= 64 && g->ids.size() > 4 * g->live) {
        std::vector<uint64_t> keep;
        keep.reserve(g->live);
        for (uint64_t m : g->ids) {
          if (m != id && Pending(m) != nullptr) keep.push_back(m);
        }
        g->ids.swap(keep);
      }
    }
  }
  stats_.pending_bytes -=
      std::min<uint64_t>(stats_.pending_bytes, kPendingEntryBytes + link_count * 48);
  HeldBatch& h = held_[p->batch - held_base_];
  if (--h.live == 0) {
    stats_.pending_bytes -= std::min<uint64_t>(stats_.pending_bytes, HeldBytes(*h.batch));
    h.batch.reset();
    while (!held_.empty() && held_.front().live == 0 && held_.front().batch == nullptr) {
      held_.pop_front();
      ++held_base_;
    }
  }
  --live_;
  while (head_ < slab_.size() && slab_[head_].done) {
    ++head_;
    ++slab_base_;
  }
  if (head_ == slab_.size()) {
    slab_.clear();
    head_ = 0;
  } else if (head_ >= 4096 && head_ * 2 >= slab_.size()) {
    slab_.erase(slab_.begin(), slab_.begin() + static_cast<ptrdiff_t>(head_));
    head_ = 0;
  }
  if (wait_cursor_ < slab_base_) wait_cursor_ = slab_base_;
}

void Attributor::EndWait(uint64_t id, const FactExtractor& extractor,
                         std::vector<SpanRecord>* out) {
  PendingSpan* p = Pending(id);
  if (p == nullptr) return;
  // A parent that still waits decides for its children (unless it follows its own parent
  // already, or is the span itself: no chains of deferrals, no cycles; a span that names itself
  // as its parent would otherwise wait forever; found by the attribution fuzz target).
  if (!p->deferred && p->parent_key != 0 && p->parent_key != p->key) {
    const PendingSpan* pp = Pending(PendingByKey(FindGroup(p->trace_key), p->parent_key));
    if (pp != nullptr && pp != p && !pp->deferred) {
      p->deferred = true;
      return;
    }
  }
  std::string order;
  AttributedVia via = AttributedVia::kPublish;
  // Only a consumer's parent or link can be a publish; asking for every span would cost a store
  // read per span of traffic that never had an order.
  if (publish_ && p->process_hop) {
    if (p->parent_key != 0) order = publish_(otlp::ToHex(p->parent));
    if (p->has_links) {
      auto l = links_.find(id);
      for (size_t i = 0; l != links_.end() && order.empty() && i < l->second.ids.size(); ++i) {
        order = publish_(otlp::ToHex(l->second.ids[i]));
      }
    }
  }
  bool ambiguous = false;
  if (order.empty()) {
    const std::string_view t = traces_.Find(p->trace_key);
    if (t == RecentOrders::kAmbiguous) {
      ambiguous = true;
    } else if (!t.empty()) {
      order = std::string(t);
      via = AttributedVia::kTrace;
    }
  }
  const Resolved self{p->key, p->trace_key};
  const std::shared_ptr<const otlp::SpanBatch> batch = held_[p->batch - held_base_].batch;
  const otlp::SpanRef& span = batch->spans()[p->span_index];
  if (!order.empty()) {
    ExtractStats again;
    extractor.ExtractSpan(*batch, span, order, /*keep_unowned_process=*/false, out, &again);
    Finish(id);
    Track(self.key, self.trace_key, order, via, extractor, out);
    return;
  }
  // Given up.  (A process span went to the engine without an order on arrival already.)
  Finish(id);
  ++stats_.given_up;
  if (ambiguous) ++stats_.ambiguous;
  if (metrics_) (ambiguous ? metrics_->given_up_ambiguous : metrics_->given_up_none)->Inc();
  // Children that followed this span end their wait now.
  std::vector<uint64_t> children;
  ChildrenOf(FindGroup(self.trace_key), self.key, &children);
  for (uint64_t child : children) {
    const PendingSpan* c = Pending(child);
    if (c != nullptr && c->deferred) EndWait(child, extractor, out);
  }
}

void Attributor::Expire(Nanos now, const FactExtractor& extractor, std::vector<SpanRecord>* out) {
  MutexLock lock(mu_);
  while (wait_cursor_ < slab_base_ + (slab_.size() - head_)) {
    const uint64_t id = wait_cursor_;
    const PendingSpan* p = Pending(id);
    if (p != nullptr && p->expires > now) break;
    ++wait_cursor_;
    if (p != nullptr && !p->deferred) EndWait(id, extractor, out);
  }
  if (now == kForever) {
    // Shutdown: whatever still follows a parent ends too.
    for (uint64_t id = slab_base_; live_ != 0 && id < slab_base_ + (slab_.size() - head_); ++id) {
      if (PendingSpan* p = Pending(id)) {
        p->deferred = true;
        EndWait(id, extractor, out);
      }
    }
  }
  Publish();
}

Nanos Attributor::NextExpiry() const {
  MutexLock lock(mu_);
  for (uint64_t id = std::max(wait_cursor_, slab_base_); id < slab_base_ + (slab_.size() - head_);
       ++id) {
    const PendingSpan& p = slab_[head_ + (id - slab_base_)];
    if (!p.done && !p.deferred) return p.expires;
  }
  return kForever;
}

AttributionStats Attributor::stats() const {
  MutexLock lock(mu_);
  AttributionStats s = stats_;
  s.pending_spans = live_;
  s.tracked_spans = spans_.size();
  s.tracked_traces = traces_.size();
  s.tracked_bytes = spans_.bytes() + traces_.bytes();
  return s;
}

void Attributor::Publish() {
  if (!metrics_) return;
  metrics_->pending_spans->Set(static_cast<double>(live_));
  metrics_->pending_bytes->Set(static_cast<double>(stats_.pending_bytes));
  metrics_->tracked_spans->Set(static_cast<double>(spans_.size()));
  metrics_->tracked_bytes->Set(static_cast<double>(spans_.bytes() + traces_.bytes()));
}

}  // namespace ordertrace::journey
