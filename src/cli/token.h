// `ordertrace token new`: a fresh ingest token (32 random bytes, base64url without padding) and
// the SHA-256 the config keeps instead of it (ingest.auth.tokens, docs/security.md).
//
// Thread-safety: free functions without shared state.
#pragma once

#include <string>

#include "common/status.h"

namespace ordertrace::cli {

struct IngestToken {
  std::string token;   // give to the service (Authorization: Bearer <token>)
  std::string sha256;  // 64 hex digits, for the gateway's config
};

// A new token from OpenSSL's RAND_bytes; Internal when the random source fails.
Result<IngestToken> NewIngestToken();

// What `ordertrace token new --name NAME` prints: the token, its digest and a config line.
std::string FormatIngestToken(const IngestToken& t, const std::string& name);

}  // namespace ordertrace::cli
