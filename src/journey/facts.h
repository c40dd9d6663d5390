// FactExtractor: from an accepted SpanBatch to the SpanRecords a journey keeps.
//
// A span concerns an order when it carries the entity key (rules.entity_key, `order.id` by
// default) or when a mapping rule recognises it and names the attribute that holds the id
// (third-party spans).  A RabbitMQ process span without an order id is kept too: the engine
// matches it to its order through the message (id, parent span or link).  Every other span is
// skipped after one pass over its attributes.
//
// What is read (OTel conventions, with the older names that @opentelemetry/instrumentation-amqplib,
// opentelemetry-instrumentation-pika and the OpenTelemetry Java agent still send):
//   order.stage, order.step.status, ordertrace.heartbeat
//   partner.id (as it arrives: a pseudonym when redaction is on; up to kMaxPartnerBytes)
//   error.type; else the exception event's exception.type/message; else the status message
//   messaging.operation.type (send|publish|create → send, process|deliver|receive|fetch →
//     process), else messaging.operation.name (RabbitMQ.Client 7.1+: publish, deliver, fetch),
//     else the older messaging.operation; else the span kind PRODUCER/CONSUMER when
//     messaging.system is set (amqplib's and pika's publish spans carry no operation).  The span
//     kind does not matter when an operation is given: a CLIENT `receive` span (semantic
//     conventions 1.26+) processes a message.
//   messaging.message.id (older messaging.message_id)
//   messaging.destination.name "{exchange}:{routing_key}", the exchange alone, or the routing
//     key alone (older messaging.destination); the default exchange is "" whether written "",
//     "amq.default" (RabbitMQ.Client 7) or "<default>" (the Java agent)
//   messaging.rabbitmq.destination.routing_key (older messaging.rabbitmq.routing_key)
//   messaging.destination.subscription.name, messaging.rabbitmq.queue (the queue)
//
// Thread-safety: Extract() is const and may run concurrently.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "journey/rules/rules.h"
#include "journey/types.h"
#include "otlp/span_batch.h"

namespace ordertrace::journey {

struct ExtractStats {
  uint64_t spans = 0;          // spans looked at
  uint64_t kept = 0;           // records produced
  uint64_t unknown_stage = 0;  // order.stage not among the rules' stages (ignored)
  uint64_t mapped = 0;         // spans a mapping rule recognised
};

class FactExtractor {
 public:
  explicit FactExtractor(std::shared_ptr<const Rules> rules);

  // Appends the records of `batch` to `out`: the spans that carry an order id, and the
  // process spans without one (the engine matches them through the message).
  void Extract(const otlp::SpanBatch& batch, std::vector<SpanRecord>* out,
               ExtractStats* stats = nullptr) const;

  // What ExtractSpan found.
  struct SpanFacts {
    bool has_order = false;    // a record with an order id was appended
    bool carried = false;      // the span carries its order id (entity key or order_id_from)
    bool process_hop = false;  // the span processes a message (HopRole::kProcess)
  };
  // Asked, once the span's attributes are read, for the order of a span that carries none.
  class OrderSource {
   public:
    virtual std::string_view OrderOf() = 0;  // "" when unknown

   protected:
    ~OrderSource() = default;
  };
  // One span, for attribution (journey/attribution/attributor.h).  A span that carries an
  // order id (the entity key, or a mapping's order_id_from) is appended with it; one that does
  // not is appended with the order `assign` gives, when it gives one (an attributed span:
  // everything else, hops, mappings, errors, is read as for a span that carries it), and
  // otherwise only when `keep_unowned_process` is set and it is a process span (with an empty
  // order id).  `assign` may be null.
  SpanFacts ExtractSpan(const otlp::SpanBatch& batch, const otlp::SpanRef& span,
                        OrderSource* assign, bool keep_unowned_process,
                        std::vector<SpanRecord>* out, ExtractStats* stats) const;
  // The same with a known order ("" none).
  SpanFacts ExtractSpan(const otlp::SpanBatch& batch, const otlp::SpanRef& span,
                        std::string_view assigned, bool keep_unowned_process,
                        std::vector<SpanRecord>* out, ExtractStats* stats) const;

  const Rules& rules() const { return *rules_; }

 private:
  std::shared_ptr<const Rules> rules_;
};

}  // namespace ordertrace::journey
