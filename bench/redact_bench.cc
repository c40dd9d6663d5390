// Redaction benchmark, in process: the CPU a span costs to decode the standard ingest workload
// (ingest_workload.h) without redaction, and with it (the redaction walk over the wire bytes,
// then the one decode of what it wrote), measured in one run on the same requests, and the
// ratio the budget is stated in (docs/benchmarks.md, "Redaction").
//
// Usage: ordertrace-bench-redact [--seconds 3] [--distinct 16] [--profile]
// --profile runs only the redaction walk, for `perf record`; --requests N with it: exactly N
// requests (for `valgrind --tool=callgrind`, whose instruction counts do not depend on the noise).
// The last line of output is one JSON object with the figures.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ingest_workload.h"
#include "otlp/decoder.h"
#include "redact/pseudonym.h"
#include "redact/value_redactor.h"
#include "redact/wire_redactor.h"

namespace {

double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// Runs `fn` over the requests round-robin for `seconds` of CPU; ns of CPU per span.
template <typename F>
double NsPerSpan(const std::vector<std::string>& requests, double seconds, F&& fn) {
  const double start = ThreadCpuNs();
  uint64_t spans = 0;
  size_t i = 0;
  while (ThreadCpuNs() - start < seconds * 1e9) {
    for (int k = 0; k < 8; ++k, ++i) {
      spans += fn(requests[i % requests.size()]);
    }
  }
  return (ThreadCpuNs() - start) / static_cast<double>(spans);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ordertrace;
  double seconds = 3;
  int distinct = 16;
  bool profile = false;
  long fixed_requests = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--profile") == 0) profile = true;
  }
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::stod(argv[i + 1]);
    if (std::strcmp(argv[i], "--distinct") == 0) distinct = std::max(1, std::stoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--requests") == 0) fixed_requests = std::stol(argv[i + 1]);
  }
  std::mt19937_64 rng(42);
  const uint64_t base_ns = 1'800'000'000'000'000'000ull;
  std::vector<std::string> requests;
  for (int i = 0; i < distinct; ++i) {
    requests.push_back(bench::MakeRequest(rng, i, base_ns).SerializeAsString());
  }
  redact::PseudonymKey key{"k1", std::string(32, 'k')};
  auto pseudonymizer = redact::Pseudonymizer::Create({key});
  auto redactor =
      redact::ValueRedactor::Create(redact::RedactionRules(), "order.id", *pseudonymizer);
  if (!pseudonymizer.ok() || !redactor.ok()) {
    std::fprintf(stderr, "bench: cannot build the redactor\n");
    return 1;
  }
  const redact::ValueRedactor& r = **redactor;
  otlp::Limits limits;

  auto decode = [&](const std::string& wire) -> uint64_t {
    auto b = otlp::DecodeExportRequest(wire, otlp::Protocol::kHttpProtobuf, limits);
    return b.ok() ? (*b)->spans().size() : 0;
  };
  auto redact_only = [&](const std::string& wire) -> uint64_t {
    auto out = redact::RedactExportRequest(wire, r);
    return out.ok() ? bench::kSpansPerRequest : 0;
  };
  auto redact_decode = [&](const std::string& wire) -> uint64_t {
    auto out = redact::RedactExportRequest(wire, r);
    if (!out.ok()) return 0;
    auto b = otlp::DecodeExportRequest(out->has_value() ? std::move(**out) : wire,
                                       otlp::Protocol::kHttpProtobuf, limits);
    return b.ok() ? (*b)->spans().size() : 0;
  };
  if (profile && fixed_requests > 0) {
    uint64_t spans = 0;
    for (long i = 0; i < fixed_requests; ++i) spans += redact_only(requests[i % requests.size()]);
    std::printf("redaction walk: %llu spans\n", static_cast<unsigned long long>(spans));
    return 0;
  }
  if (profile) {
    std::printf("redaction walk: %.0f ns/span\n", NsPerSpan(requests, seconds, redact_only));
    return 0;
  }
  // Interleaved rounds: the machine is noisy, so each figure is the best of three.
  double off = 1e18, on = 1e18, walk = 1e18;
  for (int round = 0; round < 3; ++round) {
    off = std::min(off, NsPerSpan(requests, seconds / 3, decode));
    on = std::min(on, NsPerSpan(requests, seconds / 3, redact_decode));
    walk = std::min(walk, NsPerSpan(requests, seconds / 3, redact_only));
  }
  std::printf("decode only:          %7.0f ns/span\n", off);
  std::printf("redaction walk:       %7.0f ns/span\n", walk);
  std::printf("redact, then decode:  %7.0f ns/span (%.2fx of decode only)\n", on, on / off);
  std::printf(
      "{\"benchmark\":\"redact\",\"distinct_requests\":%d,\"decode_ns_per_span\":%.0f,"
      "\"redact_ns_per_span\":%.0f,\"redact_decode_ns_per_span\":%.0f,\"ratio\":%.2f}\n",
      distinct, off, walk, on, on / off);
  return 0;
}
