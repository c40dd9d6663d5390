#include "journey/jaeger_links.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ordertrace::journey {
namespace {

const std::string kTrace = "0af7651916cd43dd8448eb211c80319c";
const std::string kSpan = "b7ad6b7169203331";

TEST(JaegerLinks, TraceLinkDropsTrailingSlashes) {
  EXPECT_EQ(JaegerLink("https://gw.example/jaeger", kTrace),
            "https://gw.example/jaeger/trace/" + kTrace);
  EXPECT_EQ(JaegerLink("http://jaeger:16686//", kTrace), "http://jaeger:16686/trace/" + kTrace);
}

TEST(JaegerLinks, SpanLinkHighlightsTheSpan) {
  EXPECT_EQ(JaegerSpanLink("https://gw.example/jaeger/", kTrace, kSpan),
            "https://gw.example/jaeger/trace/" + kTrace + "?uiFind=" + kSpan);
}

TEST(JaegerLinks, SearchLinkListsTheTracesInOrder) {
  EXPECT_EQ(JaegerSearchLink("http://j:16686", {"aa", "bb", "cc"}),
            "http://j:16686/search?traceID=aa&traceID=bb&traceID=cc");
  EXPECT_EQ(JaegerSearchLink("http://j:16686", {}), "");
}

TEST(JaegerLinks, SearchLinkKeepsTheFirstTracesUpToTheCap) {
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i)
    ids.push_back(std::string(30, '0') + (i < 10 ? "0" : "") + std::to_string(i));
  const std::string link = JaegerSearchLink("https://gw.example/jaeger", ids);
  size_t count = 0;
  for (size_t p = link.find("traceID="); p != std::string::npos; p = link.find("traceID=", p + 1))
    ++count;
  EXPECT_EQ(count, kMaxTracesPerSearchLink);
  EXPECT_NE(link.find(ids[19]), std::string::npos);
  EXPECT_EQ(link.find(ids[20]), std::string::npos);
  EXPECT_LT(link.size(), 1000u);  // the reason for the cap
  EXPECT_EQ(JaegerSearchLink("http://j", ids, 2),
            "http://j/search?traceID=" + ids[0] + "&traceID=" + ids[1]);
}

// Ids are stored as lowercase hex; anything else cannot add a path, a parameter or a fragment.
TEST(JaegerLinks, IdsThatAreNotHexArePercentEncoded) {
  EXPECT_EQ(JaegerLink("http://j", "a/b?c#d"), "http://j/trace/a%2Fb%3Fc%23d");
  EXPECT_EQ(JaegerSpanLink("http://j", "ab", "x&traceID=1"),
            "http://j/trace/ab?uiFind=x%26traceID%3D1");
  EXPECT_EQ(JaegerSearchLink("http://j", {"AB CD", "ef"}),
            "http://j/search?traceID=AB%20CD&traceID=ef");
}

SpanRecord Span(std::string trace, Nanos start, Nanos end) {
  SpanRecord s;
  s.trace_id = std::move(trace);
  s.span_id = kSpan;
  s.start_ns = start;
  s.end_ns = end;
  return s;
}

TEST(JaegerLinks, TraceWindowsAreLatestFirstWithTheirTimes) {
  Journey j;
  j.spans.push_back(Span("t1", 100, 200));
  j.spans.push_back(Span("t2", 150, 400));
  j.spans.push_back(Span("t1", 90, 120));
  Milestone m;
  m.trace_id = "t3";  // its span is no longer in the view (spans_truncated)
  m.at_ns = 300;
  j.milestones.push_back(m);
  m.trace_id = "t1";
  m.at_ns = 250;
  j.milestones.push_back(m);

  const std::vector<TraceWindow> w = TraceWindows(j);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].trace_id, "t2");
  EXPECT_EQ(w[0].first_ns, 150);
  EXPECT_EQ(w[0].last_ns, 400);
  EXPECT_EQ(w[1].trace_id, "t3");
  EXPECT_EQ(w[1].first_ns, 300);
  EXPECT_EQ(w[2].trace_id, "t1");
  EXPECT_EQ(w[2].first_ns, 90);
  EXPECT_EQ(w[2].last_ns, 250);
  EXPECT_EQ(TraceIdsOf(w), (std::vector<std::string>{"t2", "t3", "t1"}));
  EXPECT_TRUE(TraceWindows(Journey()).empty());
}

}  // namespace
}  // namespace ordertrace::journey
