// base64url without padding (RFC 4648 §5, as JWS uses it, RFC 7515 §2): tokens, cookie values,
// pseudonyms, JWKs.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace ordertrace {

// Strict: false on any character outside [A-Za-z0-9_-], padding, a length of 1 mod 4, or
// non-zero unused bits (so that one value has one encoding).
bool Base64UrlDecode(std::string_view in, std::string* out);
std::string Base64UrlEncode(std::string_view in);
// The same, appended to *out (no allocation when *out has room).
void Base64UrlAppend(std::string_view in, std::string* out);

}  // namespace ordertrace
