// Order helpers: the attributes ordertrace's gateway reads from a span (docs/conventions.md) and
// LongOperation, a span for a long calculation that shows life while it runs.
//
// Part of libordertrace's public API (include/ordertrace/).  Every function is noexcept; on a
// non-recording span (no provider configured, or not sampled) they do nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ordertrace/conventions.h"
#include "ordertrace/tracer.h"

namespace ordertrace {

// The attribute keys (kOrderIdKey, ...) and StepStatus with StepStatusName are in
// ordertrace/conventions.h, shared with the gateway.

// order.id = order_id (ignored when empty).
void SetOrder(Span& span, std::string_view order_id) noexcept;
// order.stage = stage: the milestone this span reached (SUBMITTED, PRICE_CALCULATED, ...; the
// names come from the gateway's rules).  Ignored when empty.
void Milestone(Span& span, std::string_view stage) noexcept;
// order.step.status = status, and the OTel status to match:
//   kOk      → status OK;
//   kFail    → status ERROR (message), error.type = error_type or "_OTHER";
//   kTimeout → status ERROR (message), error.type = error_type or "timeout";
//   kRetry   → the OTel status is left alone (a retry is not an error by itself);
//   kUnset   → nothing is set.
// A value outside the enum is written as "FAIL" (and nothing else is set).
void SetStepStatus(Span& span, StepStatus status, std::string_view error_type = {},
                   std::string_view message = {}) noexcept;
// partner.id / enduser.id (the gateway pseudonymises them before storing or forwarding).
void SetPartner(Span& span, std::string_view partner_id) noexcept;
void SetEndUser(Span& span, std::string_view user_id) noexcept;

// ---------------------------------------------------------------------------------------------
// LongOperation: a span for work that takes minutes (a 30-minute price calculation).  Spans are
// exported only when they end, so while it runs a timer thread emits a short child span
// "{name} heartbeat" every `heartbeat_interval`, with ordertrace.heartbeat=true and the order id,
// ended at once.  End() stops the heartbeats and ends the operation's span.
//
//   ordertrace::LongOperationOptions o;
//   o.order_id = order.id;
//   ordertrace::LongOperation op("price calculation", o);   // heartbeats every 60 s
//   Calculate(order);                                        // any thread, any duration
//   op.End("PRICE_CALCULATED", ordertrace::StepStatus::kOk);
//
// The heartbeat thread never touches the operation's Span object (it uses a copy of its
// context), so span() may be used from the owner's thread while heartbeats run.  No thread is
// started when the span does not record (no provider, not sampled) or the interval is not
// positive.  The provider must outlive the LongOperation.
struct LongOperationOptions {
  std::string order_id;  // order.id on the span and every heartbeat ("" none)
  std::chrono::milliseconds heartbeat_interval{60000};
  SpanKind kind = SpanKind::kInternal;
  const SpanContext* parent = nullptr;  // nullptr: the thread's current span (see StartOptions)
  bool root = false;
  TracerProvider* provider = nullptr;  // nullptr: the global provider
};

class LongOperation {
 public:
  explicit LongOperation(std::string_view name, LongOperationOptions options = {}) noexcept;
  // Ends it as End() with no stage and no step status, when not ended yet.
  ~LongOperation();
  LongOperation(const LongOperation&) = delete;
  LongOperation& operator=(const LongOperation&) = delete;

  // The operation's span (to add attributes, events; not to End: use End() below).
  Span& span() noexcept { return span_; }
  const SpanContext& context() const noexcept { return span_.context(); }

  // Stops the heartbeats (waits for one in progress), sets order.stage = stage (when not
  // empty) and the step status (SetStepStatus), and ends the span.  Idempotent.
  void End(std::string_view stage, StepStatus status, std::string_view error_type = {},
           std::string_view message = {}) noexcept;
  // Ends without stage or step status.
  void End() noexcept;

  // Heartbeat spans emitted so far.
  uint64_t heartbeats() const noexcept;

 private:
  void StopHeartbeats() noexcept;

  Span span_;
  struct Heartbeat;
  std::unique_ptr<Heartbeat> heartbeat_;
  bool ended_ = false;
};

}  // namespace ordertrace
