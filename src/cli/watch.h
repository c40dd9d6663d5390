// `ordertrace watch`: a live terminal view of a running gateway.  Every interval it reads the
// gateway's /metrics (orders per stage, stuck per stage, closed, spans accepted, alerts, and the
// RabbitMQ health the gateway polls) and the stuck orders with their one-line diagnoses from
// /api/v1/orders?stuck=true, and redraws one screen in place (clear + home).  Not a TTY (or
// --once): frames are printed one after another, without escape codes.  The frame fits the
// terminal: every line cut to its width in display columns, the stuck list cut to the rows left
// with "… N more" (like top); a resize (SIGWINCH) redraws at the new size.
//
// Thread-safety: RunWatch() is a blocking call on the calling thread; it installs SIGINT/SIGTERM
// and SIGWINCH handlers for as long as it runs (Ctrl-C ends it with exit 0).
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
  size_t limit = 10;   // stuck orders listed
  bool once = false;   // one frame, then exit (1 when the gateway cannot be asked)
  std::string banner;  // a line above every frame ("" none)
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

// The terminal's size: the window's (TIOCGWINSZ on `fd`) when `fd` is a terminal that knows it,
// else COLUMNS / LINES from the environment (`columns`, `lines`; null or invalid: unknown), else
// 80 x 24.
struct TerminalSize {
  size_t columns = 80;
  size_t rows = 24;
};
TerminalSize TerminalSizeOf(int fd, const char* columns, const char* lines);

// Display columns of UTF-8 text: East Asian wide and emoji characters count 2, combining marks
// 0, everything else 1.
size_t DisplayColumns(std::string_view text);

// `line` cut to at most `width` display columns (0: no limit), never inside a UTF-8 sequence;
// control characters (an escape sequence in telemetry text) become '?'.
std::string FitLine(std::string_view line, size_t width);

// The frame for a metrics page and a stuck-orders page (the API's JSON, already fetched), at
// most `width` columns per line and `height` lines (0: no limit; the stuck list gives way first,
// ending in "… N more").  Exposed for tests.
std::string RenderWatch(const std::vector<Sample>& metrics, std::string_view stuck_json,
                        std::string_view header, size_t limit, size_t width, size_t height = 0);

}  // namespace ordertrace::cli
