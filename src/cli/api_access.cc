#include "cli/api_access.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "net/tls.h"
#include "net/url.h"

namespace ordertrace::cli {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// A token a header can carry: visible ASCII only (RFC 6750's b64token is narrower still; the
// server judges the rest).  Checked so that a stray control character cannot split the request.
bool HeaderSafe(std::string_view token) {
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

Result<ApiClient> ApiClient::Make(const std::string& api, const ApiAccess& access,
                                  const std::function<const char*(const char*)>& getenv_fn) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v == nullptr ? "" : v;
  };
  ApiClient client;
  client.api_ = api;

  // The token: --token-file wins over ORDERTRACE_TOKEN.
  std::string token;
  if (!access.token_file.empty()) {
    std::ifstream in(access.token_file);
    if (!in) {
      return Status::InvalidArgument("--token-file '" + access.token_file +
                                     "': " + std::strerror(errno));
    }
    std::string line;
    std::getline(in, line);
    token = std::string(Trim(line));
    if (token.empty()) {
      return Status::InvalidArgument("--token-file '" + access.token_file +
                                     "' is empty (the token goes on its first line)");
    }
    if (!HeaderSafe(token)) {
      return Status::InvalidArgument("--token-file '" + access.token_file +
                                     "': the token holds spaces or control characters");
    }
  } else {
    token = std::string(Trim(env("ORDERTRACE_TOKEN")));
    if (!token.empty() && !HeaderSafe(token)) {
      return Status::InvalidArgument("ORDERTRACE_TOKEN holds spaces or control characters");
    }
  }

  std::string_view trimmed = api;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  net::UrlOptions url_options;
  url_options.what = "--api";
  auto url = net::ParseUrl(trimmed, url_options);
  if (!url.ok()) return url.status();
  if (!token.empty() && !url->tls() && !IsLoopbackHost(url->host)) {
    return Status::InvalidArgument("refusing to send the token over plain http:// to " + url->host +
                                   ": use https://");
  }
  if (!token.empty()) {
    client.options_.headers.emplace_back("Authorization", "Bearer " + token);
    client.has_token_ = true;
  }

  // The CA file: --ca-file wins over ORDERTRACE_CA_FILE.
  const bool from_flag = !access.ca_file.empty();
  const std::string ca_file = from_flag ? access.ca_file : env("ORDERTRACE_CA_FILE");
  if (!ca_file.empty()) {
    net::TlsOptions tls;
    tls.ca_file = ca_file;
    auto context = net::TlsClientContext::Create(tls);
    if (!context.ok()) {
      return Status::InvalidArgument(std::string(from_flag ? "--ca-file" : "ORDERTRACE_CA_FILE") +
                                     ": " + context.status().message());
    }
    client.options_.tls = std::move(context).value();
  }
  return client;
}

Result<net::HttpReply> ApiClient::Get(std::string_view target,
                                      std::chrono::milliseconds timeout) const {
  net::HttpOptions options = options_;
  options.timeout = timeout;
  return net::HttpGet(api_, target, options);
}

Result<net::HttpReply> ApiClient::PostJson(std::string_view target, std::string_view json_body,
                                           std::chrono::milliseconds timeout) const {
  net::HttpOptions options = options_;
  options.timeout = timeout;
  options.headers.emplace_back("Content-Type", "application/json");
  options.headers.emplace_back("Accept", "application/json");
  // Like Get(): the target replaces whatever path --api has.
  auto url = net::ParseUrl(api_);
  if (!url.ok()) return url.status();
  return net::HttpPost(url->Origin() + std::string(target), json_body, options);
}

std::string ExplainRefusal(int status, bool sent_token) {
  switch (status) {
    case 401:
      return sent_token ? "the API did not accept the token (expired, or for another issuer or "
                          "audience?): get a new one for --token-file or ORDERTRACE_TOKEN"
                        : "the API wants a token: --token-file or ORDERTRACE_TOKEN";
    case 403:
      return "the token is valid, but its user lacks the Developer or DevOps role the API "
             "requires";
    case 503:
      return "the API cannot check tokens right now (its identity provider's keys are not "
             "available) or is not ready; try again later";
    default:
      return "";
  }
}

}  // namespace ordertrace::cli
