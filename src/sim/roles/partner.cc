// The partner: submits orders at --rate (or as many as --orders, or for --duration), each a root
// `submit order` span and an order.submit message to the CRM.  With --report, a line per order
// names the faults that select it.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sim/roles/role.h"

namespace ordertrace::sim {
namespace {

class Partner final : public RoleLogic {
 public:
  explicit Partner(RoleContext& context) : c_(context), o_(context.options) {}

  // Starts the orders due by now: order n is due (n-1)/rate after the start, so a slow turn
  // catches up (at most 1000 a turn).
  void Tick() override {
    if (done_) return;
    const Clock::time_point now = Clock::now();
    for (int burst = 0; burst < 1000; ++burst) {
      if ((o_.orders && next_order_ > *o_.orders) ||
          (o_.duration && now - c_.started >= *o_.duration)) {
        done_ = true;
        return;
      }
      const Clock::time_point due =
          c_.started + std::chrono::microseconds(static_cast<int64_t>(
                           static_cast<double>(next_order_ - 1) * 1e6 / o_.rate));
      if (due > now) return;
      Submit(OrderId(o_.order_prefix, o_.seed, next_order_++));
    }
  }
  bool finished() const override { return done_; }
  Micros MaxSleep() const override {
    return done_ ? Micros::max() : Micros(static_cast<int64_t>(1e6 / o_.rate));
  }

 private:
  void Submit(const std::string& order) {
    StartOptions so;
    so.root = true;
    Span submit(c_.provider, "submit order", so);
    SetOrder(submit, order);
    SetPartner(submit, "partner-" + std::to_string(o_.seed));
    c_.outbox.Send("order.submit", order, submit.context(), {});
    SetStepStatus(submit, StepStatus::kOk);
    submit.End();
    ++c_.stats.orders_started;
    c_.last_activity = Clock::now();
    if (c_.report != nullptr) {
      nlohmann::json j;
      j["order_id"] = order;
      j["faults"] = nlohmann::json::array();
      for (const std::string& name : c_.faults.NamesFor(order)) j["faults"].push_back(name);
      c_.report->Line(j.dump());
    }
  }

  RoleContext& c_;
  const Options& o_;
  uint64_t next_order_ = 1;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<RoleLogic> MakePartner(RoleContext& context) {
  return std::make_unique<Partner>(context);
}

}  // namespace ordertrace::sim
