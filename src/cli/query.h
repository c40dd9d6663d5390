// `ordertrace order ID` and `ordertrace stuck`: the journey API for a terminal.  Both ask a
// running gateway over HTTP or HTTPS (--api, default http://127.0.0.1:8080; a token and a CA
// file as in cli/api_access.h) and print either the JSON as the API returns it (--json) or a
// readable view.
#pragma once

#include <cstddef>
#include <string>

#include "cli/api_access.h"

namespace ordertrace::cli {

struct QueryOptions {
  std::string api = "http://127.0.0.1:8080";
  ApiAccess access;  // --token-file, --ca-file
  bool json = false;
};

// Exit codes: 0 found, 1 the gateway could not be asked (or answered 5xx, 401, 403, or 409 for
// --jaeger without Jaeger configured), 2 a bad --token-file / --ca-file, 3 no such order.
// `jaeger` (--jaeger): also the order's traces read back from Jaeger (?include=jaeger, the
// action traces.read), printed as spans per trace.
int RunOrder(const QueryOptions& options, const std::string& order_id, bool jaeger = false);

struct StuckOptions {
  std::string stage;
  std::string service;
  // A partner's pseudonym (`pse:...`: asked in the query string) or clear id (sent in a POST
  // body, /api/v1/orders/lookup-partner, so that it stays out of URLs; the gateway allows it to
  // DevOps only).
  std::string partner;
  size_t limit = 50;  // orders printed (pages are followed until this many)
};
// Exit codes: 0 no stuck orders, 1 the gateway could not be asked, 4 some orders are stuck
// (so scripts can alert on it).
int RunStuck(const QueryOptions& options, const StuckOptions& stuck);

}  // namespace ordertrace::cli
