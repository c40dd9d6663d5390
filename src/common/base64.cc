#include "common/base64.h"

#include <cstdint>

namespace ordertrace {
namespace {

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

bool Base64UrlDecode(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 == 1) return false;
  out->reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = DecodeChar(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Unused low bits of the last character must be zero: one value, one encoding.
  return (acc & ((1u << bits) - 1)) == 0;
}

void Base64UrlAppend(std::string_view in, std::string* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  out->reserve(out->size() + (in.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out->push_back(kAlphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out->push_back(kAlphabet[(acc << (6 - bits)) & 0x3F]);
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  Base64UrlAppend(in, &out);
  return out;
}

}  // namespace ordertrace
