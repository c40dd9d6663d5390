#include "redact/detect.h"

#include <algorithm>
#include <array>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ordertrace::redact {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Character classes for Scan's first pass and the scanners' skipping.
constexpr uint8_t kClassDigit = 1, kClassAt = 2, kClassB = 4, kClassJ = 8, kClassRunStart = 16;
struct CharClass {
  uint8_t of[256] = {};
  constexpr CharClass() {
    for (int c = '0'; c <= '9'; ++c) of[c] = kClassDigit;
    of[static_cast<unsigned char>('@')] = kClassAt;
    of[static_cast<unsigned char>('b')] = kClassB;
    of[static_cast<unsigned char>('B')] = kClassB;
    of[static_cast<unsigned char>('J')] = kClassJ;
    of[static_cast<unsigned char>('+')] = kClassRunStart;  // where a phone number may start
    of[static_cast<unsigned char>('(')] = kClassRunStart;
  }
};
constexpr CharClass kCharClass;

#if defined(__SSE2__)
// The bytes of `v` that are ASCII digits, as 0xFF (v - '0' is 0..9 unsigned).
__m128i DigitBytes(__m128i v) {
  const __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
  return _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d);
}
#endif

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }
char Upper(char c) { return IsLower(c) ? static_cast<char>(c - 'a' + 'A') : c; }
bool IsBase64Url(char c) { return IsAlnum(c) || c == '-' || c == '_'; }
// RFC 6750's b64token characters.
bool IsToken68(char c) {
  return IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}
bool IsEmailLocal(char c) {
  return IsAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool IsDomain(char c) { return IsAlnum(c) || c == '-' || c == '.'; }

// ---- e-mail ----

void ScanEmails(std::string_view t, std::vector<Finding>* out) {
  const size_t n = t.size();
  for (size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
    size_t b = at;
    while (b > 0 && IsEmailLocal(t[b - 1])) --b;
    while (b < at && t[b] == '.') ++b;  // a local part does not start with '.'
    if (b == at || at - b > 64 || t[at - 1] == '.') continue;
    size_t e = at + 1;
    while (e < n && IsDomain(t[e])) ++e;
    while (e > at + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;  // "write to a@b.com."
    const std::string_view domain = t.substr(at + 1, e - at - 1);
    if (domain.size() < 4 || domain.size() > 253) continue;
    // Labels: non-empty, no '-' at either end; the last (the TLD) letters only, 2 or more.
    bool ok = domain.find('.') != std::string_view::npos;
    size_t label_start = 0;
    for (size_t i = 0; ok && i <= domain.size(); ++i) {
      if (i < domain.size() && domain[i] != '.') continue;
      const std::string_view label = domain.substr(label_start, i - label_start);
      ok = !label.empty() && label.front() != '-' && label.back() != '-';
      if (ok && i == domain.size()) {
        ok = label.size() >= 2 && std::all_of(label.begin(), label.end(), IsAlpha);
      }
      label_start = i + 1;
    }
    if (!ok) continue;
    Finding f{Detector::kEmail, b, e, ""};
    f.normalised.reserve(e - b);
    for (size_t i = b; i < e; ++i) f.normalised += Lower(t[i]);
    out->push_back(std::move(f));
  }
}

// ---- JWT and bearer tokens ----

void ScanJwts(std::string_view t, std::vector<Finding>* out) {
  const size_t n = t.size();
  size_t i = t.find("eyJ");
  while (i != std::string_view::npos) {
    if (i > 0 && IsBase64Url(t[i - 1])) {  // inside a longer run: not a token's start
      i = t.find("eyJ", i + 1);
      continue;
    }
    size_t e = i;
    while (e < n && IsBase64Url(t[e])) ++e;
    const size_t header_end = e;
    bool ok = e - i >= 10 && e < n && t[e] == '.';
    if (ok) {
      size_t p = e + 1;
      while (p < n && IsBase64Url(t[p])) ++p;
      ok = p - e - 1 >= 2 && p < n && t[p] == '.';
      if (ok) {
        e = p + 1;
        while (e < n && IsBase64Url(t[e])) ++e;  // the signature may be empty (alg none)
      }
    }
    if (ok) {
      out->push_back(Finding{Detector::kJwt, i, e, ""});
      i = t.find("eyJ", e);
    } else {
      i = t.find("eyJ", header_end);
    }
  }
}

void ScanBearer(std::string_view t, std::vector<Finding>* out) {
  const size_t n = t.size();
  for (size_t i = 0; i + 6 < n; ++i) {
    if (Lower(t[i]) != 'b' || (i > 0 && IsAlnum(t[i - 1]))) continue;
    static constexpr std::string_view kWord = "bearer";
    size_t k = 0;
    while (k < kWord.size() && Lower(t[i + k]) == kWord[k]) ++k;
    if (k != kWord.size()) continue;
    size_t p = i + k;
    if (p >= n || t[p] != ' ') continue;
    while (p < n && t[p] == ' ') ++p;
    size_t e = p;
    while (e < n && IsToken68(t[e])) ++e;
    while (e < n && t[e] == '=') ++e;
    if (e - p >= 8) out->push_back(Finding{Detector::kBearer, p, e, ""});
    i = e > i ? e - 1 : i;
  }
}

// ---- IBAN ----

struct IbanLength {
  char country[3];
  uint8_t length;
};
// The IBAN registry's lengths per country (ISO 13616).
constexpr IbanLength kIbanLengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

size_t IbanLengthOf(char a, char b) {
  for (const IbanLength& l : kIbanLengths) {
    if (l.country[0] == a && l.country[1] == b) return l.length;
  }
  return 0;
}

// Whether `t` has two letters followed by two digits anywhere (the start of every IBAN): most
// values with digits do not, and the scan below costs a few instructions a byte.  SSE2, 16 bytes
// at a time, each load overlapping the last by 3 so no four-byte window is missed.
bool MayHoldIban(std::string_view t) {
  const size_t n = t.size();
#if defined(__SSE2__)
  if (n >= 16) {
    const __m128i case_bit = _mm_set1_epi8(0x20), a = _mm_set1_epi8('a'), z = _mm_set1_epi8(25);
    for (size_t o = 0;; o += 13) {
      if (o + 16 > n) o = n - 16;
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + o));
      const __m128i l = _mm_sub_epi8(_mm_or_si128(v, case_bit), a);
      const unsigned digit = static_cast<unsigned>(_mm_movemask_epi8(DigitBytes(v)));
      const unsigned letter =
          static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(l, z), l)));
      if (letter & (letter >> 1) & (digit >> 2) & (digit >> 3) & 0x1fffu) return true;
      if (o + 16 >= n) return false;
    }
  }
#endif
  for (size_t i = 0; i + 4 <= n; ++i) {
    if (IsAlpha(t[i]) && IsAlpha(t[i + 1]) && IsDigit(t[i + 2]) && IsDigit(t[i + 3])) return true;
  }
  return false;
}

void ScanIbans(std::string_view t, std::vector<Finding>* out) {
  const size_t n = t.size();
  for (size_t i = 0; i + 4 <= n; ++i) {
    // The check digits first: most positions fail there, with one test.
    if (!IsDigit(t[i + 3])) {
      ++i;  // the start after this one needs t[i + 3] as its first check digit: skipped too
      continue;
    }
    if (!IsDigit(t[i + 2]) || !IsAlpha(t[i]) || !IsAlpha(t[i + 1])) continue;
    if (i > 0 && IsAlnum(t[i - 1])) continue;
    const size_t want = IbanLengthOf(Upper(t[i]), Upper(t[i + 1]));
    if (want == 0) continue;
    std::string iban;
    size_t e = i;
    while (e < n && iban.size() < want) {
      if (IsAlnum(t[e])) {
        iban += Upper(t[e]);
        ++e;
      } else if (t[e] == ' ' && e + 1 < n && IsAlnum(t[e + 1]) && !iban.empty()) {
        ++e;  // groups of four, printed form
      } else {
        break;
      }
    }
    if (iban.size() != want || (e < n && IsAlnum(t[e])) || !IbanValid(iban)) continue;
    out->push_back(Finding{Detector::kIban, i, e, std::move(iban)});
    i = e - 1;
  }
}

// ---- digit runs: cards and phones ----

bool IsRunSeparator(char c) { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'; }

struct Group {
  size_t begin, end;  // digits only
};

// A run of digit groups joined by short separators, e.g. "+7 (912) 345-67-89".
struct Run {
  size_t begin = 0, end = 0;
  bool plus = false;
  std::vector<Group> groups;
  std::string separators;  // every separator character seen between groups (and a leading '(')
};

// Reads the run starting at `i` (a digit, '+' or '(') into *run; returns false when there is
// none.  Separators are 1-3 characters of " -.()" followed by a digit.
bool ReadRun(std::string_view t, size_t i, Run* run) {
  const size_t n = t.size();
  run->begin = i;
  run->plus = false;
  run->groups.clear();
  run->separators.clear();
  size_t p = i;
  if (t[p] == '+') {
    run->plus = true;
    ++p;
  }
  if (p < n && t[p] == '(') {
    run->separators += '(';
    ++p;
  }
  if (p >= n || !IsDigit(t[p])) return false;
  while (true) {
    const size_t g = p;
    while (p < n && IsDigit(t[p])) ++p;
    run->groups.push_back(Group{g, p});
    size_t s = p;
    while (s < n && s - p < 3 && IsRunSeparator(t[s])) ++s;
    if (s == p || s >= n || !IsDigit(t[s])) break;
    run->separators.append(t.substr(p, s - p));
    p = s;
  }
  // A ')' closing the last group is part of the run ("... (912)").
  run->end = p;
  return true;
}

bool PrefixIn(std::string_view d, int lo, int hi, size_t digits) {
  if (d.size() < digits) return false;
  int v = 0;
  for (size_t i = 0; i < digits; ++i) v = v * 10 + (d[i] - '0');
  return v >= lo && v <= hi;
}

// Issuer prefixes and lengths of the major card networks (Visa, Mastercard, Amex, Discover,
// JCB, Diners, UnionPay, Maestro, Mir).
bool CardIssuerValid(std::string_view d) {
  const size_t len = d.size();
  if (d[0] == '4') return len == 13 || len == 16 || len == 19;
  if (PrefixIn(d, 51, 55, 2) || PrefixIn(d, 2221, 2720, 4)) return len == 16;
  if (PrefixIn(d, 34, 34, 2) || PrefixIn(d, 37, 37, 2)) return len == 15;
  if (PrefixIn(d, 2200, 2204, 4)) return len >= 16;
  if (PrefixIn(d, 300, 305, 3) || PrefixIn(d, 36, 36, 2) || PrefixIn(d, 38, 39, 2)) {
    return len >= 14;
  }
  if (PrefixIn(d, 3528, 3589, 4)) return len >= 16;
  if (d[0] == '5' || d[0] == '6') return len >= 13;  // Discover, UnionPay, Maestro
  return false;
}

std::string DigitsOf(std::string_view t, const std::vector<Group>& groups, size_t from, size_t to) {
  std::string d;
  for (size_t g = from; g < to; ++g)
    d.append(t.substr(groups[g].begin, groups[g].end - groups[g].begin));
  return d;
}

// Cards: windows of whole groups with 13-19 digits, joined only by single spaces or dashes.
void CardsInRun(std::string_view t, const Run& run, std::vector<Finding>* out) {
  const size_t groups = run.groups.size();
  size_t s = 0;
  while (s < groups) {
    size_t best_end = 0;
    size_t digits = 0;
    for (size_t e = s; e < groups; ++e) {
      if (e > s) {
        const std::string_view sep =
            t.substr(run.groups[e - 1].end, run.groups[e].begin - run.groups[e - 1].end);
        if (sep != " " && sep != "-") break;
      }
      digits += run.groups[e].end - run.groups[e].begin;
      if (digits > 19) break;
      if (digits >= 13) {
        const std::string d = DigitsOf(t, run.groups, s, e + 1);
        if (CardIssuerValid(d) && LuhnValid(d)) best_end = e + 1;
      }
    }
    if (best_end == 0) {
      ++s;
      continue;
    }
    out->push_back(Finding{Detector::kCard, run.groups[s].begin, run.groups[best_end - 1].end, ""});
    s = best_end;
  }
}

bool LooksLikeDateOrAddress(std::string_view t, const Run& run) {
  const auto len = [&](size_t g) { return run.groups[g].end - run.groups[g].begin; };
  const auto sep = [&](size_t g) {  // the separator after group g
    return t.substr(run.groups[g].end, run.groups[g + 1].begin - run.groups[g].end);
  };
  const size_t groups = run.groups.size();
  // 2026-12-06, 2026.12.06, 06.12.2026, 06-12-2026 (with anything after them).
  if (groups >= 3 && len(0) == 4 && len(1) == 2 && len(2) == 2 && sep(0) == sep(1) &&
      (sep(0) == "-" || sep(0) == ".")) {
    return true;
  }
  if (groups >= 3 && len(0) == 2 && len(1) == 2 && len(2) == 4 && sep(0) == sep(1) &&
      (sep(0) == "-" || sep(0) == ".")) {
    return true;
  }
  // An IPv4 address or a dotted version.
  bool dotted = groups >= 2;
  for (size_t g = 0; dotted && g + 1 < groups; ++g) dotted = sep(g) == "." && len(g) <= 3;
  return dotted && len(groups - 1) <= 3;
}

void PhoneInRun(std::string_view t, const Run& run, const PhoneRegion& region,
                std::vector<Finding>* out) {
  if (LooksLikeDateOrAddress(t, run)) return;
  const std::string d = DigitsOf(t, run.groups, 0, run.groups.size());
  const bool formatted = !run.separators.empty();
  std::string e164;
  if (run.plus) {
    if (d.size() >= 8 && d.size() <= 15 && d[0] != '0') e164 = "+" + d;
  } else if (!region.trunk.empty() && d.size() == region.trunk.size() + region.national_length &&
             d.compare(0, region.trunk.size(), region.trunk) == 0) {
    e164 = "+" + region.dial + d.substr(region.trunk.size());
  } else if (formatted && d.size() == region.national_length && d[0] != '0') {
    e164 = "+" + region.dial + d;
  } else if (formatted && d.size() == region.dial.size() + region.national_length &&
             d.compare(0, region.dial.size(), region.dial) == 0) {
    e164 = "+" + d;
  }
  if (e164.empty()) return;
  // A leading '(' belongs to the number when the number closes it ("(912) 345-67-89"), not when
  // it opens a remark ("(8 912 345 67 89)").
  size_t begin = run.begin;
  if (t[begin] == '(' && run.separators.find(')') == std::string::npos) ++begin;
  out->push_back(Finding{Detector::kPhone, begin, run.end, std::move(e164)});
}

// The first position at or after `i` where a run may start (a digit, '+' or '('), or t.size().
size_t NextRunStart(std::string_view t, size_t i) {
  const size_t n = t.size();
#if defined(__SSE2__)
  const __m128i plus = _mm_set1_epi8('+'), paren = _mm_set1_epi8('(');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data() + i));
    const __m128i hit = _mm_or_si128(
        DigitBytes(v), _mm_or_si128(_mm_cmpeq_epi8(v, plus), _mm_cmpeq_epi8(v, paren)));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i < n &&
         (kCharClass.of[static_cast<unsigned char>(t[i])] & (kClassDigit | kClassRunStart)) == 0) {
    ++i;
  }
  return i;
}

void ScanDigitRuns(std::string_view t, const ScanOptions& options, std::vector<Finding>* out) {
  const size_t n = t.size();
  Run run;
  size_t i = 0;
  while (i < n) {
    i = NextRunStart(t, i);
    if (i >= n) break;
    // Digits joined to a word ("A12", "id-123", "0x1f", a hex id or UUID) are not numbers of
    // their own.
    const bool joined =
        i > 0 && (IsAlnum(t[i - 1]) || t[i - 1] == '_' || t[i - 1] == '.' ||
                  ((t[i - 1] == '-' || t[i - 1] == '/') && i > 1 && IsAlnum(t[i - 2])));
    if (joined || !ReadRun(t, i, &run)) {
      // Skip the rest of this digit sequence so that each digit is looked at once.
      ++i;
      while (i < n && IsDigit(t[i])) ++i;
      continue;
    }
    const size_t e = run.end;
    const bool joined_after =
        e < n && (IsAlnum(t[e]) || t[e] == '_' || t[e] == ':' ||
                  ((t[e] == '-' || t[e] == '.' || t[e] == '/') && e + 1 < n && IsAlnum(t[e + 1])));
    if (!joined_after) {
      CardsInRun(t, run, out);
      PhoneInRun(t, run, options.region, out);
    }
    i = e > i ? e : i + 1;
  }
}

struct RegionEntry {
  const char* code;
  const char* dial;
  const char* trunk;
  size_t national_length;
};
// National numbers of a fixed length only; regions with variable lengths (DE, AT, ...) read
// E.164 numbers but not local ones.
constexpr RegionEntry kRegions[] = {
    {"RU", "7", "8", 10},  {"KZ", "7", "8", 10},  {"BY", "375", "80", 9}, {"UA", "380", "0", 9},
    {"US", "1", "1", 10},  {"CA", "1", "1", 10},  {"GB", "44", "0", 10},  {"FR", "33", "0", 9},
    {"ES", "34", "", 9},   {"IT", "39", "", 10},  {"NL", "31", "0", 9},   {"PL", "48", "", 9},
    {"TR", "90", "0", 10}, {"IN", "91", "0", 10}, {"CN", "86", "0", 11},  {"DE", "49", "0", 11},
};

// The fewest digits a phone number (E.164: 8; a national number of the shortest region, BY: 9)
// or a card (13) has; the shortest IBAN (Norway's).
constexpr size_t kMinRunDigits = 8;
constexpr size_t kMinIbanLength = 15;

}  // namespace

const char* DetectorName(Detector d) {
  switch (d) {
    case Detector::kEmail:
      return "email";
    case Detector::kPhone:
      return "phone";
    case Detector::kCard:
      return "card";
    case Detector::kIban:
      return "iban";
    case Detector::kJwt:
      return "jwt";
    case Detector::kBearer:
      return "bearer";
  }
  return "unknown";
}

Result<PhoneRegion> FindPhoneRegion(std::string_view code) {
  std::string known;
  for (const RegionEntry& r : kRegions) {
    if (code.size() == 2 && Upper(code[0]) == r.code[0] && Upper(code[1]) == r.code[1]) {
      return PhoneRegion{r.code, r.dial, r.trunk, r.national_length};
    }
    known += known.empty() ? "" : ", ";
    known += r.code;
  }
  return Status::NotFound("unknown phone region '" + std::string(code.substr(0, 8)) +
                          "' (known: " + known + ")");
}

bool LuhnValid(std::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!IsDigit(digits[i])) return false;
    int v = digits[i] - '0';
    if (twice) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool IbanValid(std::string_view iban) {
  if (iban.size() < 5 || !IsUpper(iban[0]) || !IsUpper(iban[1])) return false;
  if (IbanLengthOf(iban[0], iban[1]) != iban.size()) return false;
  if (!IsDigit(iban[2]) || !IsDigit(iban[3])) return false;
  // Move the first four characters to the end, letters to 10..35, the number mod 97 must be 1.
  unsigned remainder = 0;
  for (size_t k = 0; k < iban.size(); ++k) {
    const char c = iban[(k + 4) % iban.size()];
    if (IsDigit(c)) {
      remainder = (remainder * 10 + static_cast<unsigned>(c - '0')) % 97;
    } else if (IsUpper(c)) {
      remainder = (remainder * 100 + static_cast<unsigned>(c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return remainder == 1;
}

std::vector<Finding> Scan(std::string_view text, const ScanOptions& options) {
  std::vector<Finding> all;
  // One pass decides which scanners can find anything: an e-mail holds an '@', a phone or a card
  // at least kMinRunDigits digits, an IBAN two digits and kMinIbanLength characters, a JWT "eyJ"
  // and a bearer token the word "bearer" (a 'b', any case).  Most values pass none of these, and
  // the pass itself is a table lookup a byte.
  uint8_t flags = 0;
  size_t digits = 0;
  size_t i = 0;
#if defined(__SSE2__)
  // 16 bytes at a time (SSE2 is in every x86-64): the pass is most of the cost of a clean value.
  const __m128i at = _mm_set1_epi8('@'), case_bit = _mm_set1_epi8(0x20), b = _mm_set1_epi8('b'),
                j = _mm_set1_epi8('J');
  const __m128i one = _mm_set1_epi8(1), none = _mm_setzero_si128();
  __m128i digit_sums = _mm_setzero_si128();  // two 64-bit lanes
  int any_at = 0, any_b = 0, any_j = 0;
  for (; i + 16 <= text.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data() + i));
    digit_sums = _mm_add_epi64(digit_sums, _mm_sad_epu8(_mm_and_si128(DigitBytes(v), one), none));
    any_at |= _mm_movemask_epi8(_mm_cmpeq_epi8(v, at));
    any_b |= _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_or_si128(v, case_bit), b));  // 'b' or 'B'
    any_j |= _mm_movemask_epi8(_mm_cmpeq_epi8(v, j));
  }
  digits += static_cast<size_t>(_mm_cvtsi128_si64(digit_sums)) +
            static_cast<size_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(digit_sums, digit_sums)));
  if (any_at) flags |= kClassAt;
  if (any_b) flags |= kClassB;
  if (any_j) flags |= kClassJ;
#endif
  for (; i < text.size(); ++i) {
    const uint8_t k = kCharClass.of[static_cast<unsigned char>(text[i])];
    flags |= k;
    digits += k & kClassDigit;
  }
  if (flags & kClassAt) ScanEmails(text, &all);
  if ((flags & kClassJ) && text.find("eyJ") != std::string_view::npos) ScanJwts(text, &all);
  if (flags & kClassB) ScanBearer(text, &all);
  if (digits >= 2 && text.size() >= kMinIbanLength && MayHoldIban(text)) ScanIbans(text, &all);
  if (digits >= kMinRunDigits) ScanDigitRuns(text, options, &all);
  if (all.size() < 2) return all;
  std::sort(all.begin(), all.end(), [](const Finding& a, const Finding& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end > b.end;
    return a.detector < b.detector;  // the same text: the more specific detector names it
  });
  std::vector<Finding> kept;
  kept.reserve(all.size());
  for (Finding& f : all) {
    if (!kept.empty() && f.begin < kept.back().end) continue;
    kept.push_back(std::move(f));
  }
  return kept;
}

}  // namespace ordertrace::redact
