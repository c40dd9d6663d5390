// URL pieces the API needs: percent-decoding and query-string parameters.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ordertrace::url {

// Decodes %XX escapes (and '+' as a space when `plus_is_space`, as in query strings).  Returns
// false on a malformed escape ("%4", "%zz").
bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space = false);

// Encodes everything but unreserved characters (RFC 3986: A-Z a-z 0-9 - . _ ~).
std::string PercentEncode(std::string_view in);

// Splits "a=1&b=x%20y" into decoded pairs, in order.  A malformed escape is an error naming
// the parameter.
struct QueryParams {
  std::vector<std::pair<std::string, std::string>> params;
  // The first value of `name`, nullopt when absent.
  std::optional<std::string> Get(std::string_view name) const;
};
bool ParseQuery(std::string_view query, QueryParams* out, std::string* error);

}  // namespace ordertrace::url
