// `ordertrace watch`: a live terminal view of a running gateway.  Every interval it reads the
// gateway's /metrics (orders per stage, stuck per stage, closed, spans accepted, alerts, and the
// RabbitMQ health the gateway polls) and the stuck orders with their one-line diagnoses from
// /api/v1/orders?stuck=true, and redraws one screen in place.  Not a TTY (or --once): frames are
// printed one after another, without escape codes.
//
// Thread-safety: RunWatch() is a blocking call on the calling thread; it installs SIGINT/SIGTERM
// handlers for as long as it runs (Ctrl-C ends it with exit 0).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api_access.h"

namespace ordertrace::cli {

struct WatchOptions {
  std::string api = "http://127.0.0.1:8080";
  ApiAccess access;  // --token-file, --ca-file (cli/api_access.h)
  std::chrono::milliseconds interval{1000};
  size_t limit = 10;  // stuck orders listed
  bool once = false;  // one frame, then exit (1 when the gateway cannot be asked)
};

int RunWatch(const WatchOptions& options);

// One sample of the Prometheus text format: name, labels, value.
struct Sample {
  std::string name;
  std::map<std::string, std::string, std::less<>> labels;
  double value = 0;
};

// Parses the text exposition format (comments and malformed lines skipped); label values are
// unescaped (\\, \", \n).  Exposed for tests.
std::vector<Sample> ParseMetrics(std::string_view text);

// Appends to each listed stuck order's summary what the broker says of it (the order view's
// diagnosis.open_hops[].broker and diagnosis.broker, from GET /api/v1/orders/{id}), when the
// summary does not say it yet: "…; queue crm.prices: 0 ready, 2 unacked, 1 consumers".
// `stuck_json` is the list page; `order_json(id)` returns the order's JSON ("" when unknown).
// Returns the list page with the summaries extended (unchanged when it is not a list).
std::string WithBrokerNotes(std::string_view stuck_json, size_t limit,
                            const std::function<std::string(const std::string&)>& order_json);

// The frame for a metrics page and a stuck-orders page (the API's JSON, already fetched), at
// most `width` columns per line (0: no limit).  Exposed for tests.
std::string RenderWatch(const std::vector<Sample>& metrics, std::string_view stuck_json,
                        std::string_view header, size_t limit, size_t width);

}  // namespace ordertrace::cli
