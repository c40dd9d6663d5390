#include "sim/roles.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ordertrace/order.h"
#include "ordertrace/rabbitmq.h"
#include "sim/amqp_link.h"

namespace ordertrace::sim {

std::string StatsJson(const Stats& s) {
  nlohmann::ordered_json j;  // "role" first
  j["role"] = s.role;
  j["orders_started"] = s.orders_started;
  j["messages_processed"] = s.messages_processed;
  j["published"] = s.published;
  j["publish_failures"] = s.publish_failures;
  j["publish_retries"] = s.publish_retries;
  j["reconnects"] = s.reconnects;
  if (s.role == "crm") j["orders_closed"] = s.orders_closed;
  j["unsent"] = s.unsent;
  j["spans_ended"] = s.spans_ended;
  j["spans_exported"] = s.spans_exported;
  j["spans_dropped"] = s.spans_dropped;
  return j.dump();
}

bool ReportWriter::Open(const std::string& path) {
  f_ = std::fopen(path.c_str(), "w");
  return f_ != nullptr;
}

ReportWriter::~ReportWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

void ReportWriter::Line(const std::string& json) {
  std::lock_guard<std::mutex> lock(mu_);
  if (f_ == nullptr) return;
  std::fputs(json.c_str(), f_);
  std::fputc('\n', f_);
  std::fflush(f_);
}

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

// ---------------------------------------------------------------------------------------------

struct RoleRunner::Impl {
  using TimePoint = Clock::time_point;

  struct Timer {
    TimePoint at;
    uint64_t seq;
    std::function<void()> fn;
    bool order_work;
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  // A delivery in hand: acked when its step's work and publishes are done.
  struct Hand {
    amqp_channel_t channel = 0;
    uint64_t tag = 0;
    uint64_t generation = 0;
    bool done = false;  // work done; the ack waits for the redelivery (connection was lost)
    bool held = false;  // crm-ignores-price: `envelope` kept, no span yet
    amqp_envelope_t envelope{};
  };

  struct Outgoing {
    std::string routing_key, body, order_id, message_id;
    SpanContext parent;
    int attempts = 0;
    std::function<void()> done;  // after the confirm
  };

  // A long step (price calculation, manufacturing): heartbeats until it ends.
  struct LongStep {
    std::string key, order;
    SpanContext parent;  // of the heartbeats
    std::string heartbeat_name;
    Micros heartbeat{0};
    bool silent = false;
    bool finished = false;
    TimePoint end_at;
    Span op;  // the long span itself, when the step has one (calculate price)
    std::function<void(LongStep&)> finish;
  };

  struct SlowQueue {
    const FaultSpec* fault = nullptr;
    bool active = false;
    TimePoint next;
    std::deque<amqp_envelope_t> waiting;
  };

  RoleRunner* self;
  Role role;
  const Options& o;
  TracerProvider& provider;
  ReportWriter* report;
  Stats stats;
  std::string name;

  AmqpLink consume_link, publish_link;
  std::vector<std::string> consumed;  // channel i+1 consumes consumed[i]
  std::vector<QueueDef> declared;     // what this role declares
  std::vector<bool> gone;             // consumer-gone in effect, per consumed queue
  std::unordered_map<std::string, SlowQueue> slow;
  size_t queue_faults_pending = 0;  // queue faults still to start or be lifted

  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers;
  uint64_t timer_seq = 0;
  size_t order_timers = 0;
  std::unordered_map<std::string, Hand> hand;
  // Long steps running (or silent), by delivery key; each leaves when it finishes.
  std::unordered_map<std::string, std::shared_ptr<LongStep>> steps;
  size_t hand_open = 0;  // entries not done
  std::deque<Outgoing> outbox;
  bool flushing = false;

  TimePoint started;
  TimePoint last_activity;
  TimePoint next_progress;
  bool stopping = false;
  TimePoint drain_deadline;
  // partner
  uint64_t next_order = 1;
  bool starting_done = false;

  Impl(RoleRunner* s, Role r, const Options& opts, TracerProvider& p, ReportWriter* rep)
      : self(s),
        role(r),
        o(opts),
        provider(p),
        report(rep),
        name(RoleName(r)),
        consume_link(opts.amqp, std::string(RoleName(r)) + " consume"),
        publish_link(opts.amqp, std::string(RoleName(r)) + " publish") {
    stats.role = name;
    for (const QueueDef& q : kQueues) {
      if (name == q.consumer) consumed.push_back(q.queue);
      if (role != Role::kPartner || std::string(q.queue) == "crm.orders") declared.push_back(q);
    }
    gone.assign(consumed.size(), false);
  }

  ~Impl() {
    for (auto& [k, h] : hand)
      if (h.held) DestroyCopy(h.envelope);
    for (auto& [q, s] : slow)
      for (auto& env : s.waiting) amqp_destroy_envelope(&env);
  }

  int ChannelOf(const std::string& queue) const {
    for (size_t i = 0; i < consumed.size(); ++i)
      if (consumed[i] == queue) return static_cast<int>(i) + 1;
    return 0;
  }

  const FaultSpec* Fault(FaultKind kind, const std::string& order) const {
    for (const FaultSpec& f : o.faults)
      if (f.kind == kind && f.Selects(o.seed, order)) return &f;
    return nullptr;
  }

  void UpdateInHand() { self->in_hand_.store(hand_open + order_timers); }

  // ---- timers
  void After(Micros delay, std::function<void()> fn, bool order_work = true) {
    timers.push(Timer{Clock::now() + delay, ++timer_seq, std::move(fn), order_work});
    if (order_work) ++order_timers;
    UpdateInHand();
  }
  void At(TimePoint at, std::function<void()> fn) {
    timers.push(Timer{at, ++timer_seq, std::move(fn), true});
    ++order_timers;
    UpdateInHand();
  }
  void RunTimers() {
    while (!timers.empty() && timers.top().at <= Clock::now()) {
      Timer t = timers.top();
      timers.pop();
      if (t.order_work) --order_timers;
      t.fn();
    }
    UpdateInHand();
  }

  // ---- acks
  void Track(const std::string& key, const amqp_envelope_t& env) {
    Hand& h = hand[key];
    h.channel = env.channel;
    h.tag = env.delivery_tag;
    h.generation = consume_link.generation();
    ++hand_open;
    UpdateInHand();
  }
  void Ack(const std::string& key) {
    auto it = hand.find(key);
    if (it == hand.end() || it->second.done) return;
    Hand& h = it->second;
    if (consume_link.connected() && h.generation == consume_link.generation()) {
      int rc = amqp_basic_ack(consume_link.get(), h.channel, h.tag, 0);
      if (rc == AMQP_STATUS_OK) {
        hand.erase(it);
        --hand_open;
        UpdateInHand();
        return;
      }
      consume_link.MarkDead(std::string("basic.ack: ") + amqp_error_string2(rc));
      OnConsumeLost();
      it = hand.find(key);
      if (it == hand.end()) return;
    }
    // The delivery tag died with its connection: the broker redelivers the message, and the
    // redelivery is acked at once (Deliver).
    it->second.done = true;
    --hand_open;
    UpdateInHand();
  }

  // ---- publishing
  void Enqueue(Outgoing out) {
    outbox.push_back(std::move(out));
    Flush();
  }
  void Flush() {
    if (flushing) return;
    flushing = true;
    while (!outbox.empty() && publish_link.connected()) {
      Outgoing& out = outbox.front();
      Span retry;
      const SpanContext* parent = &out.parent;
      if (out.attempts > 0) {
        // libordertrace's Publish ends its own span with OK or FAIL; the retry is marked on a
        // wrapper span, the parent of the retried publish.
        StartOptions so;
        so.parent = &out.parent;
        retry = Span(provider, "publish retry " + out.routing_key, so);
        SetOrder(retry, out.order_id);
        SetStepStatus(retry, StepStatus::kRetry);
        retry.SetAttribute("ordertrace.sim.attempt", static_cast<int64_t>(out.attempts + 1));
        parent = &retry.context();
        ++stats.publish_retries;
      }
      amqp_basic_properties_t props{};
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
      props.delivery_mode = 2;  // persistent
      props.content_type = Bytes("application/json");
      rabbitmq::PublishOptions po;
      po.order_id = out.order_id;
      po.message_id = out.message_id;
      po.wait_for_confirm = true;
      po.mandatory = false;
      po.parent = parent;
      po.provider = &provider;
      rabbitmq::PublishResult r = rabbitmq::Publish(publish_link.get(), 1, kExchange,
                                                    out.routing_key, out.body, &props, po);
      ++out.attempts;
      if (r.ok()) {
        ++stats.published;
        if (out.attempts > 1) retry.SetStatus(SpanStatus::kOk);
        retry.End();
        std::function<void()> done = std::move(out.done);
        outbox.pop_front();
        if (done) done();
        continue;
      }
      ++stats.publish_failures;
      retry.End();
      publish_link.MarkDead("publish " + out.routing_key + ": " + r.error);
      break;
    }
    flushing = false;
  }

  // ---- connections
  void OnConsumeLost() {
    // Deliveries waiting in a slow-consumer queue die with the connection (redelivered).
    for (auto& [q, s] : slow) {
      for (auto& env : s.waiting) amqp_destroy_envelope(&env);
      s.waiting.clear();
    }
  }

  bool Subscribe(size_t i) {
    const std::string& q = consumed[i];
    const amqp_channel_t ch = static_cast<amqp_channel_t>(i + 1);
    amqp_basic_consume(consume_link.get(), ch, Bytes(q), Bytes(q), 0, /*no_ack=*/0, 0,
                       amqp_empty_table);
    if (std::string e = consume_link.ReplyError(); !e.empty()) {
      consume_link.MarkDead("basic.consume " + q + ": " + e);
      OnConsumeLost();
      return false;
    }
    return true;
  }
  void Unsubscribe(size_t i) {
    if (!consume_link.connected()) return;
    amqp_basic_cancel(consume_link.get(), static_cast<amqp_channel_t>(i + 1), Bytes(consumed[i]));
    if (std::string e = consume_link.ReplyError(); !e.empty()) {
      consume_link.MarkDead("basic.cancel " + consumed[i] + ": " + e);
      OnConsumeLost();
    }
  }

  void EnsureLinks() {
    const TimePoint now = Clock::now();
    std::string error;
    if (publish_link.Due(now)) {
      if (publish_link.Connect(1, &error)) {
        if (!publish_link.DeclareTopology(declared, &error) ||
            !rabbitmq::EnableConfirms(publish_link.get(), 1, &error))
          publish_link.MarkDead(error);
      }
    }
    if (!consumed.empty() && !stopping && consume_link.Due(now)) {
      if (consume_link.Connect(static_cast<int>(consumed.size()), &error)) {
        if (!consume_link.DeclareTopology(declared, &error)) {
          consume_link.MarkDead(error);
          return;
        }
        for (size_t i = 0; i < consumed.size() && consume_link.connected(); ++i) {
          amqp_basic_qos(consume_link.get(), static_cast<amqp_channel_t>(i + 1), 0,
                         static_cast<uint16_t>(o.prefetch), 0);
          if (std::string e = consume_link.ReplyError(); !e.empty()) {
            consume_link.MarkDead("basic.qos: " + e);
            break;
          }
          if (!gone[i]) Subscribe(i);
        }
      }
    }
  }

  // Reads deliveries for up to `wait`; then whatever is buffered without waiting.
  void Consume(Micros wait) {
    for (int n = 0; n < 256 && consume_link.connected(); ++n) {
      amqp_maybe_release_buffers(consume_link.get());
      const Micros w = n == 0 ? wait : Micros(0);
      timeval tv{static_cast<time_t>(w.count() / 1000000),
                 static_cast<suseconds_t>(w.count() % 1000000)};
      amqp_envelope_t env{};
      amqp_rpc_reply_t r = amqp_consume_message(consume_link.get(), &env, &tv, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        last_activity = Clock::now();
        Deliver(env);
        continue;
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return;
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        amqp_frame_t frame;
        timeval zero{0, 0};
        int rc = amqp_simple_wait_frame_noblock(consume_link.get(), &frame, &zero);
        if (rc == AMQP_STATUS_TIMEOUT) return;
        if (rc != AMQP_STATUS_OK) {
          consume_link.MarkDead(amqp_error_string2(rc));
          OnConsumeLost();
          return;
        }
        if (frame.frame_type != AMQP_FRAME_METHOD) continue;
        switch (frame.payload.method.id) {
          case AMQP_CONNECTION_CLOSE_METHOD: {
            auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
            amqp_connection_close_ok_t ok{};
            amqp_send_method(consume_link.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            consume_link.MarkDead("connection closed by the broker: " +
                                  std::to_string(m->reply_code) + " " + ToString(m->reply_text));
            OnConsumeLost();
            return;
          }
          case AMQP_CHANNEL_CLOSE_METHOD: {
            auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
            consume_link.MarkDead("channel closed by the broker: " + std::to_string(m->reply_code) +
                                  " " + ToString(m->reply_text));
            OnConsumeLost();
            return;
          }
          case AMQP_BASIC_CANCEL_METHOD:
            // The broker cancelled a consumer (its queue was deleted): start over.
            consume_link.MarkDead("the broker cancelled a consumer");
            OnConsumeLost();
            return;
          default:
            continue;
        }
      }
      consume_link.MarkDead(r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                                ? std::string(amqp_error_string2(r.library_error))
                                : std::string("connection error"));
      OnConsumeLost();
      return;
    }
  }

  static std::string KeyOf(const std::string& queue, const amqp_envelope_t& env) {
    const auto& p = env.message.properties;
    if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p.message_id.len > 0)
      return queue + "/" + ToString(p.message_id);
    return queue + "/tag/" + std::to_string(env.delivery_tag);
  }

  // Takes ownership of `env`.
  void Deliver(amqp_envelope_t& env) {
    const int ch = env.channel;
    if (ch < 1 || ch > static_cast<int>(consumed.size())) {
      amqp_destroy_envelope(&env);
      return;
    }
    const std::string& queue = consumed[ch - 1];
    if (stopping) {  // not acked: the broker requeues it when the connection closes
      amqp_destroy_envelope(&env);
      return;
    }
    const std::string key = KeyOf(queue, env);
    auto it = hand.find(key);
    if (it != hand.end()) {
      Hand& h = it->second;
      ++stats.messages_processed;
      if (h.generation == consume_link.generation() && !h.done) {
        // A duplicate of work in hand on this very connection (a publish retried after its
        // confirm was lost): the work in hand covers it.
        if (int rc = amqp_basic_ack(consume_link.get(), env.channel, env.delivery_tag, 0);
            rc != AMQP_STATUS_OK) {
          consume_link.MarkDead(std::string("basic.ack: ") + amqp_error_string2(rc));
          OnConsumeLost();
        }
        amqp_destroy_envelope(&env);
        return;
      }
      // A redelivery (after a reconnect) of work in hand: adopt the new delivery tag.
      h.channel = env.channel;
      h.tag = env.delivery_tag;
      h.generation = consume_link.generation();
      if (h.done) {
        h.done = false;
        ++hand_open;
        Ack(key);
      } else if (h.held) {
        DestroyCopy(h.envelope);
        h.envelope = CopyEnvelope(env);
      }
      amqp_destroy_envelope(&env);
      return;
    }
    auto s = slow.find(queue);
    if (s != slow.end() && s->second.active) {
      s->second.waiting.push_back(env);
      return;
    }
    Handle(queue, key, env);
    amqp_destroy_envelope(&env);
  }

  void DrainSlow() {
    const TimePoint now = Clock::now();
    for (auto& [queue, s] : slow) {
      while (!s.waiting.empty() && (!s.active || now >= s.next)) {
        amqp_envelope_t env = s.waiting.front();
        s.waiting.pop_front();
        if (s.active)
          s.next = std::max(s.next, now - std::chrono::seconds(1)) +
                   std::chrono::microseconds(static_cast<int64_t>(1e6 / s.fault->per_second));
        Handle(queue, KeyOf(queue, env), env);
        amqp_destroy_envelope(&env);
      }
    }
  }

  rabbitmq::ProcessOptions ProcessOpts() {
    rabbitmq::ProcessOptions po;
    po.connection = consume_link.get();
    po.provider = &provider;
    return po;
  }

  Span Child(std::string_view span_name, const SpanContext& parent, const std::string& order) {
    StartOptions so;
    so.parent = &parent;
    Span s(provider, span_name, so);
    SetOrder(s, order);
    return s;
  }

  static std::string Body(const std::string& order, const char* what) {
    nlohmann::json j;
    j["order_id"] = order;
    j["what"] = what;
    return j.dump();
  }

  void Send(const std::string& routing_key, const std::string& order, const SpanContext& parent,
            std::function<void()> done) {
    Outgoing out;
    out.routing_key = routing_key;
    out.order_id = order;
    out.message_id = order + "/" + routing_key;
    out.body = Body(order, routing_key.c_str());
    out.parent = parent;
    out.done = std::move(done);
    Enqueue(std::move(out));
  }

  // ---- the steps
  void Handle(const std::string& queue, const std::string& key, const amqp_envelope_t& env) {
    ++stats.messages_processed;
    Track(key, env);
    if (queue == "crm.orders") {
      OnSubmit(key, env);
    } else if (queue == "mes.calculate") {
      OnCalculate(key, env);
    } else if (queue == "crm.prices") {
      OnPrice(key, env);
    } else if (queue == "mes.manufacturing") {
      OnManufacturing(key, env);
    } else if (queue == "crm.shipments") {
      OnShipped(key, env);
    }
  }

  // crm: the partner's order → SUBMITTED → price.calculate (or, lost-to-mes, unrouted).
  void OnSubmit(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.orders", ProcessOpts());
    const std::string order = process.order_id();
    Span create = Child("create order", process.context(), order);
    Milestone(create, o.pacing.stages[0]);
    SetStepStatus(create, StepStatus::kOk);
    const SpanContext ctx = create.context();
    create.End();
    const FaultSpec* lost = Fault(FaultKind::kLostToMes, order);
    Send(lost ? kUnroutedCalculateKey : "price.calculate", order, ctx,
         [this, key, order, ctx, lost] {
           Ack(key);
           if (lost && lost->lift_after)
             After(*lost->lift_after,
                   [this, order, ctx] { Send("price.calculate", order, ctx, {}); });
         });
    process.End(StepStatus::kOk);
  }

  // Heartbeats of a long step, every step->heartbeat while it is neither silent nor finished.
  void Beat(const std::shared_ptr<LongStep>& step) {
    if (step->finished || step->silent || step->heartbeat.count() <= 0) return;
    After(step->heartbeat, [this, step] {
      if (step->finished || step->silent) return;
      Heartbeat(*step);
      Beat(step);
    });
  }
  void Heartbeat(const LongStep& step) {
    Span hb = Child(step.heartbeat_name, step.parent, step.order);
    hb.SetAttribute(kHeartbeatKey, true);
    hb.End();
  }
  void FinishAt(const std::shared_ptr<LongStep>& step, TimePoint at) {
    step->end_at = at;
    At(at, [this, step, at] {
      if (step->finished || step->silent || step->end_at != at) return;
      step->finished = true;
      auto keep = step;  // erasing it from `steps` must not destroy it mid-call
      steps.erase(step->key);
      step->finish(*step);
    });
  }
  // Starts a long step: normally done after `normal`; `slow_duration` when calc-slow applies;
  // silent (no heartbeats, no end) when `silent` applies, until lifted.
  void RunLongStep(const std::shared_ptr<LongStep>& step, Micros normal, const FaultSpec* silent,
                   const FaultSpec* slow_fault, Micros slow_duration) {
    steps[step->key] = step;
    const TimePoint start = Clock::now();
    const TimePoint normal_end = start + normal;
    if (silent) {
      step->silent = true;
      step->end_at = normal_end;
      if (silent->lift_after)
        After(*silent->lift_after, [this, step, normal_end] {
          step->silent = false;
          // Alive again: a heartbeat at once, then on schedule.
          if (step->heartbeat.count() > 0) Heartbeat(*step);
          Beat(step);
          FinishAt(step, std::max(normal_end, Clock::now()));
        });
      return;
    }
    Beat(step);
    if (slow_fault) {
      FinishAt(step, start + slow_duration);
      if (slow_fault->lift_after)
        After(*slow_fault->lift_after, [this, step, normal_end] {
          const TimePoint at = std::max(normal_end, Clock::now());
          if (!step->finished && at < step->end_at) FinishAt(step, at);
        });
    } else {
      FinishAt(step, normal_end);
    }
  }

  // mes: receipt → `calculate price` with heartbeats → PRICE_CALCULATED → price.calculated.
  void OnCalculate(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "mes.calculate", ProcessOpts());
    auto step = std::make_shared<LongStep>();
    step->key = key;
    step->order = process.order_id();
    // Started now, ended when the calculation is done (a silent one never ends).
    step->op = Child("calculate price", process.context(), step->order);
    step->parent = step->op.context();
    step->heartbeat_name = "calculate price heartbeat";
    step->heartbeat = o.pacing.calculate_heartbeat;
    step->finish = [this](LongStep& st) {
      Milestone(st.op, o.pacing.stages[1]);
      SetStepStatus(st.op, StepStatus::kOk);
      const SpanContext ctx = st.op.context();
      st.op.End();
      const std::string key = st.key;
      Send("price.calculated", st.order, ctx, [this, key] { Ack(key); });
    };
    process.End(StepStatus::kOk);
    const Micros normal =
        Jittered(o.pacing.calculate, o.pacing.calculate_deadline, o.seed, step->order, "calculate");
    RunLongStep(step, normal, Fault(FaultKind::kCalcSilent, step->order),
                Fault(FaultKind::kCalcSlow, step->order), o.pacing.calculate_deadline * 2);
  }

  // crm: the price → (processed) → APPROVED after a while → manufacturing.start.
  void OnPrice(const std::string& key, const amqp_envelope_t& env) {
    const std::string order = HeaderOrder(env);
    if (const FaultSpec* ignores = Fault(FaultKind::kCrmIgnoresPrice, order)) {
      // A hung handler: the delivery stays unacked, no span, until lifted.
      Hand& h = hand[key];
      h.held = true;
      h.envelope = CopyEnvelope(env);  // the caller destroys `env`
      if (ignores->lift_after)
        After(*ignores->lift_after, [this, key] {
          auto it = hand.find(key);
          if (it == hand.end() || !it->second.held) return;
          amqp_envelope_t held = it->second.envelope;
          it->second.held = false;
          it->second.envelope = amqp_envelope_t{};
          ProcessPrice(key, held);
          DestroyCopy(held);
        });
      return;
    }
    ProcessPrice(key, env);
  }
  void ProcessPrice(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.prices", ProcessOpts());
    const std::string order = process.order_id();
    const SpanContext pctx = process.context();
    process.End(StepStatus::kOk);
    const Micros delay =
        Jittered(o.pacing.approve, o.pacing.approve_deadline, o.seed, order, "approve");
    After(delay, [this, key, order, pctx] {
      Span approve = Child("approve order", pctx, order);
      Milestone(approve, o.pacing.stages[2]);
      SetStepStatus(approve, StepStatus::kOk);
      const SpanContext actx = approve.context();
      approve.End();
      auto publish = [this, key, order, actx] {
        Send("manufacturing.start", order, actx, [this, key] { Ack(key); });
      };
      if (const FaultSpec* stall = Fault(FaultKind::kCrmStallsApproved, order)) {
        if (stall->lift_after) After(*stall->lift_after, publish);
        return;  // never lifted: in hand until the process stops
      }
      publish();
    });
  }

  // mes: MANUFACTURING_STARTED → heartbeats → SHIPPED → order.shipped.
  void OnManufacturing(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "mes.manufacturing", ProcessOpts());
    auto step = std::make_shared<LongStep>();
    step->key = key;
    step->order = process.order_id();
    Span start = Child("start manufacturing", process.context(), step->order);
    Milestone(start, o.pacing.stages[3]);
    SetStepStatus(start, StepStatus::kOk);
    step->parent = start.context();
    start.End();
    step->heartbeat_name = "manufacturing heartbeat";
    step->heartbeat = o.pacing.manufacture_heartbeat;
    step->finish = [this](LongStep& st) {
      Span ship = Child("ship order", st.parent, st.order);
      Milestone(ship, o.pacing.stages[4]);
      SetStepStatus(ship, StepStatus::kOk);
      const SpanContext ctx = ship.context();
      ship.End();
      const std::string key = st.key;
      Send("order.shipped", st.order, ctx, [this, key] { Ack(key); });
    };
    process.End(StepStatus::kOk);
    const Micros normal = Jittered(o.pacing.manufacture, o.pacing.manufacture_deadline, o.seed,
                                   step->order, "manufacture");
    RunLongStep(step, normal, Fault(FaultKind::kMesSilent, step->order), nullptr, Micros(0));
  }

  // crm: shipped → CLOSED after a while (crm-no-close: not until lifted).
  void OnShipped(const std::string& key, const amqp_envelope_t& env) {
    rabbitmq::ProcessSpan process(env, "crm.shipments", ProcessOpts());
    const std::string order = process.order_id();
    const SpanContext pctx = process.context();
    process.End(StepStatus::kOk);
    auto close = [this, key, order, pctx] {
      Span c = Child("close order", pctx, order);
      Milestone(c, o.pacing.stages[5]);
      SetStepStatus(c, StepStatus::kOk);
      c.End();
      ++stats.orders_closed;
      Ack(key);
    };
    const Micros delay = Jittered(o.pacing.close, o.pacing.close_deadline, o.seed, order, "close");
    if (const FaultSpec* no_close = Fault(FaultKind::kCrmNoClose, order)) {
      if (no_close->lift_after) After(std::max(delay, *no_close->lift_after), close);
      return;
    }
    After(delay, close);
  }

  static std::string HeaderOrder(const amqp_envelope_t& env) {
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

  // A deep copy of the parts of an envelope ProcessSpan reads, owned by a pool of its own.
  static amqp_envelope_t CopyEnvelope(const amqp_envelope_t& env) {
    amqp_envelope_t c{};
    c.channel = env.channel;
    c.delivery_tag = env.delivery_tag;
    c.redelivered = env.redelivered;
    c.consumer_tag = amqp_bytes_malloc_dup(env.consumer_tag);
    c.exchange = amqp_bytes_malloc_dup(env.exchange);
    c.routing_key = amqp_bytes_malloc_dup(env.routing_key);
    init_amqp_pool(&c.message.pool, 4096);
    c.message.body = amqp_bytes_malloc_dup(env.message.body);
    amqp_table_clone(&env.message.properties.headers, &c.message.properties.headers,
                     &c.message.pool);
    amqp_basic_properties_t* props = &c.message.properties;
    const auto& src = env.message.properties;
    props->_flags = src._flags;
    props->delivery_mode = src.delivery_mode;
    auto dup = [&](amqp_bytes_t b) {
      amqp_bytes_t out{};
      if (b.len == 0) return out;
      out.bytes = amqp_pool_alloc(&c.message.pool, b.len);
      out.len = b.len;
      std::memcpy(out.bytes, b.bytes, b.len);
      return out;
    };
    props->message_id = dup(src.message_id);
    props->correlation_id = dup(src.correlation_id);
    props->content_type = dup(src.content_type);
    return c;
  }
  static void DestroyCopy(amqp_envelope_t& c) {
    amqp_bytes_free(c.consumer_tag);
    amqp_bytes_free(c.exchange);
    amqp_bytes_free(c.routing_key);
    amqp_bytes_free(c.message.body);
    empty_amqp_pool(&c.message.pool);
  }

  // ---- queue faults
  void ScheduleQueueFaults() {
    for (const FaultSpec& f : o.faults) {
      if (!IsQueueFault(f.kind)) continue;
      const int ch = ChannelOf(f.queue);
      if (ch == 0) continue;  // another role consumes it
      ++queue_faults_pending;
      const size_t i = static_cast<size_t>(ch - 1);
      const FaultSpec* fp = &f;
      if (f.kind == FaultKind::kConsumerGone) {
        After(
            f.after,
            [this, i, fp] {
              std::fprintf(stderr, "%s: fault %s: cancelling the consumer of %s\n", name.c_str(),
                           fp->text.c_str(), consumed[i].c_str());
              gone[i] = true;
              Unsubscribe(i);
              if (fp->lift_after)
                After(
                    *fp->lift_after,
                    [this, i] {
                      std::fprintf(stderr, "%s: consuming %s again\n", name.c_str(),
                                   consumed[i].c_str());
                      gone[i] = false;
                      if (consume_link.connected()) Subscribe(i);
                      --queue_faults_pending;
                    },
                    false);
            },
            false);
      } else {
        SlowQueue& s = slow[f.queue];
        s.fault = fp;
        After(
            f.after,
            [this, fp] {
              SlowQueue& sq = slow[fp->queue];
              sq.active = true;
              sq.next = Clock::now();
              if (fp->lift_after)
                After(
                    *fp->lift_after,
                    [this, fp] {
                      slow[fp->queue].active = false;
                      --queue_faults_pending;
                    },
                    false);
            },
            false);
      }
    }
  }

  // ---- partner
  void StartOrders() {
    if (starting_done || stopping) return;
    const TimePoint now = Clock::now();
    for (int burst = 0; burst < 1000; ++burst) {
      if ((o.orders && next_order > *o.orders) || (o.duration && now - started >= *o.duration)) {
        starting_done = true;
        self->finished_.store(true);
        return;
      }
      const TimePoint due = started + std::chrono::microseconds(static_cast<int64_t>(
                                          static_cast<double>(next_order - 1) * 1e6 / o.rate));
      if (due > now) return;
      StartOrder(OrderId(o.order_prefix, o.seed, next_order++));
    }
  }
  void StartOrder(const std::string& order) {
    StartOptions so;
    so.root = true;
    Span submit(provider, "submit order", so);
    SetOrder(submit, order);
    SetPartner(submit, "partner-" + std::to_string(o.seed));
    Send("order.submit", order, submit.context(), {});
    SetStepStatus(submit, StepStatus::kOk);
    submit.End();
    ++stats.orders_started;
    last_activity = Clock::now();
    if (report != nullptr) {
      nlohmann::json j;
      j["order_id"] = order;
      j["faults"] = nlohmann::json::array();
      for (const FaultSpec& f : o.faults)
        if (f.Selects(o.seed, order)) j["faults"].push_back(FaultName(f.kind));
      report->Line(j.dump());
    }
  }

  void Progress() {
    const TimePoint now = Clock::now();
    if (o.quiet || now < next_progress) return;
    next_progress = now + std::chrono::seconds(5);
    std::fprintf(
        stderr,
        "%s: started %llu, processed %llu, published %llu (failed %llu), closed %llu, "
        "in hand %zu, to publish %zu, reconnects %llu\n",
        name.c_str(), static_cast<unsigned long long>(stats.orders_started),
        static_cast<unsigned long long>(stats.messages_processed),
        static_cast<unsigned long long>(stats.published),
        static_cast<unsigned long long>(stats.publish_failures),
        static_cast<unsigned long long>(stats.orders_closed), hand_open + order_timers,
        outbox.size(),
        static_cast<unsigned long long>(consume_link.reconnects() + publish_link.reconnects()));
  }

  void BeginStop() {
    stopping = true;
    drain_deadline = Clock::now() + o.drain;
    if (role != Role::kPartner || !outbox.empty())
      std::fprintf(
          stderr, "%s: stopping: finishing %zu deliveries in hand, %zu to publish (up to %.1f s)\n",
          name.c_str(), hand_open, outbox.size(), std::chrono::duration<double>(o.drain).count());
    for (size_t i = 0; i < consumed.size(); ++i)
      if (!gone[i]) Unsubscribe(i);
    // Deliveries waiting behind a slow consumer are not in hand yet: left to the broker.
    OnConsumeLost();
  }

  Stats Run(const std::atomic<bool>& stop) {
    started = Clock::now();
    last_activity = started;
    next_progress = started + std::chrono::seconds(5);
    ScheduleQueueFaults();
    while (true) {
      if (stop.load() && !stopping) BeginStop();
      const TimePoint now = Clock::now();
      if (stopping && ((hand_open + order_timers == 0 && outbox.empty()) || now >= drain_deadline))
        break;
      if (role == Role::kPartner && starting_done && outbox.empty()) break;
      RunTimers();
      EnsureLinks();
      Flush();
      if (role == Role::kPartner) StartOrders();
      DrainSlow();
      Progress();
      self->idle_.store(hand_open + order_timers == 0 && outbox.empty() &&
                        queue_faults_pending == 0 &&
                        Clock::now() - last_activity > std::chrono::seconds(2));
      // Sleep until the next timer, at most 20 ms (partner: its next order; links: backoff).
      Micros wait(20000);
      if (!timers.empty())
        wait = std::min(wait, std::max(Micros(0), std::chrono::duration_cast<Micros>(
                                                      timers.top().at - Clock::now())));
      if (role == Role::kPartner && !starting_done)
        wait = std::min(wait, Micros(static_cast<int64_t>(1e6 / o.rate)));
      if (consume_link.connected() && !stopping) {
        Consume(wait);
      } else if (consume_link.connected()) {
        Consume(std::min(wait, Micros(5000)));
      } else {
        std::this_thread::sleep_for(std::min(wait, Micros(5000)));
      }
    }
    stats.unsent = outbox.size();
    if (hand_open + order_timers > 0 || !outbox.empty())
      std::fprintf(stderr,
                   "%s: %zu deliveries left unacked (the broker redelivers them), %zu publishes "
                   "not sent\n",
                   name.c_str(), hand.size(), outbox.size());
    consume_link.Close();
    publish_link.Close();
    stats.reconnects = consume_link.reconnects() + publish_link.reconnects();
    provider.ForceFlush(std::chrono::seconds(10));
    provider.Shutdown(std::chrono::seconds(5));
    const TracerStats ts = provider.stats();
    stats.spans_ended = ts.spans_ended;
    stats.spans_exported = ts.exported;
    stats.spans_dropped = ts.dropped_queue_full + ts.dropped_export_failed;
    if (report != nullptr) report->Line(StatsJson(stats));
    return stats;
  }
};

RoleRunner::RoleRunner(Role role, const Options& options, TracerProvider& provider,
                       ReportWriter* report)
    : impl_(std::make_unique<Impl>(this, role, options, provider, report)) {}

RoleRunner::~RoleRunner() = default;

Stats RoleRunner::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }

}  // namespace ordertrace::sim
