// RabbitMQ middleware over librabbitmq (include/ordertrace/rabbitmq.h).
#include "ordertrace/rabbitmq.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "ordertrace/conventions.h"

namespace ordertrace::rabbitmq {
namespace {

std::atomic<uint64_t> g_malformed{0};

std::string_view View(amqp_bytes_t b) noexcept {
  if (b.len == 0 || b.bytes == nullptr) return {};
  return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

amqp_bytes_t Bytes(std::string_view s) noexcept {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

// A publish whose confirm AwaitConfirms() reads (PublishOptions::defer_confirm): its span,
// open until then.
struct Deferred {
  Span span;
  std::string message_id;
};
using ChannelKey = std::pair<amqp_connection_state_t, amqp_channel_t>;

// Publish sequence numbers of the channels this library put in confirm mode, and their
// deferred publishes by sequence number.
struct ConfirmRegistry {
  std::mutex mu;
  std::map<ChannelKey, uint64_t> next;  // next seq no
  std::map<ChannelKey, std::map<uint64_t, Deferred>> deferred;
};

ConfirmRegistry& Registry() noexcept {
  static ConfirmRegistry* r = new ConfirmRegistry();  // never destroyed: usable at exit
  return *r;
}

// 0 when the channel is not known to be in confirm mode; else this publish's sequence number.
uint64_t TakeSequence(amqp_connection_state_t conn, amqp_channel_t channel) noexcept {
  ConfirmRegistry& r = Registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.next.find({conn, channel});
  if (it == r.next.end()) return 0;
  return it->second++;
}

// Ends a deferred publish's span as Publish() ends a failed one.
void EndFailed(Span& span, PublishStatus status, const std::string& error) noexcept {
  SetStepStatus(span, status == PublishStatus::kTimeout ? StepStatus::kTimeout : StepStatus::kFail,
                PublishStatusName(status), error.empty() ? PublishStatusName(status) : error);
  span.End();
}

void ForgetChannel(amqp_connection_state_t conn, amqp_channel_t channel) noexcept {
  std::map<uint64_t, Deferred> dropped;
  {
    ConfirmRegistry& r = Registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.next.erase({conn, channel});
    if (auto it = r.deferred.find({conn, channel}); it != r.deferred.end()) {
      dropped.swap(it->second);
      r.deferred.erase(it);
    }
  }
  for (auto& [seq, d] : dropped) EndFailed(d.span, PublishStatus::kChannelClosed, "");
}

// The broker's end of the connection's socket.
bool PeerAddress(amqp_connection_state_t conn, std::string* address, int* port) noexcept {
  const int fd = amqp_get_sockfd(conn);
  if (fd < 0) return false;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)) == nullptr) return false;
    *port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)) == nullptr) return false;
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  try {
    address->assign(buf);
  } catch (...) {
    return false;
  }
  return true;
}

void SetPeer(Span& span, amqp_connection_state_t conn) noexcept {
  if (conn == nullptr || !span.recording()) return;
  std::string address;
  int port = 0;
  if (!PeerAddress(conn, &address, &port)) return;
  span.SetAttribute("network.peer.address", address);
  span.SetAttribute("network.peer.port", static_cast<int64_t>(port));
}

std::string NewMessageId() {
  return ToHex(NewTraceId());  // 32 random hex digits
}

std::string ReplyText(int code, amqp_bytes_t text) {
  std::string s = std::to_string(code);
  if (text.len > 0) {
    s += ' ';
    s.append(View(text));
  }
  return s;
}

// Reads the frames of `conn` for `channel`'s publisher confirms until `done()` says enough or
// `deadline` passes: each basic.ack / basic.nack goes to `on_confirm(tag, multiple, nack)`,
// each basic.return (with its message, read here) to `on_return(reply code, text, message id)`.
// kOk when done; else the failure (the channel or connection closed by the broker, answered with
// close-ok; the socket; the timeout), with the broker's text and reply code.  Frames of other
// channels are read and dropped (rabbitmq.h: publish with confirms on a connection of its own).
template <typename OnConfirm, typename OnReturn, typename Done>
PublishStatus ReadConfirms(amqp_connection_state_t conn, amqp_channel_t channel,
                           std::chrono::steady_clock::time_point deadline,
                           std::chrono::milliseconds timeout, OnConfirm on_confirm,
                           OnReturn on_return, Done done, std::string* error, int* reply_code) {
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count();
    if (left <= 0) {
      *error = "no publisher confirm within " + std::to_string(timeout.count()) + " ms";
      return PublishStatus::kTimeout;
    }
    timeval tv{static_cast<time_t>(left / 1000000), static_cast<suseconds_t>(left % 1000000)};
    amqp_frame_t frame{};
    const int rc = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) continue;  // the loop checks the deadline
    if (rc != AMQP_STATUS_OK) {
      *error = amqp_error_string2(rc);
      return rc == AMQP_STATUS_CONNECTION_CLOSED ? PublishStatus::kConnectionClosed
                                                 : PublishStatus::kSocketError;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;  // content of another channel's delivery
    const amqp_method_number_t id = frame.payload.method.id;
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
      const auto* close = static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
      *reply_code = close->reply_code;
      *error = ReplyText(close->reply_code, close->reply_text);
      amqp_connection_close_ok_t ok{};
      amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      ForgetConnection(conn);
      return PublishStatus::kConnectionClosed;
    }
    if (frame.channel != channel) continue;  // another channel's traffic: dropped (see header)
    switch (id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* a = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
        on_confirm(a->delivery_tag, a->multiple != 0, false);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        const auto* n = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
        on_confirm(n->delivery_tag, n->multiple != 0, true);
        break;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        const auto* r = static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
        const int code = r->reply_code;
        std::string text = ReplyText(code, r->reply_text);
        // The returned message's header and body frames follow.
        amqp_message_t msg{};
        amqp_rpc_reply_t reply = amqp_read_message(conn, channel, &msg, 0);
        std::string message_id;
        if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
          if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
            message_id.assign(View(msg.properties.message_id));
          amqp_destroy_message(&msg);
        }
        on_return(code, std::move(text), message_id);
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD: {
        const auto* close = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
        *reply_code = close->reply_code;
        *error = ReplyText(close->reply_code, close->reply_text);
        amqp_channel_close_ok_t ok{};
        amqp_send_method(conn, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        ForgetChannel(conn, channel);
        return PublishStatus::kChannelClosed;
      }
      default:
        break;
    }
  }
  return PublishStatus::kOk;
}

// Waits for the confirm of publish `seq` on `channel`.  Fills result on failure.
void WaitForConfirm(amqp_connection_state_t conn, amqp_channel_t channel, uint64_t seq,
                    std::string_view message_id, std::chrono::milliseconds timeout,
                    PublishResult* result) {
  bool confirmed = false, nacked = false, returned = false;
  const PublishStatus failed = ReadConfirms(
      conn, channel, std::chrono::steady_clock::now() + timeout, timeout,
      [&](uint64_t tag, bool multiple, bool nack) {
        if (!(tag == seq || (multiple && tag >= seq))) return;  // an earlier publish's
        confirmed = true;
        nacked = nack;
      },
      [&](int code, std::string text, const std::string& returned_id) {
        // A message without an id is taken as ours (it can only be this one's or an earlier
        // unconfirmed publish's).
        if (!returned_id.empty() && returned_id != message_id) return;
        returned = true;
        result->reply_code = code;
        result->error = std::move(text);
      },
      [&] { return confirmed; }, &result->error, &result->reply_code);
  if (failed != PublishStatus::kOk) {
    result->status = failed;
  } else if (nacked) {
    result->status = PublishStatus::kNacked;
    result->error = "basic.nack from the broker";
  } else if (returned) {
    result->status = PublishStatus::kReturned;
  }
}

// Whether the table has an entry named traceparent (any case, any kind).
bool HasTraceparent(const amqp_table_t& table) noexcept {
  for (int i = 0; i < table.num_entries; ++i) {
    std::string_view key = View(table.entries[i].key);
    if (key.size() != kTraceparentHeader.size()) continue;
    bool same = true;
    for (size_t j = 0; j < key.size() && same; ++j)
      same = std::tolower(static_cast<unsigned char>(key[j])) == kTraceparentHeader[j];
    if (same) return true;
  }
  return false;
}

}  // namespace

std::string ProducerDestination(std::string_view exchange, std::string_view routing_key) {
  if (!exchange.empty() && !routing_key.empty()) {
    std::string s(exchange);
    s += ':';
    s.append(routing_key);
    return s;
  }
  if (!exchange.empty()) return std::string(exchange);
  if (!routing_key.empty()) return std::string(routing_key);
  return "amq.default";
}

std::string ConsumerDestination(std::string_view exchange, std::string_view routing_key,
                                std::string_view queue) {
  if (routing_key == queue) queue = {};
  std::string s;
  for (std::string_view part : {exchange, routing_key, queue}) {
    if (part.empty()) continue;
    if (!s.empty()) s += ':';
    s.append(part);
  }
  return s.empty() ? std::string("amq.default") : s;
}

const char* PublishStatusName(PublishStatus status) noexcept {
  switch (status) {
    case PublishStatus::kOk:
      return "";
    case PublishStatus::kNacked:
      return "nack";
    case PublishStatus::kReturned:
      return "unroutable";
    case PublishStatus::kTimeout:
      return "timeout";
    case PublishStatus::kChannelClosed:
      return "channel_closed";
    case PublishStatus::kConnectionClosed:
      return "connection_closed";
    case PublishStatus::kSocketError:
      return "socket_error";
  }
  return "socket_error";
}

bool EnableConfirms(amqp_connection_state_t conn, amqp_channel_t channel,
                    std::string* error) noexcept {
  try {
    amqp_confirm_select(conn, channel);
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
      if (error != nullptr) {
        if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
          *error = amqp_error_string2(reply.library_error);
        } else if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                   reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
          const auto* c = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
          *error = ReplyText(c->reply_code, c->reply_text);
        } else {
          *error = "confirm.select failed";
        }
      }
      return false;
    }
    ConfirmRegistry& r = Registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.next[{conn, channel}] = 1;
    return true;
  } catch (...) {
    if (error != nullptr) error->clear();
    return false;
  }
}

void ForgetConnection(amqp_connection_state_t conn) noexcept {
  std::vector<std::map<uint64_t, Deferred>> dropped;
  {
    ConfirmRegistry& r = Registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (auto it = r.next.begin(); it != r.next.end();) {
      if (it->first.first == conn) {
        it = r.next.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = r.deferred.begin(); it != r.deferred.end();) {
      if (it->first.first == conn) {
        try {
          dropped.push_back(std::move(it->second));
        } catch (...) {  // out of memory: the spans end (unset) with the map
        }
        it = r.deferred.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& channel : dropped)
    for (auto& [seq, d] : channel) EndFailed(d.span, PublishStatus::kConnectionClosed, "");
}

PublishResult Publish(amqp_connection_state_t conn, amqp_channel_t channel,
                      std::string_view exchange, std::string_view routing_key,
                      std::string_view body, const amqp_basic_properties_t* properties,
                      const PublishOptions& options) noexcept {
  PublishResult result;
  TracerProvider& provider = options.provider ? *options.provider : GlobalTracerProvider();
  StartOptions so;
  so.kind = SpanKind::kProducer;
  so.parent = options.parent;
  try {
    const std::string destination = ProducerDestination(exchange, routing_key);
    Span span(provider, "publish " + destination, so);
    span.SetAttribute(kMessagingSystemKey, "rabbitmq");
    span.SetAttribute(kMessagingOperationTypeKey, "send");
    span.SetAttribute(kMessagingOperationNameKey, "publish");
    span.SetAttribute(kMessagingDestinationNameKey, destination);
    if (!routing_key.empty()) span.SetAttribute(kMessagingRabbitmqRoutingKeyKey, routing_key);
    span.SetAttribute(kMessagingBodySizeKey, static_cast<int64_t>(body.size()));
    if (options.order_on_span) SetOrder(span, options.order_id);
    SetPeer(span, conn);

    amqp_basic_properties_t props{};
    if (properties != nullptr) props = *properties;
    if (!options.message_id.empty()) {
      result.message_id = options.message_id;
    } else if ((props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && props.message_id.len > 0) {
      result.message_id.assign(View(props.message_id));
    } else {
      result.message_id = NewMessageId();
    }
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = Bytes(result.message_id);
    span.SetAttribute(kMessagingMessageIdKey, result.message_id);

    // The caller's headers, then ours.
    amqp_table_t base{0, nullptr};
    if (props._flags & AMQP_BASIC_HEADERS_FLAG) base = props.headers;
    AmqpHeaders headers(base);
    Inject(span.context(), options.baggage, headers);
    if (!options.order_id.empty() && !headers.Get(kOrderIdHeader))
      headers.Set(kOrderIdHeader, options.order_id);
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = headers.table();
    result.context = span.context();

    if (options.wait_for_confirm || options.defer_confirm) {
      result.sequence = TakeSequence(conn, channel);
      if (result.sequence == 0) {
        std::string error;
        if (!EnableConfirms(conn, channel, &error)) {
          result.status = PublishStatus::kSocketError;
          result.error = "confirm.select: " + error;
        } else {
          result.sequence = TakeSequence(conn, channel);
        }
      }
    } else {
      result.sequence = TakeSequence(conn, channel);  // counts on a confirm channel
    }

    if (result.ok()) {
      const int rc = amqp_basic_publish(conn, channel, Bytes(exchange), Bytes(routing_key),
                                        options.mandatory ? 1 : 0, 0, &props, Bytes(body));
      if (rc != AMQP_STATUS_OK) {
        result.status = rc == AMQP_STATUS_CONNECTION_CLOSED ? PublishStatus::kConnectionClosed
                                                            : PublishStatus::kSocketError;
        result.error = amqp_error_string2(rc);
      } else if (options.defer_confirm) {
        // Its span stays open: AwaitConfirms() ends it with the broker's answer.
        ConfirmRegistry& r = Registry();
        std::lock_guard<std::mutex> lock(r.mu);
        r.deferred[{conn, channel}].emplace(result.sequence,
                                            Deferred{std::move(span), result.message_id});
        return result;
      } else if (options.wait_for_confirm) {
        WaitForConfirm(conn, channel, result.sequence, result.message_id, options.timeout, &result);
        amqp_maybe_release_buffers_on_channel(conn, channel);
      }
    }

    if (result.ok()) {
      SetStepStatus(span, StepStatus::kOk);
    } else {
      if (result.error.empty()) result.error = PublishStatusName(result.status);
      SetStepStatus(
          span, result.status == PublishStatus::kTimeout ? StepStatus::kTimeout : StepStatus::kFail,
          PublishStatusName(result.status), result.error);
    }
    span.End();
  } catch (...) {  // out of memory
    if (result.ok()) {
      result.status = PublishStatus::kSocketError;
      result.error = "out of memory";
    }
  }
  return result;
}

std::vector<ConfirmOutcome> AwaitConfirms(amqp_connection_state_t conn, amqp_channel_t channel,
                                          std::chrono::milliseconds timeout) noexcept {
  std::vector<ConfirmOutcome> out;
  std::map<uint64_t, Deferred> waiting;  // this call's, taken out of the registry
  try {
    {
      ConfirmRegistry& r = Registry();
      std::lock_guard<std::mutex> lock(r.mu);
      auto it = r.deferred.find({conn, channel});
      if (it == r.deferred.end()) return out;
      waiting.swap(it->second);
      r.deferred.erase(it);
    }
    out.reserve(waiting.size());
    for (const auto& [seq, d] : waiting) {
      ConfirmOutcome o;
      o.sequence = seq;
      out.push_back(std::move(o));
    }
    std::vector<bool> settled(out.size(), false);
    size_t open = out.size();
    std::string error;
    int reply_code = 0;
    const PublishStatus failed = ReadConfirms(
        conn, channel, std::chrono::steady_clock::now() + timeout, timeout,
        [&](uint64_t tag, bool multiple, bool nack) {
          for (size_t i = 0; i < out.size(); ++i) {
            if (settled[i] || !(out[i].sequence == tag || (multiple && out[i].sequence < tag)))
              continue;
            settled[i] = true;
            --open;
            if (nack) {
              out[i].status = PublishStatus::kNacked;
              out[i].error = "basic.nack from the broker";
            } else if (!out[i].error.empty()) {
              out[i].status = PublishStatus::kReturned;  // basic.return came before the ack
            }
          }
        },
        [&](int code, std::string text, const std::string& message_id) {
          for (size_t i = 0; i < out.size(); ++i) {
            if (settled[i] || waiting[out[i].sequence].message_id != message_id) continue;
            out[i].reply_code = code;
            out[i].error = std::move(text);
            break;
          }
        },
        [&] { return open == 0; }, &error, &reply_code);
    for (size_t i = 0; i < out.size(); ++i) {
      if (!settled[i]) {
        out[i].status = failed;
        out[i].error = error;
        out[i].reply_code = reply_code;
      }
      Span& span = waiting[out[i].sequence].span;
      if (out[i].ok()) {
        SetStepStatus(span, StepStatus::kOk);
        span.End();
      } else {
        EndFailed(span, out[i].status, out[i].error);
      }
    }
    amqp_maybe_release_buffers_on_channel(conn, channel);
  } catch (...) {  // out of memory: the spans end (without a status) with `waiting`
    out.clear();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Consume

uint64_t MalformedHeaderCount() noexcept { return g_malformed.load(std::memory_order_relaxed); }

ProcessSpan::ProcessSpan(const amqp_envelope_t& envelope, std::string_view queue,
                         const ProcessOptions& options) noexcept {
  TracerProvider& provider = options.provider ? *options.provider : GlobalTracerProvider();
  const amqp_basic_properties_t& props = envelope.message.properties;
  delivery_tag_ = envelope.delivery_tag;
  redelivered_ = envelope.redelivered != 0;
  try {
    if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
      Extract(props.headers, &creation_, &baggage_);
      if (!creation_.valid() && HasTraceparent(props.headers)) {
        malformed_ = true;
        g_malformed.fetch_add(1, std::memory_order_relaxed);
      }
      if (options.order_id.empty()) {
        if (auto v = AmqpTableCarrier(props.headers).Get(kOrderIdHeader)) order_id_.assign(*v);
      }
    }
    if (!options.order_id.empty()) order_id_ = options.order_id;
    if ((props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) && props.message_id.len > 0)
      message_id_.assign(View(props.message_id));

    const std::string_view exchange = View(envelope.exchange);
    const std::string_view routing_key = View(envelope.routing_key);
    const std::string destination = ConsumerDestination(exchange, routing_key, queue);
    StartOptions so;
    so.kind = SpanKind::kConsumer;
    if (creation_.valid()) {
      so.parent = &creation_;
      so.links.push_back(Link{creation_, {}});
    } else {
      so.root = true;  // a message without (usable) context starts a new trace
    }
    span_ = Span(provider, "process " + destination, so);
    span_.SetAttribute(kMessagingSystemKey, "rabbitmq");
    span_.SetAttribute(kMessagingOperationTypeKey, "process");
    span_.SetAttribute(kMessagingOperationNameKey, "process");
    span_.SetAttribute(kMessagingDestinationNameKey, destination);
    if (!queue.empty()) span_.SetAttribute(kMessagingSubscriptionNameKey, queue);
    if (!routing_key.empty()) span_.SetAttribute(kMessagingRabbitmqRoutingKeyKey, routing_key);
    span_.SetAttribute(kMessagingRabbitmqDeliveryTagKey,
                       static_cast<int64_t>(envelope.delivery_tag));
    if (!message_id_.empty()) span_.SetAttribute(kMessagingMessageIdKey, message_id_);
    if ((props._flags & AMQP_BASIC_CORRELATION_ID_FLAG) && props.correlation_id.len > 0)
      span_.SetAttribute(kMessagingConversationIdKey, View(props.correlation_id));
    span_.SetAttribute(kMessagingBodySizeKey, static_cast<int64_t>(envelope.message.body.len));
    if (options.order_on_span) SetOrder(span_, order_id_);
    SetPeer(span_, options.connection);
    if (malformed_) span_.SetAttribute(kTraceContextMalformedKey, true);
    if (redelivered_) SetStepStatus(span_, StepStatus::kRetry);
  } catch (...) {  // out of memory: whatever was built so far
  }
  if (options.make_current) scope_.emplace(span_);
}

ProcessSpan::~ProcessSpan() { End(); }

bool ProcessSpan::Ack(amqp_connection_state_t conn, amqp_channel_t channel) noexcept {
  const int rc = amqp_basic_ack(conn, channel, delivery_tag_, 0);
  if (rc == AMQP_STATUS_OK) {
    span_.AddEvent("ack");
    return true;
  }
  settle_failed_ = true;
  SetStepStatus(span_, StepStatus::kFail, "ack_failed", amqp_error_string2(rc));
  return false;
}

bool ProcessSpan::Nack(amqp_connection_state_t conn, amqp_channel_t channel,
                       bool requeue) noexcept {
  const int rc = amqp_basic_nack(conn, channel, delivery_tag_, 0, requeue ? 1 : 0);
  if (rc == AMQP_STATUS_OK) {
    try {
      span_.AddEvent("nack", {Attribute{std::string(kMessagingRabbitmqRequeueKey), requeue}});
    } catch (...) {
    }
    return true;
  }
  settle_failed_ = true;
  SetStepStatus(span_, StepStatus::kFail, "nack_failed", amqp_error_string2(rc));
  return false;
}

void ProcessSpan::End(StepStatus status, std::string_view error_type,
                      std::string_view message) noexcept {
  if (ended_) return;
  if (status == StepStatus::kOk || status == StepStatus::kRetry) {
    if (!settle_failed_) {
      if (redelivered_) {
        SetStepStatus(span_, StepStatus::kRetry);
        if (status == StepStatus::kOk) span_.SetStatus(SpanStatus::kOk);
      } else {
        SetStepStatus(span_, status);
      }
    }
  } else {
    SetStepStatus(span_, status, error_type, message);
  }
  End();
}

void ProcessSpan::End() noexcept {
  if (ended_) return;
  ended_ = true;
  span_.End();
}

}  // namespace ordertrace::rabbitmq
