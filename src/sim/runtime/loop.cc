#include "sim/runtime/loop.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "sim/roles/role.h"
#include "sim/runtime/faults.h"
#include "sim/runtime/inbox.h"
#include "sim/runtime/outbox.h"

namespace ordertrace::sim {

// ---- Timers

void Timers::After(Micros delay, std::function<void()> fn, bool order_work) {
  heap_.push(Timer{Clock::now() + delay, ++seq_, std::move(fn), order_work});
  if (order_work) ++order_work_;
}

void Timers::At(TimePoint at, std::function<void()> fn) {
  heap_.push(Timer{at, ++seq_, std::move(fn), true});
  ++order_work_;
}

void Timers::RunDue() {
  while (!heap_.empty() && heap_.top().at <= Clock::now()) {
    Timer t = heap_.top();
    heap_.pop();
    if (t.order_work) --order_work_;
    t.fn();
  }
}

Micros Timers::UntilNext(Micros cap) const {
  if (heap_.empty()) return cap;
  return std::min(
      cap, std::max(Micros(0), std::chrono::duration_cast<Micros>(heap_.top().at - Clock::now())));
}

// ---- SimTracerOptions

TracerOptions SimTracerOptions(const Options& options, const std::string& service) {
  // The standard OTEL_* variables apply (OTEL_BSP_SCHEDULE_DELAY, OTEL_EXPORTER_OTLP_HEADERS,
  // ...), except what the sim decides: service.name is the role, the endpoint is --otlp.
  TracerOptions t = TracerOptionsFromEnv();
  t.service_name = service;
  t.exporter.endpoint = options.otlp;
  // ~12 spans per order; 200 orders/s is ~2,400 spans/s across the roles: a bigger queue and
  // batches, and an export every 200 ms (deadlines in tests and demos are seconds), unless the
  // variables say otherwise.
  if (std::getenv("OTEL_BSP_MAX_QUEUE_SIZE") == nullptr) t.max_queue_size = 1 << 17;
  if (std::getenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == nullptr) t.max_export_batch_size = 2048;
  if (std::getenv("OTEL_BSP_SCHEDULE_DELAY") == nullptr)
    t.schedule_delay = std::chrono::milliseconds(200);
  return t;
}

// ---- RoleRunner

namespace {

// What a role declares on each (re)connect: everything, so the roles may start in any order;
// the partner, which only publishes order.submit, just its queue.
std::vector<QueueDef> Declared(Role role) {
  std::vector<QueueDef> declared;
  for (const QueueDef& q : kQueues)
    if (role != Role::kPartner || std::string(q.queue) == "crm.orders") declared.push_back(q);
  return declared;
}

std::unique_ptr<RoleLogic> MakeRole(Role role, RoleContext& context) {
  switch (role) {
    case Role::kPartner:
      return MakePartner(context);
    case Role::kCrm:
      return MakeCrm(context);
    case Role::kMes:
      return MakeMes(context);
    case Role::kAll:
      break;
  }
  return nullptr;
}

}  // namespace

struct RoleRunner::Parts {
  Parts(Role role, const Options& opts, TracerProvider& prov, ReportWriter* rep)
      : options(opts),
        provider(prov),
        report(rep),
        name(RoleName(role)),
        inbox(options, name, Declared(role), stats),
        outbox(options, name, Declared(role), provider, stats),
        faults(options),
        context{options, provider, timers, inbox, outbox, faults, stats, report},
        logic(MakeRole(role, context)) {
    stats.role = name;
  }

  const Options& options;
  TracerProvider& provider;
  ReportWriter* report;
  const std::string name;
  Stats stats;
  Timers timers;
  Inbox inbox;
  Outbox outbox;
  Faults faults;
  RoleContext context;
  std::unique_ptr<RoleLogic> logic;

  bool stopping = false;
  Clock::time_point drain_deadline{};
  Clock::time_point next_progress{};
};

RoleRunner::RoleRunner(Role role, const Options& options, TracerProvider& provider,
                       ReportWriter* report)
    : parts_(std::make_unique<Parts>(role, options, provider, report)) {}

RoleRunner::~RoleRunner() = default;

size_t RoleRunner::InHand() const { return parts_->inbox.open() + parts_->timers.order_work(); }

Stats RoleRunner::Run(const std::atomic<bool>& stop) {
  Parts& p = *parts_;
  p.context.started = Clock::now();
  p.context.last_activity = p.context.started;
  p.next_progress = p.context.started + std::chrono::seconds(5);
  p.faults.ScheduleQueueFaults(p.name, p.timers, p.inbox);
  while (true) {
    if (stop.load() && !p.stopping) BeginStop();
    const Clock::time_point now = Clock::now();
    if (p.stopping && ((InHand() == 0 && p.outbox.empty()) || now >= p.drain_deadline)) break;
    if (p.logic->finished() && p.outbox.empty()) break;
    p.timers.RunDue();
    in_hand_.store(InHand());
    const Clock::time_point connect_now = Clock::now();
    p.outbox.Connect(connect_now);
    p.inbox.Connect(connect_now);
    p.outbox.Flush();
    if (!p.stopping) p.logic->Tick();
    p.outbox.Flush();  // what the tick queued (the partner's orders), before the poll's wait
    finished_.store(p.logic->finished());
    p.inbox.DrainThrottled();
    Progress();
    const Clock::time_point last_activity =
        std::max(p.context.last_activity, p.inbox.last_delivery());
    idle_.store(InHand() == 0 && p.outbox.empty() && p.faults.queue_faults_pending() == 0 &&
                Clock::now() - last_activity > std::chrono::seconds(2));
    // Sleep until the next timer, at most 20 ms (partner: its next order; links: backoff).
    const Micros wait = std::min(p.timers.UntilNext(Micros(20000)), p.logic->MaxSleep());
    if (p.inbox.connected()) {
      p.inbox.Poll(p.stopping ? std::min(wait, Micros(5000)) : wait);
    } else {
      std::this_thread::sleep_for(std::min(wait, Micros(5000)));
    }
    in_hand_.store(InHand());
  }
  return Finish();
}

void RoleRunner::BeginStop() {
  Parts& p = *parts_;
  p.stopping = true;
  p.drain_deadline = Clock::now() + p.options.drain;
  if (p.inbox.consumes() || !p.outbox.empty())
    std::fprintf(stderr,
                 "%s: stopping: finishing %zu deliveries in hand, %zu to publish (up to %.1f s)\n",
                 p.name.c_str(), p.inbox.open(), p.outbox.size(),
                 std::chrono::duration<double>(p.options.drain).count());
  p.inbox.Stop();
}

void RoleRunner::Progress() {
  Parts& p = *parts_;
  const Clock::time_point now = Clock::now();
  if (p.options.quiet || now < p.next_progress) return;
  p.next_progress = now + std::chrono::seconds(5);
  const Stats& s = p.stats;
  std::fprintf(stderr,
               "%s: started %llu, processed %llu, published %llu (failed %llu), closed %llu, "
               "in hand %zu, to publish %zu, reconnects %llu\n",
               p.name.c_str(), static_cast<unsigned long long>(s.orders_started),
               static_cast<unsigned long long>(s.messages_processed),
               static_cast<unsigned long long>(s.published),
               static_cast<unsigned long long>(s.publish_failures),
               static_cast<unsigned long long>(s.orders_closed), InHand(), p.outbox.size(),
               static_cast<unsigned long long>(p.inbox.reconnects() + p.outbox.reconnects()));
}

// After the loop: closes the connections, flushes and shuts the provider down, and reports.
Stats RoleRunner::Finish() {
  Parts& p = *parts_;
  p.stats.unsent = p.outbox.size();
  if (InHand() > 0 || !p.outbox.empty())
    std::fprintf(stderr,
                 "%s: %zu deliveries left unacked (the broker redelivers them), %zu publishes "
                 "not sent\n",
                 p.name.c_str(), p.inbox.unacked(), p.outbox.size());
  p.inbox.Close();
  p.outbox.Close();
  p.stats.reconnects = p.inbox.reconnects() + p.outbox.reconnects();
  p.provider.ForceFlush(std::chrono::seconds(10));
  p.provider.Shutdown(std::chrono::seconds(5));
  const TracerStats ts = p.provider.stats();
  p.stats.spans_ended = ts.spans_ended;
  p.stats.spans_exported = ts.exported;
  p.stats.spans_dropped = ts.dropped_queue_full + ts.dropped_export_failed;
  if (p.report != nullptr) p.report->Line(StatsJson(p.stats));
  return p.stats;
}

}  // namespace ordertrace::sim
