// Interop with a client nobody here wrote: the OpenTelemetry JS SDK's OTLP exporters (protobuf
// over HTTP, JSON over HTTP, gRPC) send spans to the gateway's real receivers, started
// in-process on free ports; the test asserts that every field was decoded exactly as sent.
//
// tests/interop/send_spans.mjs creates the spans, exports them and prints what it sent (from
// the SDK's own record of the spans, not from the serializer under test) as JSON.  The test
// turns each decoded span back into the same JSON shape and compares field by field.
//
// Over HTTPS (InteropTlsTest): the exporters send to a real `ordertrace serve` whose OTLP
// listeners serve TLS (listen.tls.*, certificates made by openssl), trusting the test CA through
// OTEL_EXPORTER_OTLP_CERTIFICATE and sending a bearer token in OTEL_EXPORTER_OTLP_HEADERS, as a
// service would; that gateway forwards to the receivers above, where every field is checked.
//
// Needs node and tests/interop/node_modules (tests/interop/setup installs them); skips with
// the reason when either is missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "net/http_server.h"
#include "net/tls.h"
#include "otlp/span_batch.h"
#include "pipeline/batch_sink.h"
#include "receive/otlp_receivers.h"
#include "receive/receiver_metrics.h"
#include "support/gateway_process.h"
#include "support/run_command.h"
#include "support/tls_files.h"

#ifndef ORDERTRACE_SOURCE_DIR
#error "ORDERTRACE_SOURCE_DIR must name the source tree (set in tests/CMakeLists.txt)"
#endif

namespace ordertrace {
namespace {

using Json = nlohmann::json;
using otlp::AnyValueView;
using otlp::KeyValueView;
using otlp::SpanBatch;
using otlp::SpanRef;
using otlp::ValueType;

const std::string kSourceDir = ORDERTRACE_SOURCE_DIR;
const std::string kInteropDir = kSourceDir + "/tests/interop";

// Stores every batch the receivers hand off.
class CapturingSink : public pipeline::BatchSink {
 public:
  Status Accept(std::shared_ptr<const SpanBatch> batch) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(std::move(batch));
    return Status::Ok();
  }
  std::vector<std::shared_ptr<const SpanBatch>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(batches_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<const SpanBatch>> batches_;
};

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }
bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// The first `node` on PATH, or "" when there is none.
std::string FindNode() {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    if (dir.empty()) dir = ".";
    if (IsExecutable(dir + "/node")) return dir + "/node";
  }
  return "";
}

// Why the interop tests cannot run here, or "" when they can.
std::string MissingPrerequisite() {
  if (FindNode().empty()) {
    return "node is not on PATH; install nodejs and npm (scripts/setup), then run "
           "tests/interop/setup";
  }
  for (const char* pkg : {"exporter-trace-otlp-proto", "exporter-trace-otlp-http",
                          "exporter-trace-otlp-grpc", "sdk-trace-base", "resources"}) {
    std::string file = kInteropDir + "/node_modules/@opentelemetry/" + pkg + "/package.json";
    if (!Exists(file)) {
      return "tests/interop/node_modules is missing @opentelemetry/" + std::string(pkg) +
             "; run tests/interop/setup (npm ci)";
    }
  }
  return "";
}

using testing_support::CommandResult;
using testing_support::RunCommand;

// ---- decoded values in the shape send_spans.mjs prints ----

std::string Hex(std::string_view bytes) {
  return otlp::ToHex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

Json Typed(const AnyValueView& v, uint32_t max_value_bytes);

Json TypedKeyValues(const std::vector<KeyValueView>& kvs, uint32_t max_value_bytes) {
  Json out = Json::array();
  for (const KeyValueView& kv : kvs) {
    out.push_back({{"key", std::string(kv.key)}, {"value", Typed(kv.value, max_value_bytes)}});
  }
  return out;
}

Json Typed(const AnyValueView& v, uint32_t max_value_bytes) {
  switch (v.type) {
    case ValueType::kEmpty:
      return {{"type", "empty"}};
    case ValueType::kString:
      return {{"type", "string"}, {"value", std::string(v.str)}};
    case ValueType::kBool:
      return {{"type", "bool"}, {"value", v.bool_value}};
    case ValueType::kInt:
      return {{"type", "int"}, {"value", std::to_string(v.int_value)}};
    case ValueType::kDouble:
      return {{"type", "double"}, {"value", v.double_value}};
    case ValueType::kBytes:
      return {{"type", "bytes"}, {"value", Hex(v.str)}};
    case ValueType::kArray: {
      Json values = Json::array();
      otlp::ForEachArrayValue(v, max_value_bytes, [&](const AnyValueView& e) {
        values.push_back(Typed(e, max_value_bytes));
      });
      return {{"type", "array"}, {"value", values}};
    }
    case ValueType::kKvList: {
      std::vector<KeyValueView> kvs;
      otlp::ForEachKeyValue(v, max_value_bytes, [&](const KeyValueView& kv) { kvs.push_back(kv); });
      return {{"type", "kvlist"}, {"value", TypedKeyValues(kvs, max_value_bytes)}};
    }
  }
  return {{"type", "unknown"}};
}

// The attributes of any view the batch can walk (resource, scope, span, event, link).
template <typename View>
Json Attributes(const SpanBatch& batch, const View& view) {
  std::vector<KeyValueView> kvs;
  batch.ForEachAttribute(view, [&](const KeyValueView& kv) { kvs.push_back(kv); });
  return TypedKeyValues(kvs, batch.limits().max_attribute_value_bytes);
}

// Compares two attribute lists element by element, so a failure names the attribute.
void ExpectAttributes(const Json& got, const Json& want, const std::string& where) {
  ASSERT_TRUE(want.is_array()) << where;
  EXPECT_EQ(got.size(), want.size())
      << where << " attribute count\ngot:  " << got.dump() << "\nwant: " << want.dump();
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << where << " attribute " << i << " (" << want[i].value("key", "?")
                               << ")";
  }
}

// ---- gateway A: a real `ordertrace serve` that forwards to the receivers under test ----

// Starts `ordertrace serve --upstream URL` on free ports with its own data directory; stopped
// (SIGTERM, then SIGKILL) and cleaned up by the destructor.
struct ForwardingGateway : testing_support::GatewayProcess {
  explicit ForwardingGateway(const std::string& upstream) : GatewayProcess("chain") {
    Start({"--upstream", upstream});
  }
  bool started() const { return running() && otlp_http_port() != 0; }
};

// ---- the fixture: the gateway's receivers, started once ----

class InteropTest : public ::testing::Test {
 protected:
  struct Gateway {
    metrics::Registry registry;
    receive::ReceiverMetrics metrics{registry};
    CapturingSink sink;
    std::unique_ptr<net::HttpServer> http;
    std::unique_ptr<receive::OtlpGrpcReceiver> grpc;
    bool started = false;
  };

  static void SetUpTestSuite() {
    skip_reason_ = new std::string(MissingPrerequisite());
    if (!skip_reason_->empty()) return;
    gateway_ = new Gateway;
    receive::OtlpReceiverOptions options;
    net::HttpServerOptions http_options;
    http_options.name = "otlp_http";
    http_options.host = "127.0.0.1";
    http_options.port = 0;
    gateway_->http = std::make_unique<net::HttpServer>(http_options);
    receive::RegisterOtlpHttp(*gateway_->http, options, &gateway_->sink, &gateway_->metrics);
    Status st = gateway_->http->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
    gateway_->grpc =
        std::make_unique<receive::OtlpGrpcReceiver>(options, &gateway_->sink, &gateway_->metrics);
    st = gateway_->grpc->Start("127.0.0.1", 0);
    ASSERT_TRUE(st.ok()) << st.ToString();
    gateway_->started = true;
  }

  static void TearDownTestSuite() {
    if (gateway_ != nullptr) {
      if (gateway_->grpc) gateway_->grpc->Shutdown(std::chrono::milliseconds(2000));
      if (gateway_->http) gateway_->http->Shutdown(std::chrono::milliseconds(2000));
      delete gateway_;
      gateway_ = nullptr;
    }
    delete skip_reason_;
    skip_reason_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_->empty()) {
      // scripts/test (and so CI) installs node and the packages: there a skip would hide a
      // broken set-up, so it fails instead.
      const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
      if (required && std::string(required) == "1") FAIL() << *skip_reason_;
      GTEST_SKIP() << *skip_reason_;
    }
    ASSERT_TRUE(gateway_ != nullptr && gateway_->started) << "the receivers did not start";
    gateway_->sink.Take();  // nothing left over from another test
  }

  // Sends the spans with one exporter and checks every decoded field against what was sent.
  // `via` (optional): a gateway A, an `ordertrace serve` forwarding to these receivers; the
  // spans are then sent to A and checked as they arrive here, at B.
  // `via_tls` (optional): `via` serves TLS; the exporter gets an https:// endpoint and
  // `env` (variable assignments for the shell: the CA file, the token).
  void SendAndVerify(const std::string& exporter, const std::string& compression,
                     otlp::Protocol protocol, const testing_support::GatewayProcess* via = nullptr,
                     bool via_tls = false, const std::string& env = "") {
    uint16_t port = exporter == "grpc" ? gateway_->grpc->port() : gateway_->http->port();
    if (via != nullptr) port = exporter == "grpc" ? via->otlp_grpc_port() : via->otlp_http_port();
    const std::string command =
        "cd '" + kInteropDir + "' && " + env + " timeout 120 '" + FindNode() +
        "' send_spans.mjs --exporter " + exporter + " --compression " + compression +
        " --endpoint " + (via_tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port);
    CommandResult run = RunCommand(command);
    ASSERT_EQ(run.exit_code, 0) << command << "\nstdout:\n" << run.out;
    Json expected = Json::parse(run.out, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(expected.is_discarded()) << "send_spans.mjs printed no JSON:\n" << run.out;
    ASSERT_EQ(expected.value("exporter", ""), exporter);

    // The exporter has its answer (the script waited for it), so every batch is here; through
    // a forwarding gateway they arrive shortly after.
    const Json& want_spans = expected.at("spans");
    std::vector<std::shared_ptr<const SpanBatch>> batches = gateway_->sink.Take();
    if (via != nullptr) {
      auto count = [&] {
        size_t n = 0;
        for (const auto& b : batches) n += b->spans().size();
        return n;
      };
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (count() < want_spans.size() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        for (auto& b : gateway_->sink.Take()) batches.push_back(std::move(b));
      }
    }
    ASSERT_FALSE(batches.empty()) << "the gateway received no batch";
    std::map<std::string, std::pair<const SpanBatch*, const SpanRef*>> by_span_id;
    size_t decoded = 0;
    for (const auto& batch : batches) {
      EXPECT_EQ(batch->protocol(), protocol) << otlp::ProtocolName(batch->protocol());
      EXPECT_EQ(batch->refused_spans(), 0u) << batch->refusal_message();
      for (const SpanRef& span : batch->spans()) {
        ++decoded;
        by_span_id[otlp::ToHex(span.span_id)] = {batch.get(), &span};
      }
    }
    ASSERT_GE(want_spans.size(), 6u);
    EXPECT_EQ(decoded, want_spans.size());

    // Resources and scopes are shared by spans: check each decoded one once.
    std::set<std::pair<const SpanBatch*, uint32_t>> resources_seen, scopes_seen;
    for (const Json& want : want_spans) {
      const std::string where = exporter + " span \"" + want.at("name").get<std::string>() + "\"";
      SCOPED_TRACE(where);
      auto found = by_span_id.find(want.at("spanId").get<std::string>());
      ASSERT_NE(found, by_span_id.end()) << "span id " << want.at("spanId") << " not decoded";
      const SpanBatch& batch = *found->second.first;
      const SpanRef& span = *found->second.second;
      VerifySpan(batch, span, want, where);
      if (resources_seen.insert({&batch, span.resource}).second) {
        VerifyResource(batch, span, expected.at("resource"), where);
      }
      if (scopes_seen.insert({&batch, span.scope}).second) {
        VerifyScope(batch, span, want.at("scope"), where);
      } else {
        // Spans of one scope must agree on it: compare the name, which differs by scope.
        EXPECT_EQ(batch.scopes()[span.scope].name, want.at("scope").at("name").get<std::string>());
      }
    }
  }

  static void VerifySpan(const SpanBatch& batch, const SpanRef& span, const Json& want,
                         const std::string& where) {
    EXPECT_EQ(otlp::ToHex(span.trace_id), want.at("traceId").get<std::string>());
    EXPECT_EQ(otlp::ToHex(span.span_id), want.at("spanId").get<std::string>());
    const std::string parent = want.at("parentSpanId").get<std::string>();
    if (parent.empty()) {
      EXPECT_FALSE(span.has_parent());
      EXPECT_EQ(otlp::ToHex(span.parent_span_id), "0000000000000000");
    } else {
      EXPECT_TRUE(span.has_parent());
      EXPECT_EQ(otlp::ToHex(span.parent_span_id), parent);
    }
    EXPECT_EQ(span.trace_state, want.at("traceState").get<std::string>());
    EXPECT_EQ(span.flags, want.at("flags").get<uint32_t>());
    EXPECT_EQ(span.name, want.at("name").get<std::string>());
    EXPECT_EQ(static_cast<int>(span.kind), want.at("kind").get<int>());
    EXPECT_EQ(std::to_string(span.start_time_unix_nano),
              want.at("startTimeUnixNano").get<std::string>());
    EXPECT_EQ(std::to_string(span.end_time_unix_nano),
              want.at("endTimeUnixNano").get<std::string>());
    EXPECT_EQ(static_cast<int>(span.status_code), want.at("status").at("code").get<int>());
    EXPECT_EQ(span.status_message, want.at("status").at("message").get<std::string>());
    EXPECT_EQ(span.repairs, 0u) << "the gateway repaired a span the SDK sent";

    EXPECT_EQ(span.attributes, want.at("attributes").size());
    EXPECT_EQ(span.dropped_attributes, want.at("droppedAttributesCount").get<uint32_t>());
    ExpectAttributes(Attributes(batch, span), want.at("attributes"), where);

    const Json& want_events = want.at("events");
    EXPECT_EQ(span.events, want_events.size());
    EXPECT_EQ(span.dropped_events, want.at("droppedEventsCount").get<uint32_t>());
    size_t i = 0;
    batch.ForEachEvent(span, [&](const otlp::EventView& event) {
      const std::string at = where + " event " + std::to_string(i);
      if (i >= want_events.size()) {
        ADD_FAILURE() << at << ": not sent";
      } else {
        const Json& w = want_events[i];
        EXPECT_EQ(event.name, w.at("name").get<std::string>()) << at;
        EXPECT_EQ(std::to_string(event.time_unix_nano), w.at("timeUnixNano").get<std::string>())
            << at;
        EXPECT_EQ(event.dropped_attributes, w.at("droppedAttributesCount").get<uint32_t>()) << at;
        ExpectAttributes(Attributes(batch, event), w.at("attributes"), at);
      }
      ++i;
    });
    EXPECT_EQ(i, want_events.size()) << where << " events walked";

    const Json& want_links = want.at("links");
    EXPECT_EQ(span.links, want_links.size());
    EXPECT_EQ(span.dropped_links, want.at("droppedLinksCount").get<uint32_t>());
    i = 0;
    batch.ForEachLink(span, [&](const otlp::LinkView& link) {
      const std::string at = where + " link " + std::to_string(i);
      if (i >= want_links.size()) {
        ADD_FAILURE() << at << ": not sent";
      } else {
        const Json& w = want_links[i];
        EXPECT_EQ(otlp::ToHex(link.trace_id), w.at("traceId").get<std::string>()) << at;
        EXPECT_EQ(otlp::ToHex(link.span_id), w.at("spanId").get<std::string>()) << at;
        EXPECT_EQ(link.trace_state, w.at("traceState").get<std::string>()) << at;
        EXPECT_EQ(link.flags, w.at("flags").get<uint32_t>()) << at;
        EXPECT_EQ(link.dropped_attributes, w.at("droppedAttributesCount").get<uint32_t>()) << at;
        ExpectAttributes(Attributes(batch, link), w.at("attributes"), at);
      }
      ++i;
    });
    EXPECT_EQ(i, want_links.size()) << where << " links walked";
  }

  static void VerifyResource(const SpanBatch& batch, const SpanRef& span, const Json& want,
                             const std::string& where) {
    ASSERT_LT(span.resource, batch.resources().size());
    const otlp::ResourceRef& resource = batch.resources()[span.resource];
    EXPECT_EQ(resource.schema_url, want.at("schemaUrl").get<std::string>());
    EXPECT_EQ(resource.service_name, "interop-crm");
    EXPECT_EQ(resource.attributes, want.at("attributes").size());
    EXPECT_EQ(resource.dropped_attributes, 0u);
    ExpectAttributes(Attributes(batch, resource), want.at("attributes"), where + " resource");
  }

  static void VerifyScope(const SpanBatch& batch, const SpanRef& span, const Json& want,
                          const std::string& where) {
    ASSERT_LT(span.scope, batch.scopes().size());
    const otlp::ScopeRef& scope = batch.scopes()[span.scope];
    EXPECT_EQ(scope.resource, span.resource);
    EXPECT_EQ(scope.name, want.at("name").get<std::string>());
    EXPECT_EQ(scope.version, want.at("version").get<std::string>());
    EXPECT_EQ(scope.schema_url, want.at("schemaUrl").get<std::string>());
    EXPECT_EQ(scope.attributes, 0u);
    ExpectAttributes(Attributes(batch, scope), Json::array(), where + " scope");
  }

  static Gateway* gateway_;
  static std::string* skip_reason_;
};

InteropTest::Gateway* InteropTest::gateway_ = nullptr;
std::string* InteropTest::skip_reason_ = nullptr;

TEST_F(InteropTest, HttpProtobufExporter) {
  SendAndVerify("proto", "none", otlp::Protocol::kHttpProtobuf);
}

TEST_F(InteropTest, HttpJsonExporter) { SendAndVerify("json", "none", otlp::Protocol::kHttpJson); }

TEST_F(InteropTest, GrpcExporter) { SendAndVerify("grpc", "none", otlp::Protocol::kGrpc); }

TEST_F(InteropTest, HttpProtobufExporterGzip) {
  SendAndVerify("proto", "gzip", otlp::Protocol::kHttpProtobuf);
}

TEST_F(InteropTest, HttpJsonExporterGzip) {
  SendAndVerify("json", "gzip", otlp::Protocol::kHttpJson);
}

TEST_F(InteropTest, GrpcExporterGzip) { SendAndVerify("grpc", "gzip", otlp::Protocol::kGrpc); }

// Forwarding chain: the SDK sends to gateway A, A forwards to these receivers (gateway B) over
// OTLP/HTTP or OTLP/gRPC, and every field arrives at B as the SDK sent it.
TEST_F(InteropTest, ChainProtobufThroughHttpUpstream) {
  ForwardingGateway a("http://127.0.0.1:" + std::to_string(gateway_->http->port()) + "/v1/traces");
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("proto", "none", otlp::Protocol::kHttpProtobuf, &a);
}

TEST_F(InteropTest, ChainJsonThroughHttpUpstream) {
  ForwardingGateway a("http://127.0.0.1:" + std::to_string(gateway_->http->port()) + "/v1/traces");
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("json", "gzip", otlp::Protocol::kHttpProtobuf, &a);  // A forwards protobuf
}

TEST_F(InteropTest, ChainGrpcThroughGrpcUpstream) {
  ForwardingGateway a("grpc://127.0.0.1:" + std::to_string(gateway_->grpc->port()));
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("grpc", "none", otlp::Protocol::kGrpc, &a);
}

// ---- over HTTPS, with a bearer token ----

// The token the exporters send (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>).
constexpr char kIngestToken[] = "interop-ingest-token-7f3a";

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr);
  return Hex(std::string_view(reinterpret_cast<const char*>(digest), n));
}

// Another service's token: valid, but bound to service.name "mes".
const std::string kMesToken = std::string(kIngestToken) + "-mes";

// ingest.auth (docs/security.md): the tokens stored as SHA-256, each bound to the service.name
// it may send (the interop spans carry interop-crm).
std::string IngestAuthYaml() {
  return "ingest:\n"
         "  auth:\n"
         "    mode: bearer\n"
         "    tokens:\n"
         "      - name: interop\n"
         "        sha256: " +
         Sha256Hex(kIngestToken) +
         "\n"
         "        services: [interop-crm]\n"
         "      - name: mes\n"
         "        sha256: " +
         Sha256Hex(kMesToken) +
         "\n"
         "        services: [mes]\n";
}

// Gateway A over TLS: `ordertrace serve` with listen.tls on its OTLP/HTTP and OTLP/gRPC
// listeners (the test CA's server certificate for localhost and 127.0.0.1), forwarding to the
// receivers under test.
struct TlsForwardingGateway : testing_support::GatewayProcess {
  TlsForwardingGateway(const testing_support::TlsFiles& files, const std::string& upstream)
      : GatewayProcess("tls_chain") {
    const std::string config = (dir() / "gateway.yaml").string();
    std::ofstream out(config);
    out << "listen:\n  tls:\n";
    for (const char* listener : {"otlp_http", "otlp_grpc"}) {
      out << "    " << listener << ":\n"
          << "      cert_file: " << files.server_cert << "\n"
          << "      key_file: " << files.server_key << "\n";
    }
    out << IngestAuthYaml();
    out.close();
    Start({"--config", config, "--upstream", upstream});
  }
  bool started() const { return running() && otlp_http_port() != 0; }
};

class InteropTlsTest : public InteropTest {
 protected:
  void SetUp() override {
    InteropTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_interop_tls_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(files_.Make(dir_.string())) << "openssl failed";
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // The shell assignments a service would make: trust the CA, send the token.
  std::string Env(const std::string& ca_file, const std::string& token) const {
    return "OTEL_EXPORTER_OTLP_CERTIFICATE='" + ca_file +
           "' OTEL_EXPORTER_OTLP_HEADERS='authorization=Bearer%20" + token + "'";
  }
  std::string HttpUpstream() const {
    return "http://127.0.0.1:" + std::to_string(gateway_->http->port()) + "/v1/traces";
  }

  // Runs one exporter against `a`; its exit code (0: the export succeeded).
  int ExportExitCode(const std::string& exporter, const TlsForwardingGateway& a,
                     const std::string& env) {
    const uint16_t port = exporter == "grpc" ? a.otlp_grpc_port() : a.otlp_http_port();
    const std::string command = "cd '" + kInteropDir + "' && " + env + " timeout 120 '" +
                                FindNode() + "' send_spans.mjs --exporter " + exporter +
                                " --endpoint https://127.0.0.1:" + std::to_string(port) +
                                " >/dev/null";
    return RunCommand(command).exit_code;
  }

  std::filesystem::path dir_;
  testing_support::TlsFiles files_;
};

TEST_F(InteropTlsTest, HttpProtobufExporterOverHttpsWithToken) {
  TlsForwardingGateway a(files_, HttpUpstream());
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("proto", "none", otlp::Protocol::kHttpProtobuf, &a, true,
                Env(files_.ca_cert, kIngestToken));
}

TEST_F(InteropTlsTest, HttpJsonExporterOverHttpsWithToken) {
  TlsForwardingGateway a(files_, HttpUpstream());
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("json", "gzip", otlp::Protocol::kHttpProtobuf, &a, true,  // A forwards protobuf
                Env(files_.ca_cert, kIngestToken));
}

TEST_F(InteropTlsTest, GrpcExporterOverTlsWithToken) {
  TlsForwardingGateway a(files_, "grpc://127.0.0.1:" + std::to_string(gateway_->grpc->port()));
  ASSERT_TRUE(a.started()) << a.Log();
  SendAndVerify("grpc", "none", otlp::Protocol::kGrpc, &a, true, Env(files_.ca_cert, kIngestToken));
}

TEST_F(InteropTlsTest, ExportersRefuseAGatewayOfAnotherCa) {
  TlsForwardingGateway a(files_, HttpUpstream());
  ASSERT_TRUE(a.started()) << a.Log();
  for (const char* exporter : {"proto", "json", "grpc"}) {
    EXPECT_NE(ExportExitCode(exporter, a, Env(files_.foreign_ca_cert, kIngestToken)), 0)
        << exporter;
  }
  EXPECT_TRUE(gateway_->sink.Take().empty()) << "spans arrived through an untrusted server";
}

TEST_F(InteropTlsTest, NoTokenWrongTokenOrAnotherServicesTokenIsRefused) {
  TlsForwardingGateway a(files_, HttpUpstream());
  ASSERT_TRUE(a.started()) << a.Log();
  for (const char* exporter : {"proto", "json", "grpc"}) {
    EXPECT_NE(ExportExitCode(exporter, a, Env(files_.ca_cert, "not-the-token")), 0) << exporter;
    EXPECT_NE(
        ExportExitCode(exporter, a, "OTEL_EXPORTER_OTLP_CERTIFICATE='" + files_.ca_cert + "'"), 0)
        << exporter << " without a token";
    EXPECT_NE(ExportExitCode(exporter, a, Env(files_.ca_cert, kMesToken)), 0)
        << exporter << " with the token of another service.name";
  }
  EXPECT_TRUE(gateway_->sink.Take().empty()) << "spans arrived with a wrong or missing token";
  EXPECT_EQ(a.Log().find("not-the-token"), std::string::npos) << "a token in the log";
}

}  // namespace
}  // namespace ordertrace
