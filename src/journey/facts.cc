#include "journey/facts.h"

#include <charconv>
#include <string>
#include <string_view>
#include <utility>

namespace ordertrace::journey {
namespace {

using otlp::AnyValueView;
using otlp::KeyValueView;
using otlp::ValueType;

// A scalar attribute value as text ("" for arrays, maps and empty values).
std::string ValueText(const AnyValueView& v) {
  switch (v.type) {
    case ValueType::kString:
      return std::string(v.str);
    case ValueType::kInt:
      return std::to_string(v.int_value);
    case ValueType::kBool:
      return v.bool_value ? "true" : "false";
    case ValueType::kDouble: {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.double_value);
      return ec == std::errc() ? std::string(buf, end) : std::string();
    }
    default:
      return {};
  }
}

bool IsTrue(const AnyValueView& v) {
  if (v.type == ValueType::kBool) return v.bool_value;
  if (v.type == ValueType::kString) return v.str == "true" || v.str == "TRUE" || v.str == "True";
  return false;
}

HopRole RoleFromOperation(std::string_view op) {
  if (op == "send" || op == "publish" || op == "create") return HopRole::kSend;
  if (op == "process" || op == "deliver" || op == "receive" || op == "fetch") {
    return HopRole::kProcess;
  }
  return HopRole::kNone;
}

// The names instrumentations give RabbitMQ's default exchange, whose real name is "": .NET
// RabbitMQ.Client 7 and the Java agent's stable conventions write "amq.default", the Java
// agent's older ones "<default>".
bool IsDefaultExchangeName(std::string_view exchange) {
  return exchange == "amq.default" || exchange == "<default>";
}

constexpr uint8_t kSpanKindProducer = 4;
constexpr uint8_t kSpanKindConsumer = 5;

// The attributes one pass over a span collects.  string_views point into the batch.
struct Seen {
  std::string order_id;
  std::string_view stage, step, error_type;
  bool heartbeat = false;
  bool messaging = false;
  std::string_view operation_type, operation_name, operation_old;
  std::string message_id;
  std::string_view destination, destination_old, routing_key, queue;
  std::string partner;
};

bool MappingMatches(const MappingRule& m, const otlp::SpanBatch& batch, const otlp::SpanRef& span,
                    std::string_view service) {
  if (!m.service.empty() && m.service != service) return false;
  if (!m.span.empty()) {
    if (m.span.back() == '*') {
      std::string_view prefix(m.span.data(), m.span.size() - 1);
      if (span.name.substr(0, prefix.size()) != prefix) return false;
    } else if (m.span != span.name) {
      return false;
    }
  }
  for (const auto& [key, want] : m.attributes) {
    AnyValueView v;
    if (!batch.FindAttribute(span, key, &v) || ValueText(v) != want) return false;
  }
  return true;
}

}  // namespace

FactExtractor::FactExtractor(std::shared_ptr<const Rules> rules) : rules_(std::move(rules)) {}

void FactExtractor::Extract(const otlp::SpanBatch& batch, std::vector<SpanRecord>* out,
                            ExtractStats* stats) const {
  ExtractStats local;
  for (const otlp::SpanRef& span : batch.spans()) {
    ExtractSpan(batch, span, nullptr, /*keep_unowned_process=*/true, out, &local);
  }
  if (stats != nullptr) {
    stats->spans += local.spans;
    stats->kept += local.kept;
    stats->unknown_stage += local.unknown_stage;
    stats->mapped += local.mapped;
  }
}

FactExtractor::SpanFacts FactExtractor::ExtractSpan(
    const otlp::SpanBatch& batch, const otlp::SpanRef& span, std::string_view assigned,
    bool keep_unowned_process, std::vector<SpanRecord>* out, ExtractStats* stats) const {
  struct Fixed final : OrderSource {
    explicit Fixed(std::string_view o) : order(o) {}
    std::string_view OrderOf() override { return order; }
    std::string_view order;
  } fixed(assigned);
  return ExtractSpan(batch, span, assigned.empty() ? nullptr : &fixed, keep_unowned_process, out,
                     stats);
}

FactExtractor::SpanFacts FactExtractor::ExtractSpan(const otlp::SpanBatch& batch,
                                                    const otlp::SpanRef& span, OrderSource* assign,
                                                    bool keep_unowned_process,
                                                    std::vector<SpanRecord>* out,
                                                    ExtractStats* stats) const {
  const Rules& rules = *rules_;
  const std::string_view entity_key = rules.entity_key;
  ExtractStats& local = *stats;
  SpanFacts facts;
  {
    ++local.spans;
    const std::string_view service = batch.resources()[span.resource].service_name;
    Seen seen;
    batch.ForEachAttribute(span, [&](const KeyValueView& kv) {
      const std::string_view k = kv.key;
      if (k == entity_key) {
        seen.order_id = ValueText(kv.value);
        return;
      }
      if (k.size() < 8) return;
      // The first letter picks the group before any full comparison: most attributes are none
      // of these.
      if (k[0] == 'o') {
        if (k == kOrderStageKey && kv.value.type == ValueType::kString) {
          seen.stage = kv.value.str;
        } else if (k == kOrderStepStatusKey && kv.value.type == ValueType::kString) {
          seen.step = kv.value.str;
        } else if (k == kHeartbeatKey) {
          seen.heartbeat = IsTrue(kv.value);
        }
      } else if (k[0] == 'e') {
        if (k == kErrorTypeKey && kv.value.type == ValueType::kString)
          seen.error_type = kv.value.str;
      } else if (k[0] == 'p') {
        // A number when redaction is off (it turns ids of any type into pseudonyms).
        if (k == kPartnerIdKey) seen.partner = ValueText(kv.value);
      } else if (k[0] == 'm' && k.substr(0, 10) == "messaging.") {
        const bool str = kv.value.type == ValueType::kString;
        if (k == kMessagingSystemKey) {
          seen.messaging = true;
        } else if (k == kMessagingOperationTypeKey && str) {
          seen.operation_type = kv.value.str;
        } else if (k == kMessagingOperationNameKey && str) {
          seen.operation_name = kv.value.str;
        } else if (k == kMessagingOperationKeyOld && str) {
          seen.operation_old = kv.value.str;
        } else if (k == kMessagingMessageIdKey || k == kMessagingMessageIdKeyOld) {
          seen.message_id = ValueText(kv.value);
        } else if (k == kMessagingDestinationNameKey && str) {
          seen.destination = kv.value.str;
        } else if (k == kMessagingDestinationKeyOld && str) {
          seen.destination_old = kv.value.str;
        } else if ((k == kMessagingRabbitmqRoutingKeyKey ||
                    k == kMessagingRabbitmqRoutingKeyKeyOld) &&
                   str) {
          seen.routing_key = kv.value.str;
        } else if ((k == kMessagingSubscriptionNameKey || k == kMessagingRabbitmqQueueKeyOld) &&
                   str) {
          seen.queue = kv.value.str;
        }
      }
    });

    // A mapping rule may recognise a third-party span.
    const MappingRule* mapping = nullptr;
    for (const MappingRule& m : rules.mappings) {
      if (MappingMatches(m, batch, span, service)) {
        mapping = &m;
        break;
      }
    }
    if (mapping != nullptr && seen.order_id.empty() && !mapping->order_id_from.empty()) {
      AnyValueView v;
      if (batch.FindAttribute(span, mapping->order_id_from, &v)) seen.order_id = ValueText(v);
    }

    HopRole role = RoleFromOperation(seen.operation_type);
    if (role == HopRole::kNone) role = RoleFromOperation(seen.operation_name);
    if (role == HopRole::kNone) role = RoleFromOperation(seen.operation_old);
    if (role == HopRole::kNone && seen.messaging) {
      if (span.kind == kSpanKindProducer) role = HopRole::kSend;
      if (span.kind == kSpanKindConsumer) role = HopRole::kProcess;
    }
    if (!seen.messaging && seen.message_id.empty() && seen.destination.empty() &&
        seen.destination_old.empty()) {
      role = HopRole::kNone;  // operation words alone do not make a message hop
    }

    facts.process_hop = role == HopRole::kProcess;
    facts.carried = !seen.order_id.empty();
    if (!facts.carried && assign != nullptr) seen.order_id = std::string(assign->OrderOf());
    facts.has_order = !seen.order_id.empty();
    if (!facts.has_order && !(keep_unowned_process && facts.process_hop)) return facts;

    SpanRecord r;
    r.order_id = std::move(seen.order_id);
    r.trace_id = otlp::ToHex(span.trace_id);
    r.span_id = otlp::ToHex(span.span_id);
    if (span.has_parent()) r.parent_span_id = otlp::ToHex(span.parent_span_id);
    r.service = std::string(service);
    r.name = std::string(span.name);
    r.start_ns = static_cast<Nanos>(span.start_time_unix_nano);
    r.end_ns = static_cast<Nanos>(span.end_time_unix_nano);
    r.otel_status = span.status_code;
    if (auto st = ParseStepStatus(seen.step)) r.step = *st;
    if (!seen.stage.empty()) {
      if (rules.StageIndex(seen.stage) >= 0) {
        r.stage = std::string(seen.stage);
      } else {
        ++local.unknown_stage;
      }
    }
    r.heartbeat = seen.heartbeat;
    if (seen.partner.size() <= kMaxPartnerBytes) r.partner = std::move(seen.partner);
    if (mapping != nullptr) {
      ++local.mapped;
      if (r.stage.empty() && !mapping->stage.empty()) r.stage = mapping->stage;
      if (r.step == StepStatus::kUnset && mapping->step) r.step = *mapping->step;
      if (mapping->heartbeat) r.heartbeat = true;
    }

    // The error, most specific first.
    if (!seen.error_type.empty()) {
      r.error = std::string(seen.error_type);
    } else if (span.events > 0) {
      batch.ForEachEvent(span, [&](const otlp::EventView& ev) {
        if (!r.error.empty() || ev.name != kExceptionEventName) return;
        std::string type, message;
        batch.ForEachAttribute(ev, [&](const KeyValueView& kv) {
          if (kv.key == kExceptionTypeKey) type = ValueText(kv.value);
          if (kv.key == kExceptionMessageKey) message = ValueText(kv.value);
        });
        r.error = type.empty() ? message : message.empty() ? type : type + ": " + message;
        if (r.error.empty()) r.error = "exception";
      });
    }
    if (r.error.empty() && span.status_code == 2) {
      r.error = span.status_message.empty() ? "error" : std::string(span.status_message);
    }

    r.hop = role;
    if (role != HopRole::kNone) {
      r.message_id = std::move(seen.message_id);
      r.routing_key = std::string(seen.routing_key);
      r.queue = std::string(seen.queue);
      if (!seen.destination.empty()) {
        // "{exchange}:{routing_key}", or the exchange alone, or the routing key alone
        // (default exchange) per the RabbitMQ messaging conventions.
        std::string_view d = seen.destination;
        const std::string suffix = ":" + r.routing_key;
        if (!r.routing_key.empty() && d.size() > suffix.size() &&
            d.substr(d.size() - suffix.size()) == suffix) {
          r.exchange = std::string(d.substr(0, d.size() - suffix.size()));
        } else if (d != r.routing_key) {
          r.exchange = std::string(d);
        }
      } else if (!seen.destination_old.empty()) {
        r.exchange = std::string(seen.destination_old);
      }
      if (IsDefaultExchangeName(r.exchange)) r.exchange.clear();
      if (span.links > 0) {
        batch.ForEachLink(
            span, [&](const otlp::LinkView& l) { r.links.push_back(otlp::ToHex(l.span_id)); });
      }
    }
    out->push_back(std::move(r));
    ++local.kept;
  }
  return facts;
}

}  // namespace ordertrace::journey
