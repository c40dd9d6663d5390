// Fuzz target for the redaction of personal data (src/redact/): the first byte picks what the
// rest is.
//   0 (or even): an OTLP ExportTraceServiceRequest.  When it decodes, its redaction must decode
//      too, with the same number of spans, and redacting that again changes nothing (a chain of
//      two gateways does not hash twice).  When it does not decode, redaction may refuse it, never
//      crash.
//   1 (or odd): free text through the detectors: every finding in bounds, in order, not
//      overlapping; the text's redaction never longer than its input plus what the pseudonyms add.
// What must hold: no crash, no endless loop (every scanner is linear), the invariants above.
//
// Corpus: tests/fuzz/corpus/redact.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "otlp/decoder.h"
#include "redact/detect.h"
#include "redact/value_redactor.h"
#include "redact/wire_redactor.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

const ordertrace::redact::ValueRedactor& Redactor() {
  using namespace ordertrace::redact;
  static const ValueRedactor* r = [] {
    auto p = Pseudonymizer::Create({PseudonymKey{"k1", std::string(32, 'k')}});
    if (!p.ok()) std::abort();
    auto v = ValueRedactor::Create(RedactionRules{}, "order.id", *p);
    if (!v.ok()) std::abort();
    return v->release();
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ordertrace;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    // Bit 1: a small value limit, so that values are cut (with their tails) by the redaction.
    otlp::Limits limits;
    if (data[0] & 2) limits.max_attribute_value_bytes = 24;
    auto redacted =
        redact::RedactExportRequest(input, Redactor(), limits.max_attribute_value_bytes);
    auto original =
        otlp::DecodeExportRequest(std::string(input), otlp::Protocol::kHttpProtobuf, limits);
    if (!original.ok()) return 0;
    Check(redacted.ok());
    if (!redacted->has_value()) return 0;
    auto decoded = otlp::DecodeExportRequest(**redacted, otlp::Protocol::kHttpProtobuf, limits);
    Check(decoded.ok());
    Check((*decoded)->spans().size() + (*decoded)->refused_spans() ==
          (*original)->spans().size() + (*original)->refused_spans());
    auto again = redact::RedactExportRequest(**redacted, Redactor());
    Check(again.ok());
    return 0;
  }
  redact::ScanOptions options;
  size_t last_end = 0;
  for (const redact::Finding& f : redact::Scan(input, options)) {
    Check(f.begin < f.end && f.end <= input.size() && f.begin >= last_end);
    last_end = f.end;
  }
  std::string out;
  (void)Redactor().RedactText(input, (data[0] & 2) != 0, &out);
  return 0;
}
