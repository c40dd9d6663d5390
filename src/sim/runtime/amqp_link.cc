#include "sim/runtime/amqp_link.h"

#include <amqp_tcp_socket.h>

#include <algorithm>
#include <cstdio>

#include "ordertrace/rabbitmq.h"

namespace ordertrace::sim {

namespace {

std::string LibraryError(int status) { return amqp_error_string2(status); }

std::string DescribeReply(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return LibraryError(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed by the broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return "channel closed by the broker: " + std::to_string(m->reply_code) + " " +
               ToString(m->reply_text);
      }
      return "server exception";
  }
  return "unknown reply";
}

}  // namespace

AmqpLink::AmqpLink(AmqpUrl url, std::string name) : url_(std::move(url)), name_(std::move(name)) {}

AmqpLink::~AmqpLink() { Close(); }

std::string AmqpLink::ReplyError() const {
  if (conn_ == nullptr) return "not connected";
  return DescribeReply(amqp_get_rpc_reply(conn_));
}

bool AmqpLink::Connect(int channels, std::string* error) {
  Destroy();
  const auto fail = [&](const std::string& why) {
    *error = why;
    Destroy();
    ++attempts_;
    next_attempt_ = Clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
    if (!in_outage_) {
      in_outage_ = true;
      outage_start_ = Clock::now();
      std::fprintf(stderr, "%s: cannot connect to %s: %s; retrying with backoff\n", name_.c_str(),
                   url_.text.c_str(), why.c_str());
    }
    return false;
  };
  conn_ = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
  if (socket == nullptr) return fail("cannot create a socket");
  timeval tv{2, 0};
  int rc = amqp_socket_open_noblock(socket, url_.host.c_str(), url_.port, &tv);
  if (rc != AMQP_STATUS_OK) return fail(LibraryError(rc));
  timeval rpc{10, 0};
  amqp_set_rpc_timeout(conn_, &rpc);
  amqp_set_handshake_timeout(conn_, &rpc);
  amqp_rpc_reply_t r = amqp_login(conn_, url_.vhost.c_str(), 0, 131072, /*heartbeat=*/0,
                                  AMQP_SASL_METHOD_PLAIN, url_.user.c_str(), url_.password.c_str());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return fail("login: " + DescribeReply(r));
  for (int ch = 1; ch <= channels; ++ch) {
    amqp_channel_open(conn_, static_cast<amqp_channel_t>(ch));
    std::string e = DescribeReply(amqp_get_rpc_reply(conn_));
    if (!e.empty()) return fail("channel.open: " + e);
  }
  ++generation_;
  if (ever_connected_) ++reconnects_;
  if (in_outage_) {
    const double secs = std::chrono::duration<double>(Clock::now() - outage_start_).count();
    std::fprintf(stderr, "%s: reconnected to %s after %.1f s (%d attempts)\n", name_.c_str(),
                 url_.text.c_str(), secs, attempts_ + 1);
  }
  ever_connected_ = true;
  in_outage_ = false;
  attempts_ = 0;
  backoff_ = std::chrono::milliseconds(100);
  return true;
}

bool AmqpLink::DeclareTopology(const std::vector<QueueDef>& queues, std::string* error) {
  amqp_exchange_declare(conn_, 1, Bytes(kExchange), Bytes("direct"), /*passive=*/0,
                        /*durable=*/1, /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
  if (std::string e = ReplyError(); !e.empty()) {
    *error = "exchange.declare orders: " + e;
    return false;
  }
  for (const QueueDef& q : queues) {
    amqp_queue_declare(conn_, 1, Bytes(q.queue), 0, /*durable=*/1, /*exclusive=*/0,
                       /*auto_delete=*/0, amqp_empty_table);
    if (std::string e = ReplyError(); !e.empty()) {
      *error = std::string("queue.declare ") + q.queue + ": " + e;
      return false;
    }
    amqp_queue_bind(conn_, 1, Bytes(q.queue), Bytes(kExchange), Bytes(q.routing_key),
                    amqp_empty_table);
    if (std::string e = ReplyError(); !e.empty()) {
      *error = std::string("queue.bind ") + q.queue + ": " + e;
      return false;
    }
  }
  return true;
}

void AmqpLink::MarkDead(const std::string& reason) {
  if (conn_ == nullptr) return;
  Destroy();
  next_attempt_ = Clock::now() + backoff_;
  if (!in_outage_) {
    in_outage_ = true;
    outage_start_ = Clock::now();
    attempts_ = 0;
    std::fprintf(stderr, "%s: lost the connection to %s (%s); reconnecting\n", name_.c_str(),
                 url_.text.c_str(), reason.c_str());
  }
}

void AmqpLink::Close() {
  if (conn_ == nullptr) return;
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  Destroy();
}

void AmqpLink::Destroy() {
  if (conn_ == nullptr) return;
  // EnableConfirms() remembers connections by address: forget this one before a new
  // connection can be allocated at the same address.
  rabbitmq::ForgetConnection(conn_);
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
}

}  // namespace ordertrace::sim
