#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace ordertrace::config {
namespace {

using namespace std::chrono_literals;

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Result<Config> Parse(std::string_view yaml, std::map<std::string, std::string> env = {}) {
  return ParseConfig(yaml, "gateway.yaml", FakeEnv(std::move(env)));
}

// The error message of a config that must not load.
std::string ErrorOf(std::string_view yaml, std::map<std::string, std::string> env = {}) {
  auto c = Parse(yaml, std::move(env));
  if (c.ok()) return "<loaded>";
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  return c.status().message();
}

TEST(ConfigTest, EmptyFileGivesSafeDefaults) {
  for (const char* yaml : {"", "\n", "# only a comment\n", "~\n"}) {
    auto c = Parse(yaml);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->listen.otlp_grpc, "127.0.0.1:4317");
    EXPECT_EQ(c->listen.otlp_http, "127.0.0.1:4318");
    EXPECT_EQ(c->listen.http, "127.0.0.1:8080");
    EXPECT_EQ(c->data_dir, "./data");
    EXPECT_EQ(c->receiver.max_body_bytes, 16u << 20);
    EXPECT_EQ(c->receiver.http_threads, 2);
    EXPECT_EQ(c->limits.max_attributes, otlp::Limits{}.max_attributes);
    EXPECT_EQ(c->pipeline.queue_max_bytes, 256u << 20);
    EXPECT_EQ(c->pipeline.retry_after, 1s);
    EXPECT_EQ(c->log.level, "info");
    EXPECT_EQ(c->log.format, log::Format::kLogfmt);
    EXPECT_FALSE(c->log.spans);
  }
}

TEST(ConfigTest, EveryKeyIsRead) {
  auto c = Parse(R"(
listen:
  otlp_grpc: 0.0.0.0:14317
  otlp_http: "[::1]:14318"
  http: localhost:0
data_dir: /var/lib/ordertrace
receiver:
  max_body_bytes: 4MiB
  http_threads: 4
limits:
  max_attributes: 64
  max_attributes_per_event: 32
  max_events_per_span: 16
  max_links_per_span: 8
  max_attribute_value_bytes: 4KiB
  max_value_depth: 4
pipeline:
  queue_max_bytes: 1GiB
  retry_after: 250ms
log:
  level: debug
  format: json
  spans: true
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen.otlp_grpc, "0.0.0.0:14317");
  EXPECT_EQ(c->listen.otlp_http, "[::1]:14318");
  EXPECT_EQ(c->listen.http, "localhost:0");
  EXPECT_EQ(c->data_dir, "/var/lib/ordertrace");
  EXPECT_EQ(c->receiver.max_body_bytes, 4u << 20);
  EXPECT_EQ(c->receiver.http_threads, 4);
  EXPECT_EQ(c->limits.max_attributes, 64u);
  EXPECT_EQ(c->limits.max_attributes_per_event, 32u);
  EXPECT_EQ(c->limits.max_events_per_span, 16u);
  EXPECT_EQ(c->limits.max_links_per_span, 8u);
  EXPECT_EQ(c->limits.max_attribute_value_bytes, 4096u);
  EXPECT_EQ(c->limits.max_value_depth, 4u);
  EXPECT_EQ(c->pipeline.queue_max_bytes, 1u << 30);
  EXPECT_EQ(c->pipeline.retry_after, 250ms);
  EXPECT_EQ(c->log.level, "debug");
  EXPECT_EQ(c->log.format, log::Format::kJson);
  EXPECT_TRUE(c->log.spans);
}

TEST(ConfigTest, SizesAcceptPlainIntegers) {
  auto c = Parse("receiver:\n  max_body_bytes: 2097152\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->receiver.max_body_bytes, 2097152u);
}

TEST(ConfigTest, EmptySectionKeepsDefaults) {
  auto c = Parse("log:\nreceiver:\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->log.level, "info");
}

TEST(ConfigTest, BadSizeNamesFileLineAndKey) {
  EXPECT_EQ(ErrorOf("# gateway\nlisten:\n  http: 127.0.0.1:8080\n\nreceiver:\n  http_threads: 2\n"
                    "  max_body_bytes: abc\n"),
            "gateway.yaml:7: receiver.max_body_bytes: expected a size like 16MiB, got 'abc'");
}

TEST(ConfigTest, SizeOutOfRange) {
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_bytes: 10\n"),
            "gateway.yaml:2: receiver.max_body_bytes: expected a size from 1KiB to 1GiB, got '10'");
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_bytes: 99999999999999999999GiB\n"),
            "gateway.yaml:2: receiver.max_body_bytes: expected a size like 16MiB, got "
            "'99999999999999999999GiB'");
}

TEST(ConfigTest, BadInteger) {
  EXPECT_EQ(ErrorOf("receiver:\n  http_threads: two\n"),
            "gateway.yaml:2: receiver.http_threads: expected an integer from 1 to 64, got 'two'");
  EXPECT_EQ(ErrorOf("receiver:\n  http_threads: 0\n"),
            "gateway.yaml:2: receiver.http_threads: expected an integer from 1 to 64, got '0'");
  EXPECT_EQ(ErrorOf("limits:\n  max_attributes: -1\n"),
            "gateway.yaml:2: limits.max_attributes: expected an integer from 0 to 1000000, got "
            "'-1'");
  EXPECT_EQ(ErrorOf("limits:\n  max_value_depth: 65\n"),
            "gateway.yaml:2: limits.max_value_depth: expected an integer from 1 to 64, got '65'");
}

TEST(ConfigTest, BadDuration) {
  EXPECT_EQ(ErrorOf("pipeline:\n  retry_after: 1000\n"),
            "gateway.yaml:2: pipeline.retry_after: expected a duration like 500ms, 30s, 2m, 1h or "
            "5d, got '1000'");
  EXPECT_EQ(ErrorOf("pipeline:\n  retry_after: 2h\n"),
            "gateway.yaml:2: pipeline.retry_after: expected a duration from 1ms to 1h, got '2h'");
  EXPECT_EQ(ErrorOf("pipeline:\n  retry_after: 0s\n"),
            "gateway.yaml:2: pipeline.retry_after: expected a duration from 1ms to 1h, got '0s'");
}

TEST(ConfigTest, BadEnumsAndBooleans) {
  EXPECT_EQ(ErrorOf("log:\n  level: verbose\n"),
            "gateway.yaml:2: log.level: expected one of debug, info, warn, error, got 'verbose'");
  EXPECT_EQ(ErrorOf("log:\n  format: xml\n"),
            "gateway.yaml:2: log.format: expected logfmt or json, got 'xml'");
  EXPECT_EQ(ErrorOf("log:\n  spans: maybe\n"),
            "gateway.yaml:2: log.spans: expected true or false, got 'maybe'");
  EXPECT_EQ(ErrorOf("data_dir: ''\n"),
            "gateway.yaml:1: data_dir: expected a directory path, got ''");
}

TEST(ConfigTest, BadListenAddresses) {
  EXPECT_EQ(ErrorOf("listen:\n  http: localhost\n"),
            "gateway.yaml:2: listen.http: expected HOST:PORT like 127.0.0.1:4317, got "
            "'localhost' (missing :PORT)");
  EXPECT_EQ(ErrorOf("listen:\n  otlp_http: 127.0.0.1:70000\n"),
            "gateway.yaml:2: listen.otlp_http: expected HOST:PORT like 127.0.0.1:4317, got "
            "'127.0.0.1:70000' (port must be 0 to 65535)");
  EXPECT_EQ(ErrorOf("listen:\n  otlp_grpc: \":4317\"\n"),
            "gateway.yaml:2: listen.otlp_grpc: expected HOST:PORT like 127.0.0.1:4317, got "
            "':4317' (missing HOST; use 0.0.0.0 for all interfaces)");
}

TEST(ConfigTest, UnknownKeysAreErrors) {
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_byte: 1MiB\n"),
            "gateway.yaml:2: receiver.max_body_byte: unknown key (did you mean "
            "'max_body_bytes'?)");
  EXPECT_EQ(ErrorOf("lisen:\n  http: 127.0.0.1:1\n"),
            "gateway.yaml:1: lisen: unknown key (did you mean 'listen'?)");
  EXPECT_EQ(ErrorOf("log:\n  colour: red\n"),
            "gateway.yaml:2: log.colour: unknown key; known keys here: format, level, spans");
}

TEST(ConfigTest, StructuralErrors) {
  EXPECT_EQ(ErrorOf("- a\n- b\n"), "gateway.yaml:1: expected a mapping of keys at the top level");
  EXPECT_EQ(ErrorOf("log: debug\n"),
            "gateway.yaml:1: log: expected a mapping of keys (format, level, spans)");
  EXPECT_EQ(ErrorOf("data_dir:\n"), "gateway.yaml:1: data_dir: expected a value");
  EXPECT_EQ(ErrorOf("data_dir: [a, b]\n"),
            "gateway.yaml:1: data_dir: expected a single value, got a list");
  EXPECT_EQ(ErrorOf("log:\n  level: {a: b}\n"),
            "gateway.yaml:2: log.level: expected a single value, got a mapping");
  EXPECT_EQ(ErrorOf("? [a]\n: b\n"), "gateway.yaml:1: keys must be plain names");
}

TEST(ConfigTest, DuplicateKey) {
  EXPECT_EQ(ErrorOf("log:\n  level: info\n  level: debug\n"),
            "gateway.yaml:3: log.level: duplicate key (first at line 2)");
}

TEST(ConfigTest, InvalidYamlNamesTheLine) {
  std::string err = ErrorOf("log:\n  level: info\n bad: [\n");
  EXPECT_EQ(err.rfind("gateway.yaml:", 0), 0u) << err;
  EXPECT_NE(err.find("invalid YAML"), std::string::npos) << err;
  err = ErrorOf("log:\n  level: info: debug\n");
  EXPECT_EQ(err.rfind("gateway.yaml:2:", 0), 0u) << err;
  EXPECT_NE(err.find("invalid YAML"), std::string::npos) << err;
}

TEST(ConfigTest, CrossCheckQueueAgainstBodyLimit) {
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_bytes: 64MiB\npipeline:\n  queue_max_bytes: 32MiB\n"),
            "gateway.yaml:4: pipeline.queue_max_bytes: must be at least receiver.max_body_bytes "
            "(64MiB), got 32MiB");
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_bytes: 512MiB\n"),
            "gateway.yaml:2: pipeline.queue_max_bytes: must be at least receiver.max_body_bytes "
            "(512MiB), got 256MiB");
}

TEST(ConfigTest, EnvironmentSubstitution) {
  auto c = Parse(
      "listen:\n  http: ${HOST}:${PORT}\n  otlp_http: ${MISSING:-127.0.0.1:9}\n"
      "data_dir: /srv/$$HOME/${EMPTY}x\nlog:\n  spans: ${SPANS}\n",
      {{"HOST", "0.0.0.0"}, {"PORT", "9090"}, {"EMPTY", ""}, {"SPANS", "true"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->listen.http, "0.0.0.0:9090");
  EXPECT_EQ(c->listen.otlp_http, "127.0.0.1:9");
  EXPECT_EQ(c->data_dir, "/srv/$HOME/x");
  EXPECT_TRUE(c->log.spans);
}

TEST(ConfigTest, EnvironmentSubstitutionErrors) {
  EXPECT_EQ(ErrorOf("listen:\n  http: ${OT_HTTP}\n"),
            "gateway.yaml:2: listen.http: environment variable OT_HTTP is not set");
  EXPECT_EQ(ErrorOf("data_dir: ${OT_DATA\n"),
            "gateway.yaml:1: data_dir: unterminated ${ in '${OT_DATA' (write $$ for a $)");
  EXPECT_EQ(ErrorOf("data_dir: ${1X}\n"),
            "gateway.yaml:1: data_dir: invalid environment variable name '1X' in ${...}");
  // A substituted value is validated like a literal one.
  EXPECT_EQ(ErrorOf("receiver:\n  max_body_bytes: ${SIZE}\n", {{"SIZE", "lots"}}),
            "gateway.yaml:2: receiver.max_body_bytes: expected a size like 16MiB, got 'lots'");
}

TEST(ConfigTest, LoadConfigReadsAFile) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("ordertrace_config_test_" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << "log:\n  level: warn\n  format: logfmt\n  spans: nope\n";
  }
  auto c = LoadConfig(path.string(), FakeEnv({}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            path.string() + ":4: log.spans: expected true or false, got 'nope'");
  {
    std::ofstream out(path);
    out << "log:\n  level: warn\n";
  }
  c = LoadConfig(path.string(), FakeEnv({}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->log.level, "warn");
  std::filesystem::remove(path);
}

TEST(ConfigTest, LoadConfigMissingFileOrDirectory) {
  auto c = LoadConfig("/nonexistent/gateway.yaml", FakeEnv({}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "cannot read config file '/nonexistent/gateway.yaml': No such file or directory");
  c = LoadConfig(std::filesystem::temp_directory_path().string(), FakeEnv({}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("is a directory"), std::string::npos);
}

TEST(ConfigTest, OverridesWinAndAreValidated) {
  Config c;
  Overrides o;
  o.otlp_grpc = "0.0.0.0:5317";
  o.otlp_http = "[::]:5318";
  o.http = "127.0.0.1:0";
  o.data_dir = "/tmp/d";
  o.log_level = "DEBUG";
  o.log_format = "json";
  o.log_spans = true;
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.listen.otlp_grpc, "0.0.0.0:5317");
  EXPECT_EQ(c.listen.otlp_http, "[::]:5318");
  EXPECT_EQ(c.listen.http, "127.0.0.1:0");
  EXPECT_EQ(c.data_dir, "/tmp/d");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, log::Format::kJson);
  EXPECT_TRUE(c.log.spans);

  // Nothing set: nothing changes.
  Config before = c;
  ASSERT_TRUE(ApplyOverrides({}, &c).ok());
  EXPECT_EQ(c.listen.http, before.listen.http);
}

TEST(ConfigTest, OverrideErrorsNameTheFlag) {
  auto error = [](void (*set)(Overrides*)) {
    Overrides o;
    set(&o);
    Config c;
    Status s = ApplyOverrides(o, &c);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  EXPECT_EQ(error([](Overrides* o) { o->otlp_grpc = "nope"; }),
            "--otlp-grpc: expected HOST:PORT like 127.0.0.1:4317, got 'nope' (missing :PORT)");
  EXPECT_EQ(error([](Overrides* o) { o->otlp_http = "1.2.3.4:x"; }),
            "--otlp-http: expected HOST:PORT like 127.0.0.1:4317, got '1.2.3.4:x' (port must be 0 "
            "to 65535)");
  EXPECT_EQ(error([](Overrides* o) { o->http = "::1:80"; }),
            "--http: expected HOST:PORT like 127.0.0.1:4317, got '::1:80' (put an IPv6 address in "
            "brackets, like [::1]:4317)");
  EXPECT_EQ(error([](Overrides* o) { o->data_dir = ""; }), "--data: expected a directory");
  EXPECT_EQ(error([](Overrides* o) { o->log_level = "loud"; }),
            "--log-level: expected one of debug, info, warn, error, got 'loud'");
  EXPECT_EQ(error([](Overrides* o) { o->log_format = "yaml"; }),
            "--log-format: expected logfmt or json, got 'yaml'");
}

TEST(ConfigTest, ForwardSectionIsReadWithSecretsFromTheEnvironment) {
  auto c = Parse(R"(
forward:
  upstream: grpcs://jaeger.internal:4317
  headers:
    authorization: "Bearer ${JAEGER_TOKEN}"
    x-tenant: plant-1
  timeout: 3s
  compression: gzip
  tls:
    ca_file: /etc/ordertrace/ca.pem
    cert_file: /etc/ordertrace/client.pem
    key_file: /etc/ordertrace/client.key
  batch:
    max_bytes: 2MiB
    max_age: 100ms
  queue:
    dir: /var/lib/ordertrace/fwd
    max_bytes: 2GiB
    fsync: false
  retry:
    initial: 250ms
    max: 1m
  drain_timeout: 2s
)",
                 {{"JAEGER_TOKEN", "s3cret"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->forward.upstream, "grpcs://jaeger.internal:4317");
  ASSERT_EQ(c->forward.headers.size(), 2u);
  EXPECT_EQ(c->forward.headers[0],
            (std::pair<std::string, std::string>{"authorization", "Bearer s3cret"}));
  EXPECT_EQ(c->forward.headers[1].second, "plant-1");
  EXPECT_EQ(c->forward.timeout, 3s);
  EXPECT_TRUE(c->forward.gzip);
  EXPECT_EQ(c->forward.tls.key_file, "/etc/ordertrace/client.key");
  EXPECT_EQ(c->forward.batch.max_bytes, 2u << 20);
  EXPECT_EQ(c->forward.batch.max_age, 100ms);
  EXPECT_EQ(c->forward.queue.dir, "/var/lib/ordertrace/fwd");
  EXPECT_EQ(c->forward.queue.max_bytes, uint64_t{2} << 30);
  EXPECT_FALSE(c->forward.queue.fsync);
  // The old names of the ingest log's keys.
  EXPECT_EQ(c->ingest_log.max_bytes, uint64_t{2} << 30);
  EXPECT_FALSE(c->ingest_log.fsync);
  EXPECT_EQ(c->forward.retry.initial, 250ms);
  EXPECT_EQ(c->forward.retry.max, 60s);
  EXPECT_EQ(c->forward.drain_timeout, 2s);
  EXPECT_TRUE(Parse("").value().forward.upstream.empty());  // off by default
}

TEST(ConfigTest, ForwardErrorsNameTheLineAndKey) {
  EXPECT_EQ(ErrorOf("forward:\n  upstream: ftp://x:1\n"),
            "gateway.yaml:2: forward.upstream: expected grpc://HOST:PORT, grpcs://HOST:PORT or "
            "http(s)://HOST:PORT/v1/traces, got 'ftp://x:1'");
  EXPECT_NE(ErrorOf("forward:\n  upstream: grpc://jaeger:4317/v1/traces\n")
                .find("gateway.yaml:2: forward.upstream: a gRPC upstream has no path"),
            std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  upstream: http://jaeger/v1/traces\n").find("with a port"),
            std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  compression: zstd\n")
                .find("gateway.yaml:2: forward.compression: expected gzip or none"),
            std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  headers:\n    authorization: ${MISSING}\n")
                .find("gateway.yaml:3: forward.headers.authorization:"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf("forward:\n  headers:\n    \"bad header\": x\n").find("not a valid header name"),
      std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  tls:\n    cert_file: c.pem\n")
                .find("forward.tls: cert_file and key_file go together"),
            std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  queue:\n    fsync: maybe\n")
                .find("gateway.yaml:3: forward.queue.fsync: expected true or false"),
            std::string::npos);
  EXPECT_NE(ErrorOf("forward:\n  upstrem: grpc://x:1\n").find("gateway.yaml:2: forward.upstrem"),
            std::string::npos);
}

TEST(ConfigTest, IngestLogKeys) {
  const Config d = Parse("").value();
  EXPECT_EQ(d.ingest_log.dir, "");  // <data_dir>/ingest-log
  EXPECT_EQ(d.ingest_log.max_bytes, uint64_t{1} << 30);
  EXPECT_EQ(d.ingest_log.segment_bytes, uint64_t{64} << 20);
  EXPECT_TRUE(d.ingest_log.fsync);
  EXPECT_EQ(d.journeys.apply_delay, 0ms);
  auto c = Parse(
      "ingest_log:\n  dir: /var/lib/ot/log\n  max_bytes: 2GiB\n  segment_bytes: 1MiB\n"
      "  fsync: false\njourneys:\n  apply_delay: 250ms\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ingest_log.dir, "/var/lib/ot/log");
  EXPECT_EQ(c->ingest_log.max_bytes, uint64_t{2} << 30);
  EXPECT_EQ(c->ingest_log.segment_bytes, uint64_t{1} << 20);
  EXPECT_FALSE(c->ingest_log.fsync);
  EXPECT_EQ(c->journeys.apply_delay, 250ms);
  EXPECT_EQ(ErrorOf("ingest_log:\n  max_bytes: 1GiB\nforward:\n  queue:\n    max_bytes: 2GiB\n"),
            "gateway.yaml:5: forward.queue.max_bytes: replaced by ingest_log.max_bytes (one "
            "durable log feeds forwarding and journeys now); give only ingest_log.max_bytes");
  EXPECT_NE(ErrorOf("ingest_log:\n  fsync: sometimes\n")
                .find("gateway.yaml:2: ingest_log.fsync: expected true or false"),
            std::string::npos);
}

TEST(ConfigTest, UpstreamFlagOverridesAndIsValidated) {
  Config c;
  Overrides o;
  o.upstream = "http://127.0.0.1:14318/v1/traces";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.forward.upstream, "http://127.0.0.1:14318/v1/traces");
  o.upstream = "jaeger:4317";
  Status s = ApplyOverrides(o, &c);
  EXPECT_NE(s.message().find("--upstream: expected grpc://HOST:PORT"), std::string::npos)
      << s.message();
}

TEST(ConfigTest, JourneysDefaults) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const Config::Journeys& j = c->journeys;
  EXPECT_TRUE(j.enabled);
  EXPECT_EQ(j.rules, "");
  EXPECT_EQ(j.jaeger_ui, "");
  EXPECT_EQ(JaegerLinkBase(c.value()), "http://localhost:16686");
  EXPECT_EQ(j.store, "sqlite");
  EXPECT_EQ(j.sqlite_path, "");
  EXPECT_EQ(j.sqlite_cache_bytes, 16u << 20);
  EXPECT_EQ(j.retention.closed_orders, 24h * 30);
  EXPECT_EQ(j.retention.inactive_orders, 24h * 90);
  EXPECT_EQ(j.retention.spans, 24h * 14);
  EXPECT_EQ(j.retention.interval, 10min);
  EXPECT_EQ(j.max_spans_per_view, 1000u);
  EXPECT_TRUE(j.attribution.enabled);
  EXPECT_EQ(j.attribution.wait, 0ms);  // the gateway's choice: 10 s, or half the grace
  EXPECT_EQ(j.attribution.max_pending_spans, 200000u);
  EXPECT_EQ(j.attribution.max_pending_bytes, 64u << 20);
  EXPECT_EQ(j.attribution.max_tracked_spans, 500000u);
  EXPECT_EQ(j.attribution.max_tracked_traces, 250000u);
}

TEST(ConfigTest, AttributionIsReadAndValidated) {
  auto c = Parse(R"(
journeys:
  attribution:
    enabled: false
    wait: 3s
    max_pending_spans: 5000
    max_pending_bytes: 8MiB
    max_tracked_spans: 20000
    max_tracked_traces: 4000
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const Config::Journeys::Attribution& a = c->journeys.attribution;
  EXPECT_FALSE(a.enabled);
  EXPECT_EQ(a.wait, 3s);
  EXPECT_EQ(a.max_pending_spans, 5000u);
  EXPECT_EQ(a.max_pending_bytes, 8u << 20);
  EXPECT_EQ(a.max_tracked_spans, 20000u);
  EXPECT_EQ(a.max_tracked_traces, 4000u);

  EXPECT_EQ(ErrorOf("journeys:\n  attribution:\n    wait: 10ms\n"),
            "gateway.yaml:3: journeys.attribution.wait: expected a duration from 100ms to 1h, got "
            "'10ms'");
  EXPECT_EQ(ErrorOf("journeys:\n  attribution:\n    max_pending_spans: 0\n"),
            "gateway.yaml:3: journeys.attribution.max_pending_spans: expected an integer from 1 to "
            "100000000, got '0'");
  EXPECT_EQ(ErrorOf("journeys:\n  attribution:\n    max_pending_bytes: 1KiB\n"),
            "gateway.yaml:3: journeys.attribution.max_pending_bytes: expected a size from 1MiB to "
            "64GiB, got '1KiB'");
  EXPECT_EQ(ErrorOf("journeys:\n  attribution:\n    wiat: 1s\n"),
            "gateway.yaml:3: journeys.attribution.wiat: unknown key (did you mean 'wait'?)");
}

TEST(ConfigTest, JourneysSectionIsRead) {
  auto c = Parse(R"(
journeys:
  enabled: false
  rules: /etc/ordertrace/${SITE}-rules.yaml
  jaeger_ui: https://jaeger.example.com/ui/
  store: Memory
  sqlite_path: /var/lib/ordertrace/j.db
  sqlite_cache: 16MiB
  retention:
    closed_orders: 7d
    inactive_orders: 0
    spans: off
    interval: 30s
  max_spans_per_view: 250
)",
                 {{"SITE", "plant1"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const Config::Journeys& j = c->journeys;
  EXPECT_FALSE(j.enabled);
  EXPECT_EQ(j.rules, "/etc/ordertrace/plant1-rules.yaml");
  EXPECT_EQ(j.jaeger_ui, "https://jaeger.example.com/ui");  // trailing '/' dropped
  EXPECT_EQ(j.store, "memory");
  EXPECT_EQ(j.sqlite_path, "/var/lib/ordertrace/j.db");
  EXPECT_EQ(j.sqlite_cache_bytes, 16u << 20);
  EXPECT_EQ(j.retention.closed_orders, 24h * 7);
  EXPECT_EQ(j.retention.inactive_orders, 0ms);
  EXPECT_EQ(j.retention.spans, 0ms);
  EXPECT_EQ(j.retention.interval, 30s);
  EXPECT_EQ(j.max_spans_per_view, 250u);
}

TEST(ConfigTest, JourneysErrorsNameTheLineAndKey) {
  EXPECT_EQ(ErrorOf("journeys:\n  sqlite_cache: 100KiB\n"),
            "gateway.yaml:2: journeys.sqlite_cache: expected a size from 1MiB to 64GiB, got "
            "'100KiB'");
  EXPECT_EQ(ErrorOf("journeys:\n  store: postgres\n"),
            "gateway.yaml:2: journeys.store: expected sqlite or memory, got 'postgres'");
  const std::string bad_url =
      "expected the Jaeger UI's URL, starting with http:// or https:// (like "
      "http://localhost:16686), got ";
  EXPECT_EQ(ErrorOf("journeys:\n  jaeger_ui: localhost:16686\n"),
            "gateway.yaml:2: journeys.jaeger_ui: " + bad_url + "'localhost:16686'");
  EXPECT_EQ(ErrorOf("journeys:\n  jaeger_ui: http://\n"),
            "gateway.yaml:2: journeys.jaeger_ui: " + bad_url + "'http://'");
  EXPECT_EQ(ErrorOf("journeys:\n  enabled: sometimes\n"),
            "gateway.yaml:2: journeys.enabled: expected true or false, got 'sometimes'");
  EXPECT_EQ(ErrorOf("journeys:\n  retention:\n    spans: 2 weeks\n"),
            "gateway.yaml:3: journeys.retention.spans: expected a duration like 500ms, 30s, 2m, "
            "1h or 5d, got '2 weeks' (or 0 or off to keep forever)");
  EXPECT_EQ(ErrorOf("journeys:\n  retention:\n    interval: 0\n"),
            "gateway.yaml:3: journeys.retention.interval: expected a duration from 1s to 24h, got "
            "'0'");
  EXPECT_EQ(ErrorOf("journeys:\n  max_spans_per_view: 0\n"),
            "gateway.yaml:2: journeys.max_spans_per_view: expected an integer from 1 to 100000, "
            "got '0'");
  EXPECT_EQ(ErrorOf("journeys:\n  rule: r.yaml\n"),
            "gateway.yaml:2: journeys.rule: unknown key (did you mean 'rules'?)");
  EXPECT_EQ(ErrorOf("journeys:\n  retention:\n    orders: 1d\n"),
            "gateway.yaml:3: journeys.retention.orders: unknown key; known keys here: "
            "closed_orders, inactive_orders, interval, spans");
  EXPECT_EQ(ErrorOf("journeys:\n  retention: 7d\n"),
            "gateway.yaml:2: journeys.retention: expected a mapping of keys (closed_orders, "
            "inactive_orders, interval, spans)");
  EXPECT_EQ(ErrorOf("journys:\n  enabled: true\n"),
            "gateway.yaml:1: journys: unknown key (did you mean 'journeys'?)");
}

TEST(ConfigTest, JourneysFlagsOverrideAndAreValidated) {
  Config c;
  Overrides o;
  o.rules = "rules.yaml";
  o.jaeger_ui = "http://jaeger:16686/";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.journeys.rules, "rules.yaml");
  EXPECT_EQ(c.journeys.jaeger_ui, "http://jaeger:16686");

  Overrides bad;
  bad.rules = " ";
  EXPECT_EQ(ApplyOverrides(bad, &c).message(), "--rules: expected a rules file");
  bad = {};
  bad.jaeger_ui = "ftp://jaeger";
  EXPECT_EQ(ApplyOverrides(bad, &c).message(),
            "--jaeger-ui: expected the Jaeger UI's URL, starting with http:// or https:// (like "
            "http://localhost:16686), got 'ftp://jaeger'");
  EXPECT_EQ(c.journeys.jaeger_ui, "http://jaeger:16686");  // unchanged
}

TEST(ConfigTest, AlertingDefaults) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  const Config::Alerting& a = c->alerting;
  EXPECT_TRUE(a.alertmanager.empty());
  EXPECT_EQ(a.resend_interval, std::chrono::minutes(1));
  EXPECT_EQ(a.timeout, std::chrono::seconds(10));
  EXPECT_EQ(a.runbook_url, "");
  EXPECT_EQ(a.webhook.url, "");
  EXPECT_EQ(a.webhook.secret, "");
  EXPECT_EQ(a.storm.threshold, 100u);
  EXPECT_EQ(a.storm.window, std::chrono::minutes(1));
}

TEST(ConfigTest, AlertingIsRead) {
  auto c = Parse(R"(
alerting:
  alertmanager: [http://am1:9093/, "https://am2.example.com/prefix"]
  resend_interval: 30s
  timeout: 5s
  runbook_url: https://wiki.example.com/stuck-orders
  webhook:
    url: https://chat.example.com/hooks/ordertrace
    secret: ${HOOK_SECRET}
    timeout: 3s
  storm:
    threshold: 50
    window: 2m
)",
                 {{"HOOK_SECRET", "s3 cret"}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  const Config::Alerting& a = c->alerting;
  EXPECT_EQ(a.alertmanager,
            (std::vector<std::string>{"http://am1:9093", "https://am2.example.com/prefix"}));
  EXPECT_EQ(a.resend_interval, std::chrono::seconds(30));
  EXPECT_EQ(a.timeout, std::chrono::seconds(5));
  EXPECT_EQ(a.runbook_url, "https://wiki.example.com/stuck-orders");
  EXPECT_EQ(a.webhook.url, "https://chat.example.com/hooks/ordertrace");
  EXPECT_EQ(a.webhook.secret, "s3 cret");
  EXPECT_EQ(a.webhook.timeout, std::chrono::seconds(3));
  EXPECT_EQ(a.storm.threshold, 50u);
  EXPECT_EQ(a.storm.window, std::chrono::minutes(2));

  auto one = Parse("alerting:\n  alertmanager: http://am:9093\n  storm: {threshold: 0}\n");
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_EQ(one->alerting.alertmanager, std::vector<std::string>{"http://am:9093"});
  EXPECT_EQ(one->alerting.storm.threshold, 0u);  // storm control off
}

TEST(ConfigTest, AlertingErrors) {
  EXPECT_EQ(ErrorOf("alerting:\n  alertmanager: [http://am:9093, am2:9093]\n"),
            "gateway.yaml:2: alerting.alertmanager[1]: expected an http:// or https:// URL like "
            "http://alertmanager:9093 (no http:// or https://), got 'am2:9093'");
  EXPECT_EQ(ErrorOf("alerting:\n  alertmanager:\n    - http://am:9093\n    - http://am:9093/\n"),
            "gateway.yaml:4: alerting.alertmanager[1]: listed twice: 'http://am:9093'");
  EXPECT_EQ(ErrorOf("alerting:\n  alertmanager: [http://am:0]\n"),
            "gateway.yaml:2: alerting.alertmanager[0]: expected an http:// or https:// URL like "
            "http://alertmanager:9093 (port must be 1 to 65535), got 'http://am:0'");
  EXPECT_EQ(ErrorOf("alerting:\n  resend_interval: 2h\n"),
            "gateway.yaml:2: alerting.resend_interval: expected a duration from 1s to 1h, got "
            "'2h'");
  EXPECT_EQ(ErrorOf("alerting:\n  storm:\n    threshold: many\n"),
            "gateway.yaml:3: alerting.storm.threshold: expected an integer from 0 to 10000000, "
            "got 'many'");
  EXPECT_EQ(ErrorOf("alerting:\n  webhook:\n    secret: x\n"),
            "gateway.yaml:3: alerting.webhook.secret: needs alerting.webhook.url (the webhook to "
            "sign for)");
  EXPECT_EQ(ErrorOf("alerting:\n  webhook:\n    url: http://h/x\n    secret: ${NOPE}\n"),
            "gateway.yaml:4: alerting.webhook.secret: environment variable NOPE is not set");
  EXPECT_EQ(ErrorOf("alerting:\n  webhok: {url: http://h}\n"),
            "gateway.yaml:2: alerting.webhok: unknown key (did you mean 'webhook'?)");
}

TEST(ConfigTest, AlertmanagerFlagReplacesTheList) {
  auto c = Parse("alerting:\n  alertmanager: [http://file:9093]\n");
  ASSERT_TRUE(c.ok());
  Overrides o;
  o.alertmanager = {"http://a:9093/", "http://b:9093", "http://a:9093"};
  ASSERT_TRUE(ApplyOverrides(o, &c.value()).ok());
  EXPECT_EQ(c->alerting.alertmanager, (std::vector<std::string>{"http://a:9093", "http://b:9093"}));
  Overrides bad;
  bad.alertmanager = {"a:9093"};
  EXPECT_EQ(ApplyOverrides(bad, &c.value()).message(),
            "--alertmanager: expected an http:// or https:// URL like http://alertmanager:9093 "
            "(no http:// or https://), got 'a:9093'");
}

TEST(ConfigTest, BrokerDefaultsAreOff) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->broker.management_url, "");
  EXPECT_EQ(c->broker.user, "guest");
  EXPECT_EQ(c->broker.vhost, "/");
  EXPECT_EQ(c->broker.interval, 10s);
  EXPECT_EQ(c->broker.timeout, 5s);
  auto pw = BrokerPassword(c->broker, FakeEnv({}));
  ASSERT_TRUE(pw.ok());
  EXPECT_EQ(*pw, "guest");
}

TEST(ConfigTest, BrokerSectionIsRead) {
  auto c = Parse(R"(
broker:
  management_url: http://rabbit:15672/
  user: ordertrace
  password: ${RMQ_PW}
  vhost: orders
  interval: 2s
  timeout: 500ms
)",
                 {{"RMQ_PW", "s3cret"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->broker.management_url, "http://rabbit:15672");
  EXPECT_EQ(c->broker.user, "ordertrace");
  EXPECT_EQ(c->broker.password, "s3cret");
  EXPECT_EQ(c->broker.vhost, "orders");
  EXPECT_EQ(c->broker.interval, 2s);
  EXPECT_EQ(c->broker.timeout, 500ms);
  EXPECT_EQ(BrokerPassword(c->broker, FakeEnv({})).value(), "s3cret");
}

TEST(ConfigTest, BrokerPasswordFromFileAndEnvironment) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("ot_cfg_broker_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "pw").string();
  std::ofstream(file) << "from-file\n";
  auto c =
      Parse("broker:\n  management_url: http://127.0.0.1:15672\n  password_file: " + file + "\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(BrokerPassword(c->broker, FakeEnv({})).value(), "from-file");
  // The environment wins over the file.
  EXPECT_EQ(BrokerPassword(c->broker, FakeEnv({{kBrokerPasswordEnv, "from-env"}})).value(),
            "from-env");
  // Removed after load: the error at start names the key and the file.
  std::filesystem::remove_all(dir);
  auto gone = BrokerPassword(c->broker, FakeEnv({}));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().message(),
            "broker.password_file: cannot read '" + file + "': No such file or directory");
  EXPECT_EQ(ErrorOf("broker:\n  password_file: " + file + "\n"),
            "gateway.yaml:2: broker.password_file: cannot read '" + file +
                "': No such file or directory");
}

TEST(ConfigTest, BrokerErrorsNameTheLineAndKey) {
  EXPECT_EQ(ErrorOf("broker:\n  management_url: rabbit:15672\n"),
            "gateway.yaml:2: broker.management_url: expected RabbitMQ's management URL like "
            "http://rabbit:15672, got 'rabbit:15672'");
  EXPECT_EQ(ErrorOf("broker:\n  management_url: https://rabbit:15671\n"),
            "gateway.yaml:2: broker.management_url: https is not supported for the management "
            "API yet: use http:// (on loopback or a trusted network), got 'https://rabbit:15671'");
  EXPECT_EQ(ErrorOf("broker:\n  management_url: http://guest:guest@rabbit:15672\n"),
            "gateway.yaml:2: broker.management_url: expected RabbitMQ's management URL like "
            "http://rabbit:15672, got 'http://guest:guest@rabbit:15672'");
  EXPECT_EQ(ErrorOf("broker:\n  interval: 100ms\n"),
            "gateway.yaml:2: broker.interval: expected a duration from 1s to 1h, got '100ms'");
  EXPECT_EQ(ErrorOf("broker:\n  timeout: soon\n"),
            "gateway.yaml:2: broker.timeout: expected a duration like 500ms, 30s, 2m, 1h or 5d, "
            "got 'soon'");
  EXPECT_EQ(ErrorOf("broker:\n  interval: 2s\n  timeout: 5s\n"),
            "gateway.yaml:3: broker.timeout: must not exceed broker.interval (2s), got 5s");
  // The default timeout (5s) follows a shorter interval instead of failing on a key not written.
  auto short_interval =
      Parse("broker:\n  management_url: http://127.0.0.1:15672\n  interval: 1s\n");
  ASSERT_TRUE(short_interval.ok()) << short_interval.status().message();
  EXPECT_EQ(short_interval->broker.timeout, std::chrono::seconds(1));
  EXPECT_EQ(ErrorOf("broker:\n  user: ''\n"),
            "gateway.yaml:2: broker.user: expected a user name, got ''");
  EXPECT_EQ(ErrorOf("broker:\n  password: a\n  password_file: /etc/hostname\n"),
            "gateway.yaml:3: broker.password_file: give broker.password or "
            "broker.password_file, not both");
  EXPECT_EQ(ErrorOf("broker:\n  pasword: x\n"),
            "gateway.yaml:2: broker.pasword: unknown key (did you mean 'password'?)");
}

TEST(ConfigTest, RabbitmqManagementFlagOverridesAndIsValidated) {
  auto c = Parse("broker:\n  management_url: http://file:15672\n");
  ASSERT_TRUE(c.ok());
  Overrides o;
  o.rabbitmq_management = "http://127.0.0.1:15672/";
  ASSERT_TRUE(ApplyOverrides(o, &c.value()).ok());
  EXPECT_EQ(c->broker.management_url, "http://127.0.0.1:15672");
  o.rabbitmq_management = "";
  ASSERT_TRUE(ApplyOverrides(o, &c.value()).ok());
  EXPECT_EQ(c->broker.management_url, "");
  Overrides bad;
  bad.rabbitmq_management = "127.0.0.1:15672";
  EXPECT_EQ(ApplyOverrides(bad, &c.value()).message(),
            "--rabbitmq-management: expected RabbitMQ's management URL like "
            "http://rabbit:15672, got '127.0.0.1:15672'");
}

TEST(ConfigTest, WebUiDirAndLinks) {
  auto d = Parse("listen:\n  http: 127.0.0.1:8080\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ui.dir, "");
  EXPECT_EQ(d->ui.public_url, "");
  // Links to an order's page follow the listener, like Jaeger's ...
  EXPECT_EQ(UiLinkBase(d.value(), "gw1"), "http://127.0.0.1:8080/ui");
  // ... jaeger.public_url when that is set ...
  d->jaeger.public_url = "https://ordertrace.example";
  EXPECT_EQ(UiLinkBase(d.value(), "gw1"), "https://ordertrace.example/ui");

  auto c = Parse(R"(
listen:
  http: 0.0.0.0:8443
  tls:
    http: {cert_file: /c.pem, key_file: /k.pem}
ui:
  dir: /srv/ordertrace/ui
  public_url: https://orders.example/
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ui.dir, "/srv/ordertrace/ui");
  // ... and ui.public_url first (without its trailing '/').
  EXPECT_EQ(UiLinkBase(c.value(), "gw1"), "https://orders.example/ui");
  c->ui.public_url.clear();
  EXPECT_EQ(UiLinkBase(c.value(), "gw1"), "https://gw1:8443/ui");

  EXPECT_EQ(ErrorOf("ui:\n  public_url: orders.example\n").find("gateway.yaml:2: ui.public_url: "),
            0u);
  EXPECT_EQ(ErrorOf("ui:\n  directory: /x\n").find("gateway.yaml:2: ui.directory: "), 0u);

  Config o;
  Overrides flags;
  flags.ui_dir = " /tmp/dist ";
  ASSERT_TRUE(ApplyOverrides(flags, &o).ok());
  EXPECT_EQ(o.ui.dir, "/tmp/dist");
  flags.ui_dir = "";
  EXPECT_EQ(ApplyOverrides(flags, &o).message(),
            "--ui-dir: expected a directory (the output of ui/build)");
}

}  // namespace
}  // namespace ordertrace::config

namespace ordertrace::config {
namespace {

TEST(ConfigTlsTest, EveryListenerTlsKeyIsRead) {
  auto c = Parse(R"(listen:
  tls:
    http: {cert_file: /etc/a.crt, key_file: /etc/a.key, client_ca_file: /etc/ca.crt,
           min_version: "1.3"}
    otlp_http: {cert_file: /etc/b.crt, key_file: /etc/b.key, min_version: "1.2"}
    otlp_grpc: {cert_file: /etc/c.crt, key_file: /etc/c.key, client_ca_file: /etc/ca2.crt}
  insecure: {http: true, otlp_http: false, otlp_grpc: true}
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen.tls.http.cert_file, "/etc/a.crt");
  EXPECT_EQ(c->listen.tls.http.key_file, "/etc/a.key");
  EXPECT_EQ(c->listen.tls.http.client_ca_file, "/etc/ca.crt");
  EXPECT_EQ(c->listen.tls.http.min_version, "1.3");
  EXPECT_EQ(c->listen.tls.otlp_http.cert_file, "/etc/b.crt");
  EXPECT_EQ(c->listen.tls.otlp_http.key_file, "/etc/b.key");
  EXPECT_EQ(c->listen.tls.otlp_http.client_ca_file, "");
  EXPECT_EQ(c->listen.tls.otlp_http.min_version, "1.2");
  EXPECT_EQ(c->listen.tls.otlp_grpc.cert_file, "/etc/c.crt");
  EXPECT_EQ(c->listen.tls.otlp_grpc.key_file, "/etc/c.key");
  EXPECT_EQ(c->listen.tls.otlp_grpc.client_ca_file, "/etc/ca2.crt");
  EXPECT_TRUE(c->listen.insecure.http);
  EXPECT_FALSE(c->listen.insecure.otlp_http);
  EXPECT_TRUE(c->listen.insecure.otlp_grpc);
}

TEST(ConfigTlsTest, TheDefaultsWrittenOutLoad) {
  // As in docs/configuration.md's complete file: "" is off.
  auto c = Parse(R"(listen:
  tls:
    http:
      cert_file: ""
      key_file: ""
      client_ca_file: ""
      min_version: "1.2"
  insecure:
    http: false
    otlp_http: false
    otlp_grpc: false
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->listen.tls.http.enabled());
}

TEST(ConfigTlsTest, DefaultsAreOffAndLoopback) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->listen.tls.http.enabled());
  EXPECT_FALSE(c->listen.tls.otlp_http.enabled());
  EXPECT_FALSE(c->listen.tls.otlp_grpc.enabled());
  EXPECT_EQ(c->listen.tls.http.min_version, "1.2");
  EXPECT_TRUE(CheckListenerExposure(*c).ok());
}

TEST(ConfigTlsTest, Errors) {
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    http:\n      min_version: \"1.1\"\n"),
            "gateway.yaml:4: listen.tls.http.min_version: TLS 1.1 is not allowed: use 1.2 or 1.3");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    otlp_http:\n      min_version: \"1.0\"\n"),
            "gateway.yaml:4: listen.tls.otlp_http.min_version: TLS 1.0 is not allowed: use 1.2 "
            "or 1.3");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    http:\n      min_version: tls13\n"),
            "gateway.yaml:4: listen.tls.http.min_version: expected 1.2 or 1.3, got 'tls13'");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    http:\n      cert_file: /a.crt\n"),
            "gateway.yaml:4: listen.tls.http: cert_file and key_file go together");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    otlp_http:\n      key_file: /a.key\n"),
            "gateway.yaml:4: listen.tls.otlp_http: cert_file and key_file go together");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    http:\n      client_ca_file: /ca.crt\n"),
            "gateway.yaml:4: listen.tls.http.client_ca_file: needs listen.tls.http.cert_file "
            "and key_file");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    otlp_http:\n      min_version: \"1.3\"\n"),
            "gateway.yaml:4: listen.tls.otlp_http.min_version: needs listen.tls.otlp_http."
            "cert_file and key_file");
  EXPECT_EQ(ErrorOf("listen:\n  tls:\n    otlp_grpc: {cert_file: /c, key_file: /k, "
                    "min_version: \"1.3\"}\n"),
            "gateway.yaml:3: listen.tls.otlp_grpc.min_version: gRPC 1.51 cannot limit its TLS to "
            "1.3; use 1.2 (TLS 1.2 or newer)");
  EXPECT_EQ(ErrorOf("listen:\n  insecure:\n    http: maybe\n")
                .find("gateway.yaml:3: "
                      "listen.insecure.http: "),
            0u);
  EXPECT_NE(ErrorOf("listen:\n  tls:\n    api: {cert_file: /c, key_file: /k}\n"), "<loaded>");
}

TEST(ConfigTlsTest, NonLoopbackNeedsTlsOrInsecure) {
  Config c;
  EXPECT_TRUE(CheckListenerExposure(c).ok());
  c.listen.http = "127.0.0.2:8080";
  c.listen.otlp_http = "[::1]:4318";
  c.listen.otlp_grpc = "localhost:4317";
  EXPECT_TRUE(CheckListenerExposure(c).ok());

  c.listen.http = "0.0.0.0:0";
  Status s = CheckListenerExposure(c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "listen.http: 0.0.0.0:0 is not a loopback address and the listener has no TLS: set "
            "listen.tls.http.cert_file and key_file, or listen.insecure.http: true to serve it "
            "unencrypted anyway");
  c.listen.insecure.http = true;
  EXPECT_TRUE(CheckListenerExposure(c).ok());

  c.listen.otlp_http = "10.1.2.3:4318";
  EXPECT_EQ(CheckListenerExposure(c).message().rfind("listen.otlp_http: 10.1.2.3:4318", 0), 0u);
  c.listen.tls.otlp_http.cert_file = "/c";
  c.listen.tls.otlp_http.key_file = "/k";
  // TLS is not enough for an OTLP listener: spans must be authenticated too.
  EXPECT_EQ(CheckListenerExposure(c).message(),
            "listen.otlp_http: 10.1.2.3:4318 is not a loopback address and spans sent to it are "
            "not authenticated: set ingest.auth.mode (bearer or mtls), or "
            "listen.insecure.otlp_http: true to accept spans from anyone who reaches it");
  c.ingest.auth.mode = "bearer";
  EXPECT_TRUE(CheckListenerExposure(c).ok());
  // Authentication without TLS is not enough either (the token would travel in clear).
  c.listen.tls.otlp_http = {};
  EXPECT_EQ(CheckListenerExposure(c).message().rfind(
                "listen.otlp_http: 10.1.2.3:4318 is not a loopback address and the listener has "
                "no TLS",
                0),
            0u);
  c.listen.insecure.otlp_http = true;
  EXPECT_TRUE(CheckListenerExposure(c).ok());

  c.listen.otlp_grpc = "[::]:4317";
  EXPECT_EQ(CheckListenerExposure(c).message().rfind("listen.otlp_grpc: [::]:4317", 0), 0u);
  c.listen.otlp_grpc = "127.0.0.1.example.com:4317";  // a name, not 127/8
  EXPECT_FALSE(CheckListenerExposure(c).ok());
}

TEST(ConfigAuthTest, OidcAndRolesKeys) {
  auto c = Parse(R"(
auth:
  oidc:
    issuer: https://idp.example/realms/corp
    audience: urn:ordertrace:api
    algorithms: [RS256, ES256]
    accepted_typ: [at+jwt, JWT]
    leeway: 30s
    ca_file: ""
    jwks_cooldown: 10s
    jwks_max_age: 5m
  roles:
    client: ordertrace
    claims: [/realm_access/roles, /groups]
    map:
      Developer: [Developer, 1b2c3d4e-0000-4000-8000-000000000001]
      DevOps: DevOps
    allowed: [Developer, DevOps]
    actions:
      Developer: [orders.read, orders.list]
      DevOps: [orders.read, orders.list, broker.read]
  metrics_token_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const Config::Auth& a = c->auth;
  EXPECT_TRUE(a.oidc.enabled());
  EXPECT_EQ(a.oidc.audience, "urn:ordertrace:api");
  EXPECT_EQ(a.oidc.algorithms, (std::vector<std::string>{"RS256", "ES256"}));
  EXPECT_EQ(a.oidc.accepted_typ, (std::vector<std::string>{"at+jwt", "JWT"}));
  EXPECT_EQ(a.oidc.leeway, 30s);
  EXPECT_EQ(a.oidc.jwks_cooldown, 10s);
  EXPECT_EQ(a.oidc.jwks_max_age, 5min);
  EXPECT_EQ(a.roles.client, "ordertrace");
  EXPECT_EQ(a.roles.claims, (std::vector<std::string>{"/realm_access/roles", "/groups"}));
  ASSERT_EQ(a.roles.map.size(), 2u);
  EXPECT_EQ(a.roles.map[0].second.size(), 2u);
  EXPECT_EQ(a.roles.map[1].second, std::vector<std::string>{"DevOps"});
  ASSERT_EQ(a.roles.actions.size(), 2u);
  EXPECT_EQ(a.roles.actions[1].second.back(), "broker.read");
  EXPECT_EQ(a.metrics_token_sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
}

TEST(ConfigAuthTest, ErrorsNameTheKey) {
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    algorithms: [RS256, HS256]\n"),
            "gateway.yaml:3: auth.oidc.algorithms[1]: expected RS256, PS256 or ES256 (never none "
            "or HS*), got 'HS256'");
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    algorithms: none\n"),
            "gateway.yaml:3: auth.oidc.algorithms: expected RS256, PS256 or ES256 (never none or "
            "HS*), got 'none'");
  EXPECT_EQ(ErrorOf("auth:\n  roles:\n    claims: [realm_access.roles]\n"),
            "gateway.yaml:3: auth.roles.claims[0]: expected a JSON Pointer like "
            "/realm_access/roles, got 'realm_access.roles'");
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    issuer: https://idp.example\n"),
            "gateway.yaml:3: auth.oidc.audience: required with auth.oidc.issuer "
            "(--oidc-audience): the API's identifier that access tokens carry in aud");
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    issuer: http://idp.example\n    audience: api\n"),
            "gateway.yaml:3: auth.oidc.issuer: 'http://idp.example' must be https (plain http "
            "only to a loopback issuer with auth.oidc.allow_insecure_loopback: true)");
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    issuer: http://127.0.0.1:9000\n    audience: api\n"),
            "gateway.yaml:3: auth.oidc.issuer: 'http://127.0.0.1:9000' must be https (plain "
            "http only to a loopback issuer with auth.oidc.allow_insecure_loopback: true)");
  EXPECT_EQ(ErrorOf("auth:\n  metrics_token_sha256: abc\n"),
            "gateway.yaml:2: auth.metrics_token_sha256: expected the SHA-256 of the token as 64 "
            "hex digits (sha256sum), got 3 characters");
  EXPECT_EQ(ErrorOf("auth:\n  oidc:\n    isuer: x\n"),
            "gateway.yaml:3: auth.oidc.isuer: unknown key (did you mean 'issuer'?)");
  auto ok = Parse(
      "auth:\n  oidc:\n    issuer: http://127.0.0.1:9000\n    audience: api\n"
      "    allow_insecure_loopback: true\n");
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

TEST(ConfigAuthTest, BrowserSignIn) {
  const std::string oidc =
      "auth:\n  oidc:\n    issuer: https://idp.example\n    audience: urn:ordertrace:api\n";
  auto c = Parse(oidc +
                 "  signin:\n    client_id: ordertrace-ui\n    client_secret: s3cret\n"
                 "    redirect_uri: https://gw.example/auth/callback\n"
                 "    post_logout_redirect_uri: https://gw.example/\n"
                 "    resource: urn:ordertrace:api\n    idle_timeout: 15m\n"
                 "    absolute_timeout: 8h\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const Config::Auth::Signin& s = c->auth.signin;
  EXPECT_TRUE(s.enabled());
  EXPECT_EQ(s.client_id, "ordertrace-ui");
  EXPECT_EQ(s.scope, "openid profile");
  EXPECT_EQ(s.idle_timeout, 15min);
  EXPECT_EQ(s.absolute_timeout, 8h);

  auto error = [&](const std::string& signin) {
    auto r = Parse(oidc + "  signin:\n    client_id: ui\n" + signin);
    return r.ok() ? std::string("(ok)") : r.status().message();
  };
  EXPECT_NE(error("    redirect_uri: http://gw.example/auth/callback\n")
                .find("must be https (the session cookie is Secure; plain http only on loopback)"),
            std::string::npos);
  EXPECT_EQ(error("    redirect_uri: http://127.0.0.1:8080/auth/callback\n"), "(ok)");
  EXPECT_NE(
      error("    redirect_uri: https://gw.example/callback\n").find("must end in /auth/callback"),
      std::string::npos);
  EXPECT_NE(error("    redirect_uri: https://gw.example/auth/callback\n    scope: profile\n")
                .find("must include openid"),
            std::string::npos);
  EXPECT_NE(error("    redirect_uri: https://gw.example/auth/callback\n    idle_timeout: 2h\n"
                  "    absolute_timeout: 1h\n")
                .find("longer than auth.signin.absolute_timeout"),
            std::string::npos);
  auto no_oidc = Parse("auth:\n  signin:\n    client_id: ui\n");
  ASSERT_FALSE(no_oidc.ok());
  EXPECT_NE(no_oidc.status().message().find("auth.signin.client_id: needs auth.oidc.issuer"),
            std::string::npos);
}

TEST(ConfigAuthTest, SigninClientSecretSources) {
  Config::Auth::Signin s;
  auto none = [](const std::string&) { return std::optional<std::string>(); };
  EXPECT_FALSE(SigninClientSecret(s, none).ok());
  s.client_secret = "from-config";
  EXPECT_EQ(SigninClientSecret(s, none).value(), "from-config");
  const std::string file = ::testing::TempDir() + "/ordertrace_signin_secret";
  std::ofstream(file) << "from-file\n";
  s.client_secret_file = file;
  EXPECT_EQ(SigninClientSecret(s, none).value(), "from-file");
  auto env = [](const std::string& name) {
    return name == kOidcClientSecretEnv ? std::optional<std::string>("from-env")
                                        : std::optional<std::string>();
  };
  EXPECT_EQ(SigninClientSecret(s, env).value(), "from-env");
  s.client_secret_file = file + ".missing";
  auto missing = SigninClientSecret(s, none);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("auth.signin.client_secret_file: cannot read"),
            std::string::npos);
  EXPECT_EQ(missing.status().message().find("from-config"), std::string::npos);
  std::remove(file.c_str());
}

TEST(ConfigAuthTest, FlagsAndTheExposedApi) {
  Config c;
  Overrides o;
  o.oidc_issuer = "https://idp.example/realms/corp";
  EXPECT_EQ(ApplyOverrides(o, &c).message(),
            "--oidc-issuer: auth.oidc.audience: required with auth.oidc.issuer (--oidc-audience): "
            "the API's identifier that access tokens carry in aud");
  o.oidc_audience = "urn:ordertrace:api";
  ASSERT_TRUE(ApplyOverrides(o, &c).ok());
  EXPECT_EQ(c.auth.oidc.issuer, "https://idp.example/realms/corp");

  Config exposed;
  exposed.listen.http = "0.0.0.0:8443";
  exposed.listen.tls.http.cert_file = "/c";
  exposed.listen.tls.http.key_file = "/k";
  EXPECT_EQ(CheckListenerExposure(exposed).message(),
            "listen.http: 0.0.0.0:8443 is not a loopback address and the API has no sign-in: set "
            "auth.oidc.issuer and auth.oidc.audience (--oidc-issuer, --oidc-audience), or "
            "listen.insecure.http: true to serve it to anyone anyway");
  exposed.auth = c.auth;
  EXPECT_TRUE(CheckListenerExposure(exposed).ok());
  exposed.auth = Config::Auth{};
  exposed.listen.insecure.http = true;
  EXPECT_TRUE(CheckListenerExposure(exposed).ok());
}

}  // namespace
}  // namespace ordertrace::config

namespace ordertrace::config {
namespace {

const std::string kDigest(64, 'a');

TEST(ConfigNetworkTest, DefaultsAreOpenOnLoopbackWithoutIngestAuthAndAuditOn) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->listen.allow.http.empty());
  EXPECT_TRUE(c->listen.allow.otlp_http.empty());
  EXPECT_TRUE(c->listen.allow.otlp_grpc.empty());
  EXPECT_TRUE(c->listen.trusted_proxies.empty());
  EXPECT_EQ(c->ingest.auth.mode, "none");
  EXPECT_TRUE(c->audit.enabled);
  EXPECT_EQ(c->audit.file, "");
}

TEST(ConfigNetworkTest, AllowlistsAndTrustedProxiesAreRead) {
  auto c = Parse(R"(listen:
  allow:
    http: [10.0.0.0/8, "fd00::/8"]
    otlp_http: 192.168.1.0/24
    otlp_grpc: []
  trusted_proxies: [10.1.2.3]
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen.allow.http, (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(c->listen.allow.otlp_http, (std::vector<std::string>{"192.168.1.0/24"}));
  EXPECT_TRUE(c->listen.allow.otlp_grpc.empty());
  EXPECT_EQ(c->listen.trusted_proxies, (std::vector<std::string>{"10.1.2.3"}));
}

TEST(ConfigNetworkTest, AllowlistErrorsNameTheLineAndEntry) {
  EXPECT_EQ(ErrorOf("listen:\n  allow:\n    http: [10.0.0.0/8, 10.1.0.0/8]\n"),
            "gateway.yaml:3: listen.allow.http[1]: '10.1.0.0/8' has address bits set after the /8 "
            "prefix: did you mean 10.0.0.0/8?");
  EXPECT_EQ(ErrorOf("listen:\n  trusted_proxies:\n    - proxy.local\n"),
            "gateway.yaml:3: listen.trusted_proxies[0]: expected an IPv4 or IPv6 network like "
            "10.0.0.0/8 or fd00::/8 (or one address), got 'proxy.local'");
  EXPECT_EQ(ErrorOf("listen:\n  allow:\n    otlp_grpc: 10.0.0.0/40\n"),
            "gateway.yaml:3: listen.allow.otlp_grpc: the prefix length of '10.0.0.0/40' must be 0 "
            "to 32 (IPv4)");
  EXPECT_NE(ErrorOf("listen:\n  allow:\n    api: [10.0.0.0/8]\n").find("unknown key"),
            std::string::npos);
}

TEST(ConfigNetworkTest, IngestTokensAndIdentitiesAreRead) {
  auto c = Parse(R"(ingest:
  auth:
    mode: bearer
    tokens:
      - {name: crm, sha256: )" +
                     kDigest + R"(, services: [crm, crm-worker]}
      - name: collector
        sha256: ${DIGEST}
)",
                 {{"DIGEST", std::string(64, 'B')}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->ingest.auth.tokens.size(), 2u);
  EXPECT_EQ(c->ingest.auth.mode, "bearer");
  EXPECT_EQ(c->ingest.auth.tokens[0].name, "crm");
  EXPECT_EQ(c->ingest.auth.tokens[0].sha256, kDigest);
  EXPECT_EQ(c->ingest.auth.tokens[0].services, (std::vector<std::string>{"crm", "crm-worker"}));
  EXPECT_EQ(c->ingest.auth.tokens[1].sha256, std::string(64, 'b'));  // lower-cased
  EXPECT_TRUE(c->ingest.auth.tokens[1].services.empty());

  auto m = Parse(R"(listen:
  tls:
    otlp_http: {cert_file: /c, key_file: /k, client_ca_file: /ca}
    otlp_grpc: {cert_file: /c, key_file: /k, client_ca_file: /ca}
ingest:
  auth:
    mode: mtls
    identities:
      - {name: mes, subject: "spiffe://example/mes", services: mes}
)");
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->ingest.auth.identities.size(), 1u);
  EXPECT_EQ(m->ingest.auth.identities[0].subject, "spiffe://example/mes");
  EXPECT_EQ(m->ingest.auth.identities[0].services, (std::vector<std::string>{"mes"}));
}

TEST(ConfigNetworkTest, IngestErrorsNameTheEntryAndNeverEchoASecret) {
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: token\n"),
            "gateway.yaml:3: ingest.auth.mode: expected none, bearer or mtls, got 'token'");
  const std::string pasted = ErrorOf(
      "ingest:\n  auth:\n    mode: bearer\n    tokens:\n      - {name: a, sha256: s3cr3t-token}\n");
  EXPECT_EQ(pasted,
            "gateway.yaml:5: ingest.auth.tokens[0].sha256: expected 64 hex digits, the SHA-256 of "
            "the token (`ordertrace token new` prints it), got 12 characters");
  EXPECT_EQ(pasted.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: bearer\n    tokens:\n      - {name: a, sha256: " +
                    kDigest + "}\n      - {name: a, sha256: " + kDigest + "}\n"),
            "gateway.yaml:6: ingest.auth.tokens[1].name: 'a' is listed twice");
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: bearer\n    tokens:\n      - {sha256: " + kDigest +
                    "}\n"),
            "gateway.yaml:5: ingest.auth.tokens[0].name: expected a name");
  EXPECT_NE(ErrorOf("ingest:\n  auth:\n    mode: bearer\n    tokens:\n      - {name: a, sha256: " +
                    kDigest + ", token: x}\n")
                .find("ingest.auth.tokens[0]"),
            std::string::npos);
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: bearer\n"),
            "gateway.yaml:3: ingest.auth.mode: bearer needs at least one entry in "
            "ingest.auth.tokens");
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    tokens:\n      - {name: a, sha256: " + kDigest + "}\n"),
            "gateway.yaml:3: ingest.auth.tokens: tokens are used only with ingest.auth.mode: "
            "bearer (mode is none)");
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: mtls\n    identities:\n      - {name: a, "
                    "subject: a}\n"),
            "gateway.yaml:3: ingest.auth.mode: mtls needs client certificates verified on "
            "listen.otlp_http: set listen.tls.otlp_http.client_ca_file");
  EXPECT_EQ(ErrorOf("ingest:\n  auth:\n    mode: mtls\n    identities:\n      - {name: a}\n"),
            "gateway.yaml:5: ingest.auth.identities[0].subject: expected the client "
            "certificate's common name or a DNS/URI SAN");
}

TEST(ConfigNetworkTest, TheDefaultsWrittenOutLoad) {
  // As in docs/configuration.md's complete file.
  auto c = Parse(R"(listen:
  allow:
    http: []
    otlp_http: []
    otlp_grpc: []
  trusted_proxies: []
ingest:
  auth:
    mode: none
    tokens: []
    identities: []
audit:
  enabled: true
  file: ""
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->ingest.auth.mode, "none");
  EXPECT_TRUE(c->audit.enabled);
}

TEST(ConfigNetworkTest, AuditIsRead) {
  auto c = Parse("audit:\n  enabled: false\n  file: /var/log/ordertrace/audit.log\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FALSE(c->audit.enabled);
  EXPECT_EQ(c->audit.file, "/var/log/ordertrace/audit.log");
}

TEST(ConfigRedactionTest, DefaultsAreOnWithOneKeyInTheDataDir) {
  auto c = Parse("");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->redaction.enabled);
  EXPECT_TRUE(c->redaction.keys.empty());
  EXPECT_EQ(c->redaction.key_file, "");
  EXPECT_EQ(c->redaction.key_id, "k1");
  EXPECT_TRUE(c->redaction.pseudonymise_keys.empty());
  EXPECT_TRUE(c->redaction.drop_keys.empty());
  EXPECT_TRUE(c->redaction.safe_keys.empty());
  EXPECT_EQ(c->redaction.default_region, "RU");
  EXPECT_FALSE(c->redaction.debug);
}

TEST(ConfigRedactionTest, EveryKeyIsRead) {
  auto c = Parse(R"(redaction:
  keys:
    - {id: k2, file: /etc/ordertrace/pseudonym-2026.key}
    - id: k1
      file: ${KEY_DIR}/pseudonym-2025.key
  pseudonymise_keys: [customer.ref, app.buyer]
  drop_keys: [http.request.header.x-api-key]
  safe_keys: app.batch.id
  default_region: DE
  debug: true
)",
                 {{"KEY_DIR", "/run/keys"}});
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->redaction.keys.size(), 2u);
  EXPECT_EQ(c->redaction.keys[0].id, "k2");
  EXPECT_EQ(c->redaction.keys[0].file, "/etc/ordertrace/pseudonym-2026.key");
  EXPECT_EQ(c->redaction.keys[1].id, "k1");
  EXPECT_EQ(c->redaction.keys[1].file, "/run/keys/pseudonym-2025.key");
  EXPECT_EQ(c->redaction.pseudonymise_keys,
            (std::vector<std::string>{"customer.ref", "app.buyer"}));
  EXPECT_EQ(c->redaction.drop_keys, (std::vector<std::string>{"http.request.header.x-api-key"}));
  EXPECT_EQ(c->redaction.safe_keys, (std::vector<std::string>{"app.batch.id"}));
  EXPECT_EQ(c->redaction.default_region, "DE");
  EXPECT_TRUE(c->redaction.debug);

  auto shorthand = Parse("redaction:\n  key_file: /k\n  key_id: prod-2026\n  enabled: false\n");
  ASSERT_TRUE(shorthand.ok()) << shorthand.status().message();
  EXPECT_EQ(shorthand->redaction.key_file, "/k");
  EXPECT_EQ(shorthand->redaction.key_id, "prod-2026");
  EXPECT_FALSE(shorthand->redaction.enabled);
}

TEST(ConfigRedactionTest, ErrorsNameTheLineAndKey) {
  EXPECT_EQ(ErrorOf("redaction:\n  keys:\n    - {id: k1}\n"),
            "gateway.yaml:3: redaction.keys[0].file: expected the path of the key's file");
  EXPECT_EQ(ErrorOf("redaction:\n  keys:\n    - {id: 'k:1', file: /k}\n"),
            "gateway.yaml:3: redaction.keys[0].id: expected a key id of 1 to 32 letters, digits, "
            "'_' or '-', got 'k:1'");
  EXPECT_EQ(ErrorOf("redaction:\n  keys:\n    - {id: k1, file: /a}\n    - {id: k1, file: /b}\n"),
            "gateway.yaml:4: redaction.keys[1].id: 'k1' is also redaction.keys[0].id");
  EXPECT_EQ(ErrorOf("redaction:\n  keys:\n    - {id: k1, file: /a}\n    - {id: k2, file: /a}\n"),
            "gateway.yaml:4: redaction.keys[1].file: '/a' is also redaction.keys[0].file: one "
            "file per key");
  EXPECT_NE(ErrorOf("redaction:\n  keys:\n    - {id: k1, file: /a, secret: x}\n")
                .find("gateway.yaml:3: redaction.keys[0]"),
            std::string::npos);
  EXPECT_EQ(ErrorOf("redaction:\n  keys: [{id: k1, file: /a}]\n  key_file: /b\n"),
            "gateway.yaml:2: redaction.keys: give redaction.keys or redaction.key_file (the "
            "one-key shorthand), not both");
  EXPECT_EQ(ErrorOf("redaction:\n  key_id: k2\n  keys: [{id: k1, file: /a}]\n"),
            "gateway.yaml:3: redaction.keys: give redaction.keys or redaction.key_id (the "
            "one-key shorthand), not both");
  EXPECT_EQ(ErrorOf("redaction:\n  key_id: ''\n"),
            "gateway.yaml:2: redaction.key_id: expected a key id of 1 to 32 letters, digits, '_' "
            "or '-', got ''");
  EXPECT_EQ(ErrorOf("redaction:\n  pseudonymise_keys: [partner.id, order.id]\n"),
            "gateway.yaml:2: redaction.pseudonymise_keys: 'order.id' is the entity key: orders "
            "are found by it, so it is never pseudonymised or dropped");
  EXPECT_EQ(ErrorOf("redaction:\n  drop_keys: order.id\n"),
            "gateway.yaml:2: redaction.drop_keys: 'order.id' is the entity key: orders are found "
            "by it, so it is never pseudonymised or dropped");
  EXPECT_EQ(ErrorOf("redaction:\n  pseudonymise_keys: [a.b]\n  safe_keys: [a.b]\n"),
            "gateway.yaml:3: redaction.safe_keys: 'a.b' is also in redaction.pseudonymise_keys: "
            "list it once");
  EXPECT_EQ(ErrorOf("redaction:\n  drop_keys: [[a]]\n"),
            "gateway.yaml:2: redaction.drop_keys[0]: expected an attribute key like partner.id");
  EXPECT_EQ(ErrorOf("redaction:\n  debug: maybe\n").find("gateway.yaml:2: redaction.debug:"), 0u);
  EXPECT_EQ(ErrorOf("redaction:\n  key: /a\n").find("gateway.yaml:2: redaction.key:"), 0u);
}

TEST(ConfigTest, JaegerQueryServiceAndLinks) {
  auto d = Parse("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->jaeger.query_url, "");
  EXPECT_EQ(d->jaeger.timeout, std::chrono::seconds(30));
  EXPECT_EQ(d->jaeger.max_response_bytes, uint64_t{64} << 20);

  auto c = Parse(R"(
listen:
  http: 0.0.0.0:8443
  tls:
    http: {cert_file: /c.pem, key_file: /k.pem}
jaeger:
  query_url: http://127.0.0.1:16686/jaeger/
  timeout: 5s
  max_response_bytes: 1MiB
  ca_file: /ca.pem
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->jaeger.query_url, "http://127.0.0.1:16686/jaeger");
  EXPECT_EQ(c->jaeger.timeout, std::chrono::seconds(5));
  EXPECT_EQ(c->jaeger.max_response_bytes, uint64_t{1} << 20);
  EXPECT_EQ(c->jaeger.ca_file, "/ca.pem");
  // Links go to the gateway's own /jaeger/: at the listener, with the host name for 0.0.0.0 ...
  EXPECT_EQ(JaegerLinkBase(c.value(), "gw1"), "https://gw1:8443/jaeger");
  // ... at the public URL when given ...
  c->jaeger.public_url = "https://ordertrace.example";
  EXPECT_EQ(JaegerLinkBase(c.value(), "gw1"), "https://ordertrace.example/jaeger");
  // ... and where journeys.jaeger_ui says, for a deployment that keeps its own Jaeger URL.
  c->journeys.jaeger_ui = "https://jaeger.example";
  EXPECT_EQ(JaegerLinkBase(c.value(), "gw1"), "https://jaeger.example");

  auto plain =
      Parse("listen:\n  http: 127.0.0.1:8080\njaeger:\n  query_url: http://j:16686/jaeger\n");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(JaegerLinkBase(plain.value(), "gw1"), "http://127.0.0.1:8080/jaeger");

  EXPECT_EQ(
      ErrorOf("jaeger:\n  query_url: 127.0.0.1:16686\n").find("gateway.yaml:2: jaeger.query_url: "),
      0u);
  EXPECT_EQ(ErrorOf("jaeger:\n  timeout: 1ms\n").find("gateway.yaml:2: jaeger.timeout: "), 0u);
  EXPECT_EQ(ErrorOf("jaeger:\n  max_response_bytes: 1\n")
                .find("gateway.yaml:2: jaeger.max_response_bytes: "),
            0u);
  EXPECT_EQ(ErrorOf("jaeger:\n  url: http://x\n").find("gateway.yaml:2: jaeger.url: "), 0u);
}

}  // namespace
}  // namespace ordertrace::config
