#include "auth/oidc_client.h"

#include <algorithm>

#include "auth/strict_json.h"
#include "common/log.h"
#include "net/http_client.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::auth {
namespace {

using nlohmann::json;

bool IsLoopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

Nanos ToNanos(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

Status CheckFetchUrl(std::string_view url, bool allow_insecure_loopback, std::string_view what) {
  net::UrlOptions o;
  o.what = std::string(what);
  auto parsed = net::ParseUrl(url, o);
  if (!parsed.ok()) return parsed.status();
  if (parsed->scheme == "https") return Status::Ok();
  if (allow_insecure_loopback && IsLoopback(parsed->host)) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " '" + net::RedactUrl(url) +
                                 "': https is required (plain http only to a loopback host with "
                                 "auth.oidc.allow_insecure_loopback)");
}

Result<std::unique_ptr<OidcClient>> OidcClient::Create(OidcClientOptions options,
                                                       const Clock& clock,
                                                       metrics::Registry* registry) {
  if (Status s = CheckFetchUrl(options.issuer, options.allow_insecure_loopback, "issuer");
      !s.ok()) {
    return s;
  }
  std::shared_ptr<const net::TlsClientContext> tls;
  if (!options.ca_file.empty()) {
    net::TlsOptions t;
    t.ca_file = options.ca_file;
    auto created = net::TlsClientContext::Create(t);
    if (!created.ok()) return created.status();
    tls = std::move(created).value();
  }
  std::unique_ptr<OidcClient> client(new OidcClient(std::move(options), clock, registry));
  client->tls_ = std::move(tls);
  return client;
}

OidcClient::OidcClient(OidcClientOptions options, const Clock& clock, metrics::Registry* registry)
    : options_(std::move(options)), clock_(clock) {
  if (registry) {
    auto& family =
        registry->AddCounter("ordertrace_oidc_jwks_fetch_total",
                             "JWKS (and discovery) fetches from the OpenID provider.", {"result"});
    fetch_ok_ = &family.With({"ok"});
    fetch_error_ = &family.With({"error"});
  }
}

OidcClient::~OidcClient() { Stop(); }

void OidcClient::Start() {
  worker_.Start("oidc-jwks", [this] { return Tick(); });
}

void OidcClient::Stop() { worker_.Stop(); }

std::shared_ptr<const KeySet> OidcClient::Keys() const {
  MutexLock lock(mu_);
  return keys_;
}

void OidcClient::OnUnknownKid() const {
  // Bounded: a flag and a wake; the worker decides whether the cooldown allows a fetch.
  if (!refetch_wanted_.exchange(true)) worker_.Wake();
}

std::chrono::nanoseconds OidcClient::Tick() {
  const Nanos now = clock_.Now();
  const bool have_keys = Keys() != nullptr;
  // An unknown kid inside the cooldown is remembered and served when the cooldown ends: one
  // fetch per cooldown at most, and a rotated key is picked up without waiting for another
  // request.
  if (refetch_wanted_.exchange(false)) refetch_pending_ = true;
  const Nanos cooldown = ToNanos(options_.cooldown);
  bool due;
  if (!have_keys) {
    due = !attempted_ || now - last_attempt_ >= ToNanos(backoff_);
  } else {
    due = now - last_success_ >= ToNanos(options_.max_age) ||
          (refetch_pending_ && now - last_attempt_ >= cooldown);
  }
  if (due) {
    attempted_ = true;
    refetch_pending_ = false;
    last_attempt_ = now;
    Status s = Fetch();
    if (s.ok()) {
      last_success_ = now;
      backoff_ = std::chrono::milliseconds(1000);
      if (fetch_ok_) fetch_ok_->Inc();
    } else {
      jwks_uri_.clear();  // the next attempt starts from discovery again
      if (fetch_error_) fetch_error_->Inc();
      log::Warn("OIDC: fetching the provider's keys failed; keeping the last good keys",
                {{"issuer", net::RedactUrl(options_.issuer)},
                 {"error", s.message()},
                 {"have_keys", Keys() != nullptr}});
      if (Keys() == nullptr) {
        backoff_ =
            std::min(backoff_ * 2, std::max(options_.cooldown, std::chrono::milliseconds(1000)));
      } else {
        // Retry an old set after the cooldown, not at once (the set is kept meanwhile).
        last_success_ = now - ToNanos(options_.max_age) + cooldown;
      }
    }
  }
  // Polling at most each second keeps the waits right when tests move a ManualClock.
  return std::chrono::seconds(1);
}

Status OidcClient::Fetch() {
  fetches_.fetch_add(1);
  net::HttpOptions http;
  http.timeout = options_.timeout;
  http.max_body_bytes = options_.max_body_bytes;
  http.tls = std::static_pointer_cast<const net::TlsClientContext>(tls_);
  http.headers.emplace_back("Accept", "application/json");
  if (jwks_uri_.empty()) {
    auto issuer = net::ParseUrl(options_.issuer);
    if (!issuer.ok()) return issuer.status();
    std::string path = issuer->target;
    while (!path.empty() && path.back() == '/') path.pop_back();
    auto reply = net::HttpGet(options_.issuer, path + "/.well-known/openid-configuration", http);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) {
      return Status::Unavailable("discovery answered HTTP " + std::to_string(reply->status));
    }
    json doc;
    std::string error;
    if (!ParseStrictJson(reply->body, &doc, &error, 8) || !doc.is_object()) {
      return Status::InvalidArgument("discovery document: " +
                                     (error.empty() ? "not an object" : error));
    }
    auto iss = doc.find("issuer");
    if (iss == doc.end() || !iss->is_string() || *iss != options_.issuer) {
      return Status::InvalidArgument(
          "discovery document's issuer is not identical to auth.oidc.issuer '" +
          net::RedactUrl(options_.issuer) + "' (OIDC Discovery 4.3: use the exact value, " +
          "trailing slash included, that the provider publishes)");
    }
    auto jwks = doc.find("jwks_uri");
    if (jwks == doc.end() || !jwks->is_string()) {
      return Status::InvalidArgument("discovery document has no jwks_uri");
    }
    if (Status s =
            CheckFetchUrl(jwks->get<std::string>(), options_.allow_insecure_loopback, "jwks_uri");
        !s.ok()) {
      return s;
    }
    jwks_uri_ = jwks->get<std::string>();
    // The browser sign-in's endpoints (absent ones stay ""; an unusable one is left out).
    OidcEndpoints endpoints;
    const std::pair<const char*, std::string*> wanted[] = {
        {"authorization_endpoint", &endpoints.authorization},
        {"token_endpoint", &endpoints.token},
        {"end_session_endpoint", &endpoints.end_session}};
    for (const auto& [name, out] : wanted) {
      auto it = doc.find(name);
      if (it == doc.end() || !it->is_string()) continue;
      const std::string url = it->get<std::string>();
      // The authorization endpoint is the browser's to visit, but it must still be the
      // provider's over https (or loopback in tests): never send a user elsewhere.
      if (Status s = CheckFetchUrl(url, options_.allow_insecure_loopback, name); !s.ok()) {
        log::Warn("OIDC: a discovery endpoint is not used", {{"why", s.message()}});
        continue;
      }
      *out = url;
    }
    MutexLock lock(mu_);
    endpoints_ = std::move(endpoints);
  }
  auto jwks_url = net::ParseUrl(jwks_uri_);
  if (!jwks_url.ok()) return jwks_url.status();
  auto reply = net::HttpGet(jwks_uri_, jwks_url->RequestTarget(), http);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) {
    return Status::Unavailable("jwks_uri answered HTTP " + std::to_string(reply->status));
  }
  std::vector<std::string> skipped;
  auto set = KeySet::Parse(reply->body, &skipped);
  if (!set.ok()) return set.status();
  for (const std::string& s : skipped) {
    log::Warn("OIDC: a key of the provider's JWKS is not used", {{"why", s}});
  }
  if (set->keys().empty()) return Status::InvalidArgument("JWKS has no usable key");
  auto shared = std::make_shared<const KeySet>(std::move(set).value());
  MutexLock lock(mu_);
  keys_ = std::move(shared);
  return Status::Ok();
}

Result<OidcEndpoints> OidcClient::Endpoints() const {
  MutexLock lock(mu_);
  if (endpoints_.authorization.empty() || endpoints_.token.empty()) {
    return Status::Unavailable(
        "the identity provider's discovery document has not been read (or names no "
        "authorization and token endpoints)");
  }
  return endpoints_;
}

}  // namespace ordertrace::auth
