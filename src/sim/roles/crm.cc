// The CRM: creates the order (SUBMITTED) and asks the MES for a price, approves the price
// (APPROVED) and starts manufacturing, and closes the order once shipped (CLOSED).
//
// Faults: lost-to-mes (the price request goes to an unbound routing key), crm-ignores-price (a
// hung handler: the delivery stays unacked, no span), crm-stalls-approved (approved, never
// published), crm-no-close; each until lifted when it has `for`.
#include <algorithm>
#include <string>

#include "sim/roles/role.h"

namespace ordertrace::sim {
namespace {

// The order.id header of a delivery ("" when there is none).
std::string HeaderOrder(const amqp_envelope_t& env) {
  const auto& p = env.message.properties;
  if (!(p._flags & AMQP_BASIC_HEADERS_FLAG)) return {};
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    if (ToString(e.key) == rabbitmq::kOrderIdHeader &&
        (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES))
      return ToString(e.value.value.bytes);
  }
  return {};
}

class Crm final : public RoleLogic {
 public:
  explicit Crm(RoleContext& context) : c_(context), o_(context.options) {
    c_.inbox.AddQueue("crm.orders", [this](const std::string& key, const amqp_envelope_t& env) {
      OnSubmit(key, env);
    });
    c_.inbox.AddQueue("crm.prices", [this](const std::string& key, const amqp_envelope_t& env) {
      OnPrice(key, env);
    });
    c_.inbox.AddQueue("crm.shipments", [this](const std::string& key, const amqp_envelope_t& env) {
      OnShipped(key, env);
    });
  }

 private:
  // The partner's order → SUBMITTED → price.calculate (or, lost-to-mes, unrouted).
  void OnSubmit(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.orders", c_.ProcessOptions());
    const std::string order = process.order_id();
    Span create = c_.Child("create order", process.context(), order);
    Milestone(create, o_.pacing.stages[0]);
    SetStepStatus(create, StepStatus::kOk);
    const SpanContext ctx = create.context();
    create.End();
    const FaultSpec* lost = c_.faults.For(FaultKind::kLostToMes, order);
    c_.outbox.Send(lost ? kUnroutedCalculateKey : "price.calculate", order, ctx,
                   [this, key, order, ctx, lost] {
                     c_.inbox.Ack(key);
                     if (lost && lost->lift_after)
                       c_.timers.After(*lost->lift_after, [this, order, ctx] {
                         c_.outbox.Send("price.calculate", order, ctx, {});
                       });
                   });
    process.End(StepStatus::kOk);
  }

  // The price → (processed) → APPROVED after a while → manufacturing.start.
  void OnPrice(const std::string& key, const amqp_envelope_t& env) {
    const std::string order = HeaderOrder(env);
    if (const FaultSpec* ignores = c_.faults.For(FaultKind::kCrmIgnoresPrice, order)) {
      // A hung handler: the delivery stays unacked, no span, until lifted.
      c_.inbox.Hold(key, env);
      if (ignores->lift_after)
        c_.timers.After(*ignores->lift_after, [this, key] {
          c_.inbox.Release(key, [this](const std::string& k, const amqp_envelope_t& held) {
            ProcessPrice(k, held);
          });
        });
      return;
    }
    ProcessPrice(key, env);
  }
  void ProcessPrice(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.prices", c_.ProcessOptions());
    const std::string order = process.order_id();
    const SpanContext pctx = process.context();
    process.End(StepStatus::kOk);
    const Micros delay =
        Jittered(o_.pacing.approve, o_.pacing.approve_deadline, o_.seed, order, "approve");
    c_.timers.After(delay, [this, key, order, pctx] {
      Span approve = c_.Child("approve order", pctx, order);
      Milestone(approve, o_.pacing.stages[2]);
      SetStepStatus(approve, StepStatus::kOk);
      const SpanContext actx = approve.context();
      approve.End();
      auto publish = [this, key, order, actx] {
        c_.outbox.Send("manufacturing.start", order, actx, [this, key] { c_.inbox.Ack(key); });
      };
      if (const FaultSpec* stall = c_.faults.For(FaultKind::kCrmStallsApproved, order)) {
        if (stall->lift_after) c_.timers.After(*stall->lift_after, publish);
        return;  // never lifted: in hand until the process stops
      }
      publish();
    });
  }

  // Shipped → CLOSED after a while (crm-no-close: not until lifted).
  void OnShipped(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.shipments", c_.ProcessOptions());
    const std::string order = process.order_id();
    const SpanContext pctx = process.context();
    process.End(StepStatus::kOk);
    auto close = [this, key, order, pctx] {
      Span span = c_.Child("close order", pctx, order);
      Milestone(span, o_.pacing.stages[5]);
      SetStepStatus(span, StepStatus::kOk);
      span.End();
      ++c_.stats.orders_closed;
      c_.inbox.Ack(key);
    };
    const Micros delay =
        Jittered(o_.pacing.close, o_.pacing.close_deadline, o_.seed, order, "close");
    if (const FaultSpec* no_close = c_.faults.For(FaultKind::kCrmNoClose, order)) {
      if (no_close->lift_after) c_.timers.After(std::max(delay, *no_close->lift_after), close);
      return;
    }
    c_.timers.After(delay, close);
  }

  RoleContext& c_;
  const Options& o_;
};

}  // namespace

std::unique_ptr<RoleLogic> MakeCrm(RoleContext& context) { return std::make_unique<Crm>(context); }

}  // namespace ordertrace::sim
