// The publishing side of a sim role: one AMQP connection with publisher confirms, and the
// messages waiting to be published, in order.  Flush() publishes them in windows of kWindow,
// the confirms of a window read together (libordertrace's PublishOptions::defer_confirm and
// AwaitConfirms): one round trip to the broker per window, so a role publishes hundreds of
// persistent messages a second, not one per round trip.  A message leaves the outbox when the
// broker confirms it; a failed attempt (its publish span ends FAIL) drops the connection, and the
// message is retried after the reconnect under a `publish retry` span with status RETRY.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "ordertrace/tracer.h"
#include "sim/options.h"
#include "sim/runtime/amqp_link.h"
#include "sim/runtime/report.h"

namespace ordertrace::sim {

// Thread-safety: not thread-safe; its role's loop thread uses it.
class Outbox {
 public:
  // `declared`: the topology declared on every (re)connect.  Counts in stats.published,
  // publish_failures and publish_retries.
  Outbox(const Options& options, const std::string& role, std::vector<QueueDef> declared,
         TracerProvider& provider, Stats& stats);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Queues {"order_id": order, "what": routing_key} for `routing_key` (message id
  // `order/routing_key`, persistent), its publish span a child of `parent`; runs `done` once the
  // broker confirmed it.  Published by the next Flush() (the role's loop flushes after its
  // timers, its tick and its deliveries).
  void Send(const std::string& routing_key, const std::string& order, const SpanContext& parent,
            std::function<void()> done);
  // Connects (topology, confirms) when a connection attempt is due.
  void Connect(Clock::time_point now);
  // Publishes what waits, in order and in windows of kWindow, until the outbox is empty or a
  // publish fails.
  void Flush();
  static constexpr size_t kWindow = 64;

  size_t size() const { return waiting_.size(); }
  bool empty() const { return waiting_.empty(); }
  void Close() { link_.Close(); }
  uint64_t reconnects() const { return link_.reconnects(); }

 private:
  struct Message {
    std::string routing_key, body, order_id, message_id;
    SpanContext parent;
    int attempts = 0;
    uint64_t sequence = 0;       // of its last publish (the confirm channel's)
    std::function<void()> done;  // after the confirm
  };

  const bool order_on_span_;  // Options::order_id_on_every_span
  const std::vector<QueueDef> declared_;
  TracerProvider& provider_;
  Stats& stats_;
  AmqpLink link_;
  std::deque<Message> waiting_;
  bool flushing_ = false;  // a `done` may Send(): it only queues
};

}  // namespace ordertrace::sim
