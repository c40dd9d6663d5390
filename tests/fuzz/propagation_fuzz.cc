// Fuzz target for context extraction (include/ordertrace/propagation.h): the input is split at
// '\n' into traceparent, tracestate and baggage header values, extracted from an HTTP header map
// and from an AMQP header table.  Malformed headers must yield an invalid context or empty
// baggage, never a crash; what is accepted must format and parse back to the same thing.
//
// Corpus: tests/fuzz/corpus/propagation.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ordertrace/propagation.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "propagation invariant broken: %s\n", what);
    std::abort();
  }
}

amqp_bytes_t Bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ordertrace;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (auto& part : parts) {
    size_t nl = in.find('\n');
    part = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }

  std::map<std::string, std::string> headers{{"Traceparent", std::string(parts[0])},
                                             {"tracestate", std::string(parts[1])},
                                             {"BAGGAGE", std::string(parts[2])}};
  SpanContext ctx;
  Baggage baggage;
  const bool valid = Extract(headers, &ctx, &baggage);
  Check(valid == ctx.valid(), "Extract returns ctx.valid()");

  if (valid) {
    // A valid context formats and parses back to the same ids and flags.
    SpanContext again;
    Check(ParseTraceparent(FormatTraceparent(ctx), &again), "formatted traceparent parses");
    Check(FormatTraceparent(again) == FormatTraceparent(ctx), "traceparent round trip");
  }

  // Normalized tracestate is a fixed point.
  std::string state;
  if (ParseTraceState(parts[1], &state)) {
    std::string again;
    Check(ParseTraceState(state, &again), "normalized tracestate parses");
    Check(again == state, "tracestate normalization is idempotent");
  } else {
    Check(state.empty(), "invalid tracestate yields \"\"");
  }

  // Baggage that was kept formats within the limits and parses back to the same entries.
  const std::string formatted = FormatBaggage(baggage);
  Check(formatted.size() <= kMaxBaggageBytes, "formatted baggage within 8192 bytes");
  Baggage reparsed;
  ParseBaggage(formatted, &reparsed);
  Check(FormatBaggage(reparsed) == formatted, "baggage format/parse round trip");

  // The same headers from an AMQP table (long strings, as librabbitmq delivers them).
  std::vector<amqp_table_entry_t> entries(3);
  const char* names[3] = {"traceparent", "tracestate", "baggage"};
  for (int i = 0; i < 3; ++i) {
    entries[i].key = amqp_cstring_bytes(names[i]);
    entries[i].value.kind = i == 2 ? AMQP_FIELD_KIND_BYTES : AMQP_FIELD_KIND_UTF8;
    entries[i].value.value.bytes = Bytes(parts[i]);
  }
  amqp_table_t table{3, entries.data()};
  SpanContext amqp_ctx;
  Baggage amqp_baggage;
  Extract(table, &amqp_ctx, &amqp_baggage);
  Check(amqp_ctx.valid() == valid, "AMQP and HTTP carriers agree on the context");
  Check(FormatBaggage(amqp_baggage) == formatted, "AMQP and HTTP carriers agree on baggage");
  return 0;
}
