#include "receive/ingest_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <set>

namespace ordertrace::receive {
namespace {

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = ToLower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::array<uint8_t, 32> Sha256(std::string_view text) {
  std::array<uint8_t, 32> digest{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

bool Listed(const std::vector<std::string>& services, std::string_view name) {
  return std::find(services.begin(), services.end(), name) != services.end();
}

}  // namespace

const char* IngestAuthResultName(IngestAuthResult r) {
  switch (r) {
    case IngestAuthResult::kOk:
      return "ok";
    case IngestAuthResult::kMissing:
      return "missing";
    case IngestAuthResult::kInvalid:
      return "invalid";
    case IngestAuthResult::kForbiddenService:
      return "forbidden_service";
  }
  return "invalid";
}

bool ParseBearer(std::string_view authorization, std::string_view* token) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (ToLower(authorization[i]) != kScheme[i]) return false;
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return false;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of(" \t,") != std::string_view::npos) return false;
  *token = rest;
  return true;
}

std::string Sha256Hex(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : Sha256(text)) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

Result<IngestAuthenticator> IngestAuthenticator::Create(const IngestAuthOptions& options) {
  IngestAuthenticator a;
  a.mode_ = options.mode;
  std::set<std::string> names;
  auto check_name = [&](const std::string& where, const std::string& name) -> Status {
    if (name.empty()) return Status::InvalidArgument(where + ".name: expected a name");
    if (!names.insert(name).second) {
      return Status::InvalidArgument(where + ".name: '" + name + "' is used twice");
    }
    return Status::Ok();
  };
  if (options.mode == IngestAuthMode::kBearer) {
    if (options.tokens.empty()) {
      return Status::InvalidArgument("ingest.auth.tokens: mode bearer needs at least one token");
    }
    for (size_t i = 0; i < options.tokens.size(); ++i) {
      const auto& t = options.tokens[i];
      const std::string where = "ingest.auth.tokens[" + std::to_string(i) + "]";
      if (Status s = check_name(where, t.name); !s.ok()) return s;
      Entry e;
      e.name = t.name;
      e.services = t.services;
      bool hex = t.sha256.size() == 64;
      for (size_t j = 0; hex && j < 32; ++j) {
        const int hi = HexValue(t.sha256[2 * j]), lo = HexValue(t.sha256[2 * j + 1]);
        hex = hi >= 0 && lo >= 0;
        if (hex) e.digest[j] = static_cast<uint8_t>(hi << 4 | lo);
      }
      // The value is not repeated: someone may have pasted the token itself here.
      if (!hex) {
        return Status::InvalidArgument(where +
                                       ".sha256: expected 64 hex digits (the SHA-256 of the "
                                       "token, as `ordertrace token new` prints it), got " +
                                       std::to_string(t.sha256.size()) + " characters");
      }
      a.entries_.push_back(std::move(e));
    }
  } else if (options.mode == IngestAuthMode::kMtls) {
    if (options.identities.empty()) {
      return Status::InvalidArgument(
          "ingest.auth.identities: mode mtls needs at least one identity");
    }
    for (size_t i = 0; i < options.identities.size(); ++i) {
      const auto& id = options.identities[i];
      const std::string where = "ingest.auth.identities[" + std::to_string(i) + "]";
      if (Status s = check_name(where, id.name); !s.ok()) return s;
      if (id.subject.empty()) {
        return Status::InvalidArgument(
            where + ".subject: expected the certificate's common name or a DNS/URI SAN");
      }
      Entry e;
      e.name = id.name;
      e.subject = id.subject;
      e.services = id.services;
      a.entries_.push_back(std::move(e));
    }
  }
  return a;
}

IngestCaller IngestAuthenticator::Authenticate(const std::vector<std::string_view>& authorization,
                                               const net::TlsPeer& peer) const {
  IngestCaller caller;
  switch (mode_) {
    case IngestAuthMode::kNone:
      caller.result = IngestAuthResult::kOk;
      return caller;
    case IngestAuthMode::kBearer: {
      if (authorization.empty()) return caller;  // missing
      caller.result = IngestAuthResult::kInvalid;
      std::string_view token;
      if (authorization.size() != 1 || !ParseBearer(authorization[0], &token)) return caller;
      const std::array<uint8_t, 32> presented = Sha256(token);
      // Every entry is compared, and the match is selected without a branch on the comparison,
      // so the time does not tell which entry matched or how far a guess got.
      int match = -1;
      for (size_t i = 0; i < entries_.size(); ++i) {
        const int equal =
            CRYPTO_memcmp(presented.data(), entries_[i].digest.data(), presented.size()) == 0;
        const int mask = -equal;  // all ones when equal
        match = (match & ~mask) | (static_cast<int>(i) & mask);
      }
      if (match >= 0) {
        caller.result = IngestAuthResult::kOk;
        caller.entry = match;
      }
      return caller;
    }
    case IngestAuthMode::kMtls: {
      if (!peer.verified) return caller;  // missing
      caller.result = IngestAuthResult::kInvalid;
      for (size_t i = 0; i < entries_.size(); ++i) {
        const std::string& subject = entries_[i].subject;
        if (subject == peer.common_name || Listed(peer.alt_names, subject)) {
          caller.result = IngestAuthResult::kOk;
          caller.entry = static_cast<int>(i);
          break;
        }
      }
      return caller;
    }
  }
  return caller;
}

bool IngestAuthenticator::MaySend(const IngestCaller& caller, const otlp::SpanBatch& batch) const {
  if (mode_ == IngestAuthMode::kNone) return true;
  if (caller.result != IngestAuthResult::kOk || caller.entry < 0 ||
      caller.entry >= static_cast<int>(entries_.size())) {
    return false;
  }
  const Entry& e = entries_[static_cast<size_t>(caller.entry)];
  if (e.services.empty()) return true;
  for (const otlp::ResourceRef& r : batch.resources()) {
    if (r.service_name.empty() || !Listed(e.services, r.service_name)) return false;
  }
  return true;
}

const std::string& IngestAuthenticator::NameOf(const IngestCaller& caller) const {
  static const std::string kNone;
  if (caller.entry < 0 || caller.entry >= static_cast<int>(entries_.size())) return kNone;
  return entries_[static_cast<size_t>(caller.entry)].name;
}

IngestAuthMetrics::IngestAuthMetrics(metrics::Registry& registry) {
  auto& family =
      registry.AddCounter("ordertrace_ingest_auth_total",
                          "OTLP requests by the outcome of ingest authentication (ingest.auth).",
                          {"listener", "result"});
  const char* listeners[2] = {"otlp_http", "otlp_grpc"};
  for (int l = 0; l < 2; ++l) {
    for (int r = 0; r < 4; ++r) {
      counters_[l][r] =
          &family.With({listeners[l], IngestAuthResultName(static_cast<IngestAuthResult>(r))});
    }
  }
}

}  // namespace ordertrace::receive
