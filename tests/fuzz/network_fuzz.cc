// Fuzz target for the network guards' parsers of untrusted text (src/net/cidr.h,
// src/receive/ingest_auth.h): the first byte picks one, the rest is its input.
//   0: IpAddress::Parse   1: Cidr::Parse   2: ParseGrpcPeer
//   3: ForwardedClient (X-Forwarded-For header values separated by '\n', trusted 10.0.0.0/8)
//   4: ParseBearer (an Authorization header)
// What must hold: a result or a Status with a message, never a crash; an address or network
// formats and parses back to itself; a network contains its own address; the client an
// X-Forwarded-For names is an address that was in it.
//
// Corpus: tests/fuzz/corpus/network.  See docs/fuzzing.md.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/cidr.h"
#include "receive/ingest_auth.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ordertrace;
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto ip = net::IpAddress::Parse(text);
      if (!ip.ok()) {
        Check(!ip.status().message().empty());
        break;
      }
      auto back = net::IpAddress::Parse(ip->ToString());
      Check(back.ok() && *back == *ip);
      break;
    }
    case 1: {
      auto cidr = net::Cidr::Parse(text);
      if (!cidr.ok()) {
        Check(!cidr.status().message().empty());
        break;
      }
      Check(cidr->Contains(cidr->network));
      Check(cidr->prefix >= 0 && cidr->prefix <= (cidr->network.v4 ? 32 : 128));
      auto back = net::Cidr::Parse(cidr->ToString());
      Check(back.ok() && back->network == cidr->network && back->prefix == cidr->prefix);
      break;
    }
    case 2: {
      uint16_t port = 0;
      auto ip = net::ParseGrpcPeer(text, &port);
      Check(ip.ok() || !ip.status().message().empty());
      break;
    }
    case 3: {
      static const net::CidrSet* const trusted = [] {
        auto set = net::CidrSet::Parse({"10.0.0.0/8"});
        return new net::CidrSet(std::move(set).value());
      }();
      std::vector<std::string_view> headers;
      size_t start = 0;
      while (start <= text.size()) {
        const size_t nl = text.find('\n', start);
        headers.push_back(text.substr(start, nl == std::string_view::npos ? nl : nl - start));
        if (nl == std::string_view::npos) break;
        start = nl + 1;
      }
      auto client = net::ForwardedClient(headers, *trusted);
      if (client.ok()) {
        Check(net::IpAddress::Parse(client->ToString()).ok());
      } else {
        Check(!client.status().message().empty());
      }
      break;
    }
    default: {
      std::string_view token;
      if (receive::ParseBearer(text, &token)) {
        Check(!token.empty() && token.find(' ') == std::string_view::npos);
        Check(token.data() >= text.data() &&
              token.data() + token.size() <= text.data() + text.size());
      }
      break;
    }
  }
  return 0;
}
