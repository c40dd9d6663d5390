// An order's traces read back from Jaeger: the `jaeger` member of
// GET /api/v1/orders/{id}?include=jaeger (docs/api.md).
//
//   {"traces":   [{"trace_id", "spans": [Jaeger's v1 span objects], "processes": {...}}],
//    "missing":  [trace ids Jaeger does not hold],
//    "failed":   [{"trace_id", "error"}],
//    "left_out": [trace ids over max_traces, not asked for],
//    "error":    the first failure's reason ("Jaeger is not reachable: connect: Connection
//                refused") or null}
//
// The traces are the order's (journey::TraceWindows: its spans' and milestones' traces), latest
// first; the newest `max_traces` are asked for, with their span times as bounds.
//
// Thread-safety: a pure function of its arguments; the client may be shared.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>

#include "jaeger/query_client.h"
#include "journey/types.h"

namespace ordertrace::jaeger {

inline constexpr size_t kMaxReadBackTraces = 20;

nlohmann::json ReadBack(const QueryClient& client, const journey::Journey& journey,
                        size_t max_traces = kMaxReadBackTraces);

}  // namespace ordertrace::jaeger
