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

void AddExtractStats(const ExtractStats& from, ExtractStats* to) {
  if (to == nullptr) return;
  // `spans` is not added: the span was counted by its first look.
  to->kept += from.kept;
  to->unknown_stage += from.unknown_stage;
  to->mapped += from.mapped;
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

void Attributor::Attributed(const otlp::SpanBatch& batch, const otlp::SpanRef& span, uint64_t key,
                            std::string_view order, AttributedVia via, bool carried,
                            const FactExtractor& extractor, std::vector<SpanRecord>* out,
                            ExtractStats* stats) {
  const std::string id(order);  // `order` may point into the tables Insert changes
  if (!carried) {
    ExtractStats again;
    extractor.ExtractSpan(batch, span, id, /*keep_unowned_process=*/false, out, &again);
    AddExtractStats(again, stats);
  }
  spans_.Insert(key, id);
  if (carried) traces_.Merge(TraceKey(span.trace_id), id);
  ++stats_.attributed[static_cast<int>(via)];
  if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
  if (!waiters_.empty()) ResolveWaiters(key, extractor, out);
}

void Attributor::ResolveWaiters(uint64_t key, const FactExtractor& extractor,
                                std::vector<SpanRecord>* out) {
  std::vector<uint64_t> keys{key};
  std::vector<uint64_t> ids;
  while (!keys.empty()) {
    const uint64_t k = keys.back();
    keys.pop_back();
    ids.clear();
    auto [begin, end] = waiters_.equal_range(k);
    for (auto it = begin; it != end; ++it) ids.push_back(it->second);
    if (ids.empty()) continue;
    const std::string order(spans_.Find(k));
    if (order.empty()) continue;
    for (uint64_t id : ids) {
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second.done) continue;
      PendingSpan& p = it->second;
      const AttributedVia via = k == p.parent_key ? AttributedVia::kParent : AttributedVia::kLink;
      const otlp::SpanRef& span = p.batch->spans()[p.span_index];
      ExtractStats again;
      extractor.ExtractSpan(*p.batch, span, order, /*keep_unowned_process=*/false, out, &again);
      spans_.Insert(p.key, order);
      ++stats_.attributed[static_cast<int>(via)];
      if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
      keys.push_back(p.key);
      Finish(id);
    }
  }
}

void Attributor::Process(const std::shared_ptr<const otlp::SpanBatch>& batch,
                         const FactExtractor& extractor, Nanos now, std::vector<SpanRecord>* out,
                         ExtractStats* stats) {
  ExtractStats local;
  if (stats == nullptr) stats = &local;
  MutexLock lock(mu_);
  const std::vector<otlp::SpanRef>& spans = batch->spans();
  std::vector<uint64_t> links;
  for (uint32_t i = 0; i < spans.size(); ++i) {
    const otlp::SpanRef& span = spans[i];
    const FactExtractor::SpanFacts facts =
        extractor.ExtractSpan(*batch, span, {}, /*keep_unowned_process=*/false, out, stats);
    const uint64_t key = SpanKey(span.trace_id, span.span_id);
    if (facts.has_order) {
      Attributed(*batch, span, key, out->back().order_id, AttributedVia::kCarried,
                 /*carried=*/true, extractor, out, stats);
      continue;
    }
    const uint64_t parent_key = span.has_parent() ? SpanKey(span.trace_id, span.parent_span_id) : 0;
    links.clear();
    if (span.links > 0) {
      batch->ForEachLink(
          span, [&](const otlp::LinkView& l) { links.push_back(SpanKey(l.trace_id, l.span_id)); });
    }
    AttributedVia via = AttributedVia::kCarried;
    const std::string_view order = Lookup(parent_key, links, &via);
    if (!order.empty()) {
      Attributed(*batch, span, key, order, via, /*carried=*/false, extractor, out, stats);
      continue;
    }
    AddPending(batch, i, key, TraceKey(span.trace_id), now);
  }
  // The bounds: the oldest waits end early.
  while ((pending_.size() > options_.max_pending_spans ||
          stats_.pending_bytes > options_.max_pending_bytes) &&
         !expiry_.empty()) {
    const uint64_t id = expiry_.front().second;
    expiry_.pop_front();
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.done) continue;
    ++stats_.overflow;
    if (metrics_) metrics_->overflow->Inc();
    EndWait(id, extractor, out);
  }
  Publish();
}

void Attributor::AddPending(const std::shared_ptr<const otlp::SpanBatch>& batch, uint32_t index,
                            uint64_t key, uint64_t trace_key, Nanos now) {
  const otlp::SpanRef& span = batch->spans()[index];
  const uint64_t id = next_id_++;
  PendingSpan& p = pending_[id];
  p.batch = batch;
  p.span_index = index;
  p.key = key;
  p.trace_key = trace_key;
  if (span.has_parent()) {
    p.parent = span.parent_span_id;
    p.parent_key = SpanKey(span.trace_id, span.parent_span_id);
    waiters_.emplace(p.parent_key, id);
  }
  if (span.links > 0) {
    batch->ForEachLink(span, [&](const otlp::LinkView& l) {
      const uint64_t k = SpanKey(l.trace_id, l.span_id);
      if (k == p.parent_key) return;
      p.link_ids.push_back(l.span_id);
      p.links.push_back(k);
      waiters_.emplace(k, id);
    });
  }
  const Nanos wait = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.wait).count();
  p.expires = now > kForever - wait ? kForever : now + wait;
  expiry_.emplace_back(p.expires, id);
  pending_by_key_.emplace(key, id);
  if (held_[batch.get()]++ == 0) {
    stats_.pending_bytes += HeldBytes(*batch);
  }
  stats_.pending_bytes += kPendingEntryBytes + p.links.capacity() * 16;
  ++stats_.waited;
  if (metrics_) metrics_->waited->Inc();
}

void Attributor::Finish(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  PendingSpan& p = it->second;
  p.done = true;
  auto unwait = [&](uint64_t k) {
    auto [begin, end] = waiters_.equal_range(k);
    for (auto w = begin; w != end; ++w) {
      if (w->second == id) {
        waiters_.erase(w);
        break;
      }
    }
  };
  if (p.parent_key != 0) unwait(p.parent_key);
  for (uint64_t k : p.links) unwait(k);
  auto by_key = pending_by_key_.find(p.key);
  if (by_key != pending_by_key_.end() && by_key->second == id) pending_by_key_.erase(by_key);
  stats_.pending_bytes -=
      std::min<uint64_t>(stats_.pending_bytes, kPendingEntryBytes + p.links.capacity() * 16);
  auto held = held_.find(p.batch.get());
  if (held != held_.end() && --held->second == 0) {
    stats_.pending_bytes -= std::min<uint64_t>(stats_.pending_bytes, HeldBytes(*p.batch));
    held_.erase(held);
  }
  pending_.erase(it);
}

void Attributor::EndWait(uint64_t id, const FactExtractor& extractor,
                         std::vector<SpanRecord>* out) {
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.done) return;
  PendingSpan& p = it->second;
  // A parent that still waits decides for its children (unless it waits on one of them, or
  // follows its own parent already: no chains of deferrals, no cycles).
  if (!p.deferred && p.parent_key != 0) {
    auto parent = pending_by_key_.find(p.parent_key);
    if (parent != pending_by_key_.end()) {
      auto pp = pending_.find(parent->second);
      if (pp != pending_.end() && !pp->second.deferred && !pp->second.done) {
        p.deferred = true;
        return;
      }
    }
  }
  const otlp::SpanRef& span = p.batch->spans()[p.span_index];
  std::string order;
  AttributedVia via = AttributedVia::kOpenPublish;
  if (open_publish_) {
    char buf[16];
    if (p.parent_key != 0 && !IsZero(p.parent)) order = open_publish_(Hex16(p.parent, buf));
    for (size_t i = 0; order.empty() && i < p.link_ids.size(); ++i) {
      order = open_publish_(Hex16(p.link_ids[i], buf));
    }
  }
  bool ambiguous = false;
  if (order.empty()) {
    const std::string_view t = traces_.Find(p.trace_key);
    if (t == RecentOrders::kAmbiguous) {
      ambiguous = true;
    } else if (!t.empty()) {
      order = std::string(t);
      via = AttributedVia::kTrace;
    }
  }
  const uint64_t key = p.key;
  std::shared_ptr<const otlp::SpanBatch> batch = p.batch;  // Finish() drops the entry's
  if (!order.empty()) {
    ExtractStats again;
    extractor.ExtractSpan(*batch, span, order, /*keep_unowned_process=*/false, out, &again);
    Finish(id);
    spans_.Insert(key, order);
    ++stats_.attributed[static_cast<int>(via)];
    if (metrics_) metrics_->via[static_cast<int>(via)]->Inc();
    ResolveWaiters(key, extractor, out);
    return;
  }
  // Given up: a process span still goes to the engine (its message id may match an open hop).
  ExtractStats again;
  extractor.ExtractSpan(*batch, span, {}, /*keep_unowned_process=*/true, out, &again);
  Finish(id);
  ++stats_.given_up;
  if (ambiguous) ++stats_.ambiguous;
  if (metrics_) (ambiguous ? metrics_->given_up_ambiguous : metrics_->given_up_none)->Inc();
  // Children that followed this span end their wait now.
  std::vector<uint64_t> deferred;
  auto [begin, end] = waiters_.equal_range(key);
  for (auto w = begin; w != end; ++w) {
    auto c = pending_.find(w->second);
    if (c != pending_.end() && c->second.deferred && !c->second.done) deferred.push_back(w->second);
  }
  for (uint64_t child : deferred) EndWait(child, extractor, out);
}

void Attributor::Expire(Nanos now, const FactExtractor& extractor, std::vector<SpanRecord>* out) {
  MutexLock lock(mu_);
  while (!expiry_.empty() && expiry_.front().first <= now) {
    const uint64_t id = expiry_.front().second;
    expiry_.pop_front();
    EndWait(id, extractor, out);
  }
  if (now == kForever) {
    // Shutdown: whatever still follows a parent ends too.
    std::vector<uint64_t> rest;
    for (const auto& [id, p] : pending_) rest.push_back(id);
    std::sort(rest.begin(), rest.end());
    for (uint64_t id : rest) {
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      it->second.deferred = true;
      EndWait(id, extractor, out);
    }
  }
  Publish();
}

Nanos Attributor::NextExpiry() const {
  MutexLock lock(mu_);
  // The front may be a span resolved already: the early wake-up pops it.
  return expiry_.empty() ? kForever : expiry_.front().first;
}

AttributionStats Attributor::stats() const {
  MutexLock lock(mu_);
  AttributionStats s = stats_;
  s.pending_spans = pending_.size();
  s.tracked_spans = spans_.size();
  s.tracked_traces = traces_.size();
  s.tracked_bytes = spans_.bytes() + traces_.bytes();
  return s;
}

void Attributor::Publish() {
  if (!metrics_) return;
  metrics_->pending_spans->Set(static_cast<double>(pending_.size()));
  metrics_->pending_bytes->Set(static_cast<double>(stats_.pending_bytes));
  metrics_->tracked_spans->Set(static_cast<double>(spans_.size()));
  metrics_->tracked_bytes->Set(static_cast<double>(spans_.bytes() + traces_.bytes()));
}

}  // namespace ordertrace::journey
