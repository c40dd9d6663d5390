// Fuzz target for the bounded inflate of received bodies (src/common/gzip.h Inflate): the first
// byte picks the format (gzip, zlib, raw deflate), the rest is the body.  Any input must inflate
// or fail with a Status, never write more than the limit; and what GzipCompress makes of the
// body must inflate back to it.
//
// Corpus: tests/fuzz/corpus/gzip.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ordertrace::InflateFormat;
  if (size == 0) return 0;
  constexpr size_t kLimit = 1 << 20;
  const InflateFormat formats[] = {InflateFormat::kGzip, InflateFormat::kZlib,
                                   InflateFormat::kRawDeflate};
  const InflateFormat format = formats[data[0] % 3];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string out;
  ordertrace::Status s = ordertrace::Inflate(body, format, kLimit, "fuzz", &out);
  if (s.ok() && out.size() > kLimit) std::abort();
  if (!s.ok() && s.message().empty()) std::abort();

  // Round trip: compress the body itself, inflate it back.
  auto packed = ordertrace::GzipCompress(body, 1 + data[0] % 9);
  if (!packed.ok()) std::abort();
  std::string back;
  s = ordertrace::Inflate(packed.value(), InflateFormat::kGzip, kLimit, "gzip", &back);
  if (!s.ok() || back != body) {
    std::fprintf(stderr, "gzip round trip failed: %s\n", s.message().c_str());
    std::abort();
  }
  return 0;
}
