// Propagation benchmark: cost of Inject and Extract (traceparent + tracestate + baggage) over a
// std::map header carrier and an AMQP header table.  Figures in docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "ordertrace/propagation.h"

namespace {

using ordertrace::AmqpHeaders;
using ordertrace::Baggage;
using ordertrace::SpanContext;

SpanContext Context(bool with_state) {
  SpanContext c;
  ordertrace::ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c);
  if (with_state) c.trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
  return c;
}

Baggage SmallBaggage() {
  Baggage b;
  b.Set("order.id", "ORD-2026-000042");
  b.Set("partner.id", "acme corp");
  return b;
}

// args: 0 = traceparent only, 1 = + tracestate + 2-entry baggage
void BM_InjectHeaderMap(benchmark::State& state) {
  const bool full = state.range(0) != 0;
  SpanContext ctx = Context(full);
  Baggage bag = SmallBaggage();
  for (auto _ : state) {
    std::map<std::string, std::string> headers;
    ordertrace::Inject(ctx, full ? &bag : nullptr, &headers);
    benchmark::DoNotOptimize(headers);
  }
}
BENCHMARK(BM_InjectHeaderMap)->Arg(0)->Arg(1);

void BM_ExtractHeaderMap(benchmark::State& state) {
  const bool full = state.range(0) != 0;
  std::map<std::string, std::string> headers{{"content-type", "application/x-protobuf"},
                                             {"user-agent", "bench/1.0"}};
  Baggage bag = SmallBaggage();
  ordertrace::Inject(Context(full), full ? &bag : nullptr, &headers);
  SpanContext ctx;
  Baggage out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ordertrace::Extract(headers, &ctx, &out));
  }
}
BENCHMARK(BM_ExtractHeaderMap)->Arg(0)->Arg(1);

void BM_InjectAmqp(benchmark::State& state) {
  const bool full = state.range(0) != 0;
  SpanContext ctx = Context(full);
  Baggage bag = SmallBaggage();
  for (auto _ : state) {
    AmqpHeaders h;
    ordertrace::Inject(ctx, full ? &bag : nullptr, h);
    benchmark::DoNotOptimize(h.table().entries);
  }
}
BENCHMARK(BM_InjectAmqp)->Arg(0)->Arg(1);

void BM_ExtractAmqp(benchmark::State& state) {
  const bool full = state.range(0) != 0;
  Baggage bag = SmallBaggage();
  AmqpHeaders h;
  h.Set("x-app-version", "3.1");  // an unrelated header, as applications add them
  ordertrace::Inject(Context(full), full ? &bag : nullptr, h);
  const amqp_table_t& table = h.table();
  SpanContext ctx;
  Baggage out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ordertrace::Extract(table, &ctx, &out));
  }
}
BENCHMARK(BM_ExtractAmqp)->Arg(0)->Arg(1);

void BM_ParseTraceparent(benchmark::State& state) {
  SpanContext ctx;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ordertrace::ParseTraceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &ctx));
  }
}
BENCHMARK(BM_ParseTraceparent);

void BM_FormatTraceparent(benchmark::State& state) {
  SpanContext ctx = Context(false);
  for (auto _ : state) benchmark::DoNotOptimize(ordertrace::FormatTraceparent(ctx));
}
BENCHMARK(BM_FormatTraceparent);

}  // namespace

BENCHMARK_MAIN();
