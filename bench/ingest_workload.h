// The ingest benchmarks' standard workload (docs/benchmarks.md): requests of 512 spans in 4
// resources (service.name + 4 attributes each); each span has 12 attributes of realistic sizes
// (order.id, order.stage on 1 span in 10, messaging.*, http.*, one e-mail-like enduser.id) and
// one event.  Shared by ordertrace-bench-ingest (over the network) and ordertrace-bench-redact
// (in process), so both measure the same bytes.
//
// Thread-safety: free functions; the caller owns the generator.
#pragma once

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "support/otlp_requests.h"

namespace ordertrace::bench {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::trace::v1::Span;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

inline constexpr int kSpansPerRequest = 512;
inline constexpr int kResources = 4;

inline std::string Uuid(std::mt19937_64& rng) {
  char buf[40];
  uint64_t a = rng(), b = rng();
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-a%03x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>(a & 0xffff), static_cast<unsigned>((a >> 16) & 0xfff),
                static_cast<unsigned>(b & 0xfff), static_cast<unsigned long long>(b >> 16));
  return buf;
}

inline std::string RandomBytes(std::mt19937_64& rng, int n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() | 1);
  return s;
}

// Span times start at `base_ns` (the benchmark's start: journeys see live orders, not ones a
// year overdue) and advance 1 ms per request.
inline ExportTraceServiceRequest MakeRequest(std::mt19937_64& rng, int request_no,
                                             uint64_t base_ns) {
  static const char* kServices[kResources] = {"crm", "mes", "partner-gateway", "pricing"};
  static const char* kStages[] = {
      "SUBMITTED", "PRICE_CALCULATED", "APPROVED", "MANUFACTURING_STARTED", "SHIPPED", "CLOSED"};
  RequestBuilder req;
  const uint64_t now = base_ns + static_cast<uint64_t>(request_no) * 1'000'000;
  int span_no = 0;
  for (int r = 0; r < kResources; ++r) {
    req.Resource(kServices[r], {{"service.version", "2.14.3"},
                                {"deployment.environment", "production"},
                                {"host.name", std::string(kServices[r]) + "-7f9c6d5b8-x2k4q"},
                                {"telemetry.sdk.language", "cpp"}})
        .Scope("libordertrace", "0.1.0");
    const std::string trace_id = RandomBytes(rng, 16);
    for (int i = 0; i < kSpansPerRequest / kResources; ++i, ++span_no) {
      // The random parts in the order they were always drawn, so the workload stays the same.
      const std::string span_id = RandomBytes(rng, 8);
      const std::string parent_id = RandomBytes(rng, 8);
      const uint64_t start = now + static_cast<uint64_t>(span_no) * 1000;
      const uint64_t end = start + 1'500'000 + rng() % 10'000'000;
      char order[32];
      std::snprintf(order, sizeof order, "ORD-2026-%06d", static_cast<int>(rng() % 1000000));
      const std::string message_id = Uuid(rng);
      const std::string user = "ivan.petrov" + std::to_string(rng() % 1000) + "@example.com";
      SpanBuilder span(i % 3 == 0 ? "publish mes.orders" : "POST /api/v1/orders/{id}");
      span.Ids(trace_id, span_id, parent_id)
          .Kind(i % 3 == 0 ? Span::SPAN_KIND_PRODUCER : Span::SPAN_KIND_SERVER)
          .Times(start, end)
          .Attr("order.id", order);
      if (span_no % 10 == 0)
        span.Attr("order.stage", kStages[(span_no / 10) % 6]);
      else
        span.Attr("order.step.status", "OK");
      span.Attr("messaging.system", "rabbitmq")
          .Attr("messaging.destination.name", "mes.orders")
          .Attr("messaging.rabbitmq.destination.routing_key", "orders.submitted")
          .Attr("messaging.message.id", message_id)
          .Attr("messaging.operation.type", "send")
          .Attr("http.request.method", "POST")
          .Attr("http.route", "/api/v1/orders/{id}")
          .Attr("http.response.status_code", 200)
          .Attr("url.full", std::string("https://crm.internal.example.com/api/v1/orders/") + order)
          .Attr("enduser.id", user)
          .Event("order.state_change", start + 500'000, {{"order.previous_stage", "SUBMITTED"}})
          .Status(opentelemetry::proto::trace::v1::Status::STATUS_CODE_OK);
      req.Add(span);
    }
  }
  return std::move(req).Build();
}

}  // namespace ordertrace::bench
