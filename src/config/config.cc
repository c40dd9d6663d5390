#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "common/text_format.h"
#include "common/values.h"
#include "common/yaml_reader.h"
#include "net/cidr.h"
#include "net/url.h"

namespace ordertrace::config {
namespace {

// Replaces ${NAME} and ${NAME:-default} with the environment's values; "$$" is a literal "$".
Result<std::string> SubstituteEnv(std::string_view in, const EnvLookup& env) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '$' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (in[i + 1] != '{') {
      out += in[i];
      continue;
    }
    const size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("unterminated ${ in " + Quote(in) + " (write $$ for a $)");
    }
    std::string_view expr = in.substr(i + 2, close - i - 2);
    std::optional<std::string_view> fallback;
    if (size_t sep = expr.find(":-"); sep != std::string_view::npos) {
      fallback = expr.substr(sep + 2);
      expr = expr.substr(0, sep);
    }
    const bool valid_name = !expr.empty() && !std::isdigit(static_cast<unsigned char>(expr[0])) &&
                            std::all_of(expr.begin(), expr.end(), [](char c) {
                              return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                            });
    if (!valid_name) {
      return Status::InvalidArgument("invalid environment variable name " + Quote(expr) +
                                     " in ${...}");
    }
    std::optional<std::string> value = env(std::string(expr));
    if (!value && fallback) value = std::string(*fallback);
    if (!value) {
      return Status::InvalidArgument("environment variable " + std::string(expr) + " is not set");
    }
    out += *value;
    i = close;
  }
  return out;
}

// ---- the schema: one setter per leaf key ----

// Sets one key from its (substituted) scalar text; returns an error message without location.
using Setter = std::function<std::optional<std::string>(std::string_view value, Config* c)>;

Setter HostPortKey(std::string Config::Listen::*field) {
  return [field](std::string_view v, Config* c) -> std::optional<std::string> {
    auto hp = ParseHostPort(v);
    if (!hp.ok()) return hp.status().message();
    c->listen.*field = std::string(TrimSpace(v));
    return std::nullopt;
  };
}

template <typename T>
Setter IntKey(T* (*field)(Config*), uint64_t min, uint64_t max) {
  return [=](std::string_view v, Config* c) -> std::optional<std::string> {
    auto n = ParseUint(TrimSpace(v));
    if (!n || *n < min || *n > max) {
      return "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
             ", got " + Quote(v);
    }
    *field(c) = static_cast<T>(*n);
    return std::nullopt;
  };
}

template <typename T>
Setter SizeKey(T* (*field)(Config*), uint64_t min, uint64_t max) {
  return [=](std::string_view v, Config* c) -> std::optional<std::string> {
    auto n = ParseSize(v);
    if (!n.ok()) return n.status().message();
    if (*n < min || *n > max) {
      return "expected a size from " + FormatSize(min) + " to " + FormatSize(max) + ", got " +
             Quote(v);
    }
    *field(c) = static_cast<T>(*n);
    return std::nullopt;
  };
}

std::optional<std::string> SetLogLevel(std::string_view v, Config* c) {
  std::string level = AsciiLower(TrimSpace(v));
  if (level != "debug" && level != "info" && level != "warn" && level != "error") {
    return "expected one of debug, info, warn, error, got " + Quote(v);
  }
  c->log.level = level;
  return std::nullopt;
}

Setter DurationKey(std::chrono::milliseconds* (*field)(Config*), std::chrono::milliseconds min,
                   std::chrono::milliseconds max, const char* range) {
  return [field, min, max, range](std::string_view v, Config* c) -> std::optional<std::string> {
    auto d = ParseDuration(v);
    if (!d.ok()) return d.status().message();
    if (*d < min || *d > max)
      return std::string("expected a duration from ") + range + ", got " + Quote(v);
    *field(c) = *d;
    return std::nullopt;
  };
}

Setter BoolKey(bool* (*field)(Config*)) {
  return [field](std::string_view v, Config* c) -> std::optional<std::string> {
    auto b = ParseBool(v);
    if (!b.ok()) return b.status().message();
    *field(c) = *b;
    return std::nullopt;
  };
}

Setter StringKey(std::string* (*field)(Config*)) {
  return [field](std::string_view v, Config* c) -> std::optional<std::string> {
    *field(c) = std::string(TrimSpace(v));
    return std::nullopt;
  };
}

using ListenerTls = Config::Listen::Tls;

// listen.tls.<listener>.* and listen.insecure.<listener>, for each listener.
void AddListenerKeys(std::map<std::string, Setter>* schema) {
  struct Listener {
    const char* name;
    ListenerTls Config::Listen::Listeners::*tls;
    bool Config::Listen::Insecure::*insecure;
  };
  static constexpr Listener kListeners[] = {
      {"otlp_grpc", &Config::Listen::Listeners::otlp_grpc, &Config::Listen::Insecure::otlp_grpc},
      {"otlp_http", &Config::Listen::Listeners::otlp_http, &Config::Listen::Insecure::otlp_http},
      {"http", &Config::Listen::Listeners::http, &Config::Listen::Insecure::http},
  };
  for (const Listener& l : kListeners) {
    const std::string prefix = std::string("listen.tls.") + l.name + ".";
    for (auto file :
         {&ListenerTls::cert_file, &ListenerTls::key_file, &ListenerTls::client_ca_file}) {
      const char* leaf = file == &ListenerTls::cert_file  ? "cert_file"
                         : file == &ListenerTls::key_file ? "key_file"
                                                          : "client_ca_file";
      (*schema)[prefix + leaf] = [tls = l.tls, file](std::string_view v,
                                                     Config* c) -> std::optional<std::string> {
        (c->listen.tls.*tls).*file = std::string(TrimSpace(v));
        return std::nullopt;
      };
    }
    (*schema)[prefix + "min_version"] = [tls = l.tls](std::string_view v,
                                                      Config* c) -> std::optional<std::string> {
      const std::string version(TrimSpace(v));
      if (version == "1.0" || version == "1.1") {
        return "TLS " + version + " is not allowed: use 1.2 or 1.3";
      }
      if (version != "1.2" && version != "1.3") return "expected 1.2 or 1.3, got " + Quote(v);
      (c->listen.tls.*tls).min_version = version;
      return std::nullopt;
    };
    (*schema)[std::string("listen.insecure.") + l.name] =
        [insecure = l.insecure](std::string_view v, Config* c) -> std::optional<std::string> {
      auto b = ParseBool(v);
      if (!b.ok()) return b.status().message();
      c->listen.insecure.*insecure = *b;
      return std::nullopt;
    };
  }
}

// listen.allow.*, listen.trusted_proxies (CIDR lists, read by Loader::ReadCidrList; a single
// scalar is a list of one), ingest.auth.* and audit.*.
std::vector<std::string>* CidrListField(const std::string& path, Config* c) {
  if (path == "listen.allow.otlp_grpc") return &c->listen.allow.otlp_grpc;
  if (path == "listen.allow.otlp_http") return &c->listen.allow.otlp_http;
  if (path == "listen.allow.http") return &c->listen.allow.http;
  if (path == "listen.trusted_proxies") return &c->listen.trusted_proxies;
  return nullptr;
}

void AddNetworkKeys(std::map<std::string, Setter>* schema) {
  for (const char* key : {"listen.allow.otlp_grpc", "listen.allow.otlp_http", "listen.allow.http",
                          "listen.trusted_proxies"}) {
    (*schema)[key] = [path = std::string(key)](std::string_view v,
                                               Config* c) -> std::optional<std::string> {
      auto cidr = net::Cidr::Parse(v);
      if (!cidr.ok()) return cidr.status().message();
      *CidrListField(path, c) = {std::string(TrimSpace(v))};
      return std::nullopt;
    };
  }
  (*schema)["ingest.auth.mode"] = [](std::string_view v, Config* c) -> std::optional<std::string> {
    const std::string m = AsciiLower(TrimSpace(v));
    if (m != "none" && m != "bearer" && m != "mtls") {
      return "expected none, bearer or mtls, got " + Quote(v);
    }
    c->ingest.auth.mode = m;
    return std::nullopt;
  };
  // Lists of mappings, read by Loader::ReadCredentials; listed so that they are known keys.
  (*schema)["ingest.auth.tokens"] = [](std::string_view, Config*) -> std::optional<std::string> {
    return "expected a list of {name, sha256, services}";
  };
  (*schema)["ingest.auth.identities"] = [](std::string_view,
                                           Config*) -> std::optional<std::string> {
    return "expected a list of {name, subject, services}";
  };
  (*schema)["audit.enabled"] = BoolKey([](Config* c) { return &c->audit.enabled; });
  (*schema)["audit.file"] = StringKey([](Config* c) { return &c->audit.file; });
}

// ---- redaction.*: personal data out of spans (docs/personal-data.md) ---------------------------

// The key lists of redaction.*, added to the built-in ones.
std::vector<std::string>* RedactionKeyList(const std::string& path, Config* c) {
  if (path == "redaction.pseudonymise_keys") return &c->redaction.pseudonymise_keys;
  if (path == "redaction.drop_keys") return &c->redaction.drop_keys;
  if (path == "redaction.safe_keys") return &c->redaction.safe_keys;
  return nullptr;
}

// A pseudonymisation key id: 1-32 of [A-Za-z0-9_-] (it appears in every pseudonym,
// pse:<id>:...); an error message, or nullopt.
std::optional<std::string> CheckKeyId(std::string_view id) {
  const bool ok = !id.empty() && id.size() <= 32 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  if (ok) return std::nullopt;
  return "expected a key id of 1 to 32 letters, digits, '_' or '-', got " + Quote(id);
}

void AddRedactionKeys(std::map<std::string, Setter>* schema) {
  auto& k = *schema;
  k["redaction.enabled"] = BoolKey([](Config* c) { return &c->redaction.enabled; });
  k["redaction.debug"] = BoolKey([](Config* c) { return &c->redaction.debug; });
  k["redaction.key_file"] = StringKey([](Config* c) { return &c->redaction.key_file; });
  k["redaction.key_id"] = [](std::string_view v, Config* c) -> std::optional<std::string> {
    if (auto err = CheckKeyId(TrimSpace(v))) return err;
    c->redaction.key_id = std::string(TrimSpace(v));
    return std::nullopt;
  };
  k["redaction.default_region"] = StringKey([](Config* c) { return &c->redaction.default_region; });
  // A list of {id, file}, read by Loader::ReadRedactionKeys; listed so that it is a known key.
  k["redaction.keys"] = [](std::string_view, Config*) -> std::optional<std::string> {
    return "expected a list of {id, file}, the current key first";
  };
  // Lists of attribute keys (a sequence, read by Loader::ReadRedactionKeyList, or one key).
  for (const char* path :
       {"redaction.pseudonymise_keys", "redaction.drop_keys", "redaction.safe_keys"}) {
    k[path] = [p = std::string(path)](std::string_view v, Config* c) -> std::optional<std::string> {
      std::vector<std::string>* list = RedactionKeyList(p, c);
      list->clear();
      if (!TrimSpace(v).empty()) list->push_back(std::string(TrimSpace(v)));
      return std::nullopt;
    };
  }
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8, written as a dotted quad
  if (host.substr(0, 4) != "127.") return false;
  int dots = 0;
  for (char ch : host) {
    if (ch == '.') {
      ++dots;
    } else if (ch < '0' || ch > '9') {
      return false;
    }
  }
  return dots == 3;
}

// A retention: a duration, or 0 / off to keep forever.
Setter RetentionKey(std::chrono::milliseconds* (*field)(Config*)) {
  return [field](std::string_view v, Config* c) -> std::optional<std::string> {
    if (AsciiLower(TrimSpace(v)) == "off") {
      *field(c) = std::chrono::milliseconds(0);
      return std::nullopt;
    }
    auto d = ParseDuration(v);
    if (!d.ok()) return d.status().message() + " (or 0 or off to keep forever)";
    *field(c) = *d;
    return std::nullopt;
  };
}

// journeys.jaeger_ui / --jaeger-ui: http(s)://HOST[:PORT][/path], without a trailing '/'.
Result<std::string> NormalizeJaegerUi(std::string_view text) {
  std::string url(TrimSpace(text));
  if (!net::ParseUrl(url).ok()) {
    return Status::InvalidArgument(
        "expected the Jaeger UI's URL, starting with http:// or https:// (like "
        "http://localhost:16686), got " +
        Quote(text));
  }
  while (url.back() == '/') url.pop_back();  // the host is not empty: a '/' is not last
  return url;
}

// An http(s) URL, or "" (off).
Setter UrlKey(std::string* (*field)(Config*)) {
  return [field](std::string_view v, Config* c) -> std::optional<std::string> {
    if (TrimSpace(v).empty()) {
      field(c)->clear();
      return std::nullopt;
    }
    auto url = NormalizeHttpUrl(v);
    if (!url.ok()) return url.status().message();
    *field(c) = *url;
    return std::nullopt;
  };
}

// ---- jaeger.*: Jaeger's query service behind the gateway (docs/jaeger.md) --------------------

void AddJaegerKeys(std::map<std::string, Setter>* schema) {
  auto& k = *schema;
  k["jaeger.query_url"] = UrlKey([](Config* c) { return &c->jaeger.query_url; });
  k["jaeger.public_url"] = UrlKey([](Config* c) { return &c->jaeger.public_url; });
  k["jaeger.timeout"] =
      DurationKey([](Config* c) { return &c->jaeger.timeout; }, std::chrono::milliseconds(100),
                  std::chrono::minutes(10), "100ms to 10m");
  k["jaeger.max_response_bytes"] = SizeKey<uint64_t>(
      [](Config* c) { return &c->jaeger.max_response_bytes; }, 1024, uint64_t{4} << 30);
  k["jaeger.ca_file"] = StringKey([](Config* c) { return &c->jaeger.ca_file; });
}

// ---- ui.*: the web UI (src/ui) -----------------------------------------------------------------

void AddUiKeys(std::map<std::string, Setter>* schema) {
  auto& k = *schema;
  k["ui.dir"] = StringKey([](Config* c) { return &c->ui.dir; });
  k["ui.public_url"] = UrlKey([](Config* c) { return &c->ui.public_url; });
}

// ---- auth.*: API sign-in (OIDC bearer tokens) and roles ---------------------------------------

using StringList = std::vector<std::string>;
using RoleLists = std::vector<std::pair<std::string, StringList>>;

// The list keys of auth.*: a YAML sequence, or one scalar for a one-element list.
StringList* AuthList(const std::string& path, Config* c) {
  if (path == "auth.oidc.algorithms") return &c->auth.oidc.algorithms;
  if (path == "auth.oidc.accepted_typ") return &c->auth.oidc.accepted_typ;
  if (path == "auth.roles.claims") return &c->auth.roles.claims;
  if (path == "auth.roles.allowed") return &c->auth.roles.allowed;
  return nullptr;
}
// The map keys of auth.*: gateway role -> list of values.
RoleLists* AuthMap(const std::string& path, Config* c) {
  if (path == "auth.roles.map") return &c->auth.roles.map;
  if (path == "auth.roles.actions") return &c->auth.roles.actions;
  return nullptr;
}

// Checks one item of an auth list; an error message, or nullopt.
std::optional<std::string> CheckAuthItem(const std::string& path, const std::string& v) {
  if (v.empty()) return "empty value";
  if (path == "auth.oidc.algorithms" && v != "RS256" && v != "PS256" && v != "ES256") {
    return "expected RS256, PS256 or ES256 (never none or HS*), got " + Quote(v);
  }
  if (path == "auth.roles.claims" && v[0] != '/') {
    return "expected a JSON Pointer like /realm_access/roles, got " + Quote(v);
  }
  return std::nullopt;
}

void AddAuthKeys(std::map<std::string, Setter>* schema) {
  auto& k = *schema;
  k["auth.oidc.issuer"] = [](std::string_view v, Config* c) -> std::optional<std::string> {
    c->auth.oidc.issuer = std::string(TrimSpace(v));
    return std::nullopt;
  };
  k["auth.oidc.audience"] = StringKey([](Config* c) { return &c->auth.oidc.audience; });
  k["auth.oidc.leeway"] =
      DurationKey([](Config* c) { return &c->auth.oidc.leeway; }, std::chrono::milliseconds(0),
                  std::chrono::minutes(5), "0s to 5m");
  k["auth.oidc.allow_insecure_loopback"] =
      BoolKey([](Config* c) { return &c->auth.oidc.allow_insecure_loopback; });
  k["auth.oidc.ca_file"] = [](std::string_view v, Config* c) -> std::optional<std::string> {
    const std::string path(TrimSpace(v));
    if (!path.empty()) {
      std::ifstream in(path);
      if (!in) return "cannot read " + Quote(path) + ": " + std::strerror(errno);
    }
    c->auth.oidc.ca_file = path;
    return std::nullopt;
  };
  k["auth.oidc.jwks_cooldown"] =
      DurationKey([](Config* c) { return &c->auth.oidc.jwks_cooldown; }, std::chrono::seconds(1),
                  std::chrono::hours(1), "1s to 1h");
  k["auth.oidc.jwks_max_age"] =
      DurationKey([](Config* c) { return &c->auth.oidc.jwks_max_age; }, std::chrono::seconds(1),
                  std::chrono::hours(24), "1s to 24h");
  k["auth.roles.client"] = StringKey([](Config* c) { return &c->auth.roles.client; });
  k["auth.signin.client_id"] = StringKey([](Config* c) { return &c->auth.signin.client_id; });
  k["auth.signin.client_secret"] =
      StringKey([](Config* c) { return &c->auth.signin.client_secret; });
  k["auth.signin.client_secret_file"] =
      StringKey([](Config* c) { return &c->auth.signin.client_secret_file; });
  k["auth.signin.redirect_uri"] = StringKey([](Config* c) { return &c->auth.signin.redirect_uri; });
  k["auth.signin.post_logout_redirect_uri"] =
      StringKey([](Config* c) { return &c->auth.signin.post_logout_redirect_uri; });
  k["auth.signin.scope"] = StringKey([](Config* c) { return &c->auth.signin.scope; });
  k["auth.signin.resource"] = StringKey([](Config* c) { return &c->auth.signin.resource; });
  k["auth.signin.idle_timeout"] =
      DurationKey([](Config* c) { return &c->auth.signin.idle_timeout; }, std::chrono::minutes(1),
                  std::chrono::hours(24), "1m to 24h");
  k["auth.signin.absolute_timeout"] =
      DurationKey([](Config* c) { return &c->auth.signin.absolute_timeout; },
                  std::chrono::minutes(5), std::chrono::hours(24 * 7), "5m to 7d");
  k["auth.metrics_token_sha256"] = [](std::string_view v, Config* c) -> std::optional<std::string> {
    std::string hex = AsciiLower(TrimSpace(v));
    if (!hex.empty() &&
        (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)) {
      return "expected the SHA-256 of the token as 64 hex digits (sha256sum), got " +
             std::to_string(hex.size()) + " characters";
    }
    c->auth.metrics_token_sha256 = hex;
    return std::nullopt;
  };
  // The list and map keys, written as one scalar (a one-element list); sequences and mappings
  // are read by Loader::ReadAuthValue.
  for (const char* path : {"auth.oidc.algorithms", "auth.oidc.accepted_typ", "auth.roles.claims",
                           "auth.roles.allowed"}) {
    k[path] = [p = std::string(path)](std::string_view v, Config* c) -> std::optional<std::string> {
      StringList* list = AuthList(p, c);
      list->clear();
      const std::string item(TrimSpace(v));
      if (item.empty()) return std::nullopt;
      if (auto err = CheckAuthItem(p, item)) return err;
      list->push_back(item);
      return std::nullopt;
    };
  }
  for (const char* path : {"auth.roles.map", "auth.roles.actions"}) {
    k[path] = [](std::string_view, Config*) -> std::optional<std::string> {
      return "expected a mapping of role names to lists";
    };
  }
}

// The auth.* rules that involve more than one key; messages name the keys.
// Browser sign-in: the client, the exact callback URL (https, or http only on loopback where
// browsers still keep Secure cookies), the timeouts.
Status CheckSignin(const Config::Auth& auth) {
  const auto& s = auth.signin;
  if (!s.enabled()) return Status::Ok();
  if (!auth.oidc.enabled()) {
    return Status::InvalidArgument("auth.signin.client_id: needs auth.oidc.issuer and audience");
  }
  net::UrlOptions uo;
  uo.what = "auth.signin.redirect_uri";
  auto url = net::ParseUrl(s.redirect_uri, uo);
  if (!url.ok()) return url.status();
  if (url->scheme != "https" && !IsLoopbackHost(url->host)) {
    return Status::InvalidArgument(
        "auth.signin.redirect_uri: " + Quote(s.redirect_uri) +
        " must be https (the session cookie is Secure; plain http only on loopback)");
  }
  if (url->target != "/auth/callback") {
    return Status::InvalidArgument("auth.signin.redirect_uri: " + Quote(s.redirect_uri) +
                                   " must end in /auth/callback (the gateway's callback)");
  }
  if (!s.post_logout_redirect_uri.empty()) {
    uo.what = "auth.signin.post_logout_redirect_uri";
    if (auto u = net::ParseUrl(s.post_logout_redirect_uri, uo); !u.ok()) return u.status();
  }
  if (s.scope.find("openid") == std::string::npos) {
    return Status::InvalidArgument(
        "auth.signin.scope: must include openid (an ID token is needed)");
  }
  if (s.idle_timeout > s.absolute_timeout) {
    return Status::InvalidArgument(
        "auth.signin.idle_timeout: longer than auth.signin.absolute_timeout");
  }
  return Status::Ok();
}

Status CheckAuth(const Config::Auth& auth) {
  const auto& o = auth.oidc;
  if (!o.enabled()) {
    if (auth.signin.enabled()) {
      return Status::InvalidArgument(
          "auth.signin.client_id: needs auth.oidc.issuer and audience (--oidc-issuer)");
    }
    if (!o.audience.empty()) {
      return Status::InvalidArgument("auth.oidc.audience: needs auth.oidc.issuer (--oidc-issuer)");
    }
    return Status::Ok();
  }
  if (o.audience.empty()) {
    return Status::InvalidArgument(
        "auth.oidc.audience: required with auth.oidc.issuer (--oidc-audience): the API's "
        "identifier that access tokens carry in aud");
  }
  net::UrlOptions uo;
  uo.what = "auth.oidc.issuer";
  auto url = net::ParseUrl(o.issuer, uo);
  if (!url.ok()) return url.status();
  if (url->scheme != "https" && !(o.allow_insecure_loopback && IsLoopbackHost(url->host))) {
    return Status::InvalidArgument("auth.oidc.issuer: " + Quote(net::RedactUrl(o.issuer)) +
                                   " must be https (plain http only to a loopback issuer with "
                                   "auth.oidc.allow_insecure_loopback: true)");
  }
  if (o.algorithms.empty()) return Status::InvalidArgument("auth.oidc.algorithms: empty");
  if (o.accepted_typ.empty()) return Status::InvalidArgument("auth.oidc.accepted_typ: empty");
  if (auth.roles.allowed.empty()) {
    return Status::InvalidArgument("auth.roles.allowed: empty (nobody could use the API)");
  }
  return CheckSignin(auth);
}

const std::map<std::string, Setter>& Schema() {
  static const auto*
      schema =
          [] {
            auto* keys =
                new std::map<std::string, Setter>{
                    {"listen.otlp_grpc", HostPortKey(&Config::Listen::otlp_grpc)},
                    {"listen.otlp_http", HostPortKey(&Config::Listen::otlp_http)},
                    {"listen.http", HostPortKey(&Config::Listen::http)},
                    {"data_dir",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       if (TrimSpace(v).empty()) return "expected a directory path, got ''";
                       c->data_dir = std::string(v);
                       return std::nullopt;
                     }},
                    {"receiver.max_body_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->receiver.max_body_bytes; }, 1024,
                                       uint64_t{1} << 30)},
                    {"receiver.http_threads",
                     IntKey<int>([](Config* c) { return &c->receiver.http_threads; }, 1, 64)},
                    {"limits.max_attributes",
                     IntKey<uint32_t>([](Config* c) { return &c->limits.max_attributes; }, 0,
                                      1000000)},
                    {"limits.max_attributes_per_event",
                     IntKey<uint32_t>([](Config* c) { return &c->limits.max_attributes_per_event; },
                                      0, 1000000)},
                    {"limits.max_events_per_span",
                     IntKey<uint32_t>([](Config* c) { return &c->limits.max_events_per_span; }, 0,
                                      1000000)},
                    {"limits.max_links_per_span",
                     IntKey<uint32_t>([](Config* c) { return &c->limits.max_links_per_span; }, 0,
                                      1000000)},
                    {"limits.max_attribute_value_bytes",
                     SizeKey<uint32_t>(
                         [](Config* c) { return &c->limits.max_attribute_value_bytes; }, 1,
                         uint64_t{64} << 20)},
                    {"limits.max_value_depth",
                     IntKey<uint32_t>([](Config* c) { return &c->limits.max_value_depth; }, 1, 64)},
                    {"pipeline.queue_max_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->pipeline.queue_max_bytes; },
                                       uint64_t{1} << 20, uint64_t{64} << 30)},
                    {"pipeline.retry_after",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       auto d = ParseDuration(v);
                       if (!d.ok()) return d.status().message();
                       if (*d < std::chrono::milliseconds(1) || *d > std::chrono::hours(1)) {
                         return "expected a duration from 1ms to 1h, got " + Quote(v);
                       }
                       c->pipeline.retry_after = *d;
                       return std::nullopt;
                     }},
                    {"forward.upstream",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       if (Status s = ValidateUpstream(TrimSpace(v)); !s.ok()) return s.message();
                       c->forward.upstream = std::string(TrimSpace(v));
                       return std::nullopt;
                     }},
                    // forward.headers is a mapping (name: value), read by Loader::Walk; listed here
                    // so that it is a known key.
                    {"forward.headers",
                     [](std::string_view, Config*) -> std::optional<std::string> {
                       return "expected a mapping of header names to values";
                     }},
                    {"forward.timeout", DurationKey([](Config* c) { return &c->forward.timeout; },
                                                    std::chrono::milliseconds(10),
                                                    std::chrono::minutes(10), "10ms to 10m")},
                    {"forward.compression",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       const std::string m = AsciiLower(TrimSpace(v));
                       if (m != "gzip" && m != "none")
                         return "expected gzip or none, got " + Quote(v);
                       c->forward.gzip = m == "gzip";
                       return std::nullopt;
                     }},
                    {"forward.tls.ca_file",
                     StringKey([](Config* c) { return &c->forward.tls.ca_file; })},
                    {"forward.tls.cert_file",
                     StringKey([](Config* c) { return &c->forward.tls.cert_file; })},
                    {"forward.tls.key_file",
                     StringKey([](Config* c) { return &c->forward.tls.key_file; })},
                    {"forward.batch.max_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->forward.batch.max_bytes; }, 1024,
                                       uint64_t{256} << 20)},
                    {"forward.batch.max_age",
                     DurationKey([](Config* c) { return &c->forward.batch.max_age; },
                                 std::chrono::milliseconds(0), std::chrono::minutes(1),
                                 "0ms to 1m")},
                    {"forward.queue.dir",
                     StringKey([](Config* c) { return &c->forward.queue.dir; })},
                    {"forward.queue.max_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->forward.queue.max_bytes; },
                                       uint64_t{1} << 20, uint64_t{1} << 40)},
                    {"forward.queue.fsync",
                     BoolKey([](Config* c) { return &c->forward.queue.fsync; })},
                    {"ingest_log.dir", StringKey([](Config* c) { return &c->ingest_log.dir; })},
                    {"ingest_log.max_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->ingest_log.max_bytes; },
                                       uint64_t{1} << 20, uint64_t{1} << 40)},
                    {"ingest_log.segment_bytes",
                     SizeKey<uint64_t>([](Config* c) { return &c->ingest_log.segment_bytes; },
                                       uint64_t{64} << 10, uint64_t{4} << 30)},
                    {"ingest_log.fsync", BoolKey([](Config* c) { return &c->ingest_log.fsync; })},
                    {"forward.retry.initial",
                     DurationKey([](Config* c) { return &c->forward.retry.initial; },
                                 std::chrono::milliseconds(1), std::chrono::minutes(10),
                                 "1ms to 10m")},
                    {"forward.retry.max",
                     DurationKey([](Config* c) { return &c->forward.retry.max; },
                                 std::chrono::milliseconds(1), std::chrono::hours(1), "1ms to 1h")},
                    {"forward.drain_timeout",
                     DurationKey([](Config* c) { return &c->forward.drain_timeout; },
                                 std::chrono::milliseconds(0), std::chrono::minutes(10),
                                 "0s to 10m")},
                    {"log.level", SetLogLevel},
                    {"log.format",
                     [](std::string_view v,
                        Config* c) -> std::
                                       optional<std::string> {
                                         auto f = ParseLogFormat(v);
                                         if (!f.ok()) return f.status().message();
                                         c->log.format = *f;
                                         return std::nullopt;
                                       }},
                    {"log.spans", BoolKey([](Config* c) { return &c->log.spans; })},
                    {"journeys.enabled", BoolKey([](Config* c) { return &c->journeys.enabled; })},
                    {"journeys.rules", StringKey([](Config* c) { return &c->journeys.rules; })},
                    {"journeys.jaeger_ui",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       auto url = NormalizeJaegerUi(v);
                       if (!url.ok()) return url.status().message();
                       c->journeys.jaeger_ui = *url;
                       return std::nullopt;
                     }},
                    {"journeys.store",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       const std::string m = AsciiLower(TrimSpace(v));
                       if (m != "sqlite" && m != "memory")
                         return "expected sqlite or memory, got " + Quote(v);
                       c->journeys.store = m;
                       return std::nullopt;
                     }},
                    {"journeys.sqlite_path",
                     StringKey([](Config* c) { return &c->journeys.sqlite_path; })},
                    {"journeys.sqlite_cache",
                     SizeKey<uint64_t>([](Config* c) { return &c->journeys.sqlite_cache_bytes; },
                                       1ull << 20, 64ull << 30)},
                    {"journeys.retention.closed_orders",
                     RetentionKey([](Config* c) { return &c->journeys.retention.closed_orders; })},
                    {"journeys.retention.inactive_orders", RetentionKey([](Config* c) {
                       return &c->journeys.retention.inactive_orders;
                     })},
                    {"journeys.retention.spans",
                     RetentionKey([](Config* c) { return &c->journeys.retention.spans; })},
                    {"journeys.retention.interval",
                     DurationKey([](Config* c) { return &c->journeys.retention.interval; },
                                 std::chrono::seconds(1), std::chrono::hours(24), "1s to 24h")},
                    {"journeys.max_spans_per_view",
                     IntKey<uint32_t>([](Config* c) { return &c->journeys.max_spans_per_view; }, 1,
                                      100000)},
                    {"journeys.apply_delay",
                     DurationKey([](Config* c) { return &c->journeys.apply_delay; },
                                 std::chrono::milliseconds(0), std::chrono::minutes(10),
                                 "0s to 10m")},
                    {"journeys.attribution.enabled",
                     BoolKey([](Config* c) { return &c->journeys.attribution.enabled; })},
                    {"journeys.attribution.wait",
                     DurationKey([](Config* c) { return &c->journeys.attribution.wait; },
                                 std::chrono::milliseconds(100), std::chrono::hours(1),
                                 "100ms to 1h")},
                    {"journeys.attribution.max_pending_spans",
                     IntKey<uint32_t>(
                         [](Config* c) { return &c->journeys.attribution.max_pending_spans; }, 1,
                         100000000)},
                    {"journeys.attribution.max_pending_bytes",
                     SizeKey<uint64_t>(
                         [](Config* c) { return &c->journeys.attribution.max_pending_bytes; },
                         1ull << 20, 64ull << 30)},
                    {"journeys.attribution.max_tracked_spans",
                     IntKey<uint32_t>(
                         [](Config* c) { return &c->journeys.attribution.max_tracked_spans; }, 1000,
                         1000000000)},
                    {"journeys.attribution.max_tracked_traces",
                     IntKey<uint32_t>(
                         [](Config* c) { return &c->journeys.attribution.max_tracked_traces; },
                         1000, 1000000000)},
                    // alerting.alertmanager is a list of URLs (or one URL), read by Loader::Walk.
                    {"alerting.alertmanager",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       auto url = NormalizeHttpUrl(v);
                       if (!url.ok()) return url.status().message();
                       c->alerting.alertmanager = {*url};
                       return std::nullopt;
                     }},
                    {"alerting.resend_interval",
                     DurationKey([](Config* c) { return &c->alerting.resend_interval; },
                                 std::chrono::seconds(1), std::chrono::hours(1), "1s to 1h")},
                    {"alerting.timeout",
                     DurationKey([](Config* c) { return &c->alerting.timeout; },
                                 std::chrono::milliseconds(100), std::chrono::minutes(5),
                                 "100ms to 5m")},
                    {"alerting.runbook_url",
                     UrlKey([](Config* c) { return &c->alerting.runbook_url; })},
                    {"alerting.webhook.url",
                     UrlKey([](Config* c) { return &c->alerting.webhook.url; })},
                    {"alerting.webhook.secret",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       c->alerting.webhook.secret =
                           std::string(v);  // as given: a secret may have spaces
                       return std::nullopt;
                     }},
                    {"alerting.webhook.timeout",
                     DurationKey([](Config* c) { return &c->alerting.webhook.timeout; },
                                 std::chrono::milliseconds(100), std::chrono::minutes(5),
                                 "100ms to 5m")},
                    {"alerting.storm.threshold",
                     IntKey<uint32_t>([](Config* c) { return &c->alerting.storm.threshold; }, 0,
                                      10000000)},
                    {"alerting.storm.window",
                     DurationKey([](Config* c) { return &c->alerting.storm.window; },
                                 std::chrono::seconds(1), std::chrono::hours(24), "1s to 24h")},
                    {"broker.management_url",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       auto url = NormalizeManagementUrl(v);
                       if (!url.ok()) return url.status().message();
                       c->broker.management_url = *url;
                       return std::nullopt;
                     }},
                    {"broker.user",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       if (TrimSpace(v).empty()) return "expected a user name, got ''";
                       c->broker.user = std::string(TrimSpace(v));
                       return std::nullopt;
                     }},
                    {"broker.password",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       c->broker.password = std::string(v);  // as given: a password may have spaces
                       return std::nullopt;
                     }},
                    {"broker.password_file",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       const std::string path(TrimSpace(v));
                       if (path.empty()) return "expected a file path, got ''";
                       std::ifstream in(path);
                       if (!in) return "cannot read " + Quote(path) + ": " + std::strerror(errno);
                       c->broker.password_file = path;
                       return std::nullopt;
                     }},
                    {"broker.vhost",
                     [](std::string_view v, Config* c) -> std::optional<std::string> {
                       if (v.empty()) return "expected a virtual host like /, got ''";
                       c->broker.vhost = std::string(v);
                       return std::nullopt;
                     }},
                    {"broker.interval",
                     DurationKey([](Config* c) { return &c->broker.interval; },
                                 std::chrono::seconds(1), std::chrono::hours(1), "1s to 1h")},
                    {"broker.timeout", DurationKey([](Config* c) { return &c->broker.timeout; },
                                                   std::chrono::milliseconds(100),
                                                   std::chrono::minutes(1), "100ms to 1m")},
                };
            AddListenerKeys(keys);
            AddAuthKeys(keys);
            AddNetworkKeys(keys);
            AddRedactionKeys(keys);
            AddJaegerKeys(keys);
            AddUiKeys(keys);
            return keys;
          }();
  return *schema;
}

bool IsSection(const std::string& path) {
  const std::string prefix = path + ".";
  const auto& schema = Schema();
  auto it = schema.lower_bound(prefix);
  return it != schema.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

// The keys allowed directly under `prefix` ("" for the top level).
std::vector<std::string> KeysUnder(const std::string& prefix) {
  std::vector<std::string> keys;
  const std::string p = prefix.empty() ? "" : prefix + ".";
  for (const auto& [path, setter] : Schema()) {
    if (path.compare(0, p.size(), p) != 0) continue;
    std::string rest = path.substr(p.size());
    rest = rest.substr(0, rest.find('.'));
    if (keys.empty() || keys.back() != rest) keys.push_back(rest);
  }
  return keys;
}

class Loader {
 public:
  Loader(std::string_view file, const EnvLookup& env) : reader_(file), env_(env) {}

  const YamlReader& reader() const { return reader_; }

  Status Walk(const YAML::Node& map, const std::string& prefix, Config* config) {
    return reader_.ForEach(map, prefix, [&](const YamlEntry& entry) -> Status {
      const YAML::Node& value = entry.value;
      const int line = entry.line;
      const std::string& key = entry.key;
      const std::string path = YamlReader::Join(prefix, key);
      const auto& schema = Schema();
      if (path == "forward.headers" && (value.IsMap() || value.IsNull())) {
        if (Status s = ReadHeaders(value, path, config); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if ((AuthList(path, config) && value.IsSequence()) ||
          (AuthMap(path, config) && value.IsMap())) {
        if (Status s = ReadAuthValue(value, path, config); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if (auto* list = CidrListField(path, config);
          list != nullptr && (value.IsSequence() || value.IsNull())) {
        if (Status s = ReadCidrList(value, path, list); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if ((path == "ingest.auth.tokens" || path == "ingest.auth.identities") &&
          (value.IsSequence() || value.IsNull())) {
        if (Status s = ReadCredentials(value, path, &config->ingest.auth); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if (path == "redaction.keys" && (value.IsSequence() || value.IsNull())) {
        if (Status s = ReadRedactionKeys(value, path, &config->redaction.keys); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if (auto* list = RedactionKeyList(path, config);
          list != nullptr && (value.IsSequence() || value.IsNull())) {
        if (Status s = ReadRedactionKeyList(value, path, list); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if (path == "alerting.alertmanager" && (value.IsSequence() || value.IsNull())) {
        if (Status s = ReadUrlList(value, path, &config->alerting.alertmanager); !s.ok()) return s;
        lines_[path] = line;
        return Status::Ok();
      }
      if (auto leaf = schema.find(path); leaf != schema.end()) {
        auto scalar = reader_.Scalar(entry, path);
        if (!scalar.ok()) return scalar.status();
        auto text = SubstituteEnv(*scalar, env_);
        if (!text.ok()) return Error(line, path, text.status().message());
        if (auto err = leaf->second(*text, config)) return Error(line, path, *err);
        lines_[path] = line;
      } else if (IsSection(path)) {
        if (value.IsNull()) return Status::Ok();  // "log:" with nothing under it
        if (!value.IsMap()) {
          return Error(line, path,
                       "expected a mapping of keys (" + Join(KeysUnder(path), ", ") + ")");
        }
        return Walk(value, path, config);
      } else {
        return Error(line, path, UnknownKeyMessage(key, KeysUnder(prefix)));
      }
      return Status::Ok();
    });
  }

  // forward.headers: header name -> value (values may use ${ENV} for secrets).
  Status ReadHeaders(const YAML::Node& map, const std::string& path, Config* config) {
    config->forward.headers.clear();
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key_node = it->first;
      const YAML::Node value = it->second;
      const int line = Line(key_node);
      if (!key_node.IsScalar() || key_node.Scalar().empty()) {
        return Error(line, path, "header names must be plain names");
      }
      const std::string name = key_node.Scalar();
      for (char ch : name) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
          return Error(line, path + "." + name, "not a valid header name");
        }
      }
      if (!value.IsScalar()) return Error(line, path + "." + name, "expected a single value");
      auto text = SubstituteEnv(value.Scalar(), env_);
      if (!text.ok()) return Error(line, path + "." + name, text.status().message());
      config->forward.headers.emplace_back(name, *text);
    }
    return Status::Ok();
  }

  // auth.* lists (a sequence of strings) and role maps (role -> sequence or one string).
  Status ReadAuthValue(const YAML::Node& node, const std::string& path, Config* config) {
    auto read_list = [&](const YAML::Node& list, const std::string& at, StringList* out) -> Status {
      out->clear();
      if (list.IsScalar()) {
        auto text = SubstituteEnv(list.Scalar(), env_);
        if (!text.ok()) return Error(Line(list), at, text.status().message());
        if (auto err = CheckAuthItem(path, std::string(TrimSpace(*text)))) {
          return Error(Line(list), at, *err);
        }
        out->push_back(std::string(TrimSpace(*text)));
        return Status::Ok();
      }
      if (!list.IsSequence()) return Error(Line(list), at, "expected a list of strings");
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string item_path = at + "[" + std::to_string(i) + "]";
        if (!list[i].IsScalar()) return Error(Line(list[i]), item_path, "expected a string");
        auto text = SubstituteEnv(list[i].Scalar(), env_);
        if (!text.ok()) return Error(Line(list[i]), item_path, text.status().message());
        const std::string item(TrimSpace(*text));
        if (auto err = CheckAuthItem(path, item)) return Error(Line(list[i]), item_path, *err);
        if (std::find(out->begin(), out->end(), item) == out->end()) out->push_back(item);
      }
      return Status::Ok();
    };
    if (StringList* list = AuthList(path, config)) return read_list(node, path, list);
    RoleLists* map = AuthMap(path, config);
    map->clear();
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar() || TrimSpace(key.Scalar()).empty()) {
        return Error(Line(key), path, "role names must be plain names");
      }
      const std::string role(TrimSpace(key.Scalar()));
      StringList values;
      if (Status s = read_list(it->second, path + "." + role, &values); !s.ok()) return s;
      map->emplace_back(role, std::move(values));
    }
    return Status::Ok();
  }

  // A list of http(s) URLs (alerting.alertmanager).
  Status ReadUrlList(const YAML::Node& list, const std::string& path,
                     std::vector<std::string>* out) {
    out->clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsScalar()) return Error(Line(item), item_path, "expected a URL");
      auto text = SubstituteEnv(item.Scalar(), env_);
      if (!text.ok()) return Error(Line(item), item_path, text.status().message());
      auto url = NormalizeHttpUrl(*text);
      if (!url.ok()) return Error(Line(item), item_path, url.status().message());
      if (std::find(out->begin(), out->end(), *url) != out->end()) {
        return Error(Line(item), item_path, "listed twice: " + Quote(*url));
      }
      out->push_back(*url);
    }
    return Status::Ok();
  }

  // redaction.keys: [{id, file}], the current key first.  Only names and paths here; the files
  // are read at start and on SIGHUP (errors name redaction.keys[i].file, never the contents).
  Status ReadRedactionKeys(const YAML::Node& list, const std::string& path,
                           std::vector<Config::Redaction::Key>* out) {
    out->clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsMap()) return Error(Line(item), item_path, "expected {id, file}");
      std::vector<YamlEntry> entries;
      if (Status s = reader_.Entries(item, item_path, {"id", "file"}, &entries); !s.ok()) return s;
      Config::Redaction::Key key;
      for (const YamlEntry& e : entries) {
        const std::string key_path = item_path + "." + e.key;
        auto scalar = reader_.Scalar(e, key_path);
        if (!scalar.ok()) return scalar.status();
        auto text = SubstituteEnv(*scalar, env_);
        if (!text.ok()) return Error(e.line, key_path, text.status().message());
        (e.key == "id" ? key.id : key.file) = std::string(TrimSpace(*text));
      }
      const int line = Line(item);
      if (auto err = CheckKeyId(key.id)) return Error(line, item_path + ".id", *err);
      if (key.file.empty()) {
        return Error(line, item_path + ".file", "expected the path of the key's file");
      }
      for (size_t j = 0; j < out->size(); ++j) {
        const std::string other = path + "[" + std::to_string(j) + "]";
        if ((*out)[j].id == key.id) {
          return Error(line, item_path + ".id", Quote(key.id) + " is also " + other + ".id");
        }
        if ((*out)[j].file == key.file) {
          return Error(line, item_path + ".file",
                       Quote(key.file) + " is also " + other + ".file: one file per key");
        }
      }
      out->push_back(std::move(key));
    }
    return Status::Ok();
  }

  // redaction.pseudonymise_keys, drop_keys, safe_keys: attribute keys, each once.
  Status ReadRedactionKeyList(const YAML::Node& list, const std::string& path,
                              std::vector<std::string>* out) {
    out->clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsScalar() || TrimSpace(item.Scalar()).empty()) {
        return Error(Line(item), item_path, "expected an attribute key like partner.id");
      }
      auto text = SubstituteEnv(item.Scalar(), env_);
      if (!text.ok()) return Error(Line(item), item_path, text.status().message());
      const std::string key(TrimSpace(*text));
      if (std::find(out->begin(), out->end(), key) == out->end()) out->push_back(key);
    }
    return Status::Ok();
  }

  // redaction.*: the keys or the shorthand, not both; no attribute key under two of the lists;
  // never the entity key (orders are found by it).  Conflicts with the built-in lists and with
  // an entity key a rules file sets are found at start (Gateway), naming these keys too.
  Status CheckRedaction(const Config& config) {
    const auto& r = config.redaction;
    if (!r.keys.empty() && (!r.key_file.empty() || lines_.contains("redaction.key_id"))) {
      const std::string shorthand = r.key_file.empty() ? "key_id" : "key_file";
      return Error(LineOf("redaction.keys", "redaction." + shorthand), "redaction.keys",
                   "give redaction.keys or redaction." + shorthand +
                       " (the one-key shorthand), "
                       "not both");
    }
    const std::pair<const char*, const std::vector<std::string>*> lists[] = {
        {"redaction.pseudonymise_keys", &r.pseudonymise_keys},
        {"redaction.drop_keys", &r.drop_keys},
        {"redaction.safe_keys", &r.safe_keys}};
    for (size_t i = 0; i < 3; ++i) {
      for (const std::string& key : *lists[i].second) {
        if (i < 2 && key == "order.id") {
          return Error(LineOf(lists[i].first, lists[i].first), lists[i].first,
                       "'order.id' is the entity key: orders are found by it, so it is never "
                       "pseudonymised or dropped");
        }
        for (size_t j = i + 1; j < 3; ++j) {
          const auto& other = *lists[j].second;
          if (std::find(other.begin(), other.end(), key) != other.end()) {
            return Error(LineOf(lists[j].first, lists[i].first), lists[j].first,
                         Quote(key) + " is also in " + lists[i].first + ": list it once");
          }
        }
      }
    }
    return Status::Ok();
  }

  // A list of CIDR networks (listen.allow.*, listen.trusted_proxies).
  Status ReadCidrList(const YAML::Node& list, const std::string& path,
                      std::vector<std::string>* out) {
    out->clear();
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsScalar())
        return Error(Line(item), item_path, "expected a network like 10.0.0.0/8");
      auto text = SubstituteEnv(item.Scalar(), env_);
      if (!text.ok()) return Error(Line(item), item_path, text.status().message());
      auto cidr = net::Cidr::Parse(*text);
      if (!cidr.ok()) return Error(Line(item), item_path, cidr.status().message());
      out->push_back(std::string(TrimSpace(*text)));
    }
    return Status::Ok();
  }

  // ingest.auth.tokens ({name, sha256, services}) or ingest.auth.identities ({name, subject,
  // services}).  A sha256 that is not 64 hex digits is refused without repeating it: it may be
  // the token itself, pasted in the wrong place.
  Status ReadCredentials(const YAML::Node& list, const std::string& path,
                         Config::Ingest::Auth* auth) {
    const bool tokens = path == "ingest.auth.tokens";
    const std::string secret_key = tokens ? "sha256" : "subject";
    if (tokens)
      auth->tokens.clear();
    else
      auth->identities.clear();
    std::set<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsMap()) {
        return Error(Line(item), item_path, "expected {name, " + secret_key + ", services}");
      }
      std::vector<YamlEntry> entries;
      if (Status s = reader_.Entries(item, item_path, {"name", secret_key, "services"}, &entries);
          !s.ok()) {
        return s;
      }
      std::string name, value;
      std::vector<std::string> services;
      for (const YamlEntry& e : entries) {
        const std::string key_path = item_path + "." + e.key;
        if (e.key == "services") {
          if (Status s = ReadStringList(e, key_path, &services); !s.ok()) return s;
          continue;
        }
        auto scalar = reader_.Scalar(e, key_path);
        if (!scalar.ok()) return scalar.status();
        auto text = SubstituteEnv(*scalar, env_);
        if (!text.ok()) return Error(e.line, key_path, text.status().message());
        (e.key == "name" ? name : value) = std::string(TrimSpace(*text));
      }
      const int line = Line(item);
      if (name.empty()) return Error(line, item_path + ".name", "expected a name");
      if (!names.insert(name).second) {
        return Error(line, item_path + ".name", Quote(name) + " is listed twice");
      }
      if (tokens) {
        const bool hex = value.size() == 64 && std::all_of(value.begin(), value.end(), [](char ch) {
                           return std::isxdigit(static_cast<unsigned char>(ch));
                         });
        if (!hex) {
          return Error(line, item_path + ".sha256",
                       "expected 64 hex digits, the SHA-256 of the token (`ordertrace token new` "
                       "prints it), got " +
                           std::to_string(value.size()) + " characters");
        }
        Config::Ingest::Auth::Token t;
        t.name = name;
        t.sha256 = AsciiLower(value);
        t.services = std::move(services);
        auth->tokens.push_back(std::move(t));
      } else {
        if (value.empty()) {
          return Error(line, item_path + ".subject",
                       "expected the client certificate's common name or a DNS/URI SAN");
        }
        Config::Ingest::Auth::Identity id;
        id.name = name;
        id.subject = value;
        id.services = std::move(services);
        auth->identities.push_back(std::move(id));
      }
    }
    return Status::Ok();
  }

  // A list of non-empty strings, or one string.
  Status ReadStringList(const YamlEntry& entry, const std::string& path,
                        std::vector<std::string>* out) {
    std::vector<YAML::Node> items;
    if (entry.value.IsSequence()) {
      for (size_t i = 0; i < entry.value.size(); ++i) items.push_back(entry.value[i]);
    } else if (entry.value.IsScalar()) {
      items.push_back(entry.value);
    } else if (!entry.value.IsNull()) {
      return Error(entry.line, path, "expected a list of service.name values");
    }
    for (const YAML::Node& item : items) {
      if (!item.IsScalar() || TrimSpace(item.Scalar()).empty()) {
        return Error(Line(item), path, "expected a list of service.name values");
      }
      auto text = SubstituteEnv(item.Scalar(), env_);
      if (!text.ok()) return Error(Line(item), path, text.status().message());
      out->push_back(std::string(TrimSpace(*text)));
    }
    return Status::Ok();
  }

  // Checks that involve more than one key; located at the line of the first key named.
  // Also settles defaults that depend on other keys (broker.timeout follows broker.interval).
  Status CrossCheck(Config& config) {
    if (config.pipeline.queue_max_bytes < config.receiver.max_body_bytes) {
      return Error(LineOf("pipeline.queue_max_bytes", "receiver.max_body_bytes"),
                   "pipeline.queue_max_bytes",
                   "must be at least receiver.max_body_bytes (" +
                       FormatSize(config.receiver.max_body_bytes) + "), got " +
                       FormatSize(config.pipeline.queue_max_bytes));
    }
    // forward.queue.max_bytes / fsync: the old names of the ingest log's keys.
    for (const char* key : {"max_bytes", "fsync"}) {
      const std::string old_key = std::string("forward.queue.") + key;
      const std::string new_key = std::string("ingest_log.") + key;
      if (!lines_.contains(old_key)) continue;
      if (lines_.contains(new_key)) {
        return Error(LineOf(old_key, new_key), old_key,
                     "replaced by " + new_key +
                         " (one durable log feeds forwarding and "
                         "journeys now); give only " +
                         new_key);
      }
      if (std::string_view(key) == "fsync") {
        config.ingest_log.fsync = config.forward.queue.fsync;
      } else {
        config.ingest_log.max_bytes = config.forward.queue.max_bytes;
      }
    }
    for (const auto& [name, tls] :
         {std::pair<std::string, const ListenerTls*>{"otlp_grpc", &config.listen.tls.otlp_grpc},
          {"otlp_http", &config.listen.tls.otlp_http},
          {"http", &config.listen.tls.http}}) {
      const std::string p = "listen.tls." + name + ".";
      if (tls->cert_file.empty() != tls->key_file.empty()) {
        return Error(LineOf(p + "cert_file", p + "key_file"), "listen.tls." + name,
                     "cert_file and key_file go together");
      }
      if (name == "otlp_grpc" && tls->min_version != "1.2") {
        const std::string key = p + "min_version";
        return Error(LineOf(key, key), key,
                     "gRPC 1.51 cannot limit its TLS to 1.3; use 1.2 (TLS 1.2 or newer)");
      }
      // "" is off, as in the defaults; a client CA or TLS 1.3 without a certificate is a mistake.
      if (tls->cert_file.empty() && (!tls->client_ca_file.empty() || tls->min_version != "1.2")) {
        const std::string key = !tls->client_ca_file.empty() ? "client_ca_file" : "min_version";
        return Error(LineOf(p + key, p + key), p + key, "needs " + p + "cert_file and key_file");
      }
    }
    if (config.forward.tls.cert_file.empty() != config.forward.tls.key_file.empty()) {
      return Error(LineOf("forward.tls.cert_file", "forward.tls.key_file"), "forward.tls",
                   "cert_file and key_file go together (mutual TLS)");
    }
    if (!config.broker.password.empty() && !config.broker.password_file.empty()) {
      return Error(LineOf("broker.password_file", "broker.password"), "broker.password_file",
                   "give broker.password or broker.password_file, not both");
    }
    // The default timeout (5s) follows a shorter interval; only a timeout written in the file
    // longer than the interval is an error.
    if (config.broker.timeout > config.broker.interval && !lines_.contains("broker.timeout")) {
      config.broker.timeout = config.broker.interval;
    }
    if (config.broker.timeout > config.broker.interval) {
      return Error(LineOf("broker.timeout", "broker.interval"), "broker.timeout",
                   "must not exceed broker.interval (" + FormatDuration(config.broker.interval) +
                       "), got " + FormatDuration(config.broker.timeout));
    }
    if (Status s = CheckAuth(config.auth); !s.ok()) {
      return Error(LineOf("auth.oidc.issuer", "auth.oidc.audience"), "", s.message());
    }
    if (Status s = CheckIngestAuth(config); !s.ok()) return s;
    if (Status s = CheckRedaction(config); !s.ok()) return s;
    if (!config.alerting.webhook.secret.empty() && config.alerting.webhook.url.empty()) {
      return Error(LineOf("alerting.webhook.secret", "alerting.webhook.url"),
                   "alerting.webhook.secret",
                   "needs alerting.webhook.url (the webhook to sign for)");
    }
    return Status::Ok();
  }

  // ingest.auth: the mode and its list go together; mtls needs client certificates verified on
  // both OTLP listeners.
  Status CheckIngestAuth(const Config& config) {
    const auto& a = config.ingest.auth;
    const std::string mode_key = "ingest.auth.mode";
    if (a.mode != "bearer" && !a.tokens.empty()) {
      return Error(LineOf("ingest.auth.tokens", mode_key), "ingest.auth.tokens",
                   "tokens are used only with ingest.auth.mode: bearer (mode is " + a.mode + ")");
    }
    if (a.mode != "mtls" && !a.identities.empty()) {
      return Error(LineOf("ingest.auth.identities", mode_key), "ingest.auth.identities",
                   "identities are used only with ingest.auth.mode: mtls (mode is " + a.mode + ")");
    }
    if (a.mode == "bearer" && a.tokens.empty()) {
      return Error(LineOf(mode_key, mode_key), mode_key,
                   "bearer needs at least one entry in ingest.auth.tokens");
    }
    if (a.mode == "mtls") {
      if (a.identities.empty()) {
        return Error(LineOf(mode_key, mode_key), mode_key,
                     "mtls needs at least one entry in ingest.auth.identities");
      }
      for (const char* l : {"otlp_http", "otlp_grpc"}) {
        const ListenerTls& tls = std::string_view(l) == "otlp_http" ? config.listen.tls.otlp_http
                                                                    : config.listen.tls.otlp_grpc;
        if (tls.client_ca_file.empty()) {
          return Error(LineOf(mode_key, mode_key), mode_key,
                       std::string("mtls needs client certificates verified on listen.") + l +
                           ": set listen.tls." + l + ".client_ca_file");
        }
      }
    }
    return Status::Ok();
  }

  Status Error(int line, const std::string& path, const std::string& message) const {
    return reader_.Error(line, path, message);
  }

 private:
  static int Line(const YAML::Node& n) { return YamlReader::Line(n); }
  int LineOf(const std::string& a, const std::string& b) const {
    if (auto it = lines_.find(a); it != lines_.end()) return it->second;
    if (auto it = lines_.find(b); it != lines_.end()) return it->second;
    return 0;
  }

  YamlReader reader_;
  const EnvLookup& env_;
  std::map<std::string, int> lines_;  // path -> line of the keys that were set
};

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<Config> ParseConfig(std::string_view yaml, std::string_view file_name,
                           const EnvLookup& env) {
  Loader loader(file_name, env);
  auto loaded = loader.reader().Load(yaml);
  if (!loaded.ok()) return loaded.status();
  const YAML::Node& root = *loaded;
  Config config;
  if (root.IsNull() || !root.IsDefined()) return config;  // an empty file: all defaults
  if (!root.IsMap()) {
    return loader.Error(YamlReader::Line(root), "", "expected a mapping of keys at the top level");
  }
  if (Status s = loader.reader().Guard([&] { return loader.Walk(root, "", &config); }); !s.ok()) {
    return s;
  }
  if (Status s = loader.CrossCheck(config); !s.ok()) return s;
  return config;
}

Result<Config> LoadConfig(const std::string& path, const EnvLookup& env) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument("cannot read config file '" + path + "': is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read config file '" + path +
                                   "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Status::InvalidArgument("cannot read config file '" + path + "'");
  }
  return ParseConfig(text.str(), path, env);
}

Status ApplyOverrides(const Overrides& o, Config* config) {
  auto host_port = [](const char* flag, const std::optional<std::string>& v,
                      std::string* field) -> Status {
    if (!v) return Status::Ok();
    auto hp = ParseHostPort(*v);
    if (!hp.ok()) return Status::InvalidArgument(std::string(flag) + ": " + hp.status().message());
    *field = *v;
    return Status::Ok();
  };
  if (Status s = host_port("--otlp-grpc", o.otlp_grpc, &config->listen.otlp_grpc); !s.ok()) {
    return s;
  }
  if (Status s = host_port("--otlp-http", o.otlp_http, &config->listen.otlp_http); !s.ok()) {
    return s;
  }
  if (Status s = host_port("--http", o.http, &config->listen.http); !s.ok()) return s;
  if (o.data_dir) {
    if (TrimSpace(*o.data_dir).empty())
      return Status::InvalidArgument("--data: expected a directory");
    config->data_dir = *o.data_dir;
  }
  if (o.log_level) {
    if (auto err = SetLogLevel(*o.log_level, config)) {
      return Status::InvalidArgument("--log-level: " + *err);
    }
  }
  if (o.log_format) {
    auto f = ParseLogFormat(*o.log_format);
    if (!f.ok()) return Status::InvalidArgument("--log-format: " + f.status().message());
    config->log.format = *f;
  }
  if (o.log_spans) config->log.spans = *o.log_spans;
  if (o.upstream) {
    if (Status s = ValidateUpstream(*o.upstream); !s.ok()) {
      return Status::InvalidArgument("--upstream: " + s.message());
    }
    config->forward.upstream = *o.upstream;
  }
  if (o.rules) {
    if (TrimSpace(*o.rules).empty())
      return Status::InvalidArgument("--rules: expected a rules file");
    config->journeys.rules = std::string(TrimSpace(*o.rules));
  }
  if (o.jaeger_ui) {
    auto url = NormalizeJaegerUi(*o.jaeger_ui);
    if (!url.ok()) return Status::InvalidArgument("--jaeger-ui: " + url.status().message());
    config->journeys.jaeger_ui = *url;
  }
  if (o.ui_dir) {
    if (TrimSpace(*o.ui_dir).empty()) {
      return Status::InvalidArgument("--ui-dir: expected a directory (the output of ui/build)");
    }
    config->ui.dir = std::string(TrimSpace(*o.ui_dir));
  }
  if (!o.alertmanager.empty()) {
    std::vector<std::string> urls;
    for (const std::string& u : o.alertmanager) {
      auto url = NormalizeHttpUrl(u);
      if (!url.ok()) return Status::InvalidArgument("--alertmanager: " + url.status().message());
      if (std::find(urls.begin(), urls.end(), *url) == urls.end()) urls.push_back(*url);
    }
    config->alerting.alertmanager = std::move(urls);
  }
  if (o.rabbitmq_management) {
    auto url = NormalizeManagementUrl(*o.rabbitmq_management);
    if (!url.ok()) {
      return Status::InvalidArgument("--rabbitmq-management: " + url.status().message());
    }
    config->broker.management_url = *url;
  }
  if (o.oidc_issuer) config->auth.oidc.issuer = std::string(TrimSpace(*o.oidc_issuer));
  if (o.oidc_audience) config->auth.oidc.audience = std::string(TrimSpace(*o.oidc_audience));
  if (o.oidc_issuer || o.oidc_audience) {
    if (Status s = CheckAuth(config->auth); !s.ok()) {
      return Status::InvalidArgument(
          std::string(o.oidc_issuer ? "--oidc-issuer" : "--oidc-audience") + ": " + s.message());
    }
  }
  return Status::Ok();
}

Result<std::string> NormalizeManagementUrl(std::string_view text) {
  if (TrimSpace(text).empty()) return std::string();
  auto url = NormalizeHttpUrl(text);
  if (!url.ok()) {
    return Status::InvalidArgument(
        "expected RabbitMQ's management URL like http://rabbit:15672, got " + Quote(text));
  }
  if (AsciiLower(*url).rfind("http://", 0) != 0) {
    return Status::InvalidArgument(
        "https is not supported for the management API yet: use http:// (on loopback or a "
        "trusted network), got " +
        Quote(text));
  }
  if (url->find_first_of("?#") != std::string::npos) {
    return Status::InvalidArgument("expected no query or fragment in the management URL, got " +
                                   Quote(text));
  }
  return url;
}

Result<std::string> SigninClientSecret(const Config::Auth::Signin& signin, const EnvLookup& env) {
  if (auto v = env(kOidcClientSecretEnv); v && !v->empty()) return *v;
  if (!signin.client_secret_file.empty()) {
    std::ifstream in(signin.client_secret_file, std::ios::binary);
    if (!in) {
      return Status::InvalidArgument("auth.signin.client_secret_file: cannot read '" +
                                     signin.client_secret_file + "': " + std::strerror(errno));
    }
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) {
      return Status::InvalidArgument("auth.signin.client_secret_file: '" +
                                     signin.client_secret_file + "' is empty");
    }
    return line;
  }
  if (!signin.client_secret.empty()) return signin.client_secret;
  return Status::InvalidArgument(std::string("auth.signin: no client secret (set ") +
                                 kOidcClientSecretEnv +
                                 ", auth.signin.client_secret_file or client_secret)");
}

Result<std::string> BrokerPassword(const Config::Broker& broker, const EnvLookup& env) {
  if (auto v = env(kBrokerPasswordEnv)) return *v;
  if (!broker.password_file.empty()) {
    std::ifstream in(broker.password_file, std::ios::binary);
    if (!in) {
      return Status::InvalidArgument("broker.password_file: cannot read '" + broker.password_file +
                                     "': " + std::strerror(errno));
    }
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (!broker.password.empty()) return broker.password;
  return std::string("guest");  // RabbitMQ's default user, as the user default is
}

namespace {

// The gateway's API listener as a URL: https with TLS there; 0.0.0.0, :: or an empty host become
// `hostname` (or localhost).
std::string ListenerUrl(const Config& config, std::string_view hostname) {
  const std::string& listen = config.listen.http;
  std::string host = listen, port;
  if (const auto colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty()) {
    host = hostname.empty() ? std::string("localhost") : std::string(hostname);
  }
  const char* scheme = config.listen.tls.http.enabled() ? "https://" : "http://";
  return scheme + host + (port.empty() ? "" : ":" + port);
}

}  // namespace

std::string JaegerLinkBase(const Config& config, std::string_view hostname) {
  if (!config.journeys.jaeger_ui.empty()) return config.journeys.jaeger_ui;
  if (config.jaeger.query_url.empty()) return "http://localhost:16686";
  if (!config.jaeger.public_url.empty()) return config.jaeger.public_url + "/jaeger";
  return ListenerUrl(config, hostname) + "/jaeger";
}

std::string UiLinkBase(const Config& config, std::string_view hostname) {
  if (!config.ui.public_url.empty()) return config.ui.public_url + "/ui";
  if (!config.jaeger.public_url.empty()) return config.jaeger.public_url + "/ui";
  return ListenerUrl(config, hostname) + "/ui";
}

Result<std::string> NormalizeHttpUrl(std::string_view text) {
  std::string url(TrimSpace(text));
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(
        "expected an http:// or https:// URL like "
        "http://alertmanager:9093 (" +
        why + "), got " + Quote(text));
  };
  net::UrlProblem problem = net::UrlProblem::kNone;
  if (!net::ParseUrl(url, {}, &problem).ok()) {
    switch (problem) {
      case net::UrlProblem::kEmpty:
      case net::UrlProblem::kScheme:
        return bad("no http:// or https://");
      case net::UrlProblem::kNoHost:
        return bad("no host");
      case net::UrlProblem::kPort:
        return bad("port must be 1 to 65535");
      default:
        return bad("invalid host");
    }
  }
  while (url.back() == '/') url.pop_back();  // the host is not empty: a '/' is not last
  return url;
}

Status ValidateUpstream(std::string_view url) {
  if (url.empty()) return Status::Ok();
  net::UrlOptions options;
  options.what = "upstream URL";
  options.schemes = {"grpc", "grpcs", "http", "https"};
  net::UrlProblem problem = net::UrlProblem::kNone;
  auto parsed = net::ParseUrl(url, options, &problem);
  if (problem == net::UrlProblem::kScheme || problem == net::UrlProblem::kEmpty) {
    return Status::InvalidArgument(
        "expected grpc://HOST:PORT, grpcs://HOST:PORT or "
        "http(s)://HOST:PORT/v1/traces, got " +
        Quote(url));
  }
  const std::string scheme = AsciiLower(url.substr(0, url.find("://")));
  if (problem == net::UrlProblem::kNoHost || problem == net::UrlProblem::kHost ||
      problem == net::UrlProblem::kPort || (parsed.ok() && !parsed->explicit_port)) {
    return Status::InvalidArgument("expected HOST:PORT with a port after " + scheme + "://, got " +
                                   Quote(url));
  }
  if (!parsed.ok()) return parsed.status();
  if (!parsed->target.empty() && (scheme == "grpc" || scheme == "grpcs")) {
    return Status::InvalidArgument("a gRPC upstream has no path: expected " + scheme +
                                   "://HOST:PORT, got " + Quote(url));
  }
  return Status::Ok();
}

Status CheckListenerExposure(const Config& config) {
  struct Listener {
    const char* name;
    const std::string& address;
    const Config::Listen::Tls& tls;
    bool insecure;
    bool ingest;  // an OTLP listener: needs ingest authentication too
  };
  const bool ingest_auth = config.ingest.auth.mode != "none";
  const Listener listeners[] = {
      {"http", config.listen.http, config.listen.tls.http, config.listen.insecure.http, false},
      {"otlp_http", config.listen.otlp_http, config.listen.tls.otlp_http,
       config.listen.insecure.otlp_http, true},
      {"otlp_grpc", config.listen.otlp_grpc, config.listen.tls.otlp_grpc,
       config.listen.insecure.otlp_grpc, true},
  };
  for (const Listener& l : listeners) {
    if (l.insecure || (l.tls.enabled() && (!l.ingest || ingest_auth))) continue;
    auto hp = ParseHostPort(l.address);
    if (!hp.ok())
      return Status::InvalidArgument(std::string("listen.") + l.name + ": " +
                                     hp.status().message());
    if (IsLoopbackHost(hp->host)) continue;
    const std::string key = std::string("listen.") + l.name;
    if (!l.tls.enabled()) {
      return Status::InvalidArgument(key + ": " + l.address +
                                     " is not a loopback address and the listener has no TLS: set "
                                     "listen.tls." +
                                     l.name + ".cert_file and key_file, or listen.insecure." +
                                     l.name + ": true to serve it unencrypted anyway");
    }
    return Status::InvalidArgument(
        key + ": " + l.address +
        " is not a loopback address and spans sent to it are not authenticated: set "
        "ingest.auth.mode (bearer or mtls), or listen.insecure." +
        l.name + ": true to accept spans from anyone who reaches it");
  }
  // The API off loopback also needs sign-in: TLS alone would serve every order to anyone.
  if (Status s = CheckAuth(config.auth); !s.ok()) return s;
  if (!config.listen.insecure.http && !config.auth.oidc.enabled()) {
    auto hp = ParseHostPort(config.listen.http);
    if (hp.ok() && !IsLoopbackHost(hp->host)) {
      return Status::InvalidArgument(
          "listen.http: " + config.listen.http +
          " is not a loopback address and the API has no sign-in: set auth.oidc.issuer and "
          "auth.oidc.audience (--oidc-issuer, --oidc-audience), or listen.insecure.http: true "
          "to serve it to anyone anyway");
    }
  }
  return Status::Ok();
}

Result<log::Format> ParseLogFormat(std::string_view text) {
  const std::string f = AsciiLower(TrimSpace(text));
  if (f == "logfmt") return log::Format::kLogfmt;
  if (f == "json") return log::Format::kJson;
  return Status::InvalidArgument("expected logfmt or json, got " + Quote(text));
}

}  // namespace ordertrace::config
