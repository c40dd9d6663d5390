// `ordertrace order ID` and `ordertrace stuck`: the journey API for a terminal.  Both ask a
// running gateway over HTTP (--api, default http://127.0.0.1:8080) and print either the JSON
// as the API returns it (--json) or a readable view.
#pragma once

#include <cstddef>
#include <string>

namespace ordertrace::cli {

struct QueryOptions {
  std::string api = "http://127.0.0.1:8080";
  bool json = false;
};

// Exit codes: 0 found, 1 the gateway could not be asked (or answered 5xx), 3 no such order.
int RunOrder(const QueryOptions& options, const std::string& order_id);

struct StuckOptions {
  std::string stage;
  std::string service;
  size_t limit = 50;  // orders printed (pages are followed until this many)
};
// Exit codes: 0 no stuck orders, 1 the gateway could not be asked, 4 some orders are stuck
// (so scripts can alert on it).
int RunStuck(const QueryOptions& options, const StuckOptions& stuck);

}  // namespace ordertrace::cli
