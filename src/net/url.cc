#include "net/url.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>

namespace ordertrace::net {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool IsIpAddress(const std::string& host, bool* v6 = nullptr) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (v6 != nullptr) *v6 = !ec && address.is_v6();
  return !ec;
}

// "grpc, grpcs, http or https"
std::string ListSchemes(const std::vector<std::string>& schemes) {
  std::string out;
  for (size_t i = 0; i < schemes.size(); ++i) {
    if (i > 0) out += i + 1 == schemes.size() ? " or " : ", ";
    out += schemes[i];
  }
  return out;
}

uint16_t DefaultPort(const std::string& scheme) {
  if (scheme == "http") return 80;
  if (scheme == "https") return 443;
  return 0;
}

}  // namespace

std::string Url::Authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::HostHeader() const {
  if (port == 0 || port == DefaultPort(scheme)) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
  }
  return Authority();
}

std::string Url::Origin() const { return scheme + "://" + HostHeader(); }

bool Url::HostIsIp() const { return IsIpAddress(host); }

std::string RedactUrl(std::string_view url) {
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return std::string(url);
  const size_t authority_end = url.find_first_of("/?#", sep + 3);
  const size_t at =
      url.rfind('@', authority_end == std::string_view::npos ? url.size() : authority_end);
  if (at == std::string_view::npos || at < sep + 3) return std::string(url);
  return std::string(url.substr(0, sep + 3)) + "<redacted>" + std::string(url.substr(at));
}

Result<Url> ParseUrl(std::string_view text, const UrlOptions& options, UrlProblem* problem) {
  auto fail = [&](UrlProblem p, const std::string& what) -> Status {
    if (problem != nullptr) *problem = p;
    return Status::InvalidArgument(options.what + " '" + RedactUrl(text) + "': " + what);
  };
  if (problem != nullptr) *problem = UrlProblem::kNone;
  if (text.empty()) {
    if (problem != nullptr) *problem = UrlProblem::kEmpty;
    return Status::InvalidArgument(options.what + " is empty");
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return fail(UrlProblem::kCharacter, "contains a space, a control or a non-ASCII character");
    }
  }
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return fail(UrlProblem::kScheme, "no scheme: expected " + options.usage);
  }
  Url url;
  url.scheme = Lower(text.substr(0, sep));
  if (std::find(options.schemes.begin(), options.schemes.end(), url.scheme) ==
      options.schemes.end()) {
    return fail(UrlProblem::kScheme, "scheme must be " + ListSchemes(options.schemes));
  }

  const size_t authority_start = sep + 3;
  const size_t authority_end = text.find_first_of("/?#", authority_start);
  const std::string authority(text.substr(authority_start, authority_end == std::string_view::npos
                                                               ? std::string_view::npos
                                                               : authority_end - authority_start));
  const std::string rest(authority_end == std::string_view::npos ? std::string_view()
                                                                 : text.substr(authority_end));
  if (rest.find('#') != std::string::npos) {
    return fail(UrlProblem::kFragment, "a fragment (#...) is not allowed");
  }
  if (authority.find('@') != std::string::npos) {
    return fail(UrlProblem::kUserinfo,
                "credentials in the URL are not supported: set an authorization header instead");
  }

  std::string port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      return fail(UrlProblem::kHost, "unterminated IPv6 address ('[' without ']')");
    }
    url.host = authority.substr(1, close - 1);
    // A zone identifier is written "%25" in a URL (RFC 6874).
    if (const size_t zone = url.host.find("%25"); zone != std::string::npos) {
      url.host.replace(zone, 3, "%");
    }
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail(UrlProblem::kHost, "unexpected '" + after + "' after the IPv6 address");
      }
      port_text = after.substr(1);
      has_port = true;
    }
    bool v6 = false;
    if (!IsIpAddress(url.host, &v6) || !v6) {
      return fail(UrlProblem::kHost, "'" + url.host + "' is not an IPv6 address");
    }
  } else {
    const size_t colon = authority.find(':');
    if (colon != std::string::npos && authority.find(':', colon + 1) != std::string::npos) {
      return fail(UrlProblem::kHost, "an IPv6 address needs brackets, e.g. " +
                                         options.schemes.front() + "://[::1]:4317");
    }
    url.host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    for (char c : url.host) {
      if (!IsHostChar(c)) {
        return fail(UrlProblem::kHost, std::string("invalid character '") + c + "' in the host");
      }
    }
  }
  if (url.host.empty()) return fail(UrlProblem::kNoHost, "the host is missing");

  if (has_port) {
    unsigned long port = 0;
    const bool digits = !port_text.empty() && port_text.size() <= 5 &&
                        std::all_of(port_text.begin(), port_text.end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) port = std::stoul(port_text);
    if (!digits || port == 0 || port > 65535) {
      return fail(UrlProblem::kPort, "port '" + port_text + "' is not a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(port);
    url.explicit_port = true;
  } else {
    url.port = DefaultPort(url.scheme);
  }
  url.target = rest;
  return url;
}

}  // namespace ordertrace::net
