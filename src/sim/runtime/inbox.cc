#include "sim/runtime/inbox.h"

#include <algorithm>
#include <cstring>

namespace ordertrace::sim {
namespace {

// What a delivery is known by while in hand: its message id, the same on a redelivery.
std::string KeyOf(const std::string& queue, const amqp_envelope_t& env) {
  const auto& p = env.message.properties;
  if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && p.message_id.len > 0)
    return queue + "/" + ToString(p.message_id);
  return queue + "/tag/" + std::to_string(env.delivery_tag);
}

// A deep copy of the parts of an envelope rabbitmq::ProcessSpan reads, owned by a pool of its
// own (librabbitmq reuses the connection's buffers for the next delivery).  Freed by
// DestroyCopy().
amqp_envelope_t CopyEnvelope(const amqp_envelope_t& env) {
  amqp_envelope_t c{};
  c.channel = env.channel;
  c.delivery_tag = env.delivery_tag;
  c.redelivered = env.redelivered;
  c.consumer_tag = amqp_bytes_malloc_dup(env.consumer_tag);
  c.exchange = amqp_bytes_malloc_dup(env.exchange);
  c.routing_key = amqp_bytes_malloc_dup(env.routing_key);
  init_amqp_pool(&c.message.pool, 4096);
  c.message.body = amqp_bytes_malloc_dup(env.message.body);
  amqp_table_clone(&env.message.properties.headers, &c.message.properties.headers, &c.message.pool);
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

void DestroyCopy(amqp_envelope_t& c) {
  amqp_bytes_free(c.consumer_tag);
  amqp_bytes_free(c.exchange);
  amqp_bytes_free(c.routing_key);
  amqp_bytes_free(c.message.body);
  empty_amqp_pool(&c.message.pool);
}

}  // namespace

Inbox::Inbox(const Options& options, const std::string& role, std::vector<QueueDef> declared,
             Stats& stats)
    : options_(options),
      declared_(std::move(declared)),
      stats_(stats),
      link_(options.amqp, role + " consume") {}

Inbox::~Inbox() {
  for (auto& [key, h] : hand_)
    if (h.held) DestroyCopy(h.envelope);
  DropWaiting();
}

void Inbox::AddQueue(std::string queue, Step step) {
  Queue q;
  q.name = std::move(queue);
  q.step = std::move(step);
  queues_.push_back(std::move(q));
}

int Inbox::IndexOf(const std::string& queue) const {
  for (size_t i = 0; i < queues_.size(); ++i)
    if (queues_[i].name == queue) return static_cast<int>(i);
  return -1;
}

// ---- the connection

void Inbox::Connect(TimePoint now) {
  if (queues_.empty() || stopping_ || !link_.Due(now)) return;
  std::string error;
  if (!link_.Connect(static_cast<int>(queues_.size()), &error)) return;
  if (!link_.DeclareTopology(declared_, &error)) {
    link_.MarkDead(error);
    return;
  }
  for (size_t i = 0; i < queues_.size() && link_.connected(); ++i) {
    amqp_basic_qos(link_.get(), static_cast<amqp_channel_t>(i + 1), 0,
                   static_cast<uint16_t>(options_.prefetch), 0);
    if (std::string e = link_.ReplyError(); !e.empty()) {
      link_.MarkDead("basic.qos: " + e);
      break;
    }
    if (!queues_[i].cancelled) Subscribe(i);
  }
}

bool Inbox::Subscribe(size_t i) {
  const std::string& q = queues_[i].name;
  const amqp_channel_t ch = static_cast<amqp_channel_t>(i + 1);
  amqp_basic_consume(link_.get(), ch, Bytes(q), Bytes(q), 0, /*no_ack=*/0, 0, amqp_empty_table);
  if (std::string e = link_.ReplyError(); !e.empty()) {
    Lost("basic.consume " + q + ": " + e);
    return false;
  }
  return true;
}

void Inbox::Unsubscribe(size_t i) {
  if (!link_.connected()) return;
  const std::string& q = queues_[i].name;
  amqp_basic_cancel(link_.get(), static_cast<amqp_channel_t>(i + 1), Bytes(q));
  if (std::string e = link_.ReplyError(); !e.empty()) Lost("basic.cancel " + q + ": " + e);
}

void Inbox::Lost(const std::string& reason) {
  link_.MarkDead(reason);
  DropWaiting();
}

void Inbox::DropWaiting() {
  for (Queue& q : queues_) {
    for (auto& env : q.waiting) amqp_destroy_envelope(&env);
    q.waiting.clear();
  }
}

void Inbox::Poll(Micros wait) {
  for (int n = 0; n < 256 && link_.connected(); ++n) {
    amqp_maybe_release_buffers(link_.get());
    const Micros w = n == 0 ? wait : Micros(0);
    timeval tv{static_cast<time_t>(w.count() / 1000000),
               static_cast<suseconds_t>(w.count() % 1000000)};
    amqp_envelope_t env{};
    amqp_rpc_reply_t r = amqp_consume_message(link_.get(), &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      last_delivery_ = Clock::now();
      Deliver(env);
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      return;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // Not a delivery: a method frame from the broker.
      amqp_frame_t frame;
      timeval zero{0, 0};
      int rc = amqp_simple_wait_frame_noblock(link_.get(), &frame, &zero);
      if (rc == AMQP_STATUS_TIMEOUT) return;
      if (rc != AMQP_STATUS_OK) {
        Lost(amqp_error_string2(rc));
        return;
      }
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
          auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
          amqp_connection_close_ok_t ok{};
          amqp_send_method(link_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
          Lost("connection closed by the broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text));
          return;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
          auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
          Lost("channel closed by the broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text));
          return;
        }
        case AMQP_BASIC_CANCEL_METHOD:
          // The broker cancelled a consumer (its queue was deleted): start over.
          Lost("the broker cancelled a consumer");
          return;
        default:
          continue;
      }
    }
    Lost(r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
             ? std::string(amqp_error_string2(r.library_error))
             : std::string("connection error"));
    return;
  }
}

// Takes ownership of `env`.
void Inbox::Deliver(amqp_envelope_t& env) {
  const int ch = env.channel;
  if (ch < 1 || ch > static_cast<int>(queues_.size())) {
    amqp_destroy_envelope(&env);
    return;
  }
  Queue& queue = queues_[static_cast<size_t>(ch - 1)];
  if (stopping_) {  // not acked: the broker requeues it when the connection closes
    amqp_destroy_envelope(&env);
    return;
  }
  const std::string key = KeyOf(queue.name, env);
  auto it = hand_.find(key);
  if (it != hand_.end()) {
    Hand& h = it->second;
    ++stats_.messages_processed;
    if (h.generation == link_.generation() && !h.done) {
      // A duplicate of work in hand on this very connection (a publish retried after its
      // confirm was lost): the work in hand covers it.
      if (int rc = amqp_basic_ack(link_.get(), env.channel, env.delivery_tag, 0);
          rc != AMQP_STATUS_OK)
        Lost(std::string("basic.ack: ") + amqp_error_string2(rc));
      amqp_destroy_envelope(&env);
      return;
    }
    // A redelivery (after a reconnect) of work in hand: adopt the new delivery tag.
    h.channel = env.channel;
    h.tag = env.delivery_tag;
    h.generation = link_.generation();
    if (h.done) {
      h.done = false;
      ++open_;
      Ack(key);
    } else if (h.held) {
      DestroyCopy(h.envelope);
      h.envelope = CopyEnvelope(env);
    }
    amqp_destroy_envelope(&env);
    return;
  }
  if (queue.throttled) {
    queue.waiting.push_back(env);
    return;
  }
  Handle(queue, key, env);
  amqp_destroy_envelope(&env);
}

void Inbox::Handle(Queue& queue, const std::string& key, const amqp_envelope_t& env) {
  ++stats_.messages_processed;
  Hand& h = hand_[key];
  h.channel = env.channel;
  h.tag = env.delivery_tag;
  h.generation = link_.generation();
  ++open_;
  queue.step(key, env);
}

void Inbox::DrainThrottled() {
  const TimePoint now = Clock::now();
  for (Queue& q : queues_) {
    while (!q.waiting.empty() && (!q.throttled || now >= q.next)) {
      amqp_envelope_t env = q.waiting.front();
      q.waiting.pop_front();
      if (q.throttled)
        q.next = std::max(q.next, now - std::chrono::seconds(1)) +
                 std::chrono::microseconds(static_cast<int64_t>(1e6 / q.per_second));
      Handle(q, KeyOf(q.name, env), env);
      amqp_destroy_envelope(&env);
    }
  }
}

// ---- deliveries in hand

void Inbox::Ack(const std::string& key) {
  auto it = hand_.find(key);
  if (it == hand_.end() || it->second.done) return;
  Hand& h = it->second;
  if (link_.connected() && h.generation == link_.generation()) {
    int rc = amqp_basic_ack(link_.get(), h.channel, h.tag, 0);
    if (rc == AMQP_STATUS_OK) {
      hand_.erase(it);
      --open_;
      return;
    }
    Lost(std::string("basic.ack: ") + amqp_error_string2(rc));
    it = hand_.find(key);
    if (it == hand_.end()) return;
  }
  // The delivery tag died with its connection: the broker redelivers the message, and the
  // redelivery is acked at once (Deliver).
  it->second.done = true;
  --open_;
}

void Inbox::Hold(const std::string& key, const amqp_envelope_t& delivery) {
  Hand& h = hand_[key];
  h.held = true;
  h.envelope = CopyEnvelope(delivery);
}

void Inbox::Release(const std::string& key, const Step& step) {
  auto it = hand_.find(key);
  if (it == hand_.end() || !it->second.held) return;
  amqp_envelope_t held = it->second.envelope;
  it->second.held = false;
  it->second.envelope = amqp_envelope_t{};
  step(key, held);
  DestroyCopy(held);
}

// ---- queue faults

void Inbox::Cancel(size_t i) {
  queues_[i].cancelled = true;
  Unsubscribe(i);
}

void Inbox::Resume(size_t i) {
  queues_[i].cancelled = false;
  if (link_.connected()) Subscribe(i);
}

void Inbox::Throttle(size_t i, double per_second) {
  Queue& q = queues_[i];
  q.throttled = true;
  q.per_second = per_second;
  q.next = Clock::now();
}

void Inbox::Unthrottle(size_t i) { queues_[i].throttled = false; }

void Inbox::Stop() {
  stopping_ = true;
  for (size_t i = 0; i < queues_.size(); ++i)
    if (!queues_[i].cancelled) Unsubscribe(i);
  // Deliveries waiting behind a throttle are not in hand yet: left to the broker.
  DropWaiting();
}

}  // namespace ordertrace::sim
