#include "net/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace ordertrace::net {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsMapped(const uint8_t* b16) {
  for (int i = 0; i < 12; ++i) {
    if (b16[i] != kMappedPrefix[i]) return false;
  }
  return true;
}

// Parses without unmapping; `v4` says which family the text was written in.
bool ParseRaw(std::string_view text, bool* v4, std::array<uint8_t, 16>* bytes) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return false;
  const std::string s(text);
  bytes->fill(0);
  if (s.find(':') == std::string::npos) {
    *v4 = true;
    return inet_pton(AF_INET, s.c_str(), bytes->data()) == 1;
  }
  *v4 = false;
  return inet_pton(AF_INET6, s.c_str(), bytes->data()) == 1;
}

// True when the bits of `bytes` after `prefix` are zero.
bool HostBitsClear(const std::array<uint8_t, 16>& bytes, int prefix, int width) {
  for (int bit = prefix; bit < width; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

void ClearHostBits(std::array<uint8_t, 16>* bytes, int prefix, int width) {
  for (int bit = prefix; bit < width; ++bit) (*bytes)[bit / 8] &= ~(0x80 >> (bit % 8));
}

}  // namespace

Result<IpAddress> IpAddress::Parse(std::string_view text) {
  IpAddress ip;
  if (!ParseRaw(Trim(text), &ip.v4, &ip.bytes)) {
    return Status::InvalidArgument("expected an IPv4 or IPv6 address, got " + Quote(text));
  }
  if (!ip.v4 && IsMapped(ip.bytes.data())) {
    ip.v4 = true;
    std::array<uint8_t, 16> v4{};
    for (int i = 0; i < 4; ++i) v4[i] = ip.bytes[12 + i];
    ip.bytes = v4;
  }
  return ip;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

Result<Cidr> Cidr::Parse(std::string_view text) {
  const std::string_view t = Trim(text);
  const size_t slash = t.find('/');
  const std::string_view addr = t.substr(0, slash);
  Cidr c;
  bool written_v4 = true;
  if (!ParseRaw(addr, &written_v4, &c.network.bytes)) {
    return Status::InvalidArgument(
        "expected an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/8 (or one address), got " +
        Quote(text));
  }
  c.network.v4 = written_v4;
  const int width = written_v4 ? 32 : 128;
  int prefix = width;
  if (slash != std::string_view::npos) {
    const std::string_view p = t.substr(slash + 1);
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prefix < 0 ||
        prefix > width) {
      return Status::InvalidArgument("the prefix length of " + Quote(text) + " must be 0 to " +
                                     std::to_string(width) + (written_v4 ? " (IPv4)" : " (IPv6)"));
    }
  }
  if (!HostBitsClear(c.network.bytes, prefix, width)) {
    Cidr fixed = c;
    ClearHostBits(&fixed.network.bytes, prefix, width);
    fixed.prefix = prefix;
    return Status::InvalidArgument(Quote(text) + " has address bits set after the /" +
                                   std::to_string(prefix) + " prefix: did you mean " +
                                   fixed.network.ToString() + "/" + std::to_string(prefix) + "?");
  }
  c.prefix = prefix;
  // An IPv4-mapped network (::ffff:0:0/96 or longer) is the IPv4 network it maps.
  if (!written_v4 && prefix >= 96 && IsMapped(c.network.bytes.data())) {
    std::array<uint8_t, 16> v4{};
    for (int i = 0; i < 4; ++i) v4[i] = c.network.bytes[12 + i];
    c.network.bytes = v4;
    c.network.v4 = true;
    c.prefix = prefix - 96;
  }
  return c;
}

bool Cidr::Contains(const IpAddress& ip) const {
  if (ip.v4 != network.v4) return false;
  const int full = prefix / 8;
  for (int i = 0; i < full; ++i) {
    if (ip.bytes[i] != network.bytes[i]) return false;
  }
  if (const int rest = prefix % 8; rest != 0) {
    const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    if ((ip.bytes[full] & mask) != (network.bytes[full] & mask)) return false;
  }
  return true;
}

std::string Cidr::ToString() const { return network.ToString() + "/" + std::to_string(prefix); }

Result<CidrSet> CidrSet::Parse(const std::vector<std::string>& texts) {
  CidrSet set;
  for (const std::string& t : texts) {
    auto c = Cidr::Parse(t);
    if (!c.ok()) return c.status();
    set.networks_.push_back(*c);
  }
  return set;
}

bool CidrSet::Contains(const IpAddress& ip) const {
  for (const Cidr& c : networks_) {
    if (c.Contains(ip)) return true;
  }
  return false;
}

bool CidrSet::Contains(std::string_view ip) const {
  auto parsed = IpAddress::Parse(ip);
  return parsed.ok() && Contains(*parsed);
}

Result<IpAddress> ParseGrpcPeer(std::string_view peer, uint16_t* port) {
  std::string_view host, port_text;
  if (peer.substr(0, 5) == "ipv4:") {
    const std::string_view rest = peer.substr(5);
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return Status::InvalidArgument("no port in gRPC peer");
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  } else if (peer.substr(0, 6) == "ipv6:[") {
    const std::string_view rest = peer.substr(6);
    const size_t close = rest.find("]:");
    if (close == std::string_view::npos) return Status::InvalidArgument("malformed gRPC peer");
    host = rest.substr(0, close);
    port_text = rest.substr(close + 2);
    // A zone ("fe80::1%25eth0", percent-encoded by gRPC) is not part of the address.
    if (const size_t zone = host.find('%'); zone != std::string_view::npos) {
      host = host.substr(0, zone);
    }
  } else {
    return Status::InvalidArgument("not an IP peer: " + Quote(peer));
  }
  auto ip = IpAddress::Parse(host);
  if (!ip.ok()) return ip.status();
  if (port != nullptr) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    *port = (ec == std::errc() && end == port_text.data() + port_text.size() && value <= 65535)
                ? static_cast<uint16_t>(value)
                : 0;
  }
  return ip;
}

Result<IpAddress> ForwardedClient(const std::vector<std::string_view>& headers,
                                  const CidrSet& trusted_proxies) {
  std::vector<std::string_view> hops;
  for (std::string_view h : headers) {
    size_t start = 0;
    while (start <= h.size()) {
      const size_t comma = h.find(',', start);
      const std::string_view item = Trim(h.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (!item.empty()) hops.push_back(item);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  if (hops.empty()) return Status::NotFound("empty X-Forwarded-For");
  for (size_t i = hops.size(); i-- > 0;) {
    std::string_view hop = hops[i];
    // "[2001:db8::1]:443" and "10.0.0.1:443" as some proxies write them.
    if (!hop.empty() && hop.front() == '[') {
      const size_t close = hop.find(']');
      if (close != std::string_view::npos) hop = hop.substr(1, close - 1);
    } else if (std::count(hop.begin(), hop.end(), ':') == 1) {
      hop = hop.substr(0, hop.find(':'));
    }
    auto ip = IpAddress::Parse(hop);
    if (!ip.ok()) {
      return Status::InvalidArgument("X-Forwarded-For entry is not an address: " +
                                     Quote(hops[i].substr(0, 64)));
    }
    if (i == 0 || !trusted_proxies.Contains(*ip)) return ip;
  }
  return Status::NotFound("empty X-Forwarded-For");  // not reached
}

}  // namespace ordertrace::net
