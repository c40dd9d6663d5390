#include "jaeger/query_endpoint.h"

#include <utility>

namespace ordertrace::jaeger {

Result<QueryEndpoint> ResolveQueryEndpoint(std::string_view query_url, const std::string& ca_file) {
  net::UrlOptions url_options;
  url_options.what = "jaeger.query_url";
  url_options.usage = "http://127.0.0.1:16686/jaeger (Jaeger's query service and its base_path)";
  auto url = net::ParseUrl(query_url, url_options);
  if (!url.ok()) return url.status();
  QueryEndpoint e;
  e.url = std::move(url).value();
  if (e.url.target.find('?') != std::string::npos) {
    return Status::InvalidArgument("jaeger.query_url '" + net::RedactUrl(query_url) +
                                   "': a query (?...) is not allowed; give the base_path only");
  }
  e.base_path = e.url.target;
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  if (e.url.tls() && !ca_file.empty()) {
    net::TlsOptions tls_options;
    tls_options.ca_file = ca_file;
    auto context = net::TlsClientContext::Create(tls_options);
    if (!context.ok()) {
      return Status::InvalidArgument("jaeger.ca_file: " + context.status().message());
    }
    e.tls = std::move(context).value();
  }
  return e;
}

}  // namespace ordertrace::jaeger
