// `ordertrace send`: a built-in sample sender that plays realistic order journeys (CRM and MES
// spans over RabbitMQ hops, order.id / order.stage attributes, occasional errors and orders
// that stop on purpose) and posts them to an OTLP/HTTP endpoint as protobuf.
//
// Thread-safety: RunSend() is a blocking, single-threaded call.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace ordertrace::cli {

struct SendOptions {
  std::string endpoint = "http://127.0.0.1:4318/v1/traces";
  // Orders to start in all; nullopt: 20, or unlimited when `duration` is set.
  std::optional<int> orders;
  double rate = 5;  // orders started per second
  // How long to keep starting orders; orders in flight then finish (within about 2 s).
  std::optional<std::chrono::milliseconds> duration;
  std::optional<uint64_t> seed;  // for reproducible traffic
  bool gzip = false;             // Content-Encoding: gzip
  bool quiet = false;            // no progress lines, only the summary
};

// Returns the process exit code: 0 when every request was accepted (partial success counts as
// accepted; its rejected spans are reported), 1 when requests failed or the endpoint could not
// be reached, 2 for a bad endpoint URL.
int RunSend(const SendOptions& options);

}  // namespace ordertrace::cli
