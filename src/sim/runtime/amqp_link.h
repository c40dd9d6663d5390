// One AMQP connection of a sim role, over librabbitmq: connect + login, channels, the fixed
// topology (exchange `orders`, durable queues and bindings), and a reconnect schedule with
// backoff that logs once per outage and once on recovery.
//
// Thread-safety: not thread-safe; one thread (the role's event loop) uses it, as librabbitmq
// requires.
#pragma once

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#else
#include <amqp.h>
#endif

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/options.h"

namespace ordertrace::sim {

class AmqpLink {
 public:
  // `name` is for logs ("crm consume").
  AmqpLink(AmqpUrl url, std::string name);
  ~AmqpLink();  // Close()
  AmqpLink(const AmqpLink&) = delete;
  AmqpLink& operator=(const AmqpLink&) = delete;

  bool connected() const { return conn_ != nullptr; }
  amqp_connection_state_t get() const { return conn_; }
  // Bumped by every successful Connect(): delivery tags of an older generation are void.
  uint64_t generation() const { return generation_; }
  // Successful connects after the first.
  uint64_t reconnects() const { return reconnects_; }

  // Whether a connect attempt is due (not connected, backoff passed).
  bool Due(Clock::time_point now) const { return conn_ == nullptr && now >= next_attempt_; }
  // Connects, logs in and opens `channels` (1..n); on failure, schedules the next attempt
  // (backoff 100 ms doubling to 2 s) and returns false with the reason in *error.
  bool Connect(int channels, std::string* error);
  // Declares exchange `orders` and the given queues with their bindings on channel 1.
  bool DeclareTopology(const std::vector<QueueDef>& queues, std::string* error);
  // The connection broke (or the broker closed it): destroy it without the closing handshake;
  // the next Connect() is due after the backoff.  Logs the outage once.
  void MarkDead(const std::string& reason);
  // Closes cleanly (connection.close) when connected.
  void Close();

  // An error text for the last RPC reply on this connection ("" when it was normal).
  std::string ReplyError() const;

 private:
  void Destroy();

  AmqpUrl url_;
  std::string name_;
  amqp_connection_state_t conn_ = nullptr;
  uint64_t generation_ = 0;
  uint64_t reconnects_ = 0;
  bool ever_connected_ = false;
  bool in_outage_ = false;
  Clock::time_point outage_start_{};
  Clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{100};
  int attempts_ = 0;
};

inline amqp_bytes_t Bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}
inline amqp_bytes_t Bytes(const char* s) { return amqp_cstring_bytes(s); }
inline std::string ToString(amqp_bytes_t b) {
  return b.bytes == nullptr ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

}  // namespace ordertrace::sim
