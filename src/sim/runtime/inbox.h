// The consuming side of a sim role: one AMQP connection with a channel per consumed queue
// (basic.qos --prefetch, manual acks), the deliveries in hand until their step acks them, the
// redeliveries that follow a lost connection, and what queue faults do to consuming (a cancelled
// consumer, a throttled one).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/options.h"
#include "sim/runtime/amqp_link.h"
#include "sim/runtime/report.h"

namespace ordertrace::sim {

// Thread-safety: not thread-safe; its role's loop thread uses it.
class Inbox {
 public:
  using TimePoint = Clock::time_point;
  // A role's step for one queue.  `key` names the delivery (queue/message id) for Ack() and
  // Hold(); the envelope is valid during the call only.
  using Step = std::function<void(const std::string& key, const amqp_envelope_t& delivery)>;

  // `declared`: the topology declared on every (re)connect.  Counts deliveries in
  // stats.messages_processed.
  Inbox(const Options& options, const std::string& role, std::vector<QueueDef> declared,
        Stats& stats);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Consumes `queue` (on the next channel) and hands its deliveries to `step`.  Before the
  // first Connect().
  void AddQueue(std::string queue, Step step);
  // Index of `queue` among the consumed ones; -1 when this role does not consume it.
  int IndexOf(const std::string& queue) const;
  const std::string& queue(size_t index) const { return queues_[index].name; }
  bool consumes() const { return !queues_.empty(); }

  // Connects (topology, qos, consumers) when a connection attempt is due and the role consumes
  // anything and is not stopping.
  void Connect(TimePoint now);
  bool connected() const { return link_.connected(); }
  amqp_connection_state_t connection() const { return link_.get(); }
  // Reads deliveries for up to `wait`, then whatever is buffered without waiting, and hands
  // each to its step (or to the throttle of a slow-consumer queue).
  void Poll(Micros wait);
  // Hands deliveries held back by a throttle to their steps, at the fault's rate (all of them
  // once the throttle is lifted).
  void DrainThrottled();
  // When the last delivery arrived (the epoch before the first).
  TimePoint last_delivery() const { return last_delivery_; }

  // The delivery `key` is done: acked now, or, when its connection died meanwhile, when the
  // broker redelivers it.
  void Ack(const std::string& key);
  // Keeps a copy of the delivery `key` (a hung handler), redeliveries included, until Release().
  void Hold(const std::string& key, const amqp_envelope_t& delivery);
  // Runs `step` with the copy Hold() kept, unless it was released already, then frees it.
  void Release(const std::string& key, const Step& step);
  // Deliveries in hand whose work is not done.
  size_t open() const { return open_; }
  // Deliveries not acked yet (open ones and done ones waiting for their redelivery).
  size_t unacked() const { return hand_.size(); }

  // consumer-gone: cancels the consumer of queue `index` until Resume(index).
  void Cancel(size_t index);
  void Resume(size_t index);
  // slow-consumer: deliveries of queue `index` wait, and go to their step `per_second`, until
  // Unthrottle(index).
  void Throttle(size_t index, double per_second);
  void Unthrottle(size_t index);

  // Stops consuming for good: cancels the consumers and leaves deliveries waiting behind a
  // throttle (not in hand yet) to the broker; later deliveries are not handled (the broker
  // requeues them when the connection closes).
  void Stop();
  bool stopping() const { return stopping_; }
  void Close() { link_.Close(); }
  uint64_t reconnects() const { return link_.reconnects(); }

 private:
  // A delivery in hand: acked when its step's work and publishes are done.
  struct Hand {
    amqp_channel_t channel = 0;
    uint64_t tag = 0;
    uint64_t generation = 0;
    bool done = false;  // work done; the ack waits for the redelivery (connection was lost)
    bool held = false;  // Hold(): `envelope` kept
    amqp_envelope_t envelope{};
  };
  struct Queue {
    std::string name;
    Step step;
    bool cancelled = false;  // consumer-gone in effect
    bool throttled = false;  // slow-consumer in effect
    double per_second = 0;
    TimePoint next{};                     // when the next throttled delivery may go
    std::deque<amqp_envelope_t> waiting;  // owned
  };

  void Deliver(amqp_envelope_t& envelope);
  void Handle(Queue& queue, const std::string& key, const amqp_envelope_t& envelope);
  bool Subscribe(size_t index);
  void Unsubscribe(size_t index);
  // The connection died: deliveries waiting behind a throttle die with it (redelivered).
  void Lost(const std::string& reason);
  void DropWaiting();

  const Options& options_;
  const std::vector<QueueDef> declared_;
  Stats& stats_;
  AmqpLink link_;
  std::vector<Queue> queues_;  // channel i+1 consumes queues_[i]
  std::unordered_map<std::string, Hand> hand_;
  size_t open_ = 0;
  bool stopping_ = false;
  TimePoint last_delivery_{};
};

}  // namespace ordertrace::sim
