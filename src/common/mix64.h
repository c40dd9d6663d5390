// Mix64: splitmix64's finaliser, a bijective 64-bit mixer (each input bit flips about half of
// the output bits).  Used to spread hash values and ids over tables and filters.
#pragma once

#include <cstdint>

namespace ordertrace {

constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace ordertrace
