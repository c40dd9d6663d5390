// order_service: one order through a C++ service instrumented with libordertrace.
//
//   OTEL_SERVICE_NAME=crm OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
//     order_service --order ORD-1 [--amqp amqp://guest:guest@127.0.0.1:5672]
//     [--exchange ""] [--routing-key price.calculated] [--calc-ms 2500] [--heartbeat-ms 1000]
//
// The tracer comes from the standard OTEL_* variables (docs/instrumenting.md).  The order:
//   - a SERVER span "POST /api/orders" with order.id, reaching the milestone SUBMITTED;
//   - under it, a LongOperation "price calculation" that sends a heartbeat span every
//     --heartbeat-ms while the (simulated) calculation runs, and ends at PRICE_CALCULATED;
//   - with --amqp, a traced RabbitMQ publish of the result (PRODUCER span, trace context and
//     order.id in the message headers, publisher confirms);
//   - step status OK, then the provider's Shutdown() exports what is queued.
// The AMQP URL follows the AMQP URI spec: no path is the default vhost "/"; a trailing "/"
// names the empty vhost "" (write "/%2f" for "/").
// Prints one JSON line: order id, trace id, heartbeats, publish result, exporter counters.
// Exit 0 when the order was handled and every span was exported, 1 otherwise.
#if __has_include(<rabbitmq-c/tcp_socket.h>)
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp_tcp_socket.h>
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "ordertrace/order.h"
#include "ordertrace/rabbitmq.h"
#include "ordertrace/tracer.h"

namespace {

struct Args {
  std::string order_id = "ORD-1";
  std::string amqp_url;  // "" no publish
  std::string exchange;  // "" the default exchange
  std::string routing_key = "price.calculated";
  int calc_ms = 2500;
  int heartbeat_ms = 1000;
};

bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) return false;
    const char* value = argv[++i];
    if (flag == "--order") {
      a->order_id = value;
    } else if (flag == "--amqp") {
      a->amqp_url = value;
    } else if (flag == "--exchange") {
      a->exchange = value;
    } else if (flag == "--routing-key") {
      a->routing_key = value;
    } else if (flag == "--calc-ms") {
      a->calc_ms = std::atoi(value);
    } else if (flag == "--heartbeat-ms") {
      a->heartbeat_ms = std::atoi(value);
    } else {
      return false;
    }
  }
  return !a->order_id.empty() && a->calc_ms >= 0;
}

// A connection and channel 1 from an amqp:// URL; nullptr (and the reason) on failure.
amqp_connection_state_t Connect(const std::string& url, std::string* error) {
  std::string copy = url;  // amqp_parse_url points into the buffer it parses
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(copy.data(), &info) != AMQP_STATUS_OK) {
    *error = "malformed AMQP URL";
    return nullptr;
  }
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (socket == nullptr || amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK) {
    *error = std::string("cannot connect to ") + info.host + ":" + std::to_string(info.port);
    amqp_destroy_connection(conn);
    return nullptr;
  }
  const amqp_rpc_reply_t login =
      amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (login.reply_type != AMQP_RESPONSE_NORMAL || amqp_channel_open(conn, 1) == nullptr ||
      amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
    *error = std::string("AMQP login or channel open failed (vhost '") + info.vhost + "')";
    amqp_destroy_connection(conn);
    return nullptr;
  }
  return conn;
}

// For the JSON line: quotes, backslashes and control characters escaped.
std::string Json(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

void Disconnect(amqp_connection_state_t conn) {
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  ordertrace::rabbitmq::ForgetConnection(conn);
  amqp_destroy_connection(conn);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: order_service [--order ID] [--amqp URL] [--exchange X] "
                 "[--routing-key K] [--calc-ms N] [--heartbeat-ms N]\n");
    return 2;
  }

  // Configure once: OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_RESOURCE_ATTRIBUTES,
  // OTEL_TRACES_SAMPLER, OTEL_SDK_DISABLED, ...  Without them: service "unknown_service",
  // export to http://localhost:4318/v1/traces.
  std::shared_ptr<ordertrace::TracerProvider> provider = ordertrace::TracerProvider::FromEnv();
  ordertrace::SetGlobalTracerProvider(provider);

  std::string trace_id;
  uint64_t heartbeats = 0;
  std::string publish = "skipped";
  bool ok = true;
  {
    // The request that submits the order.
    ordertrace::StartOptions so;
    so.kind = ordertrace::SpanKind::kServer;
    ordertrace::Span request("POST /api/orders", so);
    ordertrace::Scope scope(request);  // spans below nest under the request
    trace_id = ordertrace::ToHex(request.context().trace_id);
    ordertrace::SetOrder(request, args.order_id);
    ordertrace::Milestone(request, "SUBMITTED");

    // A long calculation: heartbeat spans show it is alive while it runs.
    ordertrace::LongOperationOptions lo;
    lo.order_id = args.order_id;
    lo.heartbeat_interval = std::chrono::milliseconds(args.heartbeat_ms);
    ordertrace::LongOperation calculation("price calculation", lo);
    std::this_thread::sleep_for(std::chrono::milliseconds(args.calc_ms));
    calculation.span().SetAttribute("order.price", 1234.5);
    calculation.End("PRICE_CALCULATED", ordertrace::StepStatus::kOk);
    heartbeats = calculation.heartbeats();

    // Tell the next service, through RabbitMQ, when a broker is given.
    if (!args.amqp_url.empty()) {
      std::string error;
      amqp_connection_state_t conn = Connect(args.amqp_url, &error);
      if (conn == nullptr) {
        publish = "error: " + error;
        ok = false;
      } else {
        ordertrace::rabbitmq::PublishOptions po;
        po.order_id = args.order_id;
        po.wait_for_confirm = true;
        const std::string body = R"({"order_id":")" + args.order_id + R"(","price":1234.5})";
        const ordertrace::rabbitmq::PublishResult r = ordertrace::rabbitmq::Publish(
            conn, 1, args.exchange, args.routing_key, body, nullptr, po);
        publish = r.ok() ? "ok " + r.message_id
                         : std::string(ordertrace::rabbitmq::PublishStatusName(r.status)) + ": " +
                               r.error;
        ok = ok && r.ok();
        Disconnect(conn);
      }
    }
    if (ok) {
      ordertrace::SetStepStatus(request, ordertrace::StepStatus::kOk);
    } else {
      ordertrace::SetStepStatus(request, ordertrace::StepStatus::kFail, "publish_failed");
    }
  }  // the request span ends here

  provider->Shutdown();  // flushes the queue (the destructor would too)
  const ordertrace::TracerStats s = provider->stats();
  std::printf(
      "{\"order_id\":\"%s\",\"trace_id\":\"%s\",\"heartbeats\":%llu,\"publish\":\"%s\","
      "\"exported\":%llu,\"dropped\":%llu}\n",
      Json(args.order_id).c_str(), trace_id.c_str(), static_cast<unsigned long long>(heartbeats),
      Json(publish).c_str(), static_cast<unsigned long long>(s.exported),
      static_cast<unsigned long long>(s.dropped_queue_full + s.dropped_export_failed));
  const bool all_exported = !provider->enabled() || s.exported == s.spans_ended;
  return ok && all_exported ? 0 : 1;
}
