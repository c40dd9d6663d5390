// The gateway's configuration: a YAML file (optional; every key has a safe default) and
// command-line flags that override it.  docs/configuration.md lists every key.
//
// Errors name the file, the line and the key, e.g.
//   gateway.yaml:7: receiver.max_body_bytes: expected a size like 16MiB, got 'abc'
// Unknown keys are errors (a typo must not silently fall back to a default).  String values
// may contain ${NAME} (or ${NAME:-default}) to take secrets from the environment.
//
// Thread-safety: value types and free functions without shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "otlp/limits.h"

namespace ordertrace::config {

struct Config {
  struct Listen {
    std::string otlp_grpc = "127.0.0.1:4317";  // OTLP/gRPC
    std::string otlp_http = "127.0.0.1:4318";  // OTLP/HTTP (POST /v1/traces)
    std::string http = "127.0.0.1:8080";       // health, readiness, metrics, API
    // TLS per listener (docs/security.md); a listener serves TLS when its cert_file is set.
    struct Tls {
      std::string cert_file, key_file;  // PEM; read at start and on SIGHUP
      std::string client_ca_file;       // set: client certificates required and verified (mTLS)
      std::string min_version = "1.2";  // 1.2 | 1.3
      bool enabled() const { return !cert_file.empty(); }
    };
    struct Listeners {
      Tls otlp_grpc, otlp_http, http;
    } tls;
    // A listener on a non-loopback address needs TLS, or true here (CheckListenerExposure).
    struct Insecure {
      bool otlp_grpc = false, otlp_http = false, http = false;
    } insecure;
    // Client networks allowed per listener (IPv4/IPv6 CIDR, validated at load); empty: all.
    struct Allow {
      std::vector<std::string> otlp_grpc, otlp_http, http;
    } allow;
    // Peers whose X-Forwarded-For is believed (CIDR); empty: nobody's.
    std::vector<std::string> trusted_proxies;
  } listen;
  // Who may send spans to the OTLP listeners (docs/security.md, "Ingest authentication").
  struct Ingest {
    struct Auth {
      std::string mode = "none";  // none | bearer | mtls
      struct Token {
        std::string name;
        std::string sha256;                 // 64 hex digits, the SHA-256 of the token
        std::vector<std::string> services;  // service.name values it may send; empty: any
      };
      std::vector<Token> tokens;
      struct Identity {
        std::string name;
        std::string subject;  // client certificate CN, or a DNS/URI SAN
        std::vector<std::string> services;
      };
      std::vector<Identity> identities;
    } auth;
  } ingest;
  // The access audit log (docs/security.md, "Access audit").
  struct Audit {
    bool enabled = true;
    std::string file;  // default <data_dir>/audit.log
  } audit;
  // Personal data out of spans before anything keeps or forwards them (docs/personal-data.md);
  // on by default.
  struct Redaction {
    bool enabled = true;
    // Pseudonymisation keys, the first current, the others kept to recognise their pseudonyms
    // and for lookups; each file >= 32 random bytes, 0600, read at start and on SIGHUP.  Empty:
    // the one key of key_file / key_id.
    struct Key {
      std::string id;    // [A-Za-z0-9_-]{1,32}, appears in every pseudonym the key makes
      std::string file;  // must exist
    };
    std::vector<Key> keys;
    // The one-key shorthand (not together with keys): default <data_dir>/pseudonym.key, created
    // 0600 when missing.
    std::string key_file;
    std::string key_id = "k1";
    // Added to the built-in lists (redact/value_redactor.h, RedactionRules).
    std::vector<std::string> pseudonymise_keys, drop_keys, safe_keys;
    std::string default_region = "RU";  // local phone numbers (redact/detect.h)
    bool debug = false;                 // log which rule fired (never the value) at log.level debug
  } redaction;
  std::string data_dir = "./data";
  struct Receiver {
    uint64_t max_body_bytes = uint64_t{16} << 20;  // after gunzip; also the gRPC message limit
    int http_threads = 2;
  } receiver;
  otlp::Limits limits;
  struct Pipeline {
    uint64_t queue_max_bytes = uint64_t{256} << 20;
    std::chrono::milliseconds retry_after{1000};
  } pipeline;
  // Forwarding to the upstream trace store (Jaeger over OTLP); off while upstream is "".
  struct Forward {
    std::string upstream;  // grpc://h:p, grpcs://h:p, http(s)://h:p/v1/traces
    std::vector<std::pair<std::string, std::string>> headers;  // e.g. authorization
    std::chrono::milliseconds timeout{10000};
    bool gzip = false;  // compression: gzip | none
    struct Tls {
      std::string ca_file, cert_file, key_file;
    } tls;
    struct Batch {
      uint64_t max_bytes = uint64_t{4} << 20;
      std::chrono::milliseconds max_age{200};
    } batch;
    // The forwarder's own directory (dead letters; a queue left by a version before the ingest
    // log is moved into the log at start).  max_bytes and fsync are the ingest log's now: old
    // names of ingest_log.max_bytes and ingest_log.fsync (an error when both are given).
    struct Queue {
      std::string dir;  // default <data_dir>/forward
      uint64_t max_bytes = uint64_t{1} << 30;
      bool fsync = true;
    } queue;
    struct Retry {
      std::chrono::milliseconds initial{500};
      std::chrono::milliseconds max{30000};
    } retry;
    std::chrono::milliseconds drain_timeout{5000};
  } forward;
  // The durable log of accepted batches (src/ingest_log/): on while journeys are enabled or
  // forward.upstream is set; its consumers (journeys, the forwarder) read it at their own pace.
  struct IngestLog {
    std::string dir;                              // default <data_dir>/ingest-log
    uint64_t max_bytes = uint64_t{1} << 30;       // above it clients are throttled (429)
    uint64_t segment_bytes = uint64_t{64} << 20;  // one segment file at most this big
    bool fsync = true;                            // sync (group commit) before the answer
  } ingest_log;
  struct Log {
    std::string level = "info";  // debug | info | warn | error
    log::Format format = log::Format::kLogfmt;
    bool spans = false;  // one log line per span
  } log;
  // Order journeys (docs/rules.md): the lifecycle rules, the journey store and its retention.
  struct Journeys {
    bool enabled = true;
    std::string rules;  // rules file; "" = the built-in default lifecycle
    // Links to traces: {jaeger_ui}/trace/{trace_id}.  "": the gateway's own /jaeger/ when
    // jaeger.query_url is set ({jaeger.public_url}/jaeger), else http://localhost:16686.
    std::string jaeger_ui;
    std::string store = "sqlite";  // sqlite | memory
    std::string sqlite_path;       // default <data_dir>/journeys.db
    // SQLite page cache of the writer connection; the reader gets half (docs/configuration.md).
    // A memory default: docs/benchmarks.md, "Memory under sustained load" says what it costs.
    uint64_t sqlite_cache_bytes = 16ull << 20;
    // How long data is kept; 0: forever.
    struct Retention {
      std::chrono::milliseconds closed_orders{std::chrono::hours(24 * 30)};
      std::chrono::milliseconds inactive_orders{std::chrono::hours(24 * 90)};
      std::chrono::milliseconds spans{std::chrono::hours(24 * 14)};
      std::chrono::milliseconds interval{std::chrono::minutes(10)};  // how often it runs
    } retention;
    uint32_t max_spans_per_view = 1000;  // spans returned by GET /api/v1/orders/{id}
    // For tests and drills: the journey consumer sleeps this long before each write.
    std::chrono::milliseconds apply_delay{0};
    // Orders found through trace context for spans without order.id (docs/attribution.md).
    struct Attribution {
      bool enabled = true;
      // 0: 10 s, or half the rules' grace when that is shorter; set, it must be shorter than
      // the grace.
      std::chrono::milliseconds wait{0};
      uint32_t max_pending_spans = 200000;
      uint64_t max_pending_bytes = 64ull << 20;
      // Memory defaults (docs/benchmarks.md, "Memory under sustained load").
      uint32_t max_tracked_spans = 500000;
      uint32_t max_tracked_traces = 250000;
    } attribution;
  } journeys;
  // Jaeger's query service behind the gateway (docs/jaeger.md): the gateway serves it under
  // /jaeger/ to signed-in Developers/DevOps only and reads an order's spans back from it.
  struct Jaeger {
    // Where the gateway reaches Jaeger's query service, its base_path included:
    // http://127.0.0.1:16686/jaeger.  "": /jaeger/ is not served and nothing is read back.
    std::string query_url;
    std::chrono::milliseconds timeout{30000};          // per proxied request or read-back
    uint64_t max_response_bytes = uint64_t{64} << 20;  // a larger answer: 502
    std::string ca_file;                               // for an https query_url; "": system CAs
    // The URL people reach the gateway's API at (https://ordertrace.example), for links in
    // alerts and the API when journeys.jaeger_ui is not set: {public_url}/jaeger.  "": from
    // listen.http (https with TLS; an unspecified host becomes this machine's host name).
    std::string public_url;
  } jaeger;
  // The web UI on the --http listener under /ui/ (src/ui; docs/security.md "Web UI").
  struct Ui {
    // A built UI (the out_dir of ui/build: index.html + assets/) served instead of the one
    // compiled in (CMake option ORDERTRACE_UI); read once at start, index.html must exist.
    // "": the compiled-in UI, if any.
    std::string dir;
    // The URL people reach the gateway at, for the order pages linked from alerts
    // ({public_url}/ui/orders/{id}).  "": jaeger.public_url when set, else from listen.http as
    // for Jaeger links.
    std::string public_url;
  } ui;
  // Alerts about stuck orders (docs/alerting.md); off while no sink is configured.
  struct Alerting {
    std::vector<std::string> alertmanager;  // base URLs, each gets every alert (HA pair)
    // Firing alerts are re-sent this often; keep it below Alertmanager's resolve_timeout (5m).
    std::chrono::milliseconds resend_interval{std::chrono::minutes(1)};
    std::chrono::milliseconds timeout{10000};  // per request
    std::string runbook_url;                   // annotation runbook_url, when set
    struct Webhook {
      std::string url;     // "" off
      std::string secret;  // HMAC-SHA256 signature of the body when set
      std::chrono::milliseconds timeout{10000};
    } webhook;
    struct Storm {
      uint32_t threshold = 100;  // more orders than this flagged ... 0: off
      std::chrono::milliseconds window{std::chrono::minutes(1)};  // ... within this
    } storm;
  } alerting;
  // RabbitMQ health (docs/broker.md): the management API the gateway polls for metrics, the
  // diagnosis and the BrokerUnreachable alert; off while management_url is "".
  struct Broker {
    std::string management_url;  // http://HOST:PORT[/prefix] (--rabbitmq-management)
    std::string user = "guest";
    // The password: the environment variable ORDERTRACE_BROKER_PASSWORD, else the first line
    // of password_file, else password, else "guest" (BrokerPassword()).  Never logged.
    std::string password;
    std::string password_file;
    std::string vhost = "/";
    std::chrono::milliseconds interval{10000};  // between polls
    std::chrono::milliseconds timeout{5000};    // per request
  } broker;
  // API sign-in (docs/security.md): OIDC bearer tokens and the roles they carry; off (the API
  // answers anyone, loopback only) while auth.oidc.issuer is "".
  struct Auth {
    struct Oidc {
      std::string issuer;    // https://...; `iss` and discovery's `issuer` must equal it
      std::string audience;  // `aud` must contain it (the API's resource / client id)
      std::vector<std::string> algorithms = {"RS256", "PS256", "ES256"};
      std::vector<std::string> accepted_typ = {"at+jwt", "application/at+jwt"};
      std::chrono::milliseconds leeway{60000};
      bool allow_insecure_loopback = false;  // plain http to a loopback issuer (tests)
      std::string ca_file;                   // trust these CAs for the issuer ("" : system's)
      std::chrono::milliseconds jwks_cooldown{30000};  // between refetches for unknown kids
      std::chrono::milliseconds jwks_max_age{600000};  // keys are refetched this often
      bool enabled() const { return !issuer.empty(); }
    } oidc;
    struct Roles {
      std::vector<std::string> claims;  // JSON Pointers; empty: the defaults (auth/roles.h)
      std::string client;               // Keycloak client for /resource_access/<client>/roles
      // Gateway role -> IdP values; empty: each allowed role maps to the value of its name.
      std::vector<std::pair<std::string, std::vector<std::string>>> map;
      std::vector<std::string> allowed = {"Developer", "DevOps"};
      // Gateway role -> actions; empty: orders.read, orders.list, broker.read for both roles,
      // and orders.lookup_partner for DevOps (auth::DefaultActions).
      std::vector<std::pair<std::string, std::vector<std::string>>> actions;
    } roles;
    // SHA-256 (hex) of a static bearer token that GET /metrics then requires; "" : open.
    std::string metrics_token_sha256;
    // Browser sign-in (docs/security.md, "Browser sign-in"): on while client_id is set; needs
    // auth.oidc.
    struct Signin {
      std::string client_id;
      // The client secret: the environment variable ORDERTRACE_OIDC_CLIENT_SECRET, else the
      // first line of client_secret_file, else client_secret (SigninClientSecret()).
      std::string client_secret;
      std::string client_secret_file;
      std::string redirect_uri;  // https://<the gateway>/auth/callback, as registered at the IdP
      std::string post_logout_redirect_uri;  // "" : none sent at logout
      std::string scope = "openid profile";
      std::string resource;  // RFC 8707 resource indicator ("" : none)
      std::chrono::milliseconds idle_timeout{std::chrono::minutes(30)};
      std::chrono::milliseconds absolute_timeout{std::chrono::hours(10)};
      bool enabled() const { return !client_id.empty(); }
    } signin;
  } auth;
};

// Reads an environment variable; nullopt when unset.  Injected for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();

// Reads and validates a YAML config file.  Missing keys keep their defaults.
Result<Config> LoadConfig(const std::string& path, const EnvLookup& env = ProcessEnv());

// The same for YAML text; `file_name` is used in error messages only.
Result<Config> ParseConfig(std::string_view yaml, std::string_view file_name,
                           const EnvLookup& env = ProcessEnv());

// Command-line flags that override the file.  Unset optionals leave the config alone.
struct Overrides {
  std::optional<std::string> otlp_grpc;   // --otlp-grpc
  std::optional<std::string> otlp_http;   // --otlp-http
  std::optional<std::string> http;        // --http
  std::optional<std::string> data_dir;    // --data
  std::optional<std::string> log_level;   // --log-level
  std::optional<std::string> log_format;  // --log-format
  std::optional<bool> log_spans;          // --log-spans
  std::optional<std::string> upstream;    // --upstream
  std::optional<std::string> rules;       // --rules
  std::optional<std::string> jaeger_ui;   // --jaeger-ui
  std::optional<std::string> ui_dir;      // --ui-dir (ui.dir)
  std::vector<std::string> alertmanager;  // --alertmanager (repeatable); replaces the file's
  std::optional<std::string> rabbitmq_management;  // --rabbitmq-management ("" turns it off)
  std::optional<std::string> oidc_issuer;          // --oidc-issuer (auth.oidc.issuer)
  std::optional<std::string> oidc_audience;        // --oidc-audience (auth.oidc.audience)
};

// Applies `overrides` to `config` and validates them; errors name the flag
// ("--otlp-http: expected HOST:PORT, got 'x'").
Status ApplyOverrides(const Overrides& overrides, Config* config);

// The environment variable that holds the sign-in client's secret (wins over the file).
inline constexpr char kOidcClientSecretEnv[] = "ORDERTRACE_OIDC_CLIENT_SECRET";

// The browser sign-in client's secret, per Config::Auth::Signin; an unreadable file is an error
// naming it, a missing secret too.
Result<std::string> SigninClientSecret(const Config::Auth::Signin& signin,
                                       const EnvLookup& env = ProcessEnv());

// The environment variable that holds the broker's password (wins over broker.password_file).
inline constexpr char kBrokerPasswordEnv[] = "ORDERTRACE_BROKER_PASSWORD";

// The management API's password, per Config::Broker (read at start, not at load, so that a
// rotated file is picked up by a restart).  An unreadable password_file is an error naming it.
Result<std::string> BrokerPassword(const Config::Broker& broker,
                                   const EnvLookup& env = ProcessEnv());

// broker.management_url / --rabbitmq-management: http://HOST:PORT[/prefix], without a trailing
// '/'; "" is off.
Result<std::string> NormalizeManagementUrl(std::string_view text);

// The rule for exposed listeners: a listener bound to an address other than loopback
// (127.0.0.0/8, ::1, localhost) without TLS is refused, naming the key
// ("listen.http: 0.0.0.0:8080 is not a loopback address: ..."), and so is an OTLP listener
// (otlp_http, otlp_grpc) there without ingest authentication (ingest.auth.mode none), unless
// listen.insecure.<name> is true.  The API listener (listen.http) off loopback also needs
// sign-in (auth.oidc.issuer), again unless listen.insecure.http.  Run at start, after the
// command-line overrides; also checks the auth.oidc keys that flags may have set (issuer and
// audience together).
Status CheckListenerExposure(const Config& config);

// The base of links to Jaeger (traces, spans, an order's traces): journeys.jaeger_ui when set;
// else, with jaeger.query_url, the gateway's own /jaeger/ at jaeger.public_url, or at listen.http
// (https with TLS there; 0.0.0.0, :: or an empty host become `hostname`); else the stand-alone
// Jaeger UI's default, http://localhost:16686.  Without a trailing '/'.
std::string JaegerLinkBase(const Config& config, std::string_view hostname = "");

// The base of links to the web UI's pages ({base}/orders/{id}): ui.public_url, else
// jaeger.public_url, else listen.http as for JaegerLinkBase; followed by "/ui".
std::string UiLinkBase(const Config& config, std::string_view hostname = "");

// The value syntaxes (sizes, durations, booleans, HOST:PORT) are common/values.h.
Result<log::Format> ParseLogFormat(std::string_view text);  // logfmt | json
// An upstream URL: grpc://HOST:PORT, grpcs://HOST:PORT, http(s)://HOST:PORT[/path], or "" (off).
Status ValidateUpstream(std::string_view url);

// An http(s)://HOST[:PORT][/path] URL (alerting.*), returned without a trailing '/'.
Result<std::string> NormalizeHttpUrl(std::string_view text);

}  // namespace ordertrace::config
