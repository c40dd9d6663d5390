// JSON parsing for untrusted security documents (JWT headers and claims, JWKS, discovery):
// nlohmann's parser with a callback that refuses duplicate member names (nlohmann would keep
// the last one silently, so `{"aud":"x","aud":"api"}` could mean different things to us and to
// another reader: RFC 8725 §3.12 / RFC 7515 §5.2) and nesting deeper than a small bound.
//
// Thread-safety: a free function without shared state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ordertrace::auth {

// Parses `text` into `out`; false with a short reason in `error` ("duplicate member name",
// "nested deeper than 16", "not JSON").  Never throws.  The reason never quotes the input.
bool ParseStrictJson(std::string_view text, nlohmann::json* out, std::string* error,
                     int max_depth = 16);

}  // namespace ordertrace::auth
