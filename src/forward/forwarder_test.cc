// The Forwarder against a real upstream: the project's own OTLP/HTTP receiver on port 0, with
// a sink that records what arrives and can throttle on demand.
#include "forward/forwarder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "net/http_server.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "receive/otlp_receivers.h"
#include "support/otlp_requests.h"

namespace ordertrace::forward {
namespace {

using namespace std::chrono_literals;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

// The upstream's sink: records span names; refuses with `refuse_` while it is set.
class UpstreamSink : public pipeline::BatchSink {
 public:
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    if (throttle_ > 0) {
      --throttle_;
      return Status::ResourceExhausted("busy", 50);
    }
    for (const auto& s : batch->spans()) names_.insert(std::string(s.name));
    ++requests_;
    return Status::Ok();
  }
  void Throttle(int times) {
    std::lock_guard<std::mutex> lock(mu_);
    throttle_ = times;
  }
  std::set<std::string> names() const {
    std::lock_guard<std::mutex> lock(mu_);
    return names_;
  }
  int requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  mutable std::mutex mu_;
  int throttle_ = 0;
  int requests_ = 0;
  std::set<std::string> names_;
};

// An OTLP/HTTP upstream on a free port; "POISON" spans get a permanent 400.
class Upstream {
 public:
  explicit Upstream(uint16_t port = 0) : metrics_(registry_) {
    net::HttpServerOptions o;
    o.port = port;
    server_ = std::make_unique<net::HttpServer>(o);
    receive::OtlpReceiverOptions ro;
    receive::RegisterOtlpHttp(*server_, ro, &sink_, &metrics_);
    // A second route that refuses bodies containing POISON with 400, else acts as /v1/traces.
    server_->Route("POST", "/strict", [this](net::HttpRequest& req, net::HttpResponse& res) {
      if (req.body.find("POISON") != std::string::npos) {
        res.status = 400;
        res.body = "poisoned";
        return;
      }
      auto b = otlp::DecodeExportRequest(req.body, otlp::Protocol::kHttpProtobuf, {});
      if (!b.ok() || !sink_.Accept(b.value()).ok()) {
        res.status = 503;
        return;
      }
      res.status = 200;
      res.content_type = "application/x-protobuf";
    });
    // A route with a message limit (an OTLP/gRPC receiver's 4 MiB, scaled down): a body over
    // kLimitedBytes gets 413, else it acts as /v1/traces.
    server_->Route("POST", "/limited", [this](net::HttpRequest& req, net::HttpResponse& res) {
      if (req.body.size() > kLimitedBytes) {
        ++too_large_;
        res.status = 413;
        res.body = "request entity too large";
        return;
      }
      auto b = otlp::DecodeExportRequest(req.body, otlp::Protocol::kHttpProtobuf, {});
      res.status = b.ok() && sink_.Accept(b.value()).ok() ? 200 : 503;
      res.content_type = "application/x-protobuf";
    });
    // A route that answers 401 while `deny_auth_` is set, else acts as /v1/traces.
    server_->Route("POST", "/auth", [this](net::HttpRequest& req, net::HttpResponse& res) {
      if (deny_auth_.load()) {
        res.status = 401;
        res.body = "bad token";
        return;
      }
      auto b = otlp::DecodeExportRequest(req.body, otlp::Protocol::kHttpProtobuf, {});
      res.status = b.ok() && sink_.Accept(b.value()).ok() ? 200 : 503;
      res.content_type = "application/x-protobuf";
    });
    EXPECT_TRUE(server_->Start().ok());
  }
  static constexpr size_t kLimitedBytes = 800;
  void DenyAuth(bool deny) { deny_auth_.store(deny); }
  int too_large() const { return too_large_.load(); }
  ~Upstream() { server_->Shutdown(); }
  uint16_t port() const { return server_->port(); }
  UpstreamSink& sink() { return sink_; }

 private:
  metrics::Registry registry_;
  receive::ReceiverMetrics metrics_;
  UpstreamSink sink_;
  std::atomic<bool> deny_auth_{false};
  std::atomic<int> too_large_{0};
  std::unique_ptr<net::HttpServer> server_;
};

std::shared_ptr<const otlp::SpanBatch> Batch(const std::vector<std::string>& names) {
  testing_support::RequestBuilder req;
  req.Resource().Scope();
  int i = 0;
  for (const auto& name : names) {
    req.Add(
        testing_support::SpanBuilder(name)
            .Ids(std::string(16, 'T'), std::string(7, 'S') + static_cast<char>('0' + (i++ % 64)))
            .Times(1, 2));
  }
  auto r = otlp::DecodeExportRequest(req.Serialized(), otlp::Protocol::kGrpc, {});
  EXPECT_TRUE(r.ok());
  return r.value();
}

class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ordertrace_forwarder_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ForwarderOptions Options(uint16_t port, const std::string& path = "/v1/traces") {
    ForwarderOptions o;
    o.exporter.url = "http://127.0.0.1:" + std::to_string(port) + path;
    o.exporter.timeout = 2s;
    o.queue.dir = dir_ / "queue";
    o.dead_letter_dir = dir_ / "dead-letter";
    o.batch_max_age = 20ms;
    o.retry_initial = 20ms;
    o.retry_max = 100ms;
    o.drain_timeout = 3s;
    return o;
  }

  static bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return done();
  }

  std::filesystem::path dir_;
  metrics::Registry registry_;
};

TEST_F(ForwarderTest, AcceptedBatchesReachTheUpstream) {
  Upstream up;
  auto f = Forwarder::Start(Options(up.port()), registry_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*f)->Accept(Batch({"a" + std::to_string(i), "b" + std::to_string(i)})).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return up.sink().names().size() == 40; }));
  EXPECT_TRUE(WaitFor([&] { return (*f)->queued_records() == 0; }));
  // Batching: 20 accepted batches went out in fewer requests.
  EXPECT_LT(up.sink().requests(), 20);
  EXPECT_NE(registry_.Serialize().find("ordertrace_forward_export_requests_total{code=\"200\"}"),
            std::string::npos);
}

TEST_F(ForwarderTest, ThrottledUpstreamIsRetriedUntilItAccepts) {
  Upstream up;
  up.sink().Throttle(3);
  auto f = Forwarder::Start(Options(up.port()), registry_);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Accept(Batch({"x"})).ok());
  ASSERT_TRUE(WaitFor([&] { return up.sink().names().count("x") == 1; }));
  const std::string m = registry_.Serialize();
  EXPECT_NE(m.find("ordertrace_forward_export_requests_total{code=\"429\"} 3"), std::string::npos)
      << m;
  EXPECT_NE(m.find("ordertrace_forward_retries_total 3"), std::string::npos) << m;
}

TEST_F(ForwarderTest, PermanentFailureDeadLettersOnlyTheBadRequest) {
  Upstream up;
  auto opts = Options(up.port(), "/strict");
  opts.batch_max_age = 300ms;  // the three batches go out together first
  auto f = Forwarder::Start(opts, registry_);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Accept(Batch({"good1"})).ok());
  ASSERT_TRUE((*f)->Accept(Batch({"POISON"})).ok());
  ASSERT_TRUE((*f)->Accept(Batch({"good2"})).ok());
  ASSERT_TRUE(WaitFor([&] { return (*f)->queued_records() == 0; }));
  EXPECT_EQ(up.sink().names(), (std::set<std::string>{"good1", "good2"}));
  std::ifstream index(dir_ / "dead-letter" / "index.jsonl");
  std::stringstream ss;
  ss << index.rdbuf();
  EXPECT_NE(ss.str().find("\"code\":\"400\""), std::string::npos) << ss.str();
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "dead-letter")) {
    if (e.path().extension() == ".pb") {
      ++files;
      ExportTraceServiceRequest req;
      std::ifstream in(e.path(), std::ios::binary);
      ASSERT_TRUE(req.ParseFromIstream(&in));
      EXPECT_EQ(req.resource_spans(0).scope_spans(0).spans(0).name(), "POISON");
    }
  }
  EXPECT_EQ(files, 1);
  EXPECT_NE(registry_.Serialize().find("ordertrace_forward_dead_letter_records_total 1"),
            std::string::npos);
}

// An upstream whose message limit is below forward.batch.max_bytes (Jaeger's OTLP/gRPC receiver
// refuses over 4 MiB, our default batch): the forwarder halves its batches after the first
// refusal instead of sending the refused batch record by record and refusing the next again.
TEST_F(ForwarderTest, AnUpstreamsMessageLimitHalvesTheBatches) {
  Upstream up;
  auto opts = Options(up.port(), "/limited");
  opts.batch_max_bytes = 64 * 1024;
  opts.batch_max_age = 500ms;  // everything below goes out in the first batch, over the limit
  auto f = Forwarder::Start(opts, registry_);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::set<std::string> sent;
  uint64_t bytes = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string name = "limited-" + std::to_string(i);
    auto batch = Batch({name});
    bytes += batch->wire().size();
    ASSERT_TRUE((*f)->Accept(batch).ok());
    sent.insert(name);
  }
  ASSERT_GT(bytes, 4 * Upstream::kLimitedBytes);  // a whole batch is over the limit
  ASSERT_TRUE(WaitFor([&] { return (*f)->queued_records() == 0; }));
  EXPECT_EQ(up.sink().names(), sent);  // everything, and nothing dead-lettered
  EXPECT_EQ(registry_.Serialize().find("ordertrace_forward_dead_letter_records_total 1"),
            std::string::npos);
  // A handful of refusals while the batch size halves down below the limit, not one per record.
  EXPECT_GE(up.too_large(), 1);
  EXPECT_LE(up.too_large(), 8);
  // And the batches that went through are still batches, not single records.
  EXPECT_LT(up.sink().requests(), 100);
}

TEST_F(ForwarderTest, CredentialFailuresHoldTheDataInsteadOfDeadLettering) {
  Upstream up;
  up.DenyAuth(true);
  auto f = Forwarder::Start(Options(up.port(), "/auth"), registry_);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Accept(Batch({"held1"})).ok());
  ASSERT_TRUE((*f)->Accept(Batch({"held2"})).ok());
  auto auth_failures = [&] {
    const std::string m = registry_.Serialize();
    const std::string name = "\nordertrace_forward_auth_failures_total ";
    const auto pos = m.find(name);
    return pos == std::string::npos ? -1 : std::stoi(m.substr(pos + name.size()));
  };
  ASSERT_TRUE(WaitFor([&] { return auth_failures() >= 2; })) << auth_failures();
  EXPECT_GT((*f)->queued_records(), 0u);  // held, not dead-lettered
  up.DenyAuth(false);                     // the token is fixed
  ASSERT_TRUE(WaitFor([&] { return up.sink().names().size() == 2; }));
  EXPECT_EQ(up.sink().names(), (std::set<std::string>{"held1", "held2"}));
  EXPECT_TRUE(WaitFor([&] { return (*f)->queued_records() == 0; }));
  EXPECT_NE(registry_.Serialize().find("ordertrace_forward_dead_letter_records_total 0"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "dead-letter" / "index.jsonl"));
}

TEST_F(ForwarderTest, FullQueueThrottlesAndNothingAcceptedIsLost) {
  // Nothing listens on the upstream port: everything stays queued.
  uint16_t dead_port;
  {
    Upstream probe;
    dead_port = probe.port();
  }
  auto opts = Options(dead_port);
  opts.queue.max_bytes = 4096;
  opts.drain_timeout = 0ms;
  std::set<std::string> accepted;
  {
    auto f = Forwarder::Start(opts, registry_);
    ASSERT_TRUE(f.ok());
    Status last;
    for (int i = 0; i < 200 && last.ok(); ++i) {
      const std::string name = "n" + std::to_string(i);
      last = (*f)->Accept(Batch({name, name + "b"}));
      if (last.ok()) accepted.insert({name, name + "b"});
    }
    EXPECT_EQ(last.code(), StatusCode::kResourceExhausted);
    EXPECT_GT(last.retry_after_ms(), 0);
    EXPECT_GT(accepted.size(), 10u);
    (*f)->Close();
  }
  // The upstream comes up on that port; a new forwarder on the same queue sends it all.
  Upstream up(dead_port);
  metrics::Registry registry2;
  opts.drain_timeout = 3s;
  auto f = Forwarder::Start(opts, registry2);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(WaitFor([&] { return up.sink().names() == accepted; }))
      << up.sink().names().size() << " of " << accepted.size();
  EXPECT_TRUE(WaitFor([&] { return (*f)->queued_records() == 0; }));
}

TEST_F(ForwarderTest, BadUpstreamIsAClearError) {
  auto opts = Options(1);
  opts.exporter.url = "ftp://127.0.0.1:1";
  auto f = Forwarder::Start(opts, registry_);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("ftp"), std::string::npos) << f.status().message();
}

}  // namespace
}  // namespace ordertrace::forward
