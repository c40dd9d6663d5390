// Fuzz target for the OTLP decoder: any bytes must decode or fail cleanly (no crash, no read
// outside the buffer under ASan), every view of an accepted batch must be walkable, and the
// decoder must agree with libprotobuf on what is well-formed (see decoder_differential_test.cc
// for the documented divergences, which are tolerated here the same way).
//
// Built as a libFuzzer binary with clang (-DORDERTRACE_FUZZ=ON, see docs/fuzzing.md); with
// any compiler it is also built as `decoder_fuzz_replay` (replay_main.cc), which runs the
// checked-in corpus tests/fuzz/corpus/decoder in ctest.
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"

namespace {

using namespace ordertrace::otlp;

size_t Walk(const AnyValueView& v, int depth) {
  size_t n = v.str.size();
  if (depth > 64) std::abort();  // the decoder bounds nesting; deeper is a bug
  ForEachArrayValue(v, 1 << 20, [&](const AnyValueView& e) { n += Walk(e, depth + 1); });
  ForEachKeyValue(v, 1 << 20,
                  [&](const KeyValueView& kv) { n += kv.key.size() + Walk(kv.value, depth + 1); });
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)init;
  std::string wire(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_attributes = 16;
  limits.max_events_per_span = 4;
  limits.max_links_per_span = 4;
  limits.max_attribute_value_bytes = 64;
  auto r = DecodeExportRequest(wire, Protocol::kHttpProtobuf, limits);
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest parsed;
  const bool pb_ok = parsed.ParseFromString(wire);
  if (pb_ok && !r.ok() && r.status().message().find("given twice") == std::string::npos) {
    std::fprintf(stderr, "libprotobuf parses, decoder refuses: %s\n", r.status().message().c_str());
    std::abort();
  }
  if (!r.ok()) return 0;
  const SpanBatch& b = *r.value();
  size_t sum = 0;
  auto attr = [&](const KeyValueView& kv) { sum += kv.key.size() + Walk(kv.value, 0); };
  for (const auto& res : b.resources()) b.ForEachAttribute(res, attr);
  for (const auto& sc : b.scopes()) b.ForEachAttribute(sc, attr);
  for (const auto& s : b.spans()) {
    if (s.resource >= b.resources().size() || s.scope >= b.scopes().size()) std::abort();
    if (s.end_time_unix_nano < s.start_time_unix_nano || s.kind > 5 || s.status_code > 2)
      std::abort();
    uint32_t attrs = 0;
    b.ForEachAttribute(s, [&](const KeyValueView& kv) {
      ++attrs;
      attr(kv);
      if (kv.value.type == ValueType::kString &&
          kv.value.str.size() > limits.max_attribute_value_bytes)
        std::abort();
    });
    if (attrs != s.attributes) std::abort();
    uint32_t events = 0, links = 0;
    b.ForEachEvent(s, [&](const EventView& e) {
      ++events;
      b.ForEachAttribute(e, attr);
    });
    b.ForEachLink(s, [&](const LinkView& l) {
      ++links;
      b.ForEachAttribute(l, attr);
    });
    if (events != s.events || links != s.links) std::abort();
  }
  return sum == SIZE_MAX ? 1 : 0;
}
