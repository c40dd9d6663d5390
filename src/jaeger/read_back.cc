#include "jaeger/read_back.h"

#include <utility>
#include <vector>

#include "journey/jaeger_links.h"

namespace ordertrace::jaeger {

nlohmann::json ReadBack(const QueryClient& client, const journey::Journey& journey,
                        size_t max_traces) {
  using nlohmann::json;
  const std::vector<journey::TraceWindow> windows = journey::TraceWindows(journey);
  std::vector<TraceQuery> queries;
  json left_out = json::array();
  for (const journey::TraceWindow& w : windows) {
    if (queries.size() >= max_traces) {
      left_out.push_back(w.trace_id);
      continue;
    }
    TraceQuery q;
    q.trace_id = w.trace_id;
    q.first_ns = w.first_ns;
    q.last_ns = w.last_ns;
    queries.push_back(std::move(q));
  }
  json traces = json::array();
  json missing = json::array();
  json failed = json::array();
  json error = nullptr;
  for (TraceAnswer& a : client.GetTraces(queries)) {
    switch (a.outcome) {
      case TraceAnswer::Outcome::kFound:
        traces.push_back(json{{"trace_id", a.trace_id},
                              {"spans", std::move(a.spans)},
                              {"processes", std::move(a.processes)}});
        break;
      case TraceAnswer::Outcome::kMissing:
        missing.push_back(a.trace_id);
        break;
      case TraceAnswer::Outcome::kFailed:
      case TraceAnswer::Outcome::kNotAsked:
        if (error.is_null()) error = a.error;
        failed.push_back(json{{"trace_id", a.trace_id}, {"error", a.error}});
        break;
    }
  }
  return json{{"traces", std::move(traces)},
              {"missing", std::move(missing)},
              {"failed", std::move(failed)},
              {"left_out", std::move(left_out)},
              {"error", std::move(error)}};
}

}  // namespace ordertrace::jaeger
