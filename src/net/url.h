// The one parsed URL type of the gateway: scheme, host, port and request target of an
// http(s):// URL (and of the forward exporter's grpc(s):// upstream), checked once, so that the
// HTTP client, the alert sinks, the exporter, `ordertrace send` and the config loader agree on
// what a URL is.  libordertrace keeps its own parser: the library must stand alone.
//
//   scheme://[userinfo@]host[:port][/path][?query]
//
// Accepted: a case-insensitive scheme among UrlOptions::schemes; a host of letters, digits,
// '-', '.', '_' or a bracketed IPv6 literal (a zone written "%25", RFC 6874); a port from 1
// to 65535 (http and https have defaults, 80 and 443); a path and query taken as they are.
// Refused, with an InvalidArgument naming what is wrong: control, space or non-ASCII
// characters, a fragment, user:password@ (credentials belong in a header; they are never
// echoed in a message), an unbracketed IPv6 address.
//
// Thread-safety: plain values; the functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace::net {

struct Url {
  std::string scheme;          // lower-case: "http", "https" (or another scheme the caller allowed)
  std::string host;            // an IPv6 literal without its brackets, its zone as "%eth0"
  uint16_t port = 0;           // as written, or the scheme's default; 0 when neither (e.g. grpc)
  bool explicit_port = false;  // the URL wrote ":port"
  std::string target;          // path and query as written ("/v1/traces?x=1"); "" when none

  bool tls() const { return scheme == "https" || scheme == "grpcs"; }
  // The request target to send: `target`, or "/" when the URL has none.
  std::string RequestTarget() const { return target.empty() ? "/" : target; }
  // host:port, an IPv6 literal in brackets ("[::1]:4318").
  std::string Authority() const;
  // The Host header (RFC 9110 7.2): the authority without a default port.
  std::string HostHeader() const;
  // scheme://authority, no path ("http://127.0.0.1:8080").
  std::string Origin() const;
  // Whether the host is an IP address (then TLS verifies the address and sends no SNI).
  bool HostIsIp() const;
};

struct UrlOptions {
  // Names the URL in messages: "upstream URL 'x': the host is missing".
  std::string what = "URL";
  // Allowed schemes, lower-case, in the order messages list them.
  std::vector<std::string> schemes = {"http", "https"};
  // Examples for the "no scheme" message: "no scheme: expected <usage>".
  std::string usage = "http://host:port/path or https://host:port/path";
};

// What was wrong, for callers that keep messages of their own (the config loader).
enum class UrlProblem {
  kNone,
  kEmpty,
  kCharacter,  // control, space or non-ASCII character
  kScheme,     // no scheme, or one not allowed
  kFragment,
  kUserinfo,
  kNoHost,
  kHost,  // invalid character, bad IPv6 literal
  kPort,
};

// Parses `text` (not trimmed).  On failure: InvalidArgument "<what> '<text, credentials
// redacted>': <what is wrong>", and `*problem` (when given) says which part.
Result<Url> ParseUrl(std::string_view text, const UrlOptions& options = {},
                     UrlProblem* problem = nullptr);

// `url` as it may appear in a message or log: "user:password@" becomes "<redacted>@".
std::string RedactUrl(std::string_view url);

}  // namespace ordertrace::net
