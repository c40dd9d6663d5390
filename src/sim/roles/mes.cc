// The MES: calculates the price (a long `calculate price` span with heartbeats, then
// PRICE_CALCULATED) and manufactures the order (MANUFACTURING_STARTED, heartbeats, SHIPPED).
//
// Faults: calc-silent and mes-silent (the step goes quiet: no heartbeats, no end, until lifted),
// calc-slow (the calculation takes twice its deadline, until lifted).
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "sim/roles/role.h"

namespace ordertrace::sim {
namespace {

// A long step (price calculation, manufacturing): heartbeats until it ends.
struct LongStep {
  std::string key, order;  // the delivery in hand, its order
  SpanContext parent;      // of the heartbeats
  std::string heartbeat_name;
  Micros heartbeat{0};  // 0: no heartbeats
  bool silent = false;
  bool finished = false;
  Clock::time_point end_at;
  Span op;  // the long span itself, when the step has one (calculate price)
  std::function<void(LongStep&)> finish;
};

class Mes final : public RoleLogic {
 public:
  explicit Mes(RoleContext& context) : c_(context), o_(context.options) {
    c_.inbox.AddQueue("mes.calculate", [this](const std::string& key, const amqp_envelope_t& env) {
      OnCalculate(key, env);
    });
    c_.inbox.AddQueue(
        "mes.manufacturing",
        [this](const std::string& key, const amqp_envelope_t& env) { OnManufacturing(key, env); });
  }

 private:
  // Receipt → `calculate price` with heartbeats → PRICE_CALCULATED → price.calculated.
  void OnCalculate(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "mes.calculate", c_.ProcessOptions());
    auto step = std::make_shared<LongStep>();
    step->key = key;
    step->order = process.order_id();
    // Started now, ended when the calculation is done (a silent one never ends).
    step->op = c_.Child("calculate price", process.context(), step->order);
    step->parent = step->op.context();
    step->heartbeat_name = "calculate price heartbeat";
    step->heartbeat = o_.pacing.calculate_heartbeat;
    step->finish = [this](LongStep& st) {
      Milestone(st.op, o_.pacing.stages[1]);
      SetStepStatus(st.op, StepStatus::kOk);
      const SpanContext ctx = st.op.context();
      st.op.End();
      const std::string key = st.key;
      c_.outbox.Send("price.calculated", st.order, ctx, [this, key] { c_.inbox.Ack(key); });
    };
    process.End(StepStatus::kOk);
    const Micros normal = Jittered(o_.pacing.calculate, o_.pacing.calculate_deadline, o_.seed,
                                   step->order, "calculate");
    Run(step, normal, c_.faults.For(FaultKind::kCalcSilent, step->order),
        c_.faults.For(FaultKind::kCalcSlow, step->order), o_.pacing.calculate_deadline * 2);
  }

  // MANUFACTURING_STARTED → heartbeats → SHIPPED → order.shipped.
  void OnManufacturing(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "mes.manufacturing", c_.ProcessOptions());
    auto step = std::make_shared<LongStep>();
    step->key = key;
    step->order = process.order_id();
    Span start = c_.Child("start manufacturing", process.context(), step->order);
    Milestone(start, o_.pacing.stages[3]);
    SetStepStatus(start, StepStatus::kOk);
    step->parent = start.context();
    start.End();
    step->heartbeat_name = "manufacturing heartbeat";
    step->heartbeat = o_.pacing.manufacture_heartbeat;
    step->finish = [this](LongStep& st) {
      Span ship = c_.Child("ship order", st.parent, st.order);
      Milestone(ship, o_.pacing.stages[4]);
      SetStepStatus(ship, StepStatus::kOk);
      const SpanContext ctx = ship.context();
      ship.End();
      const std::string key = st.key;
      c_.outbox.Send("order.shipped", st.order, ctx, [this, key] { c_.inbox.Ack(key); });
    };
    process.End(StepStatus::kOk);
    const Micros normal = Jittered(o_.pacing.manufacture, o_.pacing.manufacture_deadline, o_.seed,
                                   step->order, "manufacture");
    Run(step, normal, c_.faults.For(FaultKind::kMesSilent, step->order), nullptr, Micros(0));
  }

  // Starts a long step: normally done after `normal`; after `slow_duration` when `slow` applies
  // (until lifted: then at `normal` or now, whichever is later); silent (no heartbeats, no end)
  // when `silent` applies, until lifted.
  void Run(const std::shared_ptr<LongStep>& step, Micros normal, const FaultSpec* silent,
           const FaultSpec* slow, Micros slow_duration) {
    running_[step->key] = step;
    const Clock::time_point start = Clock::now();
    const Clock::time_point normal_end = start + normal;
    if (silent) {
      step->silent = true;
      step->end_at = normal_end;
      if (silent->lift_after)
        c_.timers.After(*silent->lift_after, [this, step, normal_end] {
          step->silent = false;
          // Alive again: a heartbeat at once, then on schedule.
          if (step->heartbeat.count() > 0) Heartbeat(*step);
          Beat(step);
          FinishAt(step, std::max(normal_end, Clock::now()));
        });
      return;
    }
    Beat(step);
    if (slow) {
      FinishAt(step, start + slow_duration);
      if (slow->lift_after)
        c_.timers.After(*slow->lift_after, [this, step, normal_end] {
          const Clock::time_point at = std::max(normal_end, Clock::now());
          if (!step->finished && at < step->end_at) FinishAt(step, at);
        });
    } else {
      FinishAt(step, normal_end);
    }
  }

  // Heartbeats every step->heartbeat while the step is neither silent nor finished.
  void Beat(const std::shared_ptr<LongStep>& step) {
    if (step->finished || step->silent || step->heartbeat.count() <= 0) return;
    c_.timers.After(step->heartbeat, [this, step] {
      if (step->finished || step->silent) return;
      Heartbeat(*step);
      Beat(step);
    });
  }
  void Heartbeat(const LongStep& step) {
    Span hb = c_.Child(step.heartbeat_name, step.parent, step.order);
    // Always with the order: the heartbeats' parent (the long step) is exported only when it
    // ends, too late for a heartbeat to wait for it (docs/attribution.md, long-running parents).
    SetOrder(hb, step.order);
    hb.SetAttribute(kHeartbeatKey, true);
    hb.End();
  }
  // Ends the step at `at`, unless it was silenced or rescheduled meanwhile.
  void FinishAt(const std::shared_ptr<LongStep>& step, Clock::time_point at) {
    step->end_at = at;
    c_.timers.At(at, [this, step, at] {
      if (step->finished || step->silent || step->end_at != at) return;
      step->finished = true;
      auto keep = step;  // erasing it from `running_` must not destroy it mid-call
      running_.erase(step->key);
      step->finish(*step);
    });
  }

  RoleContext& c_;
  const Options& o_;
  // Long steps running (or silent), by delivery key; each leaves when it finishes.
  std::unordered_map<std::string, std::shared_ptr<LongStep>> running_;
};

}  // namespace

std::unique_ptr<RoleLogic> MakeMes(RoleContext& context) { return std::make_unique<Mes>(context); }

}  // namespace ordertrace::sim
