// Fuzz target for the config loader (src/config/config.h ParseConfig): any text must give a
// config or an error naming the problem, never a crash or an exception.  The environment is
// empty, so only the text decides.
//
// Corpus: tests/fuzz/corpus/config.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto config = ordertrace::config::ParseConfig(yaml, "fuzz.yaml", no_env);
  if (!config.ok() && config.status().message().empty()) std::abort();
  return 0;
}
