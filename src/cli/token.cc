#include "cli/token.h"

#include <openssl/rand.h>

#include "receive/ingest_auth.h"

namespace ordertrace::cli {

Result<IngestToken> NewIngestToken() {
  unsigned char bytes[32] = {};
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return Status::Internal("the system's random number generator failed");
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  IngestToken t;
  // base64url, no padding: 32 bytes -> 43 characters.
  for (size_t i = 0; i < sizeof bytes; i += 3) {
    const size_t n = std::min<size_t>(3, sizeof bytes - i);
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (n > 1 ? uint32_t{bytes[i + 1]} << 8 : 0) |
                       (n > 2 ? uint32_t{bytes[i + 2]} : 0);
    for (size_t k = 0; k < n + 1; ++k) t.token += kAlphabet[(v >> (18 - 6 * k)) & 63];
  }
  t.sha256 = receive::Sha256Hex(t.token);
  return t;
}

std::string FormatIngestToken(const IngestToken& t, const std::string& name) {
  return "token:  " + t.token + "\nsha256: " + t.sha256 +
         "\n\n# The service sends:  Authorization: Bearer <token>  (OTLP/HTTP), or the\n"
         "# `authorization` metadata (OTLP/gRPC); e.g.\n"
         "#   OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>\n"
         "# The gateway's config keeps only the digest (ingest.auth.mode: bearer):\n"
         "#   ingest:\n#     auth:\n#       tokens:\n#         - {name: " +
         name + ", sha256: " + t.sha256 + ", services: [" + name + "]}\n";
}

}  // namespace ordertrace::cli
