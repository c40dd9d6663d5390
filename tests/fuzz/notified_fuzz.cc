// Fuzz target for the record of webhook notifications the alert dispatcher reads back at start
// (src/alert/notified_log.h ParseNotified): any bytes are replayed without a crash, every line
// is either a record or counted as skipped, and what the records say written out again
// (SerializeNotified) reads back the same when no line of it is too long.
//
// Corpus: tests/fuzz/corpus/notified.  See docs/fuzzing.md.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "alert/notified_log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ordertrace::alert::NotifiedLog;
  using ordertrace::alert::NotifiedParseStats;
  using ordertrace::alert::NotifiedState;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  NotifiedState state;
  NotifiedParseStats stats;
  ordertrace::alert::ParseNotified(text, &state, &stats);
  size_t lines = 0;
  for (char c : text) lines += c == '\n' ? 1 : 0;
  if (!text.empty() && text.back() != '\n') ++lines;  // the torn last line
  if (stats.records + stats.skipped > lines) std::abort();
  if ((stats.skipped == 0) != (stats.first_bad == 0)) std::abort();

  const std::string again = ordertrace::alert::SerializeNotified(state);
  size_t longest = 0, at = 0;
  while (at < again.size()) {
    const size_t nl = again.find('\n', at);
    longest = std::max(longest, nl - at);
    at = nl + 1;
  }
  NotifiedState back;
  NotifiedParseStats back_stats;
  ordertrace::alert::ParseNotified(again, &back, &back_stats);
  if (longest <= NotifiedLog::kMaxLine) {
    if (back_stats.skipped != 0 || back.sinks != state.sinks ||
        back.episodes.size() != state.episodes.size() ||
        back.storms.size() != state.storms.size()) {
      std::abort();
    }
    for (const auto& [key, e] : state.episodes) {
      auto it = back.episodes.find(key);
      if (it == back.episodes.end() || it->second.stage != e.stage ||
          it->second.service != e.service) {
        std::abort();
      }
    }
    for (const auto& [key, s] : state.storms) {
      auto it = back.storms.find(key);
      if (it == back.storms.end() || it->second.starts_at != s.starts_at ||
          it->second.count != s.count) {
        std::abort();
      }
    }
  }
  return 0;
}
