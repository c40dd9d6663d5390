// libordertrace caller-side cost: what a service pays per span on its own thread.
//   BM_Unconfigured       the global provider is the default no-op
//   BM_Unsampled          a provider whose sampler drops everything
//   BM_DiscardExporter    export enabled, batch processor running, exporter discards
//   BM_ExportToGateway    export enabled over OTLP/HTTP to the gateway's real receiver
//                         (loopback, the pipeline behind it discards)
// Each iteration: start a span, set 5 attributes (string, int, double, bool, string), end.
// The export benchmarks run a fixed 100k iterations into a queue that holds them all, so
// every span takes the queued path (none is dropped: see the counters) while the export
// thread works concurrently; the queue is drained by Shutdown() after the timed loop.
#include <benchmark/benchmark.h>

#include <memory>

#include "ordertrace/tracer.h"
#include "receive/otlp_receivers.h"

namespace {

using namespace ordertrace;

constexpr int kIterations = 100000;
constexpr size_t kQueue = 1 << 17;

void SpanWithFiveAttributes(Span& span) {
  span.SetAttribute("order.id", "ORD-2026-000042");
  span.SetAttribute("http.response.status_code", int64_t{200});
  span.SetAttribute("price", 1234.5);
  span.SetAttribute("ordertrace.heartbeat", false);
  span.SetAttribute("order.stage", "PRICE_CALCULATED");
}

template <typename MakeSpan>
void Run(benchmark::State& state, MakeSpan&& make) {
  for (auto _ : state) {
    Span span = make();
    SpanWithFiveAttributes(span);
    span.End();
  }
  state.SetItemsProcessed(state.iterations());
}

void Report(benchmark::State& state, const TracerProvider& p) {
  const TracerStats s = p.stats();
  state.counters["exported"] = static_cast<double>(s.exported);
  state.counters["dropped_queue_full"] = static_cast<double>(s.dropped_queue_full);
  state.counters["dropped_export"] = static_cast<double>(s.dropped_export_failed);
}

void BM_Unconfigured(benchmark::State& state) {
  Run(state, [] { return Span("GET /orders/{id}"); });
}
BENCHMARK(BM_Unconfigured);

void BM_Unsampled(benchmark::State& state) {
  TracerOptions o;
  o.sampler = Sampler::kAlwaysOff;
  TracerProvider p(o);
  Run(state, [&] { return Span(p, "GET /orders/{id}"); });
}
BENCHMARK(BM_Unsampled);

class DiscardExporter : public SpanExporter {
 public:
  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>&) noexcept override {
    return ExportResult::kSuccess;
  }
};

void BM_DiscardExporter(benchmark::State& state) {
  TracerOptions o;
  o.max_queue_size = kQueue;
  TracerProvider p(o, std::make_unique<DiscardExporter>());
  Run(state, [&] { return Span(p, "GET /orders/{id}"); });
  p.Shutdown();
  Report(state, p);
}
BENCHMARK(BM_DiscardExporter)->Iterations(kIterations);

class DiscardSink : public pipeline::BatchSink {
 public:
  Status Accept(std::shared_ptr<const otlp::SpanBatch>) noexcept override { return Status::Ok(); }
};

void BM_ExportToGateway(benchmark::State& state) {
  DiscardSink sink;
  metrics::Registry registry;
  receive::ReceiverMetrics metrics(registry);
  net::HttpServer server(net::HttpServerOptions{});
  receive::RegisterOtlpHttp(server, receive::OtlpReceiverOptions{}, &sink, &metrics);
  if (!server.Start().ok()) {
    state.SkipWithError("cannot start the receiver");
    return;
  }
  TracerOptions o;
  o.max_queue_size = kQueue;
  o.exporter.endpoint = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1/traces";
  TracerProvider p(o);
  Run(state, [&] { return Span(p, "GET /orders/{id}"); });
  p.Shutdown();
  Report(state, p);
  server.Shutdown();
}
BENCHMARK(BM_ExportToGateway)->Iterations(kIterations);

}  // namespace

BENCHMARK_MAIN();
