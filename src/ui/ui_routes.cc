#include "ui/ui_routes.h"

#include <string_view>

#include "common/text_format.h"

namespace ordertrace::ui {
namespace {

constexpr std::string_view kAssetsPrefix = "/ui/assets/";

// A path the UI refuses outright: dot segments, encoded dots or backslashes, a backslash or a
// control character (NUL included), in the raw target.  An encoded '/' is allowed here: it is
// part of an order id in a deep link (/ui/orders/ORD%2F42), which only ever gets index.html.
bool IsHostilePath(std::string_view path) {
  const std::string lower = AsciiLower(path);
  for (const char* encoded : {"%2e", "%5c", "%00"}) {
    if (lower.find(encoded) != std::string::npos) return true;
  }
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || u < 0x20 || u == 0x7f) return true;
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "." || segment == "..") return true;
    start = end + 1;
  }
  return false;
}

// The items of a comma-separated header (RFC 9110 lists), each trimmed of spaces and tabs.
std::vector<std::string_view> ListItems(std::string_view header) {
  std::vector<std::string_view> items;
  for (size_t start = 0; start < header.size();) {
    size_t end = header.find(',', start);
    if (end == std::string_view::npos) end = header.size();
    items.push_back(TrimSpace(header.substr(start, end - start)));
    start = end + 1;
  }
  return items;
}

// Whether Accept-Encoding allows gzip (a "gzip", "x-gzip" or "*" coding whose q is not 0).
bool AcceptsGzip(std::string_view accept) {
  for (std::string_view item : ListItems(accept)) {
    const std::string_view coding = TrimSpace(item.substr(0, item.find(';')));
    const std::string lower = AsciiLower(coding);
    if (lower != "gzip" && lower != "x-gzip" && lower != "*") continue;
    const size_t q = item.find("q=");
    if (q == std::string_view::npos) return true;
    const std::string_view value = item.substr(q + 2);
    // q=0, q=0.0, q=0.000: refused; anything else accepted.
    bool zero = !value.empty() && value[0] == '0';
    for (size_t i = 1; zero && i < value.size() && value[i] != ' ' && value[i] != ';'; ++i) {
      if (value[i] != '.' && value[i] != '0') zero = false;
    }
    return !zero;
  }
  return false;
}

// Whether If-None-Match names `etag` (or is "*"); weak validators compare by their opaque part.
bool NoneMatchHits(std::string_view header, std::string_view etag) {
  for (std::string_view tag : ListItems(header)) {
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

void Text(net::HttpResponse& res, int status, std::string body) {
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.body = std::move(body);
  res.headers.emplace_back("Cache-Control", "no-store");
}

void ServeFile(const net::HttpRequest& req, net::HttpResponse& res, const UiFile& file,
               const char* cache_control) {
  const bool gzip = !file.gzip.empty() && AcceptsGzip(req.Header("accept-encoding"));
  const std::string& etag = gzip ? file.gzip_etag : file.etag;
  res.headers.emplace_back("Cache-Control", cache_control);
  res.headers.emplace_back("ETag", etag);
  if (!file.gzip.empty()) res.headers.emplace_back("Vary", "Accept-Encoding");
  if (NoneMatchHits(req.Header("if-none-match"), etag)) {
    res.status = 304;
    res.content_type = "";
    res.body.clear();
    return;
  }
  res.status = 200;
  res.content_type = file.content_type;
  if (gzip) {
    res.headers.emplace_back("Content-Encoding", "gzip");
    res.body = file.gzip;
  } else {
    res.body = file.body;
  }
}

void Serve(const UiRouteOptions& o, net::HttpRequest& req, net::HttpResponse& res) {
  if (!o.assets) return Text(res, 404, kBuiltWithoutUi);
  if (req.path == "/ui" || req.path == "/ui/") {
    res.status = 302;
    res.body = "see /ui/stuck\n";
    res.headers.emplace_back("Location", "/ui/stuck");
    res.headers.emplace_back("Cache-Control", "no-store");
    return;
  }
  if (IsHostilePath(req.path)) return Text(res, 400, "bad UI path\n");
  if (o.gate && !o.gate(req, res)) return;
  const std::string_view path = req.path;
  if (path.starts_with(kAssetsPrefix)) {
    const std::string_view rest = path.substr(kAssetsPrefix.size());
    const UiFile* file =
        IsServableName(rest) ? o.assets->Find("assets/" + std::string(rest)) : nullptr;
    if (file == nullptr) return Text(res, 404, "no such UI asset\n");
    return ServeFile(req, res, *file, "public, max-age=31536000, immutable");
  }
  const std::string_view rest = path.substr(4);  // after "/ui/"
  if (rest != "index.html" && rest.find('/') == std::string_view::npos && IsServableName(rest)) {
    if (const UiFile* file = o.assets->Find(rest)) return ServeFile(req, res, *file, "no-cache");
  }
  ServeFile(req, res, o.assets->index(), "no-store");
}

}  // namespace

std::string FormActionOrigin(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  const std::string scheme = AsciiLower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") return "";
  const size_t host_start = scheme_end + 3;
  size_t end = url.find_first_of("/?#", host_start);
  if (end == std::string_view::npos) end = url.size();
  const std::string_view authority = url.substr(host_start, end - host_start);
  if (authority.empty()) return "";
  for (char c : authority) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return "";  // userinfo, spaces, quotes, ';' ... never into the header
  }
  return scheme + "://" + std::string(authority);
}

std::vector<std::pair<std::string, std::string>> UiSecurityHeaders(std::string_view form_action) {
  std::string csp = kContentSecurityPolicy;
  if (!form_action.empty()) {
    const std::string self = "form-action 'self'";
    csp.insert(csp.find(self) + self.size(), " " + std::string(form_action));
  }
  return {
      {"Content-Security-Policy", std::move(csp)},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "same-origin"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
      {"Permissions-Policy", "camera=(), microphone=(), geolocation=()"},
  };
}

net::HttpHandler UiHandler(UiRouteOptions options) {
  return [o = std::move(options)](net::HttpRequest& req, net::HttpResponse& res) {
    Serve(o, req, res);
    // After the gate too: a redirect to sign in replaces the headers it found.
    const std::string form_action =
        o.end_session_url ? FormActionOrigin(o.end_session_url()) : std::string();
    for (auto& [name, value] : UiSecurityHeaders(form_action)) {
      bool present = false;
      for (auto& h : res.headers) {
        if (h.first == name) {
          h.second = value;
          present = true;
        }
      }
      if (!present) res.headers.emplace_back(std::move(name), std::move(value));
    }
  };
}

void RegisterUiRoutes(net::HttpServer& server, UiRouteOptions options) {
  net::HttpHandler handler = UiHandler(std::move(options));
  for (const char* method : {"GET", "HEAD"}) {
    server.Route(method, "/ui", handler);
    server.Route(method, "/ui/*", handler);
  }
}

}  // namespace ordertrace::ui
