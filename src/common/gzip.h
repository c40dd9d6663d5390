// gzip compression of a request body (zlib), for the clients that send OTLP (the exporter that
// forwards upstream and the sample sender), and the bounded inflate of a received body (the HTTP
// server's Content-Encoding: gzip / deflate).
//
// Thread-safety: a free function with no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ordertrace {

// `level` is zlib's 1 (fastest) .. 9 (smallest).  Internal on a zlib failure.
Result<std::string> GzipCompress(std::string_view in, int level);

enum class InflateFormat {
  kGzip,        // RFC 1952; several members back to back are allowed
  kZlib,        // RFC 1950
  kRawDeflate,  // RFC 1951
};

// Inflates untrusted `in` into `*out`.  Output over `limit` bytes: TooLarge (a decompression
// bomb never allocates more than limit + 1 bytes); corrupt, truncated or trailing input:
// InvalidArgument naming `what` ("gzip", "deflate"); Internal when zlib cannot start.
Status Inflate(std::string_view in, InflateFormat format, size_t limit, const char* what,
               std::string* out);

}  // namespace ordertrace
