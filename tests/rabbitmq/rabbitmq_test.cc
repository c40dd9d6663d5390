// libordertrace's RabbitMQ middleware (include/ordertrace/rabbitmq.h) on a real broker: the trace
// context crosses publish → consume, the spans carry the messaging attributes, malformed trace
// headers start a new trace and are counted, publisher-confirm failures (missing exchange,
// unroutable mandatory message, nack, broken socket) are FAIL and redeliveries RETRY.
//
// The broker is Debian's rabbitmq-server run privately (broker.h): by the ctest fixture
// rabbitmq_broker (ORDERTRACE_RABBITMQ_STATE names its state file), or by this program itself
// when run alone.  Spans are captured with an in-memory exporter.
#include "ordertrace/rabbitmq.h"

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp_tcp_socket.h>
#endif
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "rabbitmq/broker.h"
#include "rabbitmq/broker_environment.h"
#include "support/memory_exporter.h"

namespace ordertrace {
namespace {

using namespace std::chrono_literals;
using rabbitmq::ProcessOptions;
using rabbitmq::ProcessSpan;
using rabbitmq::Publish;
using rabbitmq::PublishOptions;
using rabbitmq::PublishResult;
using rabbitmq::PublishStatus;
using testing::Broker;

// ---------------------------------------------------------------------------------------------
// The broker for the whole program.

::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(
    new testing::BrokerEnvironment("ot-rabbitmq", /*use_fixture=*/true));

bool RequireInterop() {
  const char* v = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// ---------------------------------------------------------------------------------------------
// Helpers

using testing_support::MemoryExporter;

const AttributeValue* Find(const SpanData& s, std::string_view key) {
  for (const Attribute& a : s.attributes)
    if (a.key == key) return &a.value;
  return nullptr;
}
std::optional<std::string> Str(const SpanData& s, std::string_view key) {
  const AttributeValue* v = Find(s, key);
  if (v == nullptr || !std::holds_alternative<std::string>(*v)) return std::nullopt;
  return std::get<std::string>(*v);
}
std::optional<int64_t> Int(const SpanData& s, std::string_view key) {
  const AttributeValue* v = Find(s, key);
  if (v == nullptr || !std::holds_alternative<int64_t>(*v)) return std::nullopt;
  return std::get<int64_t>(*v);
}

amqp_bytes_t B(std::string_view s) { return amqp_bytes_t{s.size(), const_cast<char*>(s.data())}; }
std::string S(amqp_bytes_t b) { return std::string(static_cast<const char*>(b.bytes), b.len); }

std::string Unique(std::string_view prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  return std::string(prefix) + "-" + std::to_string(rng() % 1000000000);
}

std::string ReplyError(amqp_connection_state_t conn) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return {};
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return amqp_error_string2(r.library_error);
  return "server exception " + std::to_string(r.reply.id);
}

// One AMQP connection with channel 1 open.
class Connection {
 public:
  explicit Connection(int port) {
    conn_ = amqp_new_connection();
    amqp_socket_t* sock = amqp_tcp_socket_new(conn_);
    if (sock == nullptr || amqp_socket_open(sock, "127.0.0.1", port) != AMQP_STATUS_OK) {
      error_ = "cannot connect to 127.0.0.1:" + std::to_string(port);
      return;
    }
    amqp_rpc_reply_t r =
        amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      error_ = "login failed";
      return;
    }
    amqp_channel_open(conn_, 1);
    error_ = ReplyError(conn_);
  }
  ~Connection() {
    rabbitmq::ForgetConnection(conn_);
    if (error_.empty()) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t get() const { return conn_; }
  const std::string& error() const { return error_; }

  std::string DeclareQueue(const std::string& name, amqp_table_t args = amqp_empty_table) {
    amqp_queue_declare(conn_, 1, B(name), 0, 0, 0, /*auto_delete=*/1, args);
    return ReplyError(conn_);
  }
  // A queue that refuses every message (the broker nacks it): max length 0 with reject-publish.
  std::string DeclareRefusingQueue(const std::string& name) {
    amqp_table_entry_t args[2] = {};
    args[0].key = amqp_cstring_bytes("x-max-length");
    args[0].value.kind = AMQP_FIELD_KIND_I32;
    args[0].value.value.i32 = 0;
    args[1].key = amqp_cstring_bytes("x-overflow");
    args[1].value.kind = AMQP_FIELD_KIND_UTF8;
    args[1].value.value.bytes = amqp_cstring_bytes("reject-publish");
    return DeclareQueue(name, amqp_table_t{2, args});
  }
  std::string DeclareExchange(const std::string& name, const char* type) {
    amqp_exchange_declare(conn_, 1, B(name), amqp_cstring_bytes(type), 0, 0, /*auto_delete=*/1, 0,
                          amqp_empty_table);
    return ReplyError(conn_);
  }
  std::string Bind(const std::string& queue, const std::string& exchange, const std::string& key) {
    amqp_queue_bind(conn_, 1, B(queue), B(exchange), B(key), amqp_empty_table);
    return ReplyError(conn_);
  }
  std::string Consume(const std::string& queue) {
    amqp_basic_consume(conn_, 1, B(queue), amqp_empty_bytes, 0, /*no_ack=*/0, 0, amqp_empty_table);
    return ReplyError(conn_);
  }
  // The next delivery, or false after `timeout`.
  bool Next(amqp_envelope_t* env, std::chrono::milliseconds timeout = 5000ms) {
    amqp_maybe_release_buffers(conn_);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    amqp_rpc_reply_t r = amqp_consume_message(conn_, env, &tv, 0);
    return r.reply_type == AMQP_RESPONSE_NORMAL;
  }

 private:
  amqp_connection_state_t conn_ = nullptr;
  std::string error_;
};

// Destroys an envelope at scope exit.
struct EnvelopeGuard {
  amqp_envelope_t env{};
  ~EnvelopeGuard() {
    if (filled) amqp_destroy_envelope(&env);
  }
  bool filled = false;
};

class RabbitMQ : public ::testing::Test {
 protected:
  void SetUp() override {
    const Broker& b = testing::BrokerEnvironment::broker();
    if (!b.available) {
      if (RequireInterop())
        FAIL() << "RabbitMQ is required (ORDERTRACE_REQUIRE_INTEROP=1) but not available: "
               << b.reason;
      GTEST_SKIP() << "RabbitMQ not available: " << b.reason;
    }
    TracerOptions o;
    o.service_name = "rabbitmq-test";
    o.schedule_delay = 10ms;
    auto e = std::make_unique<MemoryExporter>();
    exporter_ = e.get();
    provider_ = std::make_unique<TracerProvider>(std::move(o), std::move(e));
    pub_ = std::make_unique<Connection>(b.port);
    ASSERT_EQ(pub_->error(), "");
    con_ = std::make_unique<Connection>(b.port);
    ASSERT_EQ(con_->error(), "");
  }

  std::vector<SpanData> Spans() {
    EXPECT_TRUE(provider_->ForceFlush(5s));
    return exporter_->spans();
  }
  std::vector<SpanData> Spans(SpanKind kind) {
    std::vector<SpanData> out;
    for (auto& s : Spans())
      if (s.kind == kind) out.push_back(s);
    return out;
  }
  PublishOptions Options() {
    PublishOptions o;
    o.provider = provider_.get();
    o.wait_for_confirm = true;
    return o;
  }
  ProcessOptions Consumer() {
    ProcessOptions o;
    o.provider = provider_.get();
    o.connection = con_->get();
    return o;
  }

  MemoryExporter* exporter_ = nullptr;
  std::unique_ptr<TracerProvider> provider_;
  std::unique_ptr<Connection> pub_, con_;
};

void ExpectFailed(const SpanData& s, std::string_view error_type) {
  EXPECT_EQ(s.status, SpanStatus::kError);
  EXPECT_FALSE(s.status_message.empty());
  EXPECT_EQ(Str(s, "order.step.status"), "FAIL");
  EXPECT_EQ(Str(s, "error.type"), std::string(error_type));
}

// ---------------------------------------------------------------------------------------------

TEST_F(RabbitMQ, ContextCrossesPublishConsume) {
  const std::string queue = Unique("ot-orders");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  ASSERT_EQ(con_->Consume(queue), "");

  // The producer: a request span, then a confirmed publish to the default exchange.
  SpanContext request_ctx;
  PublishResult sent;
  {
    StartOptions server;
    server.kind = SpanKind::kServer;
    Span request(*provider_, "POST /api/orders", server);
    Scope scope(request);
    request_ctx = request.context();
    Baggage baggage;
    baggage.Set("tenant", "acme");
    PublishOptions o = Options();
    o.order_id = "ORD-100";
    o.baggage = &baggage;
    sent = Publish(pub_->get(), 1, "", queue, R"({"order":"ORD-100"})", nullptr, o);
  }
  ASSERT_TRUE(sent.ok()) << sent.error;
  EXPECT_EQ(sent.sequence, 1u);
  EXPECT_EQ(sent.message_id.size(), 32u);
  EXPECT_EQ(sent.context.trace_id, request_ctx.trace_id);

  EnvelopeGuard g;
  ASSERT_TRUE(con_->Next(&g.env));
  g.filled = true;
  EXPECT_EQ(S(g.env.message.body), R"({"order":"ORD-100"})");
  SpanContext child_ctx;
  {
    ProcessSpan process(g.env, queue, Consumer());
    EXPECT_TRUE(process.creation_context().valid());
    EXPECT_FALSE(process.malformed_context());
    EXPECT_EQ(process.order_id(), "ORD-100");
    EXPECT_EQ(process.message_id(), sent.message_id);
    EXPECT_EQ(process.baggage().Get("tenant"), "acme");
    EXPECT_FALSE(process.redelivered());
    // The process span is the thread's current span: work inside nests under it.
    EXPECT_EQ(CurrentSpanContext().span_id, process.context().span_id);
    Span work(*provider_, "price order");
    child_ctx = work.context();
    work.End();
    EXPECT_TRUE(process.Ack(con_->get(), 1));
    process.End(StepStatus::kOk);
  }
  EXPECT_FALSE(CurrentSpanContext().valid());  // the scope ended with the ProcessSpan

  auto producers = Spans(SpanKind::kProducer);
  auto consumers = Spans(SpanKind::kConsumer);
  ASSERT_EQ(producers.size(), 1u);
  ASSERT_EQ(consumers.size(), 1u);
  const SpanData& p = producers[0];
  const SpanData& c = consumers[0];

  // Producer span: child of the request, attributes per the conventions.
  EXPECT_EQ(p.name, "publish " + queue);  // default exchange: the routing key alone
  EXPECT_EQ(p.trace_id, request_ctx.trace_id);
  EXPECT_EQ(p.parent_span_id, request_ctx.span_id);
  EXPECT_EQ(p.span_id, sent.context.span_id);
  EXPECT_EQ(Str(p, "messaging.system"), "rabbitmq");
  EXPECT_EQ(Str(p, "messaging.operation.type"), "send");
  EXPECT_EQ(Str(p, "messaging.operation.name"), "publish");
  EXPECT_EQ(Str(p, "messaging.destination.name"), queue);
  EXPECT_EQ(Str(p, "messaging.rabbitmq.destination.routing_key"), queue);
  EXPECT_EQ(Str(p, "messaging.message.id"), sent.message_id);
  EXPECT_EQ(Int(p, "messaging.message.body.size"), 19);
  EXPECT_EQ(Str(p, "order.id"), "ORD-100");
  EXPECT_EQ(Str(p, "order.step.status"), "OK");
  EXPECT_EQ(Str(p, "network.peer.address"), "127.0.0.1");
  EXPECT_EQ(Int(p, "network.peer.port"), testing::BrokerEnvironment::broker().port);
  EXPECT_EQ(p.status, SpanStatus::kOk);

  // Consumer span: same trace, parent = the producer span, and a link to it.
  EXPECT_EQ(c.name, "process " + queue);
  EXPECT_EQ(c.trace_id, p.trace_id);
  EXPECT_TRUE(c.has_parent);
  EXPECT_TRUE(c.parent_remote);
  EXPECT_EQ(c.parent_span_id, p.span_id);
  ASSERT_EQ(c.links.size(), 1u);
  EXPECT_EQ(c.links[0].context.trace_id, p.trace_id);
  EXPECT_EQ(c.links[0].context.span_id, p.span_id);
  EXPECT_EQ(Str(c, "messaging.system"), "rabbitmq");
  EXPECT_EQ(Str(c, "messaging.operation.type"), "process");
  EXPECT_EQ(Str(c, "messaging.destination.name"), queue);
  EXPECT_EQ(Str(c, "messaging.destination.subscription.name"), queue);
  EXPECT_EQ(Str(c, "messaging.rabbitmq.destination.routing_key"), queue);
  EXPECT_EQ(Int(c, "messaging.rabbitmq.message.delivery_tag"),
            static_cast<int64_t>(g.env.delivery_tag));
  EXPECT_EQ(Str(c, "messaging.message.id"), sent.message_id);
  EXPECT_EQ(Int(c, "messaging.message.body.size"), 19);
  EXPECT_EQ(Str(c, "order.id"), "ORD-100");  // from the message's order.id header
  EXPECT_EQ(Str(c, "order.step.status"), "OK");
  EXPECT_EQ(Str(c, "network.peer.address"), "127.0.0.1");
  EXPECT_EQ(c.status, SpanStatus::kOk);
  ASSERT_FALSE(c.events.empty());
  EXPECT_EQ(c.events.back().name, "ack");

  // Work done inside the process span is its child.
  bool found = false;
  for (const auto& s : Spans()) {
    if (s.span_id != child_ctx.span_id) continue;
    found = true;
    EXPECT_EQ(s.parent_span_id, c.span_id);
    EXPECT_EQ(s.trace_id, p.trace_id);
  }
  EXPECT_TRUE(found);
}

TEST_F(RabbitMQ, NamedExchangeKeepsCallerHeadersAndMessageId) {
  const std::string exchange = Unique("ot-ex"), queue = Unique("ot-q");
  ASSERT_EQ(pub_->DeclareExchange(exchange, "direct"), "");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  ASSERT_EQ(con_->Bind(queue, exchange, "orders.new"), "");
  ASSERT_EQ(con_->Consume(queue), "");

  amqp_table_entry_t app[2] = {};
  app[0].key = amqp_cstring_bytes("x-app");
  app[0].value.kind = AMQP_FIELD_KIND_UTF8;
  app[0].value.value.bytes = amqp_cstring_bytes("crm");
  app[1].key = amqp_cstring_bytes("x-attempt");
  app[1].value.kind = AMQP_FIELD_KIND_I32;
  app[1].value.value.i32 = 2;
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                 AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  props.headers = amqp_table_t{2, app};
  props.message_id = amqp_cstring_bytes("msg-42");
  props.content_type = amqp_cstring_bytes("application/json");
  props.correlation_id = amqp_cstring_bytes("ORD-7");
  const amqp_basic_properties_t before = props;  // NOLINT: compared field by field below

  PublishOptions o = Options();
  o.order_id = "ORD-7";
  PublishResult sent = Publish(pub_->get(), 1, exchange, "orders.new", "{}", &props, o);
  ASSERT_TRUE(sent.ok()) << sent.error;
  EXPECT_EQ(sent.message_id, "msg-42");
  // The caller's properties are untouched.
  EXPECT_EQ(props._flags, before._flags);
  EXPECT_EQ(props.headers.num_entries, 2);
  EXPECT_EQ(props.headers.entries, app);
  EXPECT_EQ(S(props.message_id), "msg-42");

  EnvelopeGuard g;
  ASSERT_TRUE(con_->Next(&g.env));
  g.filled = true;
  const amqp_basic_properties_t& got = g.env.message.properties;
  ASSERT_TRUE(got._flags & AMQP_BASIC_HEADERS_FLAG);
  AmqpTableCarrier carrier(got.headers);
  EXPECT_EQ(carrier.Get("x-app"), "crm");
  EXPECT_TRUE(carrier.Get("traceparent").has_value());
  EXPECT_EQ(carrier.Get("order.id"), "ORD-7");
  bool attempt = false;
  for (int i = 0; i < got.headers.num_entries; ++i) {
    if (S(got.headers.entries[i].key) == "x-attempt") {
      attempt = got.headers.entries[i].value.kind == AMQP_FIELD_KIND_I32 &&
                got.headers.entries[i].value.value.i32 == 2;
    }
  }
  EXPECT_TRUE(attempt);
  EXPECT_EQ(S(got.content_type), "application/json");
  EXPECT_EQ(S(got.message_id), "msg-42");
  {
    ProcessSpan process(g.env, queue, Consumer());
    process.Ack(con_->get(), 1);
    process.End(StepStatus::kOk);
  }

  auto producers = Spans(SpanKind::kProducer);
  auto consumers = Spans(SpanKind::kConsumer);
  ASSERT_EQ(producers.size(), 1u);
  ASSERT_EQ(consumers.size(), 1u);
  EXPECT_EQ(producers[0].name, "publish " + exchange + ":orders.new");
  EXPECT_EQ(Str(producers[0], "messaging.destination.name"), exchange + ":orders.new");
  EXPECT_EQ(Str(producers[0], "messaging.message.id"), "msg-42");
  EXPECT_EQ(consumers[0].name, "process " + exchange + ":orders.new:" + queue);
  EXPECT_EQ(Str(consumers[0], "messaging.destination.name"), exchange + ":orders.new:" + queue);
  EXPECT_EQ(Str(consumers[0], "messaging.destination.subscription.name"), queue);
  EXPECT_EQ(Str(consumers[0], "messaging.message.conversation_id"), "ORD-7");
  EXPECT_EQ(consumers[0].parent_span_id, producers[0].span_id);
}

TEST_F(RabbitMQ, MalformedTraceHeadersStartANewTraceAndAreCounted) {
  const std::string queue = Unique("ot-malformed");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  ASSERT_EQ(con_->Consume(queue), "");
  const std::string bogus_tid = "4bf92f3577b34da6a3ce929d0e0e4736";

  // Published raw (not through the middleware): a broken string, a traceparent of the wrong AMQP
  // type, an upper-case one (invalid per W3C), and a message without any headers.
  struct Case {
    amqp_field_value_t value;
    bool malformed;
  };
  std::vector<Case> cases;
  amqp_field_value_t v{};
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = amqp_cstring_bytes("00-not-a-trace-parent-at-all-zz");
  cases.push_back({v, true});
  v = {};
  v.kind = AMQP_FIELD_KIND_I64;
  v.value.i64 = 42;
  cases.push_back({v, true});
  v = {};
  v.kind = AMQP_FIELD_KIND_BYTES;
  v.value.bytes = amqp_cstring_bytes("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01");
  cases.push_back({v, true});

  const uint64_t before = rabbitmq::MalformedHeaderCount();
  for (const Case& c : cases) {
    amqp_table_entry_t e[2] = {};
    e[0].key = amqp_cstring_bytes("traceparent");
    e[0].value = c.value;
    e[1].key = amqp_cstring_bytes("order.id");
    e[1].value.kind = AMQP_FIELD_KIND_UTF8;
    e[1].value.value.bytes = amqp_cstring_bytes("ORD-BAD");
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{2, e};
    ASSERT_EQ(amqp_basic_publish(pub_->get(), 1, amqp_empty_bytes, B(queue), 0, 0, &props,
                                 amqp_cstring_bytes("x")),
              AMQP_STATUS_OK);
  }
  ASSERT_EQ(amqp_basic_publish(pub_->get(), 1, amqp_empty_bytes, B(queue), 0, 0, nullptr,
                               amqp_cstring_bytes("no headers")),
            AMQP_STATUS_OK);

  for (size_t i = 0; i < cases.size() + 1; ++i) {
    EnvelopeGuard g;
    ASSERT_TRUE(con_->Next(&g.env)) << "message " << i;
    g.filled = true;
    ProcessSpan process(g.env, queue, Consumer());
    const bool expect_malformed = i < cases.size();
    EXPECT_EQ(process.malformed_context(), expect_malformed) << "message " << i;
    EXPECT_FALSE(process.creation_context().valid());
    EXPECT_EQ(process.order_id(), expect_malformed ? "ORD-BAD" : "");
    EXPECT_TRUE(process.Ack(con_->get(), 1));
    process.End(StepStatus::kOk);
  }
  EXPECT_EQ(rabbitmq::MalformedHeaderCount() - before, cases.size());

  auto consumers = Spans(SpanKind::kConsumer);
  ASSERT_EQ(consumers.size(), cases.size() + 1);
  for (size_t i = 0; i < consumers.size(); ++i) {
    const SpanData& c = consumers[i];
    EXPECT_FALSE(c.has_parent) << i;  // a new trace
    EXPECT_TRUE(c.links.empty()) << i;
    EXPECT_NE(ToHex(c.trace_id), bogus_tid) << i;
    const AttributeValue* m = Find(c, "ordertrace.trace_context.malformed");
    if (i < cases.size()) {
      ASSERT_NE(m, nullptr) << i;
      EXPECT_TRUE(std::get<bool>(*m));
    } else {
      EXPECT_EQ(m, nullptr);
    }
  }
}

TEST_F(RabbitMQ, ConfirmToMissingExchangeIsFail) {
  PublishOptions o = Options();
  o.order_id = "ORD-404";
  const std::string exchange = Unique("ot-no-such-exchange");
  PublishResult r = Publish(pub_->get(), 1, exchange, "k", "x", nullptr, o);
  EXPECT_EQ(r.status, PublishStatus::kChannelClosed);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.reply_code, 404);
  EXPECT_NE(r.error.find("NOT_FOUND"), std::string::npos) << r.error;

  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), 1u);
  ExpectFailed(producers[0], "channel_closed");
  EXPECT_EQ(Str(producers[0], "order.id"), "ORD-404");
  EXPECT_NE(producers[0].status_message.find("NOT_FOUND"), std::string::npos);

  // The channel is closed (close-ok sent); the connection still works on a new one.
  amqp_channel_open(pub_->get(), 2);
  ASSERT_EQ(ReplyError(pub_->get()), "");
  EXPECT_TRUE(Publish(pub_->get(), 2, "", Unique("ot-nobody"), "x", nullptr, Options()).ok());
}

TEST_F(RabbitMQ, MandatoryUnroutableIsFail) {
  PublishOptions o = Options();
  o.mandatory = true;
  o.order_id = "ORD-312";
  PublishResult r = Publish(pub_->get(), 1, "", Unique("ot-no-such-queue"), "x", nullptr, o);
  EXPECT_EQ(r.status, PublishStatus::kReturned);
  EXPECT_EQ(r.reply_code, 312);
  EXPECT_NE(r.error.find("NO_ROUTE"), std::string::npos) << r.error;
  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), 1u);
  ExpectFailed(producers[0], "unroutable");

  // The channel goes on: a routable mandatory publish is OK.
  const std::string queue = Unique("ot-routable");
  ASSERT_EQ(pub_->DeclareQueue(queue), "");
  PublishResult ok = Publish(pub_->get(), 1, "", queue, "x", nullptr, o);
  EXPECT_TRUE(ok.ok()) << ok.error;
  EXPECT_EQ(ok.sequence, r.sequence + 1);
}

TEST_F(RabbitMQ, NackIsFail) {
  const std::string queue = Unique("ot-full");
  ASSERT_EQ(pub_->DeclareRefusingQueue(queue), "");
  PublishOptions o = Options();
  o.order_id = "ORD-NACK";
  PublishResult r = Publish(pub_->get(), 1, "", queue, "x", nullptr, o);
  EXPECT_EQ(r.status, PublishStatus::kNacked) << r.error;
  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), 1u);
  ExpectFailed(producers[0], "nack");
}

TEST_F(RabbitMQ, BrokenConnectionIsFail) {
  shutdown(amqp_get_sockfd(pub_->get()), SHUT_RDWR);
  PublishOptions o = Options();
  o.timeout = 2000ms;
  PublishResult r = Publish(pub_->get(), 1, "", "q", "x", nullptr, o);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status == PublishStatus::kSocketError ||
              r.status == PublishStatus::kConnectionClosed)
      << rabbitmq::PublishStatusName(r.status) << ": " << r.error;
  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), 1u);
  ExpectFailed(producers[0], rabbitmq::PublishStatusName(r.status));
}

TEST_F(RabbitMQ, ConfirmSequenceSurvivesUnconfirmedPublishes) {
  const std::string queue = Unique("ot-seq");
  ASSERT_EQ(pub_->DeclareQueue(queue), "");
  std::string error;
  ASSERT_TRUE(rabbitmq::EnableConfirms(pub_->get(), 1, &error)) << error;
  PublishOptions confirm = Options();
  PublishOptions no_wait = Options();
  no_wait.wait_for_confirm = false;
  EXPECT_EQ(Publish(pub_->get(), 1, "", queue, "1", nullptr, confirm).sequence, 1u);
  EXPECT_EQ(Publish(pub_->get(), 1, "", queue, "2", nullptr, no_wait).sequence, 2u);
  EXPECT_EQ(Publish(pub_->get(), 1, "", queue, "3", nullptr, no_wait).sequence, 3u);
  PublishResult r = Publish(pub_->get(), 1, "", queue, "4", nullptr, confirm);
  EXPECT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.sequence, 4u);
  for (const auto& p : Spans(SpanKind::kProducer)) EXPECT_EQ(Str(p, "order.step.status"), "OK");
}

// Pipelined publishing: deferred publishes are in flight together, their spans stay open until
// AwaitConfirms() reads the broker's answers, and each ends as a confirmed publish would.
TEST_F(RabbitMQ, DeferredConfirmsArePipelinedAndEndTheirSpans) {
  const std::string queue = Unique("ot-pipelined");
  ASSERT_EQ(pub_->DeclareQueue(queue), "");
  PublishOptions o = Options();
  o.defer_confirm = true;
  o.order_id = "ORD-PIPE";
  constexpr uint64_t kMessages = 50;
  for (uint64_t i = 1; i <= kMessages; ++i) {
    PublishResult r = Publish(pub_->get(), 1, "", queue, std::to_string(i), nullptr, o);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.sequence, i);
  }
  EXPECT_TRUE(Spans(SpanKind::kProducer).empty()) << "a deferred publish's span ended early";
  std::vector<rabbitmq::ConfirmOutcome> outcomes = rabbitmq::AwaitConfirms(pub_->get(), 1);
  ASSERT_EQ(outcomes.size(), kMessages);
  for (uint64_t i = 0; i < kMessages; ++i) {
    EXPECT_EQ(outcomes[i].sequence, i + 1);
    EXPECT_TRUE(outcomes[i].ok()) << outcomes[i].error;
  }
  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), kMessages);
  for (const auto& p : producers) {
    EXPECT_EQ(Str(p, "order.step.status"), "OK");
    EXPECT_EQ(Str(p, "order.id"), "ORD-PIPE");
  }
  // Nothing is deferred any more; every message is in the queue.
  EXPECT_TRUE(rabbitmq::AwaitConfirms(pub_->get(), 1, 100ms).empty());
  ASSERT_EQ(con_->Consume(queue), "");
  for (uint64_t i = 1; i <= kMessages; ++i) {
    EnvelopeGuard g;
    ASSERT_TRUE(con_->Next(&g.env)) << "message " << i << " of " << kMessages;
    g.filled = true;
    EXPECT_EQ(
        std::string(static_cast<const char*>(g.env.message.body.bytes), g.env.message.body.len),
        std::to_string(i));
  }
}

// Among deferred publishes, a mandatory one returned as unroutable and one the broker refuses
// (nack) fail as they would with wait_for_confirm; the others are confirmed.
TEST_F(RabbitMQ, DeferredConfirmsSettleEachPublishApart) {
  const std::string ok_queue = Unique("ot-pipelined-ok");
  ASSERT_EQ(pub_->DeclareQueue(ok_queue), "");
  const std::string full = Unique("ot-pipelined-full");
  ASSERT_EQ(pub_->DeclareRefusingQueue(full), "");
  PublishOptions o = Options();
  o.defer_confirm = true;
  o.mandatory = true;
  ASSERT_TRUE(Publish(pub_->get(), 1, "", ok_queue, "a", nullptr, o).ok());
  ASSERT_TRUE(Publish(pub_->get(), 1, "", Unique("ot-no-such-queue"), "b", nullptr, o).ok());
  ASSERT_TRUE(Publish(pub_->get(), 1, "", full, "c", nullptr, o).ok());
  ASSERT_TRUE(Publish(pub_->get(), 1, "", ok_queue, "d", nullptr, o).ok());
  std::vector<rabbitmq::ConfirmOutcome> outcomes = rabbitmq::AwaitConfirms(pub_->get(), 1);
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_TRUE(outcomes[0].ok()) << outcomes[0].error;
  EXPECT_EQ(outcomes[1].status, PublishStatus::kReturned) << outcomes[1].error;
  EXPECT_EQ(outcomes[1].reply_code, 312);
  EXPECT_NE(outcomes[1].error.find("NO_ROUTE"), std::string::npos) << outcomes[1].error;
  EXPECT_EQ(outcomes[2].status, PublishStatus::kNacked) << outcomes[2].error;
  EXPECT_TRUE(outcomes[3].ok()) << outcomes[3].error;
  auto producers = Spans(SpanKind::kProducer);
  ASSERT_EQ(producers.size(), 4u);
  int ok = 0, unroutable = 0, nack = 0;
  for (const auto& p : producers) {
    const std::string type = Str(p, "error.type").value_or("");
    if (type.empty()) {
      EXPECT_EQ(Str(p, "order.step.status"), "OK");
      ++ok;
    } else if (type == "unroutable") {
      ExpectFailed(p, "unroutable");
      ++unroutable;
    } else if (type == "nack") {
      ExpectFailed(p, "nack");
      ++nack;
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(unroutable, 1);
  EXPECT_EQ(nack, 1);
}

TEST_F(RabbitMQ, RedeliveryIsRetry) {
  const std::string queue = Unique("ot-redeliver");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  ASSERT_EQ(con_->Consume(queue), "");
  PublishOptions o = Options();
  o.order_id = "ORD-RETRY";
  PublishResult sent = Publish(pub_->get(), 1, "", queue, "price me", nullptr, o);
  ASSERT_TRUE(sent.ok()) << sent.error;

  {  // First delivery: the handler fails, the message goes back to the queue.
    EnvelopeGuard g;
    ASSERT_TRUE(con_->Next(&g.env));
    g.filled = true;
    ProcessSpan process(g.env, queue, Consumer());
    EXPECT_FALSE(process.redelivered());
    EXPECT_TRUE(process.Nack(con_->get(), 1, /*requeue=*/true));
    process.End(StepStatus::kFail, "handler_failed", "pricing service unavailable");
  }
  {  // Second delivery: redelivered → RETRY, and it succeeds this time.
    EnvelopeGuard g;
    ASSERT_TRUE(con_->Next(&g.env));
    g.filled = true;
    ProcessSpan process(g.env, queue, Consumer());
    EXPECT_TRUE(process.redelivered());
    EXPECT_TRUE(process.Ack(con_->get(), 1));
    process.End(StepStatus::kOk);
  }

  auto consumers = Spans(SpanKind::kConsumer);
  ASSERT_EQ(consumers.size(), 2u);
  const SpanData& first = consumers[0];
  const SpanData& retry = consumers[1];
  ExpectFailed(first, "handler_failed");
  ASSERT_FALSE(first.events.empty());
  EXPECT_EQ(first.events.back().name, "nack");
  EXPECT_EQ(Str(retry, "order.step.status"), "RETRY");
  EXPECT_EQ(retry.status, SpanStatus::kOk);
  EXPECT_EQ(Str(retry, "order.id"), "ORD-RETRY");
  for (const SpanData* c : {&first, &retry}) {  // both continue the producer's trace
    EXPECT_EQ(c->trace_id, sent.context.trace_id);
    EXPECT_EQ(c->parent_span_id, sent.context.span_id);
  }
  EXPECT_NE(Int(first, "messaging.rabbitmq.message.delivery_tag"),
            Int(retry, "messaging.rabbitmq.message.delivery_tag"));
}

// ---------------------------------------------------------------------------------------------
// Interop with the official OpenTelemetry JS instrumentation for amqplib
// (tests/interop/amqp_interop.mjs, packages pinned in tests/interop/package-lock.json).

const std::string kInteropDir = std::string(ORDERTRACE_SOURCE_DIR) + "/tests/interop";

std::string FindNode() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t colon = dirs.find(':', start);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    if (access((dir + "/node").c_str(), X_OK) == 0) return dir + "/node";
    start = colon + 1;
  }
  return "";
}

// Why the Node side cannot run ("" when it can).
std::string NodeMissing() {
  if (FindNode().empty()) return "node is not on PATH (scripts/setup installs nodejs and npm)";
  for (const char* pkg :
       {"amqplib/package.json", "@opentelemetry/instrumentation-amqplib/package.json",
        "@opentelemetry/sdk-trace-node/package.json"}) {
    if (access((kInteropDir + "/node_modules/" + pkg).c_str(), R_OK) != 0)
      return "tests/interop/node_modules lacks " + std::string(pkg) +
             "; run tests/interop/setup (npm ci)";
  }
  return "";
}

// Runs the script, returns its stdout as JSON (discarded on failure, with *out the output).
nlohmann::json RunNode(const std::string& args, std::string* out) {
  const std::string command = "cd '" + kInteropDir + "' && timeout 60 '" + FindNode() +
                              "' amqp_interop.mjs " + args + " 2>&1";
  out->clear();
  FILE* f = popen(command.c_str(), "r");
  if (f == nullptr) return nlohmann::json::value_t::discarded;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  const int status = pclose(f);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return nlohmann::json::value_t::discarded;
  // The JSON document is the last line (anything before it is diagnostics).
  std::string last = *out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  const size_t nl = last.rfind('\n');
  if (nl != std::string::npos) last = last.substr(nl + 1);
  return nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
}

class Interop : public RabbitMQ {
 protected:
  void SetUp() override {
    RabbitMQ::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string missing = NodeMissing();
    if (!missing.empty()) {
      if (RequireInterop())
        FAIL() << "the Node interop set-up is required (ORDERTRACE_REQUIRE_INTEROP=1): " << missing;
      GTEST_SKIP() << missing;
    }
  }
  std::string Url() const {
    return "amqp://guest:guest@127.0.0.1:" +
           std::to_string(testing::BrokerEnvironment::broker().port);
  }
};

const nlohmann::json* SpanOfKind(const nlohmann::json& doc, const char* kind) {
  for (const auto& s : doc.at("spans"))
    if (s.value("kind", "") == kind) return &s;
  return nullptr;
}

TEST_F(Interop, NodeProducerCppConsumerContinuesTheTrace) {
  const std::string queue = Unique("ot-node-to-cpp");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  std::string out;
  nlohmann::json doc =
      RunNode("produce --url " + Url() + " --queue " + queue + " --order ORD-NODE", &out);
  ASSERT_FALSE(doc.is_discarded()) << out;
  const nlohmann::json* publish = SpanOfKind(doc, "PRODUCER");
  ASSERT_NE(publish, nullptr) << out;
  const std::string node_trace = publish->at("trace_id"), node_span = publish->at("span_id");

  ASSERT_EQ(con_->Consume(queue), "");
  EnvelopeGuard g;
  ASSERT_TRUE(con_->Next(&g.env));
  g.filled = true;
  {
    ProcessSpan process(g.env, queue, Consumer());
    EXPECT_FALSE(process.malformed_context());
    ASSERT_TRUE(process.creation_context().valid());
    EXPECT_EQ(ToHex(process.creation_context().trace_id), node_trace);
    EXPECT_EQ(ToHex(process.creation_context().span_id), node_span);
    EXPECT_EQ(process.order_id(), "ORD-NODE");  // the app's own header, beside traceparent
    process.Ack(con_->get(), 1);
    process.End(StepStatus::kOk);
  }
  auto consumers = Spans(SpanKind::kConsumer);
  ASSERT_EQ(consumers.size(), 1u);
  const SpanData& c = consumers[0];
  EXPECT_EQ(ToHex(c.trace_id), node_trace);
  EXPECT_EQ(ToHex(c.parent_span_id), node_span);
  ASSERT_EQ(c.links.size(), 1u);
  EXPECT_EQ(ToHex(c.links[0].context.span_id), node_span);
  EXPECT_EQ(Str(c, "messaging.message.id"),
            publish->at("attributes").value("messaging.message_id", std::string("?")));
  EXPECT_EQ(Str(c, "order.id"), "ORD-NODE");
}

TEST_F(Interop, CppProducerNodeConsumerContinuesTheTrace) {
  const std::string queue = Unique("ot-cpp-to-node");
  ASSERT_EQ(con_->DeclareQueue(queue), "");
  PublishOptions o = Options();
  o.order_id = "ORD-CPP";
  PublishResult sent = Publish(pub_->get(), 1, "", queue, R"({"order":"ORD-CPP"})", nullptr, o);
  ASSERT_TRUE(sent.ok()) << sent.error;

  std::string out;
  nlohmann::json doc = RunNode("consume --url " + Url() + " --queue " + queue, &out);
  ASSERT_FALSE(doc.is_discarded()) << out;
  EXPECT_EQ(doc.value("body", ""), R"({"order":"ORD-CPP"})");
  EXPECT_EQ(doc.value("message_id", ""), sent.message_id);
  const nlohmann::json& headers = doc.at("headers");
  EXPECT_EQ(headers.value("traceparent", ""), FormatTraceparent(sent.context));
  EXPECT_EQ(headers.value("order.id", ""), "ORD-CPP");
  const nlohmann::json* process = SpanOfKind(doc, "CONSUMER");
  ASSERT_NE(process, nullptr) << out;
  EXPECT_EQ(process->value("trace_id", ""), ToHex(sent.context.trace_id));
  EXPECT_EQ(process->value("parent_span_id", ""), ToHex(sent.context.span_id));
  EXPECT_EQ(doc.value("active_span_id", ""), process->value("span_id", ""));
}

TEST(RabbitMQDestinations, FollowTheConventions) {
  EXPECT_EQ(rabbitmq::ProducerDestination("orders", "new"), "orders:new");
  EXPECT_EQ(rabbitmq::ProducerDestination("", "mes.orders"), "mes.orders");
  EXPECT_EQ(rabbitmq::ProducerDestination("orders", ""), "orders");
  EXPECT_EQ(rabbitmq::ProducerDestination("", ""), "amq.default");
  EXPECT_EQ(rabbitmq::ConsumerDestination("orders", "new", "mes"), "orders:new:mes");
  EXPECT_EQ(rabbitmq::ConsumerDestination("", "mes", "mes"), "mes");
  EXPECT_EQ(rabbitmq::ConsumerDestination("orders", "mes", "mes"), "orders:mes");
  EXPECT_EQ(rabbitmq::ConsumerDestination("orders", "", "mes"), "orders:mes");
  EXPECT_EQ(rabbitmq::ConsumerDestination("", "", ""), "amq.default");
}

}  // namespace
}  // namespace ordertrace
