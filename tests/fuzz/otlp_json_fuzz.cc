// Fuzz target for OTLP/JSON (src/otlp/json.h): any bytes must convert or fail with a Status (no
// crash, no read outside the buffer under ASan); what converts must be protobuf that libprotobuf
// parses, and that the wire decoder then reads or refuses cleanly.
//
// Corpus: tests/fuzz/corpus/otlp_json.  See docs/fuzzing.md.
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "otlp/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool init = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)init;
  std::string_view json(reinterpret_cast<const char*>(data), size);
  auto wire = ordertrace::otlp::JsonToWire(json);
  if (!wire.ok()) {
    if (wire.status().message().empty()) std::abort();  // a refusal always says why
    return 0;
  }
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest parsed;
  if (!parsed.ParseFromString(wire.value())) {
    std::fprintf(stderr, "JsonToWire produced protobuf that libprotobuf refuses\n");
    std::abort();
  }
  ordertrace::otlp::Limits limits;
  auto batch = ordertrace::otlp::DecodeExportRequest(wire.value(),
                                                     ordertrace::otlp::Protocol::kHttpJson, limits);
  return batch.ok() ? 0 : 0;
}
