#include "api/etag.h"

#include <array>
#include <chrono>
#include <random>

namespace ordertrace::api {
namespace {

// FNV-1a, 64 bits: the tag needs to tell answers apart, not to resist an attacker (a client
// can only spoil its own cache).
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t Mix(uint64_t h, std::string_view bytes) {
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= kFnvPrime;
  }
  return h;
}

uint64_t MixInt(uint64_t h, uint64_t v) {
  std::array<char, 8> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(v >> (8 * i));
  return Mix(h, std::string_view(b.data(), b.size()));
}

uint64_t ProcessNonce() {
  static const uint64_t nonce = [] {
    std::random_device rd;
    const uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    return r ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  return nonce;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The opaque part of an entity tag (without W/ and the quotes); "" when malformed.
std::string_view Opaque(std::string_view tag) {
  tag = Trim(tag);
  if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
  if (tag.size() < 2 || tag.front() != '"' || tag.back() != '"') return {};
  return tag.substr(1, tag.size() - 2);
}

}  // namespace

std::string MakeETag(std::initializer_list<uint64_t> parts, std::string_view query) {
  uint64_t a = MixInt(kFnvOffset, ProcessNonce());
  for (const uint64_t p : parts) a = MixInt(a, p);
  a = MixInt(a, parts.size());
  const uint64_t b = Mix(MixInt(a, 0x9e3779b97f4a7c15ull), query);
  a = MixInt(Mix(a, query), query.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const uint64_t v : {a, b}) {
    for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xf]);
  }
  out.push_back('"');
  return out;
}

std::string MakeETag(std::initializer_list<uint64_t> parts, const net::HttpRequest& req) {
  std::string target;
  target.reserve(req.path.size() + 1 + req.query.size());
  target.append(req.path).append("?").append(req.query);
  return MakeETag(parts, target);
}

bool IfNoneMatchMatches(std::string_view header, std::string_view etag) {
  header = Trim(header);
  if (header.empty()) return false;
  if (header == "*") return true;
  const std::string_view want = Opaque(etag);
  if (want.empty()) return false;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    const std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    if (Opaque(item) == want) return true;
  }
  return false;
}

bool AnswerNotModified(const net::HttpRequest& req, net::HttpResponse& res, std::string_view etag) {
  res.headers.emplace_back("ETag", std::string(etag));
  res.headers.emplace_back("Cache-Control", "no-cache");
  if (!IfNoneMatchMatches(req.Header("if-none-match"), etag)) return false;
  res.status = 304;
  res.content_type.clear();
  res.body.clear();
  return true;
}

}  // namespace ordertrace::api
