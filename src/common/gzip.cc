#include "common/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace ordertrace {

Result<std::string> GzipCompress(std::string_view in, int level) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::Internal("zlib: deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::Internal("zlib: deflate failed");
  return out;
}

Status Inflate(std::string_view in, InflateFormat format, size_t limit, const char* what,
               std::string* out) {
  const int window_bits = format == InflateFormat::kGzip   ? 15 + 16
                          : format == InflateFormat::kZlib ? 15
                                                           : -15;
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return Status::Internal("inflateInit2 failed");
  struct Guard {
    z_stream* zs;
    ~Guard() { inflateEnd(zs); }
  } guard{&zs};

  out->clear();
  const size_t cap = limit < SIZE_MAX ? limit + 1 : limit;
  size_t produced = 0;
  size_t consumed = 0;
  bool stream_end = false;
  while (true) {
    if (zs.avail_in == 0 && consumed < in.size()) {
      const size_t n = std::min<size_t>(in.size() - consumed, UINT_MAX);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
      zs.avail_in = static_cast<uInt>(n);
      consumed += n;
    }
    if (produced == out->size()) {
      if (out->size() >= cap) {
        return Status::TooLarge(std::string("decoded ") + what + " body exceeds the limit of " +
                                std::to_string(limit) + " bytes");
      }
      out->resize(std::min(cap, std::max<size_t>(out->size() * 2, 64 * 1024)));
    }
    const size_t room = std::min<size_t>(out->size() - produced, UINT_MAX);
    zs.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
    zs.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (rc == Z_STREAM_END) {
      stream_end = true;
      const bool more_input = zs.avail_in > 0 || consumed < in.size();
      if (!more_input) break;
      // gzip allows several members back to back; zlib and raw deflate do not.
      if (window_bits <= 15) {
        return Status::InvalidArgument(std::string("invalid ") + what +
                                       " body: data after the end of the stream");
      }
      inflateReset(&zs);
      stream_end = false;
      continue;
    }
    if (rc == Z_BUF_ERROR) {
      // No progress possible: either the output buffer is full (grown above) or the input
      // ended before the stream did.
      if (zs.avail_out == 0) continue;
      break;
    }
    if (rc != Z_OK) {
      if (rc == Z_MEM_ERROR) return Status::Internal("out of memory while inflating");
      return Status::InvalidArgument(std::string("invalid ") + what +
                                     " body: " + (zs.msg ? zs.msg : "corrupt data"));
    }
  }
  if (!stream_end) {
    return Status::InvalidArgument(std::string("invalid ") + what + " body: truncated stream");
  }
  out->resize(produced);
  return Status::Ok();
}

}  // namespace ordertrace
