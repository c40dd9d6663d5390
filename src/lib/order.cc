// Order helpers and LongOperation (include/ordertrace/order.h).
#include "ordertrace/order.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ordertrace {

void SetOrder(Span& span, std::string_view order_id) noexcept {
  if (!order_id.empty()) span.SetAttribute(kOrderIdKey, order_id);
}

void Milestone(Span& span, std::string_view stage) noexcept {
  if (!stage.empty()) span.SetAttribute(kOrderStageKey, stage);
}

void SetStepStatus(Span& span, StepStatus status, std::string_view error_type,
                   std::string_view message) noexcept {
  if (!span.recording() || status == StepStatus::kUnset) return;
  const char* name = StepStatusName(status);
  // Outside the enum: "FAIL", the library's fallback from before kUnset existed.
  span.SetAttribute(kOrderStepStatusKey, *name != '\0' ? name : "FAIL");
  switch (status) {
    case StepStatus::kUnset:
      break;
    case StepStatus::kOk:
      span.SetStatus(SpanStatus::kOk);
      break;
    case StepStatus::kFail:
      span.SetAttribute(kErrorTypeKey,
                        error_type.empty() ? std::string_view("_OTHER") : error_type);
      span.SetStatus(SpanStatus::kError, message);
      break;
    case StepStatus::kTimeout:
      span.SetAttribute(kErrorTypeKey,
                        error_type.empty() ? std::string_view("timeout") : error_type);
      span.SetStatus(SpanStatus::kError, message);
      break;
    case StepStatus::kRetry:
      break;
  }
}

void SetPartner(Span& span, std::string_view partner_id) noexcept {
  if (!partner_id.empty()) span.SetAttribute(kPartnerIdKey, partner_id);
}

void SetEndUser(Span& span, std::string_view user_id) noexcept {
  if (!user_id.empty()) span.SetAttribute(kEndUserIdKey, user_id);
}

// ---------------------------------------------------------------------------------------------
// LongOperation

struct LongOperation::Heartbeat {
  TracerProvider* provider = nullptr;
  SpanContext parent;  // the operation span's context (a copy)
  std::string name;    // "{name} heartbeat"
  std::string order_id;
  std::chrono::milliseconds interval{0};

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<uint64_t> count{0};
  std::thread thread;

  void Run() noexcept {
    std::unique_lock<std::mutex> lock(mu);
    auto next = std::chrono::steady_clock::now() + interval;
    for (;;) {
      if (cv.wait_until(lock, next, [&] { return stop; })) return;
      // Emit without holding the lock: End() must not wait on a span export hand-off.
      lock.unlock();
      Emit();
      lock.lock();
      // The next beat one interval after this one was due; after a long stall (a suspended
      // process), one interval from now rather than a burst of catch-up beats.
      next += interval;
      const auto now = std::chrono::steady_clock::now();
      if (next <= now) next = now + interval;
    }
  }

  void Emit() noexcept {
    StartOptions o;
    o.parent = &parent;
    Span beat(*provider, name, o);
    const uint64_t n = count.fetch_add(1, std::memory_order_relaxed) + 1;
    beat.SetAttribute(kHeartbeatKey, true);
    SetOrder(beat, order_id);
    beat.SetAttribute(kHeartbeatSequenceKey, static_cast<int64_t>(n));
    beat.End();
  }
};

LongOperation::LongOperation(std::string_view name, LongOperationOptions options) noexcept {
  TracerProvider& provider = options.provider ? *options.provider : GlobalTracerProvider();
  StartOptions so;
  so.kind = options.kind;
  so.parent = options.parent;
  so.root = options.root;
  span_ = Span(provider, name, so);
  SetOrder(span_, options.order_id);
  if (!span_.recording() || options.heartbeat_interval.count() <= 0) return;
  try {
    auto hb = std::make_unique<Heartbeat>();
    hb->provider = &provider;
    hb->parent = span_.context();
    hb->name.assign(name);
    hb->name += " heartbeat";
    hb->order_id = std::move(options.order_id);
    hb->interval = options.heartbeat_interval;
    Heartbeat* raw = hb.get();
    hb->thread = std::thread([raw] { raw->Run(); });
    heartbeat_ = std::move(hb);
  } catch (...) {
    heartbeat_.reset();  // no thread (or no memory): the operation's span still works
  }
}

LongOperation::~LongOperation() { End(); }

void LongOperation::StopHeartbeats() noexcept {
  if (!heartbeat_) return;
  {
    std::lock_guard<std::mutex> lock(heartbeat_->mu);
    heartbeat_->stop = true;
  }
  heartbeat_->cv.notify_all();
  if (heartbeat_->thread.joinable()) heartbeat_->thread.join();
}

void LongOperation::End(std::string_view stage, StepStatus status, std::string_view error_type,
                        std::string_view message) noexcept {
  if (ended_) return;
  StopHeartbeats();
  Milestone(span_, stage);
  SetStepStatus(span_, status, error_type, message);
  ended_ = true;
  span_.End();
}

void LongOperation::End() noexcept {
  if (ended_) return;
  StopHeartbeats();
  ended_ = true;
  span_.End();
}

uint64_t LongOperation::heartbeats() const noexcept {
  return heartbeat_ ? heartbeat_->count.load(std::memory_order_relaxed) : 0;
}

}  // namespace ordertrace
