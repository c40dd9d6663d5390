// TracerProvider, Span, Scope, ids, samplers and the batch span processor.
#include "ordertrace/tracer.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "lib/internal.h"
#include "ordertrace/conventions.h"

namespace ordertrace {

namespace {

constexpr char kHex[] = "0123456789abcdef";

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& id) {
  std::string out(2 * N, '0');
  for (size_t i = 0; i < N; ++i) {
    out[2 * i] = kHex[id[i] >> 4];
    out[2 * i + 1] = kHex[id[i] & 0xf];
  }
  return out;
}

uint64_t NowNanos() noexcept {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// xoshiro256**, seeded through splitmix64 from std::random_device, the time and the thread.
class IdGenerator {
 public:
  IdGenerator() noexcept {
    uint64_t seed =
        static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    seed ^= std::hash<std::thread::id>()(std::this_thread::get_id()) * 0x9e3779b97f4a7c15ULL;
    try {
      std::random_device rd;
      seed ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {  // no entropy source: time and thread id only
    }
    for (auto& s : s_) s = SplitMix(seed);
  }
  uint64_t Next() noexcept {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
};

IdGenerator& Generator() noexcept {
  thread_local IdGenerator gen;
  return gen;
}

void Store(uint8_t* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

thread_local const SpanContext* g_current = nullptr;
const SpanContext kInvalidContext{};

}  // namespace

std::string ToHex(const TraceId& id) { return Hex(id); }
std::string ToHex(const SpanId& id) { return Hex(id); }

TraceId NewTraceId() noexcept {
  TraceId id;
  uint64_t hi = 0, lo = 0;
  while (hi == 0 && lo == 0) {
    hi = Generator().Next();
    lo = Generator().Next();
  }
  Store(id.data(), hi);
  Store(id.data() + 8, lo);
  return id;
}

SpanId NewSpanId() noexcept {
  SpanId id;
  uint64_t v = 0;
  while (v == 0) v = Generator().Next();
  Store(id.data(), v);
  return id;
}

const SpanContext& CurrentSpanContext() noexcept {
  return g_current ? *g_current : kInvalidContext;
}

Scope::Scope(const SpanContext& context) noexcept : context_(context), previous_(g_current) {
  g_current = &context_;
}
Scope::~Scope() { g_current = previous_; }

// --- sampling ---

namespace internal {

bool RatioSamples(const TraceId& id, double ratio) noexcept {
  if (ratio >= 1.0) return true;
  if (!(ratio > 0.0)) return false;
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = (v << 8) | id[i];
  // Lower 63 bits of the id's random part against ratio * 2^63.
  const double bound = ratio * 9223372036854775808.0;
  return static_cast<double>(v >> 1) < bound;
}

bool ShouldSample(Sampler sampler, double ratio, const SpanContext* parent,
                  const TraceId& trace_id) noexcept {
  const bool has_parent = parent != nullptr && parent->valid();
  switch (sampler) {
    case Sampler::kAlwaysOn:
      return true;
    case Sampler::kAlwaysOff:
      return false;
    case Sampler::kTraceIdRatio:
      return RatioSamples(trace_id, ratio);
    case Sampler::kParentBasedAlwaysOn:
      return has_parent ? parent->sampled() : true;
    case Sampler::kParentBasedAlwaysOff:
      return has_parent ? parent->sampled() : false;
    case Sampler::kParentBasedTraceIdRatio:
      return has_parent ? parent->sampled() : RatioSamples(trace_id, ratio);
  }
  return false;
}

}  // namespace internal

// --- the provider and its batch processor ---

struct TracerProvider::Impl {
  TracerOptions options;
  bool enabled = false;
  std::vector<std::pair<std::string, std::string>> resource;
  std::unique_ptr<SpanExporter> exporter;

  std::mutex mu;
  std::condition_variable wake;     // the export thread: work, flush or stop
  std::condition_variable flushed;  // ForceFlush waiters
  std::deque<std::unique_ptr<SpanData>> queue;
  uint64_t flush_requested = 0;  // generation asked for
  uint64_t flush_done = 0;       // generation completed
  bool stopping = false;
  bool shut_down = false;
  bool finished = false;  // the export thread has drained the queue and is leaving
  std::thread thread;

  std::atomic<uint64_t> started{0}, ended{0}, dropped_full{0}, dropped_export{0}, exported{0};

  void OnEnd(std::unique_ptr<SpanData> span) noexcept {
    ended.fetch_add(1, std::memory_order_relaxed);
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping || queue.size() >= options.max_queue_size) {
        dropped_full.fetch_add(1, std::memory_order_relaxed);
        return;  // the span is freed outside the lock below (after the guard)
      }
      try {
        queue.push_back(std::move(span));
      } catch (...) {
        dropped_full.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      notify = queue.size() == options.max_export_batch_size;
    }
    if (notify) wake.notify_one();
  }

  void ExportBatch(std::vector<std::unique_ptr<SpanData>>& batch) noexcept {
    if (batch.empty()) return;
    if (exporter->Export(batch) == ExportResult::kSuccess) {
      exported.fetch_add(batch.size(), std::memory_order_relaxed);
    } else {
      dropped_export.fetch_add(batch.size(), std::memory_order_relaxed);
    }
    batch.clear();
  }

  void Run() {
    std::vector<std::unique_ptr<SpanData>> batch;
    batch.reserve(options.max_export_batch_size);
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      wake.wait_for(lock, options.schedule_delay, [&] {
        return stopping || flush_requested != flush_done ||
               queue.size() >= options.max_export_batch_size;
      });
      const uint64_t flush_target = flush_requested;
      const bool stop = stopping;
      // Drain everything when flushing or stopping, otherwise one batch (timer or size).
      do {
        while (!queue.empty() && batch.size() < options.max_export_batch_size) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        lock.unlock();
        ExportBatch(batch);
        lock.lock();
      } while ((stop || flush_target != flush_done) && !queue.empty());
      if (flush_target != flush_done) {
        flush_done = flush_target;
        flushed.notify_all();
      }
      if (stop && queue.empty()) break;
    }
    flush_done = flush_requested;
    finished = true;
    flushed.notify_all();
  }
};

namespace {
TracerOptions DisabledOptions() {
  TracerOptions o;
  o.disabled = true;
  return o;
}
}  // namespace

TracerProvider::TracerProvider() : TracerProvider(DisabledOptions()) {}

TracerProvider::TracerProvider(TracerOptions options, std::unique_ptr<SpanExporter> exporter)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  Impl& d = *impl_;
  d.enabled = !d.options.disabled;
  if (d.options.max_export_batch_size == 0) d.options.max_export_batch_size = 512;
  if (d.options.max_queue_size < d.options.max_export_batch_size) {
    d.options.max_queue_size = d.options.max_export_batch_size;
  }
  d.resource.emplace_back("service.name", d.options.service_name);
  for (const auto& kv : d.options.resource_attributes) {
    if (kv.first != "service.name") d.resource.push_back(kv);
  }
  d.resource.emplace_back("telemetry.sdk.name", "libordertrace");
  d.resource.emplace_back("telemetry.sdk.language", "cpp");
  d.resource.emplace_back("telemetry.sdk.version", internal::kSdkVersion);
  if (!d.enabled) return;
  d.exporter =
      exporter ? std::move(exporter) : MakeOtlpHttpExporter(d.options.exporter, d.resource);
  d.thread = std::thread([&d] { d.Run(); });
}

TracerProvider::~TracerProvider() { Shutdown(); }

std::shared_ptr<TracerProvider> TracerProvider::FromEnv() {
  return std::make_shared<TracerProvider>(TracerOptionsFromEnv());
}

bool TracerProvider::enabled() const noexcept { return impl_->enabled; }

bool TracerProvider::ForceFlush(std::chrono::milliseconds timeout) noexcept {
  Impl& d = *impl_;
  if (!d.enabled) return true;
  std::unique_lock<std::mutex> lock(d.mu);
  if (d.shut_down) return true;
  const uint64_t target = ++d.flush_requested;
  d.wake.notify_one();
  return d.flushed.wait_for(lock, timeout, [&] { return d.flush_done >= target; });
}

void TracerProvider::Shutdown(std::chrono::milliseconds timeout) noexcept {
  Impl& d = *impl_;
  if (!d.enabled) return;
  {
    std::unique_lock<std::mutex> lock(d.mu);
    if (d.shut_down) return;
    d.shut_down = true;
    d.stopping = true;
    d.wake.notify_one();
    // The final flush, bounded: then retries in their backoff are interrupted.
    d.flushed.wait_for(lock, timeout, [&] { return d.finished; });
  }
  d.exporter->Shutdown();
  if (d.thread.joinable()) d.thread.join();
}

TracerStats TracerProvider::stats() const noexcept {
  const Impl& d = *impl_;
  TracerStats s;
  s.spans_started = d.started.load(std::memory_order_relaxed);
  s.spans_ended = d.ended.load(std::memory_order_relaxed);
  s.dropped_queue_full = d.dropped_full.load(std::memory_order_relaxed);
  s.dropped_export_failed = d.dropped_export.load(std::memory_order_relaxed);
  s.exported = d.exported.load(std::memory_order_relaxed);
  return s;
}

const std::vector<std::pair<std::string, std::string>>& TracerProvider::resource() const noexcept {
  return impl_->resource;
}

namespace {
std::mutex g_global_mu;
std::vector<std::shared_ptr<TracerProvider>>* g_keep_alive = nullptr;  // never freed
std::atomic<TracerProvider*> g_global{nullptr};

TracerProvider& NoopProvider() noexcept {
  static TracerProvider* noop = new TracerProvider();  // never destroyed
  return *noop;
}
}  // namespace

void SetGlobalTracerProvider(std::shared_ptr<TracerProvider> provider) {
  std::lock_guard<std::mutex> lock(g_global_mu);
  if (!g_keep_alive) g_keep_alive = new std::vector<std::shared_ptr<TracerProvider>>();
  TracerProvider* raw = provider.get();
  if (provider) g_keep_alive->push_back(std::move(provider));
  g_global.store(raw, std::memory_order_release);
}

TracerProvider& GlobalTracerProvider() noexcept {
  TracerProvider* p = g_global.load(std::memory_order_acquire);
  return p ? *p : NoopProvider();
}

// --- Span ---

Span::Span(std::string_view name, const StartOptions& options) noexcept {
  Start(GlobalTracerProvider(), name, options);
}

Span::Span(TracerProvider& provider, std::string_view name, const StartOptions& options) noexcept {
  Start(provider, name, options);
}

void Span::Start(TracerProvider& provider, std::string_view name, const StartOptions& o) noexcept {
  const SpanContext* parent = o.parent;
  if (parent == nullptr && !o.root) parent = g_current;
  if (parent != nullptr && !parent->valid()) parent = nullptr;
  TracerProvider::Impl* d = provider.impl();
  if (!d->enabled) {
    if (parent) {
      try {
        context_ = *parent;
      } catch (...) {
      }
      context_.remote = false;
    }
    return;
  }
  context_.trace_id = parent ? parent->trace_id : NewTraceId();
  context_.span_id = NewSpanId();
  const bool sampled = internal::ShouldSample(d->options.sampler, d->options.sampler_ratio, parent,
                                              context_.trace_id);
  context_.trace_flags = sampled ? kTraceFlagSampled : 0;
  try {
    if (parent) context_.trace_state = parent->trace_state;
    if (!sampled) return;
    auto data = std::make_unique<SpanData>();
    data->trace_id = context_.trace_id;
    data->span_id = context_.span_id;
    data->trace_flags = context_.trace_flags;
    data->trace_state = context_.trace_state;
    if (parent) {
      data->has_parent = true;
      data->parent_span_id = parent->span_id;
      data->parent_remote = parent->remote;
    }
    data->name.assign(name);
    data->kind = o.kind;
    data->start_time_unix_nano = o.start_time_unix_nano ? o.start_time_unix_nano : NowNanos();
    data->attributes.reserve(8);
    for (const Link& l : o.links) {
      if (data->links.size() >= d->options.max_attributes) {
        ++data->dropped_links;
        continue;
      }
      data->links.push_back(l);
    }
    data_ = std::move(data);
    provider_ = d;
    d->started.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    data_.reset();  // out of memory: a non-recording span
  }
}

Span::Span(Span&& other) noexcept
    : context_(std::move(other.context_)),
      data_(std::move(other.data_)),
      provider_(std::exchange(other.provider_, nullptr)) {}

Span& Span::operator=(Span&& other) noexcept {
  if (this != &other) {
    End();
    context_ = std::move(other.context_);
    data_ = std::move(other.data_);
    provider_ = std::exchange(other.provider_, nullptr);
  }
  return *this;
}

void Span::Set(std::string_view key, AttributeValue value) noexcept {
  if (!data_) return;
  try {
    for (Attribute& a : data_->attributes) {
      if (a.key == key) {
        a.value = std::move(value);
        return;
      }
    }
    if (data_->attributes.size() >= provider_->options.max_attributes) {
      ++data_->dropped_attributes;
      return;
    }
    data_->attributes.push_back(Attribute{std::string(key), std::move(value)});
  } catch (...) {
    ++data_->dropped_attributes;
  }
}

void Span::SetAttribute(std::string_view key, std::string_view value) noexcept {
  if (!data_) return;
  try {
    Set(key, std::string(value));
  } catch (...) {
    ++data_->dropped_attributes;
  }
}
void Span::SetAttribute(std::string_view key, int64_t value) noexcept { Set(key, value); }
void Span::SetAttribute(std::string_view key, double value) noexcept { Set(key, value); }
void Span::SetAttribute(std::string_view key, bool value) noexcept { Set(key, value); }
void Span::SetAttribute(std::string_view key, std::vector<std::string> value) noexcept {
  if (data_) Set(key, std::move(value));
}

void Span::AddEvent(std::string_view name, std::vector<Attribute> attributes) noexcept {
  if (!data_) return;
  if (data_->events.size() >= provider_->options.max_attributes) {
    ++data_->dropped_events;
    return;
  }
  try {
    data_->events.push_back(Event{NowNanos(), std::string(name), std::move(attributes)});
  } catch (...) {
    ++data_->dropped_events;
  }
}

void Span::AddLink(const SpanContext& context, std::vector<Attribute> attributes) noexcept {
  if (!data_) return;
  if (data_->links.size() >= provider_->options.max_attributes) {
    ++data_->dropped_links;
    return;
  }
  try {
    data_->links.push_back(Link{context, std::move(attributes)});
  } catch (...) {
    ++data_->dropped_links;
  }
}

void Span::SetStatus(SpanStatus status, std::string_view message) noexcept {
  if (!data_ || status == SpanStatus::kUnset) return;
  if (data_->status == SpanStatus::kOk) return;  // final
  data_->status = status;
  try {
    if (status == SpanStatus::kError) {
      data_->status_message.assign(message);
    } else {
      data_->status_message.clear();
    }
  } catch (...) {
  }
}

void Span::RecordException(std::string_view type, std::string_view message) noexcept {
  if (!data_) return;
  try {
    std::vector<Attribute> attrs;
    attrs.push_back(Attribute{std::string(kExceptionTypeKey), std::string(type)});
    attrs.push_back(Attribute{std::string(kExceptionMessageKey), std::string(message)});
    AddEvent(kExceptionEventName, std::move(attrs));
    SetAttribute(kErrorTypeKey, type);
  } catch (...) {
  }
}

void Span::End(uint64_t end_time_unix_nano) noexcept {
  if (!data_) return;
  data_->end_time_unix_nano = end_time_unix_nano ? end_time_unix_nano : NowNanos();
  if (data_->end_time_unix_nano < data_->start_time_unix_nano) {
    data_->end_time_unix_nano = data_->start_time_unix_nano;
  }
  provider_->OnEnd(std::move(data_));
  data_.reset();
}

}  // namespace ordertrace
