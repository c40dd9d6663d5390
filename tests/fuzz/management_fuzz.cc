// Fuzz target for the RabbitMQ management API parsers (src/broker/management.h): every body is
// given to all four (overview, queues, exchanges, bindings); each must parse it or return an
// error, never crash, whatever the broker (or something pretending to be it) sends.
//
// Corpus: tests/fuzz/corpus/management.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "broker/management.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ordertrace::broker;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  Overview overview;
  std::vector<QueueState> queues;
  std::vector<ExchangeInfo> exchanges;
  std::vector<BindingInfo> bindings;
  const ordertrace::Status results[] = {ParseOverview(body, &overview), ParseQueues(body, &queues),
                                        ParseExchanges(body, &exchanges),
                                        ParseBindings(body, &bindings)};
  for (const auto& s : results) {
    if (!s.ok() && s.message().empty()) std::abort();
  }
  return 0;
}
