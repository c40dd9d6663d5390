// Protocol Buffers wire-format primitives (varints, tags, fixed-width values) shared by the
// OTLP decoder and the SpanBatch views.  Internal to src/otlp.
//
// All readers take [p, end) and advance p; they return false on truncated or over-long input
// and never read past end.
#pragma once

#include <cstdint>
#include <cstring>

namespace ordertrace::otlp::wire {

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint32_t Tag(uint32_t field, WireType type) { return (field << 3) | type; }

inline bool ReadVarintSlow(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (p >= end) return false;
    uint8_t b = *p++;
    result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (b < 0x80) {
      *out = result;
      return true;
    }
  }
  return false;  // more than 10 bytes
}

inline bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  if (p < end && *p < 0x80) {
    *out = *p++;
    return true;
  }
  return ReadVarintSlow(p, end, out);
}

// A tag is a varint of at most 5 bytes; bits beyond 32 are dropped, as libprotobuf does.
inline bool ReadTag(const uint8_t*& p, const uint8_t* end, uint32_t* tag) {
  if (p < end && *p < 0x80) {
    *tag = *p++;
    return true;
  }
  if (end - p >= 2 && p[1] < 0x80) {
    *tag = (p[0] & 0x7fu) | (static_cast<uint32_t>(p[1]) << 7);
    p += 2;
    return true;
  }
  uint32_t result = 0;
  for (int i = 0; i < 5; ++i) {
    if (p + i >= end) return false;
    const uint8_t b = p[i];
    result |= static_cast<uint32_t>(b & 0x7f) << (7 * i);  // i == 4: high bits drop off
    if (b < 0x80) {
      *tag = result;
      p += i + 1;
      return true;
    }
  }
  return false;
}

inline bool ReadFixed64(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  if (end - p < 8) return false;
  std::memcpy(out, p, 8);  // wire is little-endian, as is every target we build for
  p += 8;
  return true;
}

inline bool ReadFixed32(const uint8_t*& p, const uint8_t* end, uint32_t* out) {
  if (end - p < 4) return false;
  std::memcpy(out, p, 4);
  p += 4;
  return true;
}

// Reads a length prefix and returns the payload as [*data, *data + *len).
inline bool ReadLengthDelimited(const uint8_t*& p, const uint8_t* end, const uint8_t** data,
                                uint32_t* len) {
  uint64_t n;
  if (!ReadVarint(p, end, &n)) return false;
  if (n > static_cast<uint64_t>(end - p) || n > 0x7fffffffULL) return false;
  *data = p;
  *len = static_cast<uint32_t>(n);
  p += n;
  return true;
}

// protobuf's own limit on nested groups; deeper input is refused as malformed.
inline constexpr int kMaxGroupDepth = 100;

// Skips one field of any wire type, groups with their nested content.  Returns nullptr on
// success, else what was wrong (p is then somewhere inside the field).
inline const char* SkipField(uint32_t tag, const uint8_t*& p, const uint8_t* end, int depth = 0) {
  if ((tag >> 3) == 0) return "field number 0";
  switch (tag & 7) {
    case kVarint: {
      uint64_t v = 0;
      return ReadVarint(p, end, &v) ? nullptr : "truncated varint";
    }
    case kFixed64:
      if (end - p < 8) return "truncated fixed64";
      p += 8;
      return nullptr;
    case kLengthDelimited: {
      const uint8_t* d = nullptr;
      uint32_t n = 0;
      return ReadLengthDelimited(p, end, &d, &n) ? nullptr : "length past end of message";
    }
    case kFixed32:
      if (end - p < 4) return "truncated fixed32";
      p += 4;
      return nullptr;
    case kStartGroup: {
      if (depth >= kMaxGroupDepth) return "groups nested too deeply";
      const uint32_t field = tag >> 3;
      while (p < end) {
        uint32_t t;
        if (!ReadTag(p, end, &t)) return "truncated or invalid tag";
        if ((t & 7) == kEndGroup) return (t >> 3) == field ? nullptr : "mismatched end-group";
        if (const char* err = SkipField(t, p, end, depth + 1)) return err;
      }
      return "unterminated group";
    }
    default:
      return (tag & 7) == kEndGroup ? "unexpected end-group" : "invalid wire type";
  }
}

}  // namespace ordertrace::otlp::wire
