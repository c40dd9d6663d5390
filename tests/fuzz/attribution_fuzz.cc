// Fuzz target for attribution (src/journey/attribution/attributor.h): the trace graph a client
// sends is untrusted (parents and links may point anywhere, at themselves, in cycles, at spans
// never sent; ids repeat).  The input is a byte program of spans, 6 bytes each, in requests:
//
//   b0: trace 0-7 (bits 0-2); bit 3: start a new request before this span; bits 4-5: advance
//       the clock by 0, 300, 700 or 1500 ms first (and end the waits due, as the timer does)
//   b1: span id 1-255 (0 → 1)     b2: parent id (0: a root)
//   b3: 0 no link, else a link to span (b3 & 31) of trace (b3 >> 5)
//   b4 % 4: 0 no order.id, else carries "O1".."O3"
//   b5 % 4: 0 plain, 1 publish, 2 process, 3 process with a message id
//
// The first byte picks the bounds (bit 0: a pending set of 4 spans).  What must hold: no crash;
// once every span's wait has ended, nothing is pending (no span waits forever: not on itself,
// not in a cycle); after the shutdown's Expire, no pending bytes are held; every record's order
// is one the input carried, or none.
//
// Corpus: tests/fuzz/corpus/attribution.  See docs/fuzzing.md.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "journey/attribution/attributor.h"
#include "journey/facts.h"
#include "journey/rules/rules.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace {

using namespace ordertrace;
using opentelemetry::proto::trace::v1::Span;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "attribution invariant broken: %s\n", what);
    std::abort();
  }
}

std::string Id(uint8_t a, uint8_t b, size_t n) {
  std::string s(n, '\0');
  s[0] = static_cast<char>(0x40 | a);
  s[n - 1] = static_cast<char>(b);
  return s;
}

constexpr Nanos kMs = 1'000'000;
constexpr Nanos kT0 = 1'767'600'000'000'000'000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const journey::FactExtractor extractor(
      std::make_shared<journey::Rules>(journey::DefaultRules()));
  journey::AttributionOptions options;
  options.wait = Duration(1000);
  if (data[0] & 1) options.max_pending_spans = 4;
  options.max_tracked_spans = 2000;
  options.max_tracked_traces = 2000;
  journey::Attributor attributor(options, nullptr);
  attributor.SetPublishLookup([](std::string_view id) {
    // The engine knows one published message: span 7 of trace 0's publish.
    return id == otlp::ToHex(reinterpret_cast<const uint8_t*>(Id(0, 7, 8).data()), 8)
               ? std::string("O1")
               : std::string();
  });

  std::vector<journey::SpanRecord> out;
  Nanos now = kT0;
  testing_support::RequestBuilder request;
  size_t in_request = 0;
  auto flush = [&] {
    if (in_request == 0) return;
    auto batch = otlp::DecodeExportRequest(request.Serialized(), otlp::Protocol::kHttpProtobuf,
                                           otlp::Limits{});
    Check(batch.ok(), "the generated request decodes");
    attributor.Process(*batch, extractor, now, &out, nullptr);
    request = testing_support::RequestBuilder();
    in_request = 0;
  };

  const size_t spans = std::min<size_t>((size - 1) / 6, 64);
  for (size_t i = 0; i < spans; ++i) {
    const uint8_t* b = data + 1 + 6 * i;
    if (b[0] & 8) flush();
    static constexpr Nanos kAdvance[] = {0, 300 * kMs, 700 * kMs, 1500 * kMs};
    if (const Nanos step = kAdvance[(b[0] >> 4) & 3]; step > 0) {
      flush();
      now += step;
      attributor.Expire(now, extractor, &out);
    }
    const uint8_t trace = b[0] & 7;
    const uint8_t span = b[1] == 0 ? 1 : b[1];
    testing_support::SpanBuilder s("span " + std::to_string(span));
    s.Ids(Id(trace, 0x11, 16), Id(trace, span, 8), b[2] == 0 ? std::string() : Id(trace, b[2], 8));
    s.Times(static_cast<uint64_t>(kT0), static_cast<uint64_t>(kT0 + 1000));
    if (b[3] != 0) {
      const uint8_t lt = b[3] >> 5, ls = (b[3] & 31) == 0 ? 1 : b[3] & 31;
      s.Link(Id(lt, 0x11, 16), Id(lt, ls, 8));
    }
    if (b[4] % 4 != 0) s.Attr("order.id", "O" + std::to_string(b[4] % 4));
    switch (b[5] % 4) {
      case 1:
        s.Kind(Span::SPAN_KIND_PRODUCER).Attr("messaging.system", "rabbitmq");
        s.Attr("messaging.operation.type", "send").Attr("messaging.destination.name", "x:k");
        s.Attr("messaging.rabbitmq.destination.routing_key", "k");
        break;
      case 2:
      case 3:
        s.Kind(Span::SPAN_KIND_CONSUMER).Attr("messaging.system", "rabbitmq");
        s.Attr("messaging.operation.type", "process");
        if (b[5] % 4 == 3) s.Attr("messaging.message.id", "m" + std::to_string(span));
        break;
      default:
        break;
    }
    request.Resource("svc" + std::to_string(trace % 3));
    request.Add(s);
    ++in_request;
  }
  flush();

  // Every wait has ended: nothing may still wait (a span waiting on itself or in a cycle would).
  attributor.Expire(now + 1000 * kMs, extractor, &out);
  Check(attributor.stats().pending_spans == 0, "nothing pending once every wait has ended");
  attributor.Expire(journey::Attributor::kForever, extractor, &out);
  const journey::AttributionStats st = attributor.stats();
  Check(st.pending_spans == 0, "nothing pending after shutdown");
  Check(st.pending_bytes == 0, "no bytes held after shutdown");
  for (const journey::SpanRecord& r : out) {
    Check(r.order_id.empty() || r.order_id == "O1" || r.order_id == "O2" || r.order_id == "O3",
          "an order the input carried");
  }
  return 0;
}
