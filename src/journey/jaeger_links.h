// Links into the Jaeger UI for an order, and the time windows of its traces.
//
// The forms are the Jaeger UI's own (jaeger-ui at Jaeger v2.12):
//   a trace          {base}/trace/{trace_id}
//   a span           {base}/trace/{trace_id}?uiFind={span_id}   (the span highlighted)
//   an order's traces {base}/search?traceID={a}&traceID={b}...   (all of them on one page)
// `base` is config::JaegerLinkBase() (the gateway's own /jaeger/ or journeys.jaeger_ui); a
// trailing '/' is dropped.  Ids are written as stored (lowercase hex); anything else in an id is
// percent-encoded, so a link never carries a character that changes its meaning.
//
// TraceWindows() gives each of an order's traces with the span times the journey knows of it,
// latest first: what the links list first and what the read-back asks Jaeger for
// (src/jaeger/query_client.h).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "journey/types.h"

namespace ordertrace::journey {

// Trace ids in one search link at most: each adds 41 bytes ("&traceID=" and 32 hex), so 20 keep
// the link near 900 bytes, well within what browsers, proxies and chat tools pass on (some cut at
// 2,000).  The newest traces are kept; the order's view lists every trace id.
inline constexpr size_t kMaxTracesPerSearchLink = 20;

// {base}/trace/{trace_id}
std::string JaegerLink(std::string_view base, std::string_view trace_id);
// {base}/trace/{trace_id}?uiFind={span_id}
std::string JaegerSpanLink(std::string_view base, std::string_view trace_id,
                           std::string_view span_id);
// {base}/search?traceID={a}&traceID={b}... for the first `max` of `trace_ids` (give them latest
// first); "" when there are none.
std::string JaegerSearchLink(std::string_view base, const std::vector<std::string>& trace_ids,
                             size_t max = kMaxTracesPerSearchLink);

// One of an order's traces and the times the journey saw in it (span starts and ends, milestone
// times), in Unix nanoseconds.
struct TraceWindow {
  std::string trace_id;
  Nanos first_ns = 0;  // earliest span start (or milestone) of the trace
  Nanos last_ns = 0;   // latest span end (or milestone)
};

// The traces of `journey`'s spans and milestones, latest first (by last_ns; ties by trace id), each
// once.
std::vector<TraceWindow> TraceWindows(const Journey& journey);

// The trace ids of `windows`, in their order.
std::vector<std::string> TraceIdsOf(const std::vector<TraceWindow>& windows);

}  // namespace ordertrace::journey
