#include "ui/ui_routes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "auth/session.h"
#include "common/url.h"

namespace ordertrace::ui {
namespace {

std::string HeaderOf(const net::HttpResponse& res, const std::string& name) {
  for (const auto& [n, v] : res.headers) {
    if (n == name) return v;
  }
  return "";
}

class UiRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<UiFile> files;
    files.push_back(MakeUiFile("index.html", "<!doctype html>" + std::string(600, ' ') +
                                                 "<script type=module src=/ui/assets/app-1.js>"));
    files.push_back(MakeUiFile("assets/app-1.js", std::string(3000, 'j')));
    files.push_back(MakeUiFile("assets/app-2.css", "a{}"));
    files.push_back(MakeUiFile("assets/logo-3.png", std::string(500, 'p')));
    files.push_back(MakeUiFile("favicon.svg", "<svg/>"));
    auto assets = UiAssets::Create(std::move(files), "test");
    ASSERT_TRUE(assets.ok());
    assets_ = *assets;
  }

  net::HttpResponse Get(const std::string& path,
                        std::vector<std::pair<std::string, std::string>> headers = {},
                        const std::string& method = "GET") {
    net::HttpRequest req;
    req.method = method;
    req.path = path;
    req.headers = std::move(headers);
    net::HttpResponse res;
    UiRouteOptions o;
    o.assets = assets_;
    o.gate = gate_;
    o.end_session_url = end_session_url_;
    UiHandler(std::move(o))(req, res);
    return res;
  }

  std::shared_ptr<const UiAssets> assets_;
  UiGate gate_;
  std::function<std::string()> end_session_url_;
};

void ExpectSecurityHeaders(const net::HttpResponse& res, const std::string& what) {
  EXPECT_EQ(HeaderOf(res, "Content-Security-Policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'; object-src 'none'")
      << what;
  EXPECT_EQ(HeaderOf(res, "X-Content-Type-Options"), "nosniff") << what;
  EXPECT_EQ(HeaderOf(res, "Referrer-Policy"), "same-origin") << what;
  EXPECT_EQ(HeaderOf(res, "Cross-Origin-Opener-Policy"), "same-origin") << what;
  EXPECT_EQ(HeaderOf(res, "Cross-Origin-Resource-Policy"), "same-origin") << what;
  EXPECT_EQ(HeaderOf(res, "Permissions-Policy"), "camera=(), microphone=(), geolocation=()")
      << what;
  for (const auto& [name, value] : res.headers) {
    EXPECT_FALSE(name.starts_with("Access-Control-")) << what << ": " << name;
  }
}

TEST_F(UiRoutesTest, RootRedirectsToTheBoard) {
  for (const char* path : {"/ui", "/ui/"}) {
    net::HttpResponse res = Get(path);
    EXPECT_EQ(res.status, 302) << path;
    EXPECT_EQ(HeaderOf(res, "Location"), "/ui/stuck") << path;
  }
}

TEST_F(UiRoutesTest, AssetsAreImmutableWithTheirContentType) {
  net::HttpResponse res = Get("/ui/assets/app-2.css");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.content_type, "text/css; charset=utf-8");
  EXPECT_EQ(res.body, "a{}");
  EXPECT_EQ(HeaderOf(res, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(HeaderOf(res, "ETag"), assets_->Find("assets/app-2.css")->etag);
  EXPECT_EQ(Get("/ui/assets/logo-3.png").content_type, "image/png");
  EXPECT_EQ(Get("/ui/assets/app-1.js").content_type, "text/javascript; charset=utf-8");
}

TEST_F(UiRoutesTest, PagesGetIndexHtmlUncached) {
  for (const char* path : {"/ui/stuck", "/ui/orders/ORD%2F42", "/ui/orders/A-1", "/ui/flow",
                           "/ui/no/such/view", "/ui/index.html"}) {
    net::HttpResponse res = Get(path);
    EXPECT_EQ(res.status, 200) << path;
    EXPECT_EQ(res.content_type, "text/html; charset=utf-8") << path;
    EXPECT_EQ(res.body, assets_->index().body) << path;
    EXPECT_EQ(HeaderOf(res, "Cache-Control"), "no-store") << path;
  }
  net::HttpResponse icon = Get("/ui/favicon.svg");
  EXPECT_EQ(icon.content_type, "image/svg+xml");
  EXPECT_EQ(HeaderOf(icon, "Cache-Control"), "no-cache");
}

TEST_F(UiRoutesTest, MissingAssetIs404NeverIndexHtml) {
  for (const char* path : {"/ui/assets/missing-1.js", "/ui/assets/", "/ui/assets/sub/x.js",
                           "/ui/assets/app-1.js%00", "/ui/assets/app%2D1.js"}) {
    net::HttpResponse res = Get(path);
    EXPECT_TRUE(res.status == 404 || res.status == 400) << path << " " << res.status;
    EXPECT_NE(res.body, assets_->index().body) << path;
    EXPECT_EQ(HeaderOf(res, "Cache-Control"), "no-store") << path;
  }
}

TEST_F(UiRoutesTest, TraversalIsRefused) {
  for (const char* path :
       {"/ui/../etc/passwd", "/ui/assets/../index.html", "/ui/assets/%2e%2e/index.html",
        "/ui/%2E%2E/secret", "/ui/assets/..%2findex.html", "/ui/assets/..%2Findex.html",
        "/ui/a\\..\\b", "/ui/assets/%5c..%5cx", "/ui/orders/./x", "/ui/x%00y"}) {
    net::HttpResponse res = Get(path);
    EXPECT_TRUE(res.status == 400 || res.status == 404) << path << " " << res.status;
    ExpectSecurityHeaders(res, path);
  }
  net::HttpResponse nul = Get(std::string("/ui/a\0b", 7));
  EXPECT_EQ(nul.status, 400);
}

TEST_F(UiRoutesTest, GzipWhenAcceptedAndSmaller) {
  const UiFile& js = *assets_->Find("assets/app-1.js");
  ASSERT_FALSE(js.gzip.empty());
  net::HttpResponse gz = Get("/ui/assets/app-1.js", {{"accept-encoding", "br, gzip;q=0.8"}});
  EXPECT_EQ(HeaderOf(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(HeaderOf(gz, "Vary"), "Accept-Encoding");
  EXPECT_EQ(gz.body, js.gzip);
  EXPECT_EQ(HeaderOf(gz, "ETag"), js.gzip_etag);
  for (const char* refused : {"", "br", "gzip;q=0", "identity, gzip; q=0.000", "gzipper"}) {
    net::HttpResponse plain = Get("/ui/assets/app-1.js", {{"accept-encoding", refused}});
    EXPECT_EQ(HeaderOf(plain, "Content-Encoding"), "") << refused;
    EXPECT_EQ(HeaderOf(plain, "Vary"), "Accept-Encoding") << refused;
    EXPECT_EQ(plain.body, js.body) << refused;
  }
  EXPECT_EQ(HeaderOf(Get("/ui/assets/app-1.js", {{"accept-encoding", "*"}}), "Content-Encoding"),
            "gzip");
  // Not smaller: never gzipped, no Vary.
  net::HttpResponse css = Get("/ui/assets/app-2.css", {{"accept-encoding", "gzip"}});
  EXPECT_EQ(HeaderOf(css, "Content-Encoding"), "");
  EXPECT_EQ(HeaderOf(css, "Vary"), "");
}

TEST_F(UiRoutesTest, IfNoneMatchGives304) {
  const UiFile& js = *assets_->Find("assets/app-1.js");
  net::HttpResponse res = Get("/ui/assets/app-1.js", {{"if-none-match", "\"x\", " + js.etag}});
  EXPECT_EQ(res.status, 304);
  EXPECT_TRUE(res.body.empty());
  EXPECT_EQ(HeaderOf(res, "ETag"), js.etag);
  ExpectSecurityHeaders(res, "304");
  // The gzip representation has its own tag.
  EXPECT_EQ(
      Get("/ui/assets/app-1.js", {{"if-none-match", js.etag}, {"accept-encoding", "gzip"}}).status,
      200);
  EXPECT_EQ(Get("/ui/assets/app-1.js",
                {{"if-none-match", "W/" + js.gzip_etag}, {"accept-encoding", "gzip"}})
                .status,
            304);
  EXPECT_EQ(Get("/ui/assets/app-1.js", {{"if-none-match", "\"other\""}}).status, 200);
}

TEST_F(UiRoutesTest, SecurityHeadersOnEveryAnswer) {
  gate_ = [](const net::HttpRequest& req, net::HttpResponse& res) {
    if (req.Header("cookie") == "ok") return true;
    res.status = 401;
    res.headers.clear();
    res.headers.emplace_back("Cache-Control", "no-store");
    return false;
  };
  for (const char* path : {"/ui", "/ui/", "/ui/stuck", "/ui/assets/app-1.js", "/ui/assets/none",
                           "/ui/../x", "/ui/favicon.svg"}) {
    ExpectSecurityHeaders(Get(path), std::string("signed out ") + path);
    ExpectSecurityHeaders(Get(path, {{"cookie", "ok"}}), path);
    ExpectSecurityHeaders(Get(path, {{"cookie", "ok"}}, "HEAD"), std::string("HEAD ") + path);
  }
  EXPECT_EQ(Get("/ui/assets/app-1.js").status, 401);
  EXPECT_EQ(Get("/ui/assets/app-1.js", {{"cookie", "ok"}}).status, 200);
  // The redirect to the board needs no sign-in (it shows nothing); the sign-in comes next.
  EXPECT_EQ(Get("/ui/").status, 302);
}

// With browser sign-in, the logout form's redirect to the provider's end_session_endpoint must
// pass the CSP's form-action (browsers check it on redirects): its origin joins 'self' there.
TEST_F(UiRoutesTest, TheProvidersLogoutOriginJoinsFormAction) {
  end_session_url_ = [] { return std::string("https://idp.example:8443/realms/x/logout?a=b"); };
  const std::string csp = HeaderOf(Get("/ui/stuck"), "Content-Security-Policy");
  EXPECT_NE(csp.find("; form-action 'self' https://idp.example:8443; "), std::string::npos) << csp;
  EXPECT_EQ(csp.find("default-src 'none'; script-src 'self';"), 0u) << csp;
  end_session_url_ = [] { return std::string(); };
  EXPECT_EQ(HeaderOf(Get("/ui/stuck"), "Content-Security-Policy"), kContentSecurityPolicy);
}

TEST(FormActionOrigin, OriginsOfHttpUrlsOnly) {
  EXPECT_EQ(FormActionOrigin("https://idp.example/logout"), "https://idp.example");
  EXPECT_EQ(FormActionOrigin("HTTP://127.0.0.1:9000"), "http://127.0.0.1:9000");
  EXPECT_EQ(FormActionOrigin("http://[::1]:9000/x"), "http://[::1]:9000");
  for (const char* bad :
       {"", "idp.example/logout", "javascript:alert(1)", "https://", "https://a b/",
        "https://evil;script-src *", "https://u:p@idp/", "https://idp'/"}) {
    EXPECT_EQ(FormActionOrigin(bad), "") << bad;
  }
}

TEST(UiRoutesWithoutUi, SayWhyAndWhereToLook) {
  for (const char* path : {"/ui", "/ui/", "/ui/stuck", "/ui/assets/app-1.js"}) {
    net::HttpRequest req;
    req.method = "GET";
    req.path = path;
    net::HttpResponse res;
    UiHandler(UiRouteOptions{})(req, res);
    EXPECT_EQ(res.status, 404) << path;
    EXPECT_EQ(res.body, kBuiltWithoutUi) << path;
    ExpectSecurityHeaders(res, path);
  }
}

// The signed-out redirect carries the page (percent-encoded ids and the query included) through
// /auth/login?return_to=...; the sign-in keeps it only when it is one of the gateway's own paths.
TEST(UiSignInReturnTo, DeepLinksSurviveOpenRedirectsDoNot) {
  for (const char* back : {"/ui/orders/ORD%2F42", "/ui/orders/ORD%2F42?tab=spans&span=ab12",
                           "/ui/stuck?stage=SUBMITTED&stage=QUOTED&sort=-stuck_since",
                           "/ui/orders?q=partner%3Apse%3A1"}) {
    std::string decoded;
    ASSERT_TRUE(url::PercentDecode(url::PercentEncode(back), &decoded));
    EXPECT_EQ(auth::SafeReturnPath(decoded), back);
  }
  for (const char* evil : {"//evil.example/ui/", "https://evil.example/ui/", "/\\evil.example",
                           "/ui/x\r\nLocation: //evil"}) {
    EXPECT_EQ(auth::SafeReturnPath(evil), "/") << evil;
  }
}

}  // namespace
}  // namespace ordertrace::ui
