// ShortHash: a fast, non-cryptographic hash of short byte strings (attribute keys, attribute
// bytes) for the redaction's in-memory tables: the size and three 8-byte words (head, middle,
// tail).  Strings that differ elsewhere only share a slot; every user compares the bytes after
// it, so a collision (a sender can make them) costs a comparison, never a wrong answer.
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace ordertrace::redact {

inline uint64_t ShortHash(std::string_view bytes, uint64_t seed = 0) {
  const auto mix = [](uint64_t a, uint64_t b) {
    const __uint128_t m = static_cast<__uint128_t>(a) * b;
    return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
  };
  const char* p = bytes.data();
  const size_t n = bytes.size();
  uint64_t head = 0, middle = 0, tail = 0;
  if (n >= 8) {
    std::memcpy(&head, p, 8);
    // The middle of long strings matters too ("http.request.header.x" against
    // "http.response.header.x" differ only there).
    std::memcpy(&middle, p + n / 2 - 4, 8);
    std::memcpy(&tail, p + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; ++i) {
      head |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
    }
  }
  return mix(head ^ (seed * 0x9e3779b97f4a7c15ull + 0x9e3779b97f4a7c15ull),
             tail ^ (n * 0xc2b2ae3d27d4eb4full)) ^
         mix(middle ^ 0x165667b19e3779f9ull, n + 0x27d4eb2f165667c5ull);
}

}  // namespace ordertrace::redact
