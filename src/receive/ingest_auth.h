// Ingest authentication for the OTLP receivers (ingest.auth, docs/security.md): which services
// may send spans, by a bearer token or by a client certificate (mTLS), and which service.name
// values each may send in.
//
// Bearer tokens are configured only as their SHA-256 (64 hex digits): a presented token is
// hashed and compared with every configured digest with CRYPTO_memcmp, all entries every time,
// so the time taken does not depend on which entry (or how much of one) matched.  A fast hash is
// right here because tokens are 32 random bytes (`ordertrace token new`), not passwords.
// mTLS identities match the verified client certificate's common name or a DNS/URI subject
// alternative name exactly.
//
// Nothing here logs, and no result carries a token or part of one; the matched entry's name is
// for the access audit and debug logs only, never for a metric label.
//
// Thread-safety: immutable after Create(); every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "net/tls.h"
#include "otlp/span_batch.h"

namespace ordertrace::receive {

enum class IngestAuthMode { kNone, kBearer, kMtls };

struct IngestAuthOptions {
  IngestAuthMode mode = IngestAuthMode::kNone;
  struct Token {
    std::string name;                   // who holds it, for the audit; never logged with the token
    std::string sha256;                 // 64 hex digits: SHA-256 of the token text
    std::vector<std::string> services;  // allowed service.name values; empty: any
  };
  std::vector<Token> tokens;
  struct Identity {
    std::string name;
    std::string subject;  // the certificate's CN, or one of its DNS or URI SANs
    std::vector<std::string> services;
  };
  std::vector<Identity> identities;
};

// The metric label values of ordertrace_ingest_auth_total{listener,result}.
enum class IngestAuthResult { kOk, kMissing, kInvalid, kForbiddenService };
const char* IngestAuthResultName(IngestAuthResult r);

// Who sent a request, once authenticated.
struct IngestCaller {
  IngestAuthResult result = IngestAuthResult::kMissing;
  int entry = -1;  // index of the matching token or identity; -1 when none (or mode none)
};

// Parses "Bearer <token>" (scheme case-insensitive, one or more spaces); false when the header
// is not a bearer credential.
bool ParseBearer(std::string_view authorization, std::string_view* token);

// SHA-256 of `text` as 64 lower-case hex digits (what `ordertrace token new` prints).
std::string Sha256Hex(std::string_view text);

class IngestAuthenticator {
 public:
  // Validates the options: every sha256 64 hex digits, names unique and non-empty, subjects
  // non-empty; InvalidArgument naming the entry ("ingest.auth.tokens[1].sha256: ...").
  static Result<IngestAuthenticator> Create(const IngestAuthOptions& options);
  IngestAuthenticator() = default;  // mode none: everyone is allowed

  IngestAuthMode mode() const { return mode_; }
  bool enabled() const { return mode_ != IngestAuthMode::kNone; }

  // Checks a request's credentials: the values of its Authorization headers (HTTP) or
  // `authorization` metadata (gRPC), and its verified client certificate.  Two or more
  // authorization values are refused as invalid.  Mode none: always kOk.
  IngestCaller Authenticate(const std::vector<std::string_view>& authorization,
                            const net::TlsPeer& peer) const;

  // Whether the caller may send every resource of `batch` (all resource spans are checked): its
  // entry's service list is empty, or holds each resource's service.name ("" when a resource
  // has none, which a bound entry never allows).  Mode none: true.
  bool MaySend(const IngestCaller& caller, const otlp::SpanBatch& batch) const;

  // The matched entry's configured name ("" for none), for the audit.
  const std::string& NameOf(const IngestCaller& caller) const;

 private:
  struct Entry {
    std::string name;
    std::array<uint8_t, 32> digest{};  // bearer
    std::string subject;               // mtls
    std::vector<std::string> services;
  };
  IngestAuthMode mode_ = IngestAuthMode::kNone;
  std::vector<Entry> entries_;
};

// ordertrace_ingest_auth_total{listener,result} for the two OTLP listeners ("otlp_http",
// "otlp_grpc"); registered once per registry.
class IngestAuthMetrics {
 public:
  explicit IngestAuthMetrics(metrics::Registry& registry);
  void Count(otlp::Protocol protocol, IngestAuthResult r) {
    counters_[protocol == otlp::Protocol::kGrpc ? 1 : 0][static_cast<int>(r)]->Inc();
  }

 private:
  metrics::Counter* counters_[2][4];
};

}  // namespace ordertrace::receive
