// The web UI on the gateway's --http listener (docs/security.md "Web UI"):
//
//   GET|HEAD /ui, /ui/          302 /ui/stuck
//   GET|HEAD /ui/assets/<file>  the exact file or 404 (never index.html);
//                               Cache-Control: public, max-age=31536000, immutable (hashed names)
//   GET|HEAD /ui/<other file>   a file at the top of the build (a favicon), Cache-Control: no-cache
//   GET|HEAD /ui/<anything>     index.html, Cache-Control: no-store (the UI routes in the browser)
//
// Content-Encoding: gzip (+ Vary: Accept-Encoding) when the client accepts it and the file has a
// gzip copy; strong ETags with If-None-Match → 304.  A path with "..", "." segments, %2e, %5c, a
// backslash or a NUL is refused with 400; under /ui/assets/ anything but a plain file name
// (letters, digits, . _ - /) is 404.  Files are served from memory (ui/assets.h), so no request
// can reach the file system.  Every answer under /ui, errors and redirects included, carries the
// UI's security headers (UiSecurityHeaders); HSTS comes from the listener when it serves TLS.
// Without assets (built with ORDERTRACE_UI=OFF and no ui.dir) every /ui path answers 404 saying
// so.
//
// Thread-safety: the handlers are stateless apart from the immutable assets; run them
// concurrently.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/http_server.h"
#include "ui/assets.h"

namespace ordertrace::ui {

inline constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'";

inline constexpr char kBuiltWithoutUi[] =
    "this gateway was built without the web UI (ORDERTRACE_UI=OFF); see ui.dir\n";

// The headers every UI response carries (no CORS headers: the UI is same-origin only), with
// `form_action` (an origin, or "") added to the CSP's form-action: the UI's logout form posts to
// the gateway, which sends the browser on to the provider's end_session_endpoint, and browsers
// check form-action on that redirect too.
std::vector<std::pair<std::string, std::string>> UiSecurityHeaders(std::string_view form_action);

// The origin of `url` ("https://idp.example:8443/logout" → "https://idp.example:8443") for the
// CSP's form-action; "" when it is not an http(s) URL or holds characters a CSP source may not.
std::string FormActionOrigin(std::string_view url);

// Decides whether a request may see the UI: true to serve it; false after filling `res` (a
// redirect to sign in, a 401).  Runs after the path checks and the /ui → /ui/stuck redirect.
using UiGate = std::function<bool(const net::HttpRequest& req, net::HttpResponse& res)>;

struct UiRouteOptions {
  std::shared_ptr<const UiAssets> assets;  // null: no UI (404 kBuiltWithoutUi)
  UiGate gate;                             // empty: open
  // The sign-in provider's end_session_endpoint ("" or empty: none), asked per response (the
  // provider's discovery may come later than the start).
  std::function<std::string()> end_session_url;
};

net::HttpHandler UiHandler(UiRouteOptions options);

// GET and HEAD on /ui and /ui/* (before the server starts).
void RegisterUiRoutes(net::HttpServer& server, UiRouteOptions options);

}  // namespace ordertrace::ui
