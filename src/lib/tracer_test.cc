#include "ordertrace/tracer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "lib/internal.h"
#include "support/memory_exporter.h"

namespace ordertrace {
namespace {

using namespace std::chrono_literals;

using testing_support::MemoryExporter;

struct Fixture {
  explicit Fixture(TracerOptions o = {}) {
    auto e = std::make_unique<MemoryExporter>();
    exporter = e.get();
    provider = std::make_unique<TracerProvider>(std::move(o), std::move(e));
  }
  MemoryExporter* exporter;
  std::unique_ptr<TracerProvider> provider;
};

int ThreadCount() {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(Ids, AreNonZeroDistinctAndHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    TraceId t = NewTraceId();
    SpanId s = NewSpanId();
    SpanContext c;
    c.trace_id = t;
    c.span_id = s;
    EXPECT_TRUE(c.valid());
    EXPECT_TRUE(seen.insert(ToHex(t)).second);
  }
  TraceId t{};
  t[0] = 0xab;
  t[15] = 0x01;
  EXPECT_EQ(ToHex(t), "ab000000000000000000000000000001");
  SpanId s{0, 1, 2, 3, 4, 5, 6, 0xff};
  EXPECT_EQ(ToHex(s), "00010203040506ff");
}

TEST(Ids, ThreadsDrawDifferentSequences) {
  SpanId a, b;
  std::thread t1([&] { a = NewSpanId(); });
  std::thread t2([&] { b = NewSpanId(); });
  t1.join();
  t2.join();
  EXPECT_NE(a, b);
}

TEST(Noop, GlobalProviderIsANoopByDefault) {
  EXPECT_FALSE(GlobalTracerProvider().enabled());
  Span span("unconfigured");
  EXPECT_FALSE(span.recording());
  EXPECT_FALSE(span.context().valid());
  span.SetAttribute("order.id", "ORD-1");
  span.RecordException("E", "m");
  span.End();

  // A no-op span carries its parent's context, so propagation still works.
  SpanContext parent{NewTraceId(), NewSpanId(), kTraceFlagSampled, "a=b", true};
  StartOptions o;
  o.parent = &parent;
  Span child("child", o);
  EXPECT_FALSE(child.recording());
  EXPECT_EQ(child.context().trace_id, parent.trace_id);
  EXPECT_EQ(child.context().span_id, parent.span_id);
}

TEST(Noop, DisabledProviderStartsNoThreadAndExportsNothing) {
  const int before = ThreadCount();
  TracerOptions o;
  o.disabled = true;
  o.exporter.endpoint = "http://127.0.0.1:1/v1/traces";
  TracerProvider provider(o);
  EXPECT_EQ(ThreadCount(), before);
  EXPECT_FALSE(provider.enabled());
  {
    Span span(provider, "x");
    EXPECT_FALSE(span.recording());
  }
  EXPECT_TRUE(provider.ForceFlush(10ms));
  EXPECT_EQ(provider.stats().spans_ended, 0u);
  EXPECT_EQ(provider.stats().exported, 0u);
}

TEST(Span, RecordsEverythingAndEndsOnce) {
  Fixture f;
  SpanContext link_ctx{NewTraceId(), NewSpanId(), kTraceFlagSampled, "", true};
  {
    StartOptions o;
    o.kind = SpanKind::kServer;
    o.root = true;
    Span span(*f.provider, "POST /orders", o);
    ASSERT_TRUE(span.recording());
    EXPECT_TRUE(span.context().sampled());
    span.SetAttribute("s", "v");
    span.SetAttribute("i", int64_t{-7});
    span.SetAttribute("d", 1.5);
    span.SetAttribute("b", true);
    span.SetAttribute("a", std::vector<std::string>{"x", "y"});
    span.SetAttribute("i", 8);  // overwrites
    span.AddEvent("started", {{"k", int64_t{1}}});
    span.AddLink(link_ctx, {{"why", std::string("batch")}});
    span.SetStatus(SpanStatus::kError, "boom");
    span.RecordException("std::runtime_error", "disk full");
    span.End();
    span.End();  // idempotent
    EXPECT_FALSE(span.recording());
  }
  f.provider->Shutdown();
  auto spans = f.exporter->spans();
  ASSERT_EQ(spans.size(), 1u);
  const SpanData& s = spans[0];
  EXPECT_EQ(s.name, "POST /orders");
  EXPECT_EQ(s.kind, SpanKind::kServer);
  EXPECT_FALSE(s.has_parent);
  EXPECT_LE(s.start_time_unix_nano, s.end_time_unix_nano);
  ASSERT_EQ(s.attributes.size(), 6u);  // s i d b a error.type
  EXPECT_EQ(std::get<int64_t>(s.attributes[1].value), 8);
  EXPECT_EQ(s.attributes[5].key, "error.type");
  EXPECT_EQ(std::get<std::string>(s.attributes[5].value), "std::runtime_error");
  ASSERT_EQ(s.events.size(), 2u);
  EXPECT_EQ(s.events[1].name, "exception");
  EXPECT_EQ(s.events[1].attributes[0].key, "exception.type");
  EXPECT_EQ(s.events[1].attributes[1].key, "exception.message");
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.links[0].context.span_id, link_ctx.span_id);
  EXPECT_EQ(s.status, SpanStatus::kError);
  EXPECT_EQ(s.status_message, "boom");
  EXPECT_EQ(f.provider->stats().exported, 1u);
}

TEST(Span, StatusOkIsFinalAndDropsTheMessage) {
  Fixture f;
  Span span(*f.provider, "x");
  span.SetStatus(SpanStatus::kOk, "ignored");
  span.SetStatus(SpanStatus::kError, "too late");
  span.End();
  f.provider->Shutdown();
  auto spans = f.exporter->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].status, SpanStatus::kOk);
  EXPECT_EQ(spans[0].status_message, "");
}

TEST(Span, AttributeLimitDropsAndCounts) {
  TracerOptions o;
  o.max_attributes = 2;
  Fixture f(o);
  Span span(*f.provider, "x");
  for (int i = 0; i < 5; ++i) span.SetAttribute("k" + std::to_string(i), i);
  span.End();
  f.provider->Shutdown();
  auto spans = f.exporter->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].attributes.size(), 2u);
  EXPECT_EQ(spans[0].dropped_attributes, 3u);
}

TEST(Span, ScopeMakesTheCurrentSpanTheParent) {
  Fixture f;
  EXPECT_FALSE(CurrentSpanContext().valid());
  Span outer(*f.provider, "outer");
  {
    Scope scope(outer);
    EXPECT_EQ(CurrentSpanContext().span_id, outer.context().span_id);
    Span inner(*f.provider, "inner");
    EXPECT_EQ(inner.context().trace_id, outer.context().trace_id);
    {
      Scope nested(inner);
      StartOptions root_options;
      root_options.root = true;
      Span root(*f.provider, "root", root_options);
      EXPECT_NE(root.context().trace_id, outer.context().trace_id);
    }
    EXPECT_EQ(CurrentSpanContext().span_id, outer.context().span_id);
  }
  EXPECT_FALSE(CurrentSpanContext().valid());

  SpanContext remote{NewTraceId(), NewSpanId(), kTraceFlagSampled, "k=v", true};
  StartOptions o;
  o.parent = &remote;
  o.kind = SpanKind::kConsumer;
  Span child(*f.provider, "child", o);
  EXPECT_EQ(child.context().trace_id, remote.trace_id);
  EXPECT_EQ(child.context().trace_state, "k=v");
  EXPECT_FALSE(child.context().remote);
  child.End();
  f.provider->Shutdown();
  auto spans = f.exporter->spans();  // root, inner, child (outer is still open)
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_FALSE(spans[0].has_parent);
  EXPECT_EQ(spans[1].parent_span_id, outer.context().span_id);
  EXPECT_FALSE(spans[1].parent_remote);
  EXPECT_TRUE(spans[2].has_parent);
  EXPECT_TRUE(spans[2].parent_remote);
  EXPECT_EQ(spans[2].parent_span_id, remote.span_id);
}

TEST(Span, MovedSpanEndsOnce) {
  Fixture f;
  {
    Span a(*f.provider, "a");
    Span b(std::move(a));
    Span c;
    c = std::move(b);
    EXPECT_TRUE(c.recording());
  }
  f.provider->Shutdown();
  EXPECT_EQ(f.exporter->spans().size(), 1u);
}

TEST(Sampler, RatioZeroAndOne) {
  for (double ratio : {0.0, 1.0}) {
    TracerOptions o;
    o.sampler = Sampler::kTraceIdRatio;
    o.sampler_ratio = ratio;
    Fixture f(o);
    int recorded = 0;
    for (int i = 0; i < 1000; ++i) {
      Span s(*f.provider, "x");
      EXPECT_TRUE(s.context().valid());
      EXPECT_EQ(s.context().sampled(), ratio == 1.0);
      recorded += s.recording();
    }
    EXPECT_EQ(recorded, ratio == 1.0 ? 1000 : 0);
  }
}

TEST(Sampler, RatioIsRoughlyTheFractionAndDeterministicPerTrace) {
  int sampled = 0;
  for (int i = 0; i < 20000; ++i) {
    TraceId id = NewTraceId();
    bool s = internal::RatioSamples(id, 0.25);
    EXPECT_EQ(s, internal::RatioSamples(id, 0.25));
    if (s) {
      EXPECT_TRUE(internal::RatioSamples(id, 0.5));  // monotonic in the ratio
    }
    sampled += s;
  }
  EXPECT_NEAR(sampled / 20000.0, 0.25, 0.02);
}

TEST(Sampler, ParentBasedFollowsTheParent) {
  SpanContext yes{NewTraceId(), NewSpanId(), kTraceFlagSampled, "", true};
  SpanContext no{NewTraceId(), NewSpanId(), 0, "", true};
  for (Sampler s : {Sampler::kParentBasedAlwaysOn, Sampler::kParentBasedAlwaysOff,
                    Sampler::kParentBasedTraceIdRatio}) {
    EXPECT_TRUE(internal::ShouldSample(s, 0.0, &yes, yes.trace_id));
    EXPECT_FALSE(internal::ShouldSample(s, 1.0, &no, no.trace_id));
  }
  TraceId t = NewTraceId();
  EXPECT_TRUE(internal::ShouldSample(Sampler::kParentBasedAlwaysOn, 0, nullptr, t));
  EXPECT_FALSE(internal::ShouldSample(Sampler::kParentBasedAlwaysOff, 1, nullptr, t));
  EXPECT_FALSE(internal::ShouldSample(Sampler::kParentBasedTraceIdRatio, 0, nullptr, t));
  EXPECT_TRUE(internal::ShouldSample(Sampler::kParentBasedTraceIdRatio, 1, nullptr, t));

  // Through the provider: an unsampled parent gives a valid, unsampled, non-recording child.
  TracerOptions o;
  o.sampler = Sampler::kParentBasedAlwaysOn;
  Fixture f(o);
  StartOptions so;
  so.parent = &no;
  Span child(*f.provider, "c", so);
  EXPECT_FALSE(child.recording());
  EXPECT_EQ(child.context().trace_id, no.trace_id);
  EXPECT_NE(child.context().span_id, no.span_id);
  EXPECT_FALSE(child.context().sampled());
}

TEST(Processor, QueueFullDropsAndCountsWithoutBlocking) {
  TracerOptions o;
  o.max_queue_size = 4;
  o.max_export_batch_size = 2;
  o.schedule_delay = 5ms;
  Fixture f(o);
  f.exporter->Block();
  { Span(*f.provider, "first").End(); }
  ASSERT_TRUE(f.exporter->WaitEntered(5s));  // the export thread is stuck in Export()
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) Span(*f.provider, "x").End();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  auto st = f.provider->stats();
  EXPECT_EQ(st.spans_ended, 1001u);
  EXPECT_GE(st.dropped_queue_full, 1000u - 4u);
  f.exporter->Release();
  f.provider->Shutdown();
  st = f.provider->stats();
  EXPECT_EQ(st.exported + st.dropped_queue_full, 1001u);
  EXPECT_EQ(f.exporter->spans().size(), st.exported);
}

TEST(Processor, ShutdownFlushesAndLaterSpansAreDropped) {
  TracerOptions o;
  o.schedule_delay = 1h;
  Fixture f(o);
  for (int i = 0; i < 3; ++i) Span(*f.provider, "x").End();
  EXPECT_TRUE(f.exporter->spans().empty());
  f.provider->Shutdown();
  EXPECT_EQ(f.exporter->spans().size(), 3u);
  Span(*f.provider, "late").End();
  f.provider->Shutdown();  // idempotent
  EXPECT_EQ(f.exporter->spans().size(), 3u);
  EXPECT_EQ(f.provider->stats().dropped_queue_full, 1u);
}

TEST(Processor, ForceFlushExportsEverythingEnded) {
  TracerOptions o;
  o.schedule_delay = 1h;
  o.max_export_batch_size = 10;
  Fixture f(o);
  for (int i = 0; i < 25; ++i) Span(*f.provider, "x").End();
  EXPECT_TRUE(f.provider->ForceFlush(5s));
  EXPECT_EQ(f.exporter->spans().size(), 25u);
}

TEST(Processor, ConcurrentSpans) {
  TracerOptions o;
  o.max_queue_size = 100000;
  Fixture f(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Span s(*f.provider, "x");
        Scope scope(s);
        Span(*f.provider, "child").End();
      }
    });
  }
  for (auto& t : threads) t.join();
  f.provider->Shutdown();
  EXPECT_EQ(f.exporter->spans().size(), 16000u);
}

// --- environment ---

TracerOptions FromEnv(std::map<std::string, std::string> env) {
  return TracerOptionsFromEnv([env = std::move(env)](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Env, DefaultsWhenNothingIsSet) {
  TracerOptions o = FromEnv({});
  EXPECT_FALSE(o.disabled);
  EXPECT_EQ(o.service_name, "unknown_service");
  EXPECT_EQ(o.exporter.endpoint, "http://localhost:4318/v1/traces");
  EXPECT_EQ(o.exporter.timeout, 10000ms);
  EXPECT_EQ(o.sampler, Sampler::kParentBasedAlwaysOn);
  EXPECT_TRUE(o.exporter.headers.empty());
}

TEST(Env, EachVariable) {
  TracerOptions o = FromEnv({
      {"OTEL_SERVICE_NAME", "crm"},
      {"OTEL_RESOURCE_ATTRIBUTES",
       "service.name=ignored, deployment.environment=prod,team=a%2Cb,bad,=nokey"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw:4318"},
      {"OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret, x-tenant = t1 ,broken%zz=1"},
      {"OTEL_EXPORTER_OTLP_TIMEOUT", "2500"},
      {"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"},
      {"OTEL_TRACES_SAMPLER_ARG", "0.25"},
  });
  EXPECT_EQ(o.service_name, "crm");
  using KV = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.resource_attributes, (KV{{"deployment.environment", "prod"}, {"team", "a,b"}}));
  EXPECT_EQ(o.exporter.endpoint, "http://gw:4318/v1/traces");
  EXPECT_EQ(o.exporter.headers, (KV{{"api-key", "s=cret"}, {"x-tenant", "t1"}}));
  EXPECT_EQ(o.exporter.timeout, 2500ms);
  EXPECT_EQ(o.sampler, Sampler::kParentBasedTraceIdRatio);
  EXPECT_DOUBLE_EQ(o.sampler_ratio, 0.25);

  EXPECT_EQ(FromEnv({{"OTEL_RESOURCE_ATTRIBUTES", "service.name=billing"}}).service_name,
            "billing");
  EXPECT_EQ(FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://gw:4318/"}}).exporter.endpoint,
            "http://gw:4318/v1/traces");
  EXPECT_EQ(FromEnv({{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
                     {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"}})
                .exporter.endpoint,
            "http://b:2/custom");
  EXPECT_TRUE(FromEnv({{"OTEL_SDK_DISABLED", "TRUE"}}).disabled);
  EXPECT_FALSE(FromEnv({{"OTEL_SDK_DISABLED", "yes"}}).disabled);
}

TEST(Env, TlsFilesTheTracesVariablesWin) {
  TracerOptions general = FromEnv({{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"},
                                   {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/c.pem"},
                                   {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/c.key"}});
  EXPECT_EQ(general.exporter.certificate_file, "/etc/ca.pem");
  EXPECT_EQ(general.exporter.client_certificate_file, "/etc/c.pem");
  EXPECT_EQ(general.exporter.client_key_file, "/etc/c.key");
  TracerOptions traces = FromEnv({{"OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"},
                                  {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/t/ca.pem"},
                                  {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/c.pem"},
                                  {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/t/c.pem"},
                                  {"OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/c.key"},
                                  {"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/t/c.key"}});
  EXPECT_EQ(traces.exporter.certificate_file, "/t/ca.pem");
  EXPECT_EQ(traces.exporter.client_certificate_file, "/t/c.pem");
  EXPECT_EQ(traces.exporter.client_key_file, "/t/c.key");
  TracerOptions none = FromEnv({});
  EXPECT_TRUE(none.exporter.certificate_file.empty());
  EXPECT_TRUE(none.exporter.client_certificate_file.empty());
  EXPECT_TRUE(none.exporter.client_key_file.empty());
}

TEST(Env, SamplerNames) {
  std::vector<std::pair<std::string, Sampler>> cases = {
      {"always_on", Sampler::kAlwaysOn},
      {"always_off", Sampler::kAlwaysOff},
      {"traceidratio", Sampler::kTraceIdRatio},
      {"parentbased_always_on", Sampler::kParentBasedAlwaysOn},
      {"parentbased_always_off", Sampler::kParentBasedAlwaysOff},
      {"parentbased_traceidratio", Sampler::kParentBasedTraceIdRatio},
      {"nonsense", Sampler::kParentBasedAlwaysOn},
  };
  for (const auto& [name, sampler] : cases) {
    EXPECT_EQ(FromEnv({{"OTEL_TRACES_SAMPLER", name}}).sampler, sampler) << name;
  }
}

TEST(Env, BatchSpanProcessorVariables) {
  TracerOptions o = FromEnv({{"OTEL_BSP_SCHEDULE_DELAY", "200"},
                             {"OTEL_BSP_MAX_QUEUE_SIZE", "65536"},
                             {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096"}});
  EXPECT_EQ(o.schedule_delay, 200ms);
  EXPECT_EQ(o.max_queue_size, 65536u);
  EXPECT_EQ(o.max_export_batch_size, 4096u);
  // A batch never exceeds the queue; malformed values keep the defaults.
  TracerOptions capped = FromEnv({{"OTEL_BSP_MAX_QUEUE_SIZE", "100"}});
  EXPECT_EQ(capped.max_export_batch_size, 100u);
  TracerOptions bad = FromEnv({{"OTEL_BSP_SCHEDULE_DELAY", "1s"},
                               {"OTEL_BSP_MAX_QUEUE_SIZE", "0"},
                               {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1"}});
  EXPECT_EQ(bad.schedule_delay, 1000ms);
  EXPECT_EQ(bad.max_queue_size, 2048u);
  EXPECT_EQ(bad.max_export_batch_size, 512u);
}

TEST(Env, MalformedValuesKeepTheDefaults) {
  TracerOptions o = FromEnv({{"OTEL_EXPORTER_OTLP_TIMEOUT", "10s"},
                             {"OTEL_TRACES_SAMPLER", "traceidratio"},
                             {"OTEL_TRACES_SAMPLER_ARG", "1.5"},
                             {"OTEL_EXPORTER_OTLP_HEADERS", "novalue,%=x"},
                             {"OTEL_RESOURCE_ATTRIBUTES", "a=%4"}});
  EXPECT_EQ(o.exporter.timeout, 10000ms);
  EXPECT_DOUBLE_EQ(o.sampler_ratio, 1.0);
  EXPECT_TRUE(o.exporter.headers.empty());
  EXPECT_TRUE(o.resource_attributes.empty());
  EXPECT_EQ(FromEnv({{"OTEL_EXPORTER_OTLP_TIMEOUT", "-5"}}).exporter.timeout, 10000ms);
  TracerOptions r =
      FromEnv({{"OTEL_TRACES_SAMPLER", "traceidratio"}, {"OTEL_TRACES_SAMPLER_ARG", "abc"}});
  EXPECT_DOUBLE_EQ(r.sampler_ratio, 1.0);
}

TEST(Provider, ResourceCarriesServiceNameAndSdk) {
  TracerOptions o;
  o.disabled = true;
  o.service_name = "crm";
  o.resource_attributes = {{"team", "a"}};
  TracerProvider p(o);
  using KV = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(p.resource(), (KV{{"service.name", "crm"},
                              {"team", "a"},
                              {"telemetry.sdk.name", "libordertrace"},
                              {"telemetry.sdk.language", "cpp"},
                              {"telemetry.sdk.version", internal::kSdkVersion}}));
}

TEST(Provider, GlobalProviderCanBeSet) {
  TracerOptions o;
  auto e = std::make_unique<MemoryExporter>();
  MemoryExporter* exporter = e.get();
  auto provider = std::make_shared<TracerProvider>(o, std::move(e));
  SetGlobalTracerProvider(provider);
  {
    Span s("global");
    EXPECT_TRUE(s.recording());
  }
  provider->Shutdown();
  EXPECT_EQ(exporter->spans().size(), 1u);
  SetGlobalTracerProvider(nullptr);
  EXPECT_FALSE(GlobalTracerProvider().enabled());
}

}  // namespace
}  // namespace ordertrace
