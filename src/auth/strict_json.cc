#include "auth/strict_json.h"

#include <set>
#include <vector>

#include "common/json_nesting.h"

namespace ordertrace::auth {

bool ParseStrictJson(std::string_view text, nlohmann::json* out, std::string* error,
                     int max_depth) {
  using nlohmann::json;
  // The callback sees events in document order: one set of member names per open container
  // (arrays get an empty one so that object_end/array_end pop symmetrically).
  std::vector<std::set<std::string>> open;
  bool duplicate = false, too_deep = false;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= max_depth) too_deep = true;
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && parsed.is_string() &&
            !open.back().insert(parsed.get_ref<const std::string&>()).second) {
          duplicate = true;
        }
        break;
      case json::parse_event_t::value:
        break;
    }
    // Keep parsing (so the whole text is checked), but stop building deep values.
    return !too_deep;
  };
  // Cheap pre-check of the nesting, so that the parser's own state never grows with a
  // hostile "[[[[..." (the callback only sees it once the parser is in it).
  if (!JsonNestingWithin(text, max_depth)) {
    *error = "nested deeper than " + std::to_string(max_depth);
    return false;
  }
  json parsed;
  try {
    parsed = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                         /*ignore_comments=*/false);
  } catch (const json::exception&) {
    *error = "not JSON";
    return false;
  }
  if (too_deep) {
    *error = "nested deeper than " + std::to_string(max_depth);
    return false;
  }
  if (duplicate) {
    *error = "duplicate member name";
    return false;
  }
  *out = std::move(parsed);
  return true;
}

}  // namespace ordertrace::auth
