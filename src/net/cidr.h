// IP addresses and networks for the listeners' allowlists (listen.allow.*) and trusted proxies
// (listen.trusted_proxies): IPv4 and IPv6 CIDR parsing with clear errors, an IPv4-mapped IPv6
// address (::ffff:a.b.c.d) treated as the IPv4 address it carries, and a set of networks a peer
// is checked against.
//
// Thread-safety: value types; a CidrSet is immutable after Parse() and may be shared by any
// number of threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::net {

struct IpAddress {
  bool v4 = true;
  // IPv4: the first 4 bytes; IPv6: all 16 (network byte order).
  std::array<uint8_t, 16> bytes{};

  // "10.0.0.1", "2001:db8::1"; an IPv4-mapped IPv6 address becomes its IPv4 address.  No
  // brackets, port or zone ("%eth0").
  static Result<IpAddress> Parse(std::string_view text);
  std::string ToString() const;
  bool operator==(const IpAddress& o) const { return v4 == o.v4 && bytes == o.bytes; }
};

struct Cidr {
  IpAddress network;
  int prefix = 32;  // 0..32 (IPv4) or 0..128 (IPv6)

  // "10.0.0.0/8", "fd00::/8", or one address ("10.1.2.3" = /32, "::1" = /128).  Errors name the
  // problem: not an address, a prefix out of range, bits set after the prefix ("did you mean
  // 10.0.0.0/8?").  "::ffff:10.0.0.0/104" is the IPv4 network 10.0.0.0/8.
  static Result<Cidr> Parse(std::string_view text);
  bool Contains(const IpAddress& ip) const;
  std::string ToString() const;
};

class CidrSet {
 public:
  // Parses every entry; the error names the first bad one.
  static Result<CidrSet> Parse(const std::vector<std::string>& texts);
  bool empty() const { return networks_.empty(); }
  bool Contains(const IpAddress& ip) const;
  // Parses `ip` first; false when it is not an address.
  bool Contains(std::string_view ip) const;
  const std::vector<Cidr>& networks() const { return networks_; }

 private:
  std::vector<Cidr> networks_;
};

// The address of a gRPC peer string ("ipv4:10.0.0.1:5000", "ipv6:[::1]:5000"); InvalidArgument
// for anything else (a Unix socket, an unknown form).
Result<IpAddress> ParseGrpcPeer(std::string_view peer, uint16_t* port = nullptr);

// The client an X-Forwarded-For chain names, as seen from a peer that is a trusted proxy: the
// right-most address that is not itself a trusted proxy (all trusted: the left-most).  `headers`
// are the values of every X-Forwarded-For header in order (each a comma-separated list).
// InvalidArgument when an entry that must be read is not an address; NotFound when the chain is
// empty.
Result<IpAddress> ForwardedClient(const std::vector<std::string_view>& headers,
                                  const CidrSet& trusted_proxies);

}  // namespace ordertrace::net
