// Fuzz target for the journey rules loader (src/journey/rules/rules.h ParseRules): any text must
// give rules or an error naming the problem, never a crash or an exception.
//
// Corpus: tests/fuzz/corpus/rules.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "journey/rules/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto rules = ordertrace::journey::ParseRules(yaml, "fuzz.yaml");
  if (!rules.ok() && rules.status().message().empty()) std::abort();
  return 0;
}
