#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace ordertrace::metrics {
namespace {

TEST(MetricsTest, CountersWithLabelsSerializeInExpositionFormat) {
  Registry r;
  auto& spans = r.AddCounter("ordertrace_test_spans_total", "Spans.", {"protocol", "reason"});
  spans.With({"grpc", "ok"}).Inc(3);
  spans.With({"http_json", "a \"quoted\"\nvalue\\"}).Inc();
  const std::string text = r.Serialize();
  EXPECT_NE(text.find("# HELP ordertrace_test_spans_total Spans.\n"
                      "# TYPE ordertrace_test_spans_total counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("ordertrace_test_spans_total{protocol=\"grpc\",reason=\"ok\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("reason=\"a \\\"quoted\\\"\\nvalue\\\\\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.AddHistogram("ordertrace_test_seconds", "Durations.", {}, {0.1, 1});
  auto& child = h.With({});
  child.Observe(0.05);
  child.Observe(0.5);
  child.Observe(0.5);
  child.Observe(7);
  const std::string text = r.Serialize();
  EXPECT_NE(text.find("ordertrace_test_seconds_bucket{le=\"0.10000000000000001\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ordertrace_test_seconds_bucket{le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("ordertrace_test_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("ordertrace_test_seconds_sum 8.0500000000000007\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("ordertrace_test_seconds_count 4\n"), std::string::npos);
}

TEST(MetricsTest, GaugesAndCallbackGauges) {
  Registry r;
  auto& g = r.AddGauge("ordertrace_test_queue_bytes", "Bytes.");
  g.With({}).Set(10);
  g.With({}).Add(-2.5);
  double v = 42;
  r.AddCallbackGauge("ordertrace_test_uptime_seconds", "Uptime.", [&] { return v; });
  const std::string text = r.Serialize();
  EXPECT_NE(text.find("ordertrace_test_queue_bytes 7.5\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("# TYPE ordertrace_test_uptime_seconds gauge\nordertrace_test_uptime_seconds 42\n"),
      std::string::npos);
}

TEST(MetricsTest, CallbackGaugesWithALabelAreComputedTogether) {
  Registry r;
  int calls = 0;
  r.AddCallbackGauge("ordertrace_test_heap_bytes", "Heap.", "kind", [&] {
    ++calls;
    return std::vector<std::pair<std::string, double>>{{"in_use", 5}, {"free", 2}};
  });
  const std::string text = r.Serialize();
  EXPECT_NE(text.find("# TYPE ordertrace_test_heap_bytes gauge\n"
                      "ordertrace_test_heap_bytes{kind=\"in_use\"} 5\n"
                      "ordertrace_test_heap_bytes{kind=\"free\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(calls, 1);
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& c = r.AddCounter("ordertrace_test_total", "T.", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.With({"x"}).Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.With({"x"}).Value(), 40000u);
}

}  // namespace
}  // namespace ordertrace::metrics
