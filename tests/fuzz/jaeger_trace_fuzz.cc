// Fuzz target for the read-back's judgement of Jaeger's answers (jaeger::ParseTraceAnswer,
// src/jaeger/query_client.h): whatever the query service (or something pretending to be it)
// answers, the outcome is found, missing or failed with a reason, never a crash; and what is
// kept can be written back as JSON (the API dumps it into the order's answer).  The first byte
// picks the HTTP status (200, 404, 500).
//
// Corpus: tests/fuzz/corpus/jaeger_trace.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "jaeger/query_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ordertrace::jaeger::TraceAnswer;
  if (size == 0) return 0;
  static const int kStatus[] = {200, 404, 500};
  const int status = kStatus[data[0] % 3];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const TraceAnswer a =
      ordertrace::jaeger::ParseTraceAnswer("0af7651916cd43dd8448eb211c80319c", status, body);
  switch (a.outcome) {
    case TraceAnswer::Outcome::kFound:
      if (!a.spans.is_array() || !a.processes.is_object()) std::abort();
      (void)a.spans.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      (void)a.processes.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      break;
    case TraceAnswer::Outcome::kMissing:
      break;
    default:
      if (a.error.empty()) std::abort();
  }
  return 0;
}
