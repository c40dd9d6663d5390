// RabbitMQ middleware over librabbitmq (rabbitmq-c, Debian librabbitmq-dev): a traced publish
// (a PRODUCER "send" span whose context travels in the message headers, optional publisher
// confirms) and a traced consume (a CONSUMER "process" span that continues the producer's trace
// and links to it).
//
// Part of libordertrace's public API (include/ordertrace/).  Nothing here throws: failures are
// results, recorded on the span (status ERROR, order.step.status=FAIL, error.type).  Like
// librabbitmq itself, a connection is used by one thread at a time.
//
// Span names and attributes follow the OpenTelemetry semantic conventions for messaging spans
// and for RabbitMQ (semantic-conventions docs/messaging/messaging-spans.md, "Span name": "The
// span name SHOULD be `{messaging.operation.name} {destination}`";
// semantic-conventions docs/messaging/rabbitmq.md: messaging.destination.name is
// `{exchange}:{routing key}` on the producer side, only the non-empty one when one is empty,
// `amq.default` for the default exchange without a routing key;
// `{exchange}:{routing key}:{queue}` on the consumer side, empty parts omitted and the routing
// key and queue written once when they are equal).  So:
//   publish: "publish {exchange}:{routing_key}", kind PRODUCER, messaging.operation.type=send,
//            messaging.operation.name=publish (the AMQP method is basic.publish);
//   consume: "process {exchange}:{routing_key}:{queue}", kind CONSUMER,
//            messaging.operation.type=process, messaging.operation.name=process.
// See docs/instrumenting.md, "RabbitMQ".
#pragma once

// rabbitmq-c 0.12+ installs its headers under rabbitmq-c/ (and warns on the old path).
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#else
#include <amqp.h>
#endif

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordertrace/context.h"
#include "ordertrace/conventions.h"
#include "ordertrace/order.h"
#include "ordertrace/propagation.h"
#include "ordertrace/tracer.h"

namespace ordertrace::rabbitmq {

// The message header that carries the order id beside the trace context (a long string).
inline constexpr std::string_view kOrderIdHeader = kOrderIdKey;

// messaging.destination.name per the conventions above.
std::string ProducerDestination(std::string_view exchange, std::string_view routing_key);
std::string ConsumerDestination(std::string_view exchange, std::string_view routing_key,
                                std::string_view queue);

// ---------------------------------------------------------------------------------------------
// Publish

enum class PublishStatus : uint8_t {
  kOk,                // handed to the socket; and confirmed (basic.ack) when waiting for it
  kNacked,            // basic.nack: the broker refused the message (e.g. queue overflow)
  kReturned,          // basic.return: mandatory and unroutable (312 NO_ROUTE)
  kTimeout,           // no confirm within PublishOptions::timeout
  kChannelClosed,     // the broker closed the channel (e.g. 404 NOT_FOUND: no such exchange)
  kConnectionClosed,  // the broker closed the connection
  kSocketError,       // librabbitmq failed to write or read (socket, protocol)
};
// The error.type recorded for a status: "" for kOk, else "nack", "unroutable", "timeout",
// "channel_closed", "connection_closed", "socket_error".
const char* PublishStatusName(PublishStatus status) noexcept;

struct PublishOptions {
  std::string order_id;  // order.id on the span and in the `order.id` header ("" none)
  // false: the order id goes in the header only, and the span is what a third-party
  // instrumentation records (no order.id): the gateway finds its order through its parent.
  bool order_on_span = true;
  std::string message_id;  // "": the properties' message_id, else a new random one
  bool mandatory = false;  // basic.return for unroutable messages (seen with wait_for_confirm)
  // Publisher confirms: wait for the broker's basic.ack / basic.nack (and basic.return) for this
  // message.  The channel is put in confirm mode (EnableConfirms) if this library has not done
  // it yet.  While waiting, frames of *other* channels of this connection are read and dropped:
  // publish with confirms on a connection of its own (RabbitMQ's advice anyway), not on the
  // one a consumer reads.
  bool wait_for_confirm = false;
  // Pipelined publishing: put the channel in confirm mode as above, hand the message to the
  // socket and return at once (PublishResult::sequence names it); its span stays open until
  // AwaitConfirms() on the channel reads the broker's answer and ends it.  Many publishes are
  // then in flight at once, instead of one per round trip to the broker.  Takes precedence
  // over wait_for_confirm.
  bool defer_confirm = false;
  std::chrono::milliseconds timeout{5000};  // for the confirm
  const Baggage* baggage = nullptr;         // injected as the `baggage` header when not empty
  const SpanContext* parent = nullptr;      // nullptr: the thread's current span
  TracerProvider* provider = nullptr;       // nullptr: the global provider
};

struct PublishResult {
  PublishStatus status = PublishStatus::kOk;
  bool ok() const noexcept { return status == PublishStatus::kOk; }
  std::string error;       // what went wrong, e.g. "404 NOT_FOUND - no exchange 'x' in vhost '/'"
  int reply_code = 0;      // the AMQP reply code of a return or close (312, 404, ...), else 0
  std::string message_id;  // as sent
  SpanContext context;     // the send span's: the message's creation context (as injected)
  uint64_t sequence = 0;   // the publish sequence number on a confirm channel, else 0
};

// Puts the channel in confirm mode (confirm.select) and starts counting its publish sequence
// numbers (from 1).  Call it after opening (or re-opening) a channel that publishes with
// confirms, instead of amqp_confirm_select; Publish() with wait_for_confirm calls it for a
// channel it does not know.  False (and the reason in *error) on failure.
bool EnableConfirms(amqp_connection_state_t conn, amqp_channel_t channel,
                    std::string* error = nullptr) noexcept;
// Forgets what EnableConfirms() knows about this connection (call before destroying it if
// another connection may later be created at the same address).
void ForgetConnection(amqp_connection_state_t conn) noexcept;

// Publishes `body` with a PRODUCER span (see the top of this file for name and attributes:
// messaging.system, messaging.operation.type/name, messaging.destination.name,
// messaging.rabbitmq.destination.routing_key, messaging.message.id,
// messaging.message.body.size, order.id, network.peer.address/port).  The span's context is
// injected as `traceparent` (+ `tracestate`, `baggage`) into a copy of the caller's header
// table (other entries kept; our names replaced), with `order.id` when given and not already
// there; message_id is set when absent.  `properties` is not modified (nullptr: none).
// Failures (see PublishStatus) end the span with status ERROR, order.step.status=FAIL and
// error.type; success with order.step.status=OK.
PublishResult Publish(amqp_connection_state_t conn, amqp_channel_t channel,
                      std::string_view exchange, std::string_view routing_key,
                      std::string_view body, const amqp_basic_properties_t* properties = nullptr,
                      const PublishOptions& options = {}) noexcept;

// The broker's answer to one deferred publish (PublishOptions::defer_confirm).
struct ConfirmOutcome {
  uint64_t sequence = 0;  // PublishResult::sequence of the publish
  PublishStatus status = PublishStatus::kOk;
  std::string error;   // as PublishResult::error
  int reply_code = 0;  // as PublishResult::reply_code
  bool ok() const noexcept { return status == PublishStatus::kOk; }
};

// Reads the broker's confirms of the channel's deferred publishes until each one is acked or
// nacked (one basic.ack with `multiple` confirms every earlier publish), or until `timeout`.
// Ends each one's span as Publish() with wait_for_confirm would have (OK; or FAIL with
// error.type: "nack", "unroutable" for a mandatory message returned, "timeout", ...) and
// returns their outcomes by sequence number, oldest first; empty when none is deferred.  On a
// closed channel or connection, a socket error or the timeout, every publish not yet confirmed
// gets that status: its message may or may not be in a queue, so publish it again for
// at-least-once delivery.  Frames are read as with wait_for_confirm (a connection of its own).
std::vector<ConfirmOutcome> AwaitConfirms(
    amqp_connection_state_t conn, amqp_channel_t channel,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) noexcept;

// ---------------------------------------------------------------------------------------------
// Consume

// Messages whose trace context could not be used: a `traceparent` header was there (of any
// AMQP type) but was not a valid W3C traceparent.  Process-wide, since start.
uint64_t MalformedHeaderCount() noexcept;

struct ProcessOptions {
  std::string order_id;  // "": the message's `order.id` header, if any
  // false: order_id() still says the order, but the span does not carry order.id (as a
  // third-party instrumentation's would not): the gateway finds it through the parent.
  bool order_on_span = true;
  // For network.peer.address/port (the broker's end of this connection); nullptr: not set.
  amqp_connection_state_t connection = nullptr;
  bool make_current = true;            // make the span the thread's current one (a Scope)
  TracerProvider* provider = nullptr;  // nullptr: the global provider
};

// The processing of one delivered message (after amqp_consume_message), RAII:
//
//   amqp_envelope_t env;
//   amqp_consume_message(conn, &env, nullptr, 0);
//   {
//     ordertrace::rabbitmq::ProcessSpan process(env, "mes.orders");
//     bool done = Handle(env.message.body);               // children nest under the span
//     if (done) { process.Ack(conn, env.channel); process.End(ordertrace::StepStatus::kOk); }
//     else { process.Nack(conn, env.channel, /*requeue=*/true);
//            process.End(ordertrace::StepStatus::kFail, "handler_failed"); }
//   }
//   amqp_destroy_envelope(&env);
//
// The context is extracted from the headers (traceparent, tracestate, baggage).  A valid one is
// the CONSUMER span's parent *and* its link (OTel messaging conventions: the process span links
// to the creation context); a missing one starts a new trace; a malformed one starts a new trace,
// is counted (MalformedHeaderCount) and marked ordertrace.trace_context.malformed=true.
// Attributes: messaging.system, messaging.operation.type=process, messaging.operation.name,
// messaging.destination.name, messaging.destination.subscription.name (the queue),
// messaging.rabbitmq.destination.routing_key, messaging.rabbitmq.message.delivery_tag,
// messaging.message.id, messaging.message.conversation_id (correlation_id),
// messaging.message.body.size, order.id, network.peer.address/port.  A redelivered message
// gets order.step.status=RETRY at once.
//
// The envelope is read only in the constructor.  Not movable (it holds a Scope, which must be
// destroyed on the thread that created it, after the scopes opened inside it).
class ProcessSpan {
 public:
  ProcessSpan(const amqp_envelope_t& envelope, std::string_view queue,
              const ProcessOptions& options = {}) noexcept;
  // Ends the span as it is (End()) if not ended; then restores the previous current span.
  ~ProcessSpan();
  ProcessSpan(const ProcessSpan&) = delete;
  ProcessSpan& operator=(const ProcessSpan&) = delete;

  Span& span() noexcept { return span_; }
  const SpanContext& context() const noexcept { return span_.context(); }
  // The producer's context as extracted (invalid when missing or malformed).
  const SpanContext& creation_context() const noexcept { return creation_; }
  const Baggage& baggage() const noexcept { return baggage_; }
  const std::string& order_id() const noexcept { return order_id_; }
  const std::string& message_id() const noexcept { return message_id_; }
  uint64_t delivery_tag() const noexcept { return delivery_tag_; }
  bool redelivered() const noexcept { return redelivered_; }
  bool malformed_context() const noexcept { return malformed_; }

  // basic.ack / basic.nack of this delivery on `channel` (records an "ack"/"nack" event).  A
  // failure to send is recorded as status ERROR, order.step.status=FAIL,
  // error.type=ack_failed/nack_failed, and returns false.
  bool Ack(amqp_connection_state_t conn, amqp_channel_t channel) noexcept;
  bool Nack(amqp_connection_state_t conn, amqp_channel_t channel, bool requeue) noexcept;

  // Ends the span with a step status (SetStepStatus).  For a redelivered message, kOk keeps
  // order.step.status=RETRY (the retry succeeded: the OTel status is OK); kFail and kTimeout
  // replace it.  A failed Ack/Nack before is not overridden by kOk.  Idempotent.
  void End(StepStatus status, std::string_view error_type = {},
           std::string_view message = {}) noexcept;
  // Ends it without a step status (RETRY stays when redelivered).
  void End() noexcept;

 private:
  Span span_;
  std::optional<Scope> scope_;
  SpanContext creation_;
  Baggage baggage_;
  std::string order_id_;
  std::string message_id_;
  uint64_t delivery_tag_ = 0;
  bool redelivered_ = false;
  bool malformed_ = false;
  bool settle_failed_ = false;
  bool ended_ = false;
};

}  // namespace ordertrace::rabbitmq
