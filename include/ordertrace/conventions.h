// ordertrace's span conventions: the attribute names an instrumented service writes and the
// gateway reads, and the order.step.status values.  One header shared by libordertrace (which
// writes them) and the gateway (which reads them), so that the two cannot drift apart.
// docs/conventions.md says what each attribute means and who sets it.
//
// Part of libordertrace's public API (include/ordertrace/); header-only, C++17, no
// dependencies.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ordertrace {

// ---- ordertrace's own attributes ----
inline constexpr std::string_view kOrderIdKey = "order.id";  // the order a span belongs to
// The milestone (lifecycle stage) the span reached: SUBMITTED, PRICE_CALCULATED, ...
inline constexpr std::string_view kOrderStageKey = "order.stage";
inline constexpr std::string_view kOrderStepStatusKey = "order.step.status";  // StepStatus below
inline constexpr std::string_view kPartnerIdKey = "partner.id";  // the partner (B2B customer)
inline constexpr std::string_view kEndUserIdKey = "enduser.id";  // the partner's user
// true on a span that only shows that long work is alive (LongOperation's heartbeats).
inline constexpr std::string_view kHeartbeatKey = "ordertrace.heartbeat";
inline constexpr std::string_view kHeartbeatSequenceKey = "ordertrace.heartbeat.sequence";
// true when a received message's trace context could not be read (a new trace was started).
inline constexpr std::string_view kTraceContextMalformedKey = "ordertrace.trace_context.malformed";

// ---- OpenTelemetry semantic conventions the gateway reads ----
inline constexpr std::string_view kErrorTypeKey = "error.type";
// The exception event (name and attributes), read when a span has no error.type.
inline constexpr std::string_view kExceptionEventName = "exception";
inline constexpr std::string_view kExceptionTypeKey = "exception.type";
inline constexpr std::string_view kExceptionMessageKey = "exception.message";
inline constexpr std::string_view kMessagingSystemKey = "messaging.system";
inline constexpr std::string_view kMessagingOperationTypeKey = "messaging.operation.type";
inline constexpr std::string_view kMessagingOperationNameKey = "messaging.operation.name";
inline constexpr std::string_view kMessagingDestinationNameKey = "messaging.destination.name";
inline constexpr std::string_view kMessagingSubscriptionNameKey =
    "messaging.destination.subscription.name";
inline constexpr std::string_view kMessagingMessageIdKey = "messaging.message.id";
inline constexpr std::string_view kMessagingConversationIdKey = "messaging.message.conversation_id";
inline constexpr std::string_view kMessagingBodySizeKey = "messaging.message.body.size";
inline constexpr std::string_view kMessagingConsumerGroupKey = "messaging.consumer.group.name";
inline constexpr std::string_view kMessagingRabbitmqRoutingKeyKey =
    "messaging.rabbitmq.destination.routing_key";
inline constexpr std::string_view kMessagingRabbitmqDeliveryTagKey =
    "messaging.rabbitmq.message.delivery_tag";
inline constexpr std::string_view kMessagingRabbitmqRequeueKey = "messaging.rabbitmq.requeue";
// Older names of the above that instrumentations still send; the gateway reads them too.
inline constexpr std::string_view kMessagingOperationKeyOld = "messaging.operation";
inline constexpr std::string_view kMessagingDestinationKeyOld = "messaging.destination";
inline constexpr std::string_view kMessagingMessageIdKeyOld = "messaging.message_id";
inline constexpr std::string_view kMessagingRabbitmqRoutingKeyKeyOld =
    "messaging.rabbitmq.routing_key";
inline constexpr std::string_view kMessagingRabbitmqQueueKeyOld = "messaging.rabbitmq.queue";

// ---- order.step.status: the request's own status field, beside the OTel span status ----
//
// kUnset means "no order.step.status": its name is "" and it is never written as a value (the
// library's SetStepStatus sets nothing for it; the gateway stores it for a span without the
// attribute or with a value it does not know).  The numbers are stored by the gateway's
// journey store: append, never renumber.
enum class StepStatus : uint8_t { kUnset = 0, kOk, kFail, kTimeout, kRetry };

// "OK", "FAIL", "TIMEOUT", "RETRY"; "" for kUnset and for a value outside the enum.
constexpr const char* StepStatusName(StepStatus status) noexcept {
  switch (status) {
    case StepStatus::kUnset:
      return "";
    case StepStatus::kOk:
      return "OK";
    case StepStatus::kFail:
      return "FAIL";
    case StepStatus::kTimeout:
      return "TIMEOUT";
    case StepStatus::kRetry:
      return "RETRY";
  }
  return "";
}

// OK, FAIL, TIMEOUT, RETRY in any case; nullopt for anything else (including "").
constexpr std::optional<StepStatus> ParseStepStatus(std::string_view text) noexcept {
  constexpr StepStatus kAll[] = {StepStatus::kOk, StepStatus::kFail, StepStatus::kTimeout,
                                 StepStatus::kRetry};
  for (StepStatus s : kAll) {
    const std::string_view name = StepStatusName(s);
    if (name.size() != text.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < name.size() && equal; ++i) {
      const char c =
          text[i] >= 'a' && text[i] <= 'z' ? static_cast<char>(text[i] - 'a' + 'A') : text[i];
      equal = c == name[i];
    }
    if (equal) return s;
  }
  return std::nullopt;
}

}  // namespace ordertrace
