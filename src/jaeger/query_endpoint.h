// Where the gateway reaches Jaeger's query service (jaeger.query_url, jaeger.ca_file), resolved
// once for both of its users: the /jaeger/ proxy (query_proxy.h) and the read-back client
// (query_client.h).
//
// Thread-safety: a QueryEndpoint is immutable after ResolveQueryEndpoint() and may be shared.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::jaeger {

struct QueryEndpoint {
  net::Url url;
  std::string base_path;  // the URL's path without a trailing '/': "/jaeger", or "" at the root
  // For an https URL with jaeger.ca_file; null otherwise (https then trusts the system's CAs).
  std::shared_ptr<const net::TlsClientContext> tls;
};

// Parses `query_url` (http(s)://HOST[:PORT][/base_path], no query string) and reads `ca_file`
// for an https URL.  InvalidArgument naming jaeger.query_url (credentials in it redacted) or
// jaeger.ca_file.
Result<QueryEndpoint> ResolveQueryEndpoint(std::string_view query_url, const std::string& ca_file);

}  // namespace ordertrace::jaeger
