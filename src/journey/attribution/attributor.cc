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
    case AttributedVia::kOpenPublish:
      return "open_publish";
    case AttributedVia::kTrace:
      return "trace";
    default:
      return "";
  }
}

struct Attributor::Metrics {
  explicit Metrics(metrics::Registry& r) {
    auto& spans = r.AddCounter("ordertrace_attribution_spans_total",
                               "Spans given an order, by how it was found: carried (the span's "
                               "own order.id), parent, link, open_publish (an open message of "
                               "the engine), trace (the only order of the span's trace).",
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

std::string_view Hex16(const otlp::SpanId& id, char (&buf)[16]) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < id.size(); ++i) {
    buf[2 * i] = kDigits[id[i] >> 4];
    buf[2 * i + 1] = kDigits[id[i] & 15];
  }
  return {buf, sizeof buf};
}

// The memory a held request costs: its wire bytes and its span index.
uint64_t HeldBytes(const otlp::SpanBatch& b) {
  return b.wire().size() + b.spans().size() * sizeof(otlp::SpanRef) +
         b.resources().size() * sizeof(otlp::ResourceRef) +
         b.scopes().size() * sizeof(otlp::ScopeRef);
}

bool IsZero(const otlp::SpanId& id) {
  return std::all_of(id.begin(), id.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

Attributor::Attributor(AttributionOptions options, metrics::Registry* registry)
    : options_(options),
      spans_(options.max_tracked_spans),
      traces_(options.max_tracked_traces),
      metrics_(registry != nullptr ? std::make_unique<Metrics>(*registry) : nullptr) {}

Attributor::~Attributor() = default;

void Attributor::SetOpenPublishLookup(OpenPublishLookup lookup) {
  MutexLock lock(mu_);
  open_publish_ = std::move(lookup);
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

void Attributor::Track(uint64_t key, const otlp::TraceId* carried_trace, std::string_view order,
                       AttributedVia via, const FactExtractor& extractor,
                       std::vector<SpanRecord>* out) {
  spans_.Insert(key, order);
  if (carried_trace != nullptr) {
    // Consecutive spans of one trace and order (the usual request) merge once.
    const uint64_t trace_key = TraceKey(*carried_trace);
    if (trace_key != last_trace_key_ || order != last_trace_order_) {
      traces_.Merge(trace_key, order);
      last_trace_key_ = trace_key;
      last_trace_order_.assign(order);
    }
  }
  ++stats_.attributed[static_cast<int>(via)];
  if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
  if (live_ != 0) ResolveWaiters(key, extractor, out);
}

void Attributor::ResolveWaiters(uint64_t key, const FactExtractor& extractor,
                                std::vector<SpanRecord>* out) {
  std::vector<uint64_t> keys{key};
  std::vector<std::pair<uint64_t, AttributedVia>> ids;
  std::string order;
  while (!keys.empty() && live_ != 0) {
    const uint64_t k = keys.back();
    keys.pop_back();
    ids.clear();
    if (uint64_t* head = children_.Find(k)) {
      for (uint64_t id = *head; id != 0;) {
        PendingSpan* p = Pending(id);
        if (p == nullptr) break;
        ids.emplace_back(id, AttributedVia::kParent);
        id = p->next_sibling;
      }
      children_.Erase(k);
    }
    if (!link_waiters_.empty()) {
      auto [begin, end] = link_waiters_.equal_range(k);
      for (auto it = begin; it != end; ++it) ids.emplace_back(it->second, AttributedVia::kLink);
    }
    if (ids.empty()) continue;
    order.assign(spans_.Find(k));
    if (order.empty()) continue;
    for (const auto& [id, via] : ids) {
      PendingSpan* p = Pending(id);
      if (p == nullptr) continue;
      const otlp::SpanBatch& batch = *held_[p->batch - held_base_].batch;
      ExtractStats again;
      extractor.ExtractSpan(batch, batch.spans()[p->span_index], order,
                            /*keep_unowned_process=*/false, out, &again);
      spans_.Insert(p->key, order);
      ++stats_.attributed[static_cast<int>(via)];
      if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
      keys.push_back(p->key);
      Finish(id, /*unlink=*/via != AttributedVia::kParent);
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
  for (uint32_t i = 0; i < spans.size(); ++i) {
    const otlp::SpanRef& span = spans[i];
    const uint64_t parent_key = span.has_parent() ? SpanKey(span.trace_id, span.parent_span_id) : 0;
    links.clear();
    AttributedVia via = AttributedVia::kCarried;
    std::string assigned;
    auto source = LazyOrder([&]() -> std::string_view {
      if (span.links > 0) {
        batch->ForEachLink(span, [&](const otlp::LinkView& l) {
          const uint64_t k = SpanKey(l.trace_id, l.span_id);
          if (k != parent_key) links.push_back(k);
        });
      }
      assigned.assign(Lookup(parent_key, links, &via));
      return assigned;
    });
    const FactExtractor::SpanFacts facts =
        extractor.ExtractSpan(*batch, span, &source, /*keep_unowned_process=*/false, out, stats);
    const uint64_t key = SpanKey(span.trace_id, span.span_id);
    if (facts.has_order) {
      const std::string& order = out->back().order_id;
      Track(key, facts.carried ? &span.trace_id : nullptr, order,
            facts.carried ? AttributedVia::kCarried : via, extractor, out);
      continue;
    }
    // This batch is held from its first waiting span on (again if its waits all ended).
    if (held < held_base_ || held_[held - held_base_].batch == nullptr) {
      held_.push_back({batch, 0});
      held = held_base_ + held_.size() - 1;
      stats_.pending_bytes += HeldBytes(*batch);
    }
    AddPending(held, span, i, key, facts.process_hop, links, now);
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
                            bool process_hop, const std::vector<uint64_t>& links, Nanos now) {
  const uint64_t id = slab_base_ + (slab_.size() - head_);
  slab_.emplace_back();
  PendingSpan& p = slab_.back();
  p.done = false;
  p.batch = batch;
  p.span_index = index;
  p.process_hop = process_hop;
  p.key = key;
  p.trace_key = TraceKey(span.trace_id);
  if (span.has_parent()) {
    p.parent = span.parent_span_id;
    p.parent_key = SpanKey(span.trace_id, span.parent_span_id);
    uint64_t* head = children_.Find(p.parent_key);
    p.next_sibling = head != nullptr ? *head : 0;
    children_.Put(p.parent_key, id);
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
  self_.Put(key, id);
  ++held_[batch - held_base_].live;
  ++live_;
  stats_.pending_bytes += kPendingEntryBytes + links.size() * 48;
  ++stats_.waited;
  if (metrics_) metrics_->waited->Inc();
}

void Attributor::Finish(uint64_t id, bool unlink) {
  PendingSpan* p = Pending(id);
  if (p == nullptr) return;
  p->done = true;
  if (unlink && p->parent_key != 0) {
    // Out of its parent's list of waiting children.
    if (uint64_t* head = children_.Find(p->parent_key)) {
      if (*head == id) {
        if (p->next_sibling != 0 && Pending(p->next_sibling) != nullptr) {
          *head = p->next_sibling;
        } else {
          children_.Erase(p->parent_key);
        }
      } else {
        for (uint64_t c = *head; c != 0;) {
          PendingSpan* q = Pending(c);
          if (q == nullptr) break;
          if (q->next_sibling == id) {
            q->next_sibling = p->next_sibling;
            break;
          }
          c = q->next_sibling;
        }
      }
    }
  }
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
  if (uint64_t* self = self_.Find(p->key); self != nullptr && *self == id) self_.Erase(p->key);
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
  // already: no chains of deferrals, no cycles).
  if (!p->deferred && p->parent_key != 0) {
    if (uint64_t* parent = self_.Find(p->parent_key)) {
      const PendingSpan* pp = Pending(*parent);
      if (pp != nullptr && !pp->deferred) {
        p->deferred = true;
        return;
      }
    }
  }
  std::string order;
  AttributedVia via = AttributedVia::kOpenPublish;
  if (open_publish_) {
    char buf[16];
    if (p->parent_key != 0 && !IsZero(p->parent)) order = open_publish_(Hex16(p->parent, buf));
    if (p->has_links) {
      auto l = links_.find(id);
      for (size_t i = 0; l != links_.end() && order.empty() && i < l->second.ids.size(); ++i) {
        order = open_publish_(Hex16(l->second.ids[i], buf));
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
  const uint64_t key = p->key;
  const std::shared_ptr<const otlp::SpanBatch> batch = held_[p->batch - held_base_].batch;
  const otlp::SpanRef& span = batch->spans()[p->span_index];
  const bool process_hop = p->process_hop;
  if (!order.empty()) {
    ExtractStats again;
    extractor.ExtractSpan(*batch, span, order, /*keep_unowned_process=*/false, out, &again);
    Finish(id);
    Track(key, nullptr, order, via, extractor, out);
    return;
  }
  // Given up: a process span still goes to the engine (its message id may match an open hop).
  if (process_hop) {
    ExtractStats again;
    extractor.ExtractSpan(*batch, span, std::string_view(), /*keep_unowned_process=*/true, out,
                          &again);
  }
  Finish(id);
  ++stats_.given_up;
  if (ambiguous) ++stats_.ambiguous;
  if (metrics_) (ambiguous ? metrics_->given_up_ambiguous : metrics_->given_up_none)->Inc();
  // Children that followed this span end their wait now.
  if (uint64_t* head = children_.Find(key)) {
    std::vector<uint64_t> deferred;
    for (uint64_t c = *head; c != 0;) {
      const PendingSpan* q = Pending(c);
      if (q == nullptr) break;
      if (q->deferred) deferred.push_back(c);
      c = q->next_sibling;
    }
    for (uint64_t child : deferred) EndWait(child, extractor, out);
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
