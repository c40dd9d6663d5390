// Detectors of personal data and secrets in free text (span names, status messages, attribute
// values): e-mail addresses, phone numbers, payment card numbers, IBANs, JWTs and bearer
// tokens.  Each is a hand-written scanner, linear in the input and without backtracking:
// std::regex (libstdc++) is recursive and slow, and values reach 32 KiB.
//
// Findings carry the normalised form the pseudonym is computed over, so that one person's
// phone written two ways gives one pseudonym:
//   e-mail   lower-cased
//   phone    E.164 ("+79123456789"), local formats through the default region
//   IBAN     upper-case, without spaces
//   card, jwt, bearer: masked, never hashed (no normalised form)
//
// What is deliberately NOT a finding (false positives cost search and grouping):
//   - digits inside a word, a hex id or a UUID (a neighbour that is a letter or digit);
//   - card numbers outside the issuer prefixes of the major networks (so 19-digit nanosecond
//     timestamps, which start with 1, never look like cards) or failing the Luhn check;
//   - dates and times ("2026-12-06 16:33", "16:33:29") and dotted versions ("1.2.3").
//
// Thread-safety: pure functions over immutable tables.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::redact {

enum class Detector { kEmail, kPhone, kCard, kIban, kJwt, kBearer };
const char* DetectorName(Detector d);  // "email", "phone", "card", "iban", "jwt", "bearer"

struct Finding {
  Detector detector;
  size_t begin = 0;  // byte offsets in the scanned text, [begin, end)
  size_t end = 0;
  std::string normalised;  // see above; "" for masked detectors
};

// How national phone numbers are read: the country calling code, the trunk prefix dialled
// before a national number, and the national number's length.
struct PhoneRegion {
  std::string code;        // "RU"
  std::string dial;        // "7"
  std::string trunk;       // "8"
  size_t national_length;  // 10
};

// The regions known by their ISO 3166 code ("RU", "US", "GB", "DE", ...); NotFound names the
// known ones.
Result<PhoneRegion> FindPhoneRegion(std::string_view code);

struct ScanOptions {
  PhoneRegion region{"RU", "7", "8", 10};
};

// Every finding in `text`, in order, not overlapping (an earlier-starting finding wins; at the
// same start the longer one).
std::vector<Finding> Scan(std::string_view text, const ScanOptions& options);

// The checks, exposed for tests.
bool LuhnValid(std::string_view digits);
bool IbanValid(std::string_view iban);  // upper-case, no spaces; length per country and mod-97

}  // namespace ordertrace::redact
