#include "journey/jaeger_links.h"

#include <algorithm>
#include <unordered_map>

#include "common/url.h"

namespace ordertrace::journey {
namespace {

std::string Base(std::string_view base) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base);
}

bool IsLowerHex(std::string_view id) {
  return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// An id as it goes into a path or a query value: hex as it is, anything else percent-encoded.
std::string IdInLink(std::string_view id) {
  return IsLowerHex(id) ? std::string(id) : url::PercentEncode(id);
}

}  // namespace

std::string JaegerLink(std::string_view base, std::string_view trace_id) {
  return Base(base) + "/trace/" + IdInLink(trace_id);
}

std::string JaegerSpanLink(std::string_view base, std::string_view trace_id,
                           std::string_view span_id) {
  return JaegerLink(base, trace_id) + "?uiFind=" + IdInLink(span_id);
}

std::string JaegerSearchLink(std::string_view base, const std::vector<std::string>& trace_ids,
                             size_t max) {
  if (trace_ids.empty() || max == 0) return "";
  std::string link = Base(base) + "/search";
  const size_t n = std::min(trace_ids.size(), max);
  for (size_t i = 0; i < n; ++i) {
    link += i == 0 ? "?traceID=" : "&traceID=";
    link += IdInLink(trace_ids[i]);
  }
  return link;
}

std::vector<TraceWindow> TraceWindows(const Journey& journey) {
  std::vector<TraceWindow> out;
  std::unordered_map<std::string_view, size_t> index;
  auto add = [&](const std::string& trace_id, Nanos first, Nanos last) {
    if (trace_id.empty()) return;
    const auto [it, inserted] = index.emplace(trace_id, out.size());
    if (inserted) {
      TraceWindow w;
      w.trace_id = trace_id;
      w.first_ns = first;
      w.last_ns = last;
      out.push_back(std::move(w));
      return;
    }
    TraceWindow& w = out[it->second];
    w.first_ns = std::min(w.first_ns, first);
    w.last_ns = std::max(w.last_ns, last);
  };
  // The keys view the journey's strings, which outlive the map.
  for (const SpanRecord& s : journey.spans)
    add(s.trace_id, s.start_ns, std::max(s.end_ns, s.start_ns));
  for (const Milestone& m : journey.milestones) add(m.trace_id, m.at_ns, m.at_ns);
  std::sort(out.begin(), out.end(), [](const TraceWindow& a, const TraceWindow& b) {
    return a.last_ns != b.last_ns ? a.last_ns > b.last_ns : a.trace_id < b.trace_id;
  });
  return out;
}

std::vector<std::string> TraceIdsOf(const std::vector<TraceWindow>& windows) {
  std::vector<std::string> ids;
  ids.reserve(windows.size());
  for (const TraceWindow& w : windows) ids.push_back(w.trace_id);
  return ids;
}

}  // namespace ordertrace::journey
