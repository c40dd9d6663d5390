// A role of the reference pipeline (partner, CRM, MES) as business steps on top of the sim's
// runtime (sim/runtime/): each step reads a delivery under a process span, records its
// milestone span, publishes the next message and acks when that publish is confirmed.  The
// runtime does the rest: connections, acks and redeliveries, retries, timers and faults'
// scheduling.  docs/sim.md lists every step's spans and what each fault does to it.
//
// To write a role of your own: implement RoleLogic, register a step per consumed queue with
// RoleContext::inbox.AddQueue() in the constructor, and construct it in RoleRunner
// (runtime/loop.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "ordertrace/order.h"
#include "ordertrace/rabbitmq.h"
#include "ordertrace/tracer.h"
#include "sim/options.h"
#include "sim/runtime/faults.h"
#include "sim/runtime/inbox.h"
#include "sim/runtime/loop.h"
#include "sim/runtime/outbox.h"
#include "sim/runtime/report.h"

namespace ordertrace::sim {

// What a role's steps use of the runtime.
//
// Thread-safety: owned by a RoleRunner; used on its loop thread only.
struct RoleContext {
  const Options& options;
  TracerProvider& provider;
  Timers& timers;
  Inbox& inbox;
  Outbox& outbox;
  const Faults& faults;
  Stats& stats;
  ReportWriter* report;  // may be null
  // When the role started running (the partner paces its orders from it).
  Clock::time_point started{};
  // When the role last started an order (the runner also counts deliveries as activity).
  Clock::time_point last_activity{};

  // A span for `order`, child of `parent`.
  Span Child(std::string_view name, const SpanContext& parent, const std::string& order) const {
    StartOptions so;
    so.parent = &parent;
    Span s(provider, name, so);
    if (options.order_id_on_every_span) SetOrder(s, order);
    return s;
  }
  // For rabbitmq::ProcessSpan on a delivery of the inbox.
  rabbitmq::ProcessOptions ProcessOptions() const {
    rabbitmq::ProcessOptions po;
    po.connection = inbox.connection();
    po.provider = &provider;
    po.order_on_span = options.order_id_on_every_span;
    return po;
  }
};

// One role's steps.  Consuming roles register theirs with the inbox when constructed; the
// partner, which consumes nothing, starts orders from Tick().
//
// Thread-safety: not thread-safe; its RoleRunner's loop thread calls it.
class RoleLogic {
 public:
  virtual ~RoleLogic() = default;
  // Called on every turn of the loop until the role stops: start what is due.
  virtual void Tick() {}
  // Whether the role has nothing more to start (the partner: every order submitted); it exits
  // once its outbox is empty.
  virtual bool finished() const { return false; }
  // The longest the loop may sleep before Tick() has something to do.
  virtual Micros MaxSleep() const { return Micros::max(); }
};

// The roles (roles/partner.cc, crm.cc, mes.cc).  `context` must outlive the role.
std::unique_ptr<RoleLogic> MakePartner(RoleContext& context);
std::unique_ptr<RoleLogic> MakeCrm(RoleContext& context);
std::unique_ptr<RoleLogic> MakeMes(RoleContext& context);

}  // namespace ordertrace::sim
