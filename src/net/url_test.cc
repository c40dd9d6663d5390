#include "net/url.h"

#include <gtest/gtest.h>

namespace ordertrace::net {
namespace {

std::string ErrorOf(std::string_view text, const UrlOptions& options = {},
                    UrlProblem* problem = nullptr) {
  auto url = ParseUrl(text, options, problem);
  EXPECT_FALSE(url.ok()) << text;
  if (url.ok()) return "";
  EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument);
  return url.status().message();
}

TEST(UrlTest, PartsAndDefaults) {
  auto u = ParseUrl("HTTPS://Example.com/otlp/v1/traces?x=1");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "Example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_FALSE(u->explicit_port);
  EXPECT_EQ(u->target, "/otlp/v1/traces?x=1");
  EXPECT_TRUE(u->tls());
  EXPECT_EQ(u->HostHeader(), "Example.com");
  EXPECT_EQ(u->Authority(), "Example.com:443");
  EXPECT_EQ(u->Origin(), "https://Example.com");
  EXPECT_FALSE(u->HostIsIp());

  u = ParseUrl("http://127.0.0.1:4318");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 4318);
  EXPECT_TRUE(u->explicit_port);
  EXPECT_EQ(u->target, "");
  EXPECT_EQ(u->RequestTarget(), "/");
  EXPECT_EQ(u->HostHeader(), "127.0.0.1:4318");
  EXPECT_TRUE(u->HostIsIp());

  u = ParseUrl("http://host?q=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "?q=1");
}

TEST(UrlTest, Ipv6LiteralsInBrackets) {
  auto u = ParseUrl("http://[::1]:9093/prefix");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->Authority(), "[::1]:9093");
  EXPECT_EQ(u->HostHeader(), "[::1]:9093");
  EXPECT_TRUE(u->HostIsIp());
  u = ParseUrl("http://[fe80::1%25eth0]:4318");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->host, "fe80::1%eth0");
  u = ParseUrl("https://[::1]");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->HostHeader(), "[::1]");
  EXPECT_EQ(u->port, 443);
}

TEST(UrlTest, ErrorsNameWhatIsWrong) {
  UrlProblem p = UrlProblem::kNone;
  EXPECT_EQ(ErrorOf("", {}, &p), "URL is empty");
  EXPECT_EQ(p, UrlProblem::kEmpty);
  EXPECT_EQ(ErrorOf("am:9093", {}, &p),
            "URL 'am:9093': no scheme: expected http://host:port/path or https://host:port/path");
  EXPECT_EQ(p, UrlProblem::kScheme);
  EXPECT_EQ(ErrorOf("ftp://x", {}, &p), "URL 'ftp://x': scheme must be http or https");
  EXPECT_EQ(p, UrlProblem::kScheme);
  EXPECT_EQ(ErrorOf("http://:9093", {}, &p), "URL 'http://:9093': the host is missing");
  EXPECT_EQ(p, UrlProblem::kNoHost);
  EXPECT_EQ(ErrorOf("http://am:99999", {}, &p),
            "URL 'http://am:99999': port '99999' is not a number from 1 to 65535");
  EXPECT_EQ(p, UrlProblem::kPort);
  EXPECT_EQ(ErrorOf("http://am:0"), "URL 'http://am:0': port '0' is not a number from 1 to 65535");
  EXPECT_EQ(ErrorOf("http://a m"),
            "URL 'http://a m': contains a space, a control or a non-ASCII character");
  EXPECT_EQ(ErrorOf("http://h/p#f", {}, &p),
            "URL 'http://h/p#f': a fragment (#...) is not allowed");
  EXPECT_EQ(p, UrlProblem::kFragment);
  EXPECT_EQ(ErrorOf("http://::1:80"),
            "URL 'http://::1:80': an IPv6 address needs brackets, e.g. http://[::1]:4317");
  EXPECT_EQ(ErrorOf("http://[::1"),
            "URL 'http://[::1': unterminated IPv6 address ('[' without ']')");
  EXPECT_EQ(ErrorOf("http://[::1]x"), "URL 'http://[::1]x': unexpected 'x' after the IPv6 address");
  EXPECT_EQ(ErrorOf("http://[host]:1"), "URL 'http://[host]:1': 'host' is not an IPv6 address");
  EXPECT_EQ(ErrorOf("http://h$t", {}, &p), "URL 'http://h$t': invalid character '$' in the host");
  EXPECT_EQ(p, UrlProblem::kHost);
}

TEST(UrlTest, CredentialsAreRefusedAndNeverEchoed) {
  UrlProblem p = UrlProblem::kNone;
  const std::string message = ErrorOf("https://admin:hunter2@am:9093/x", {}, &p);
  EXPECT_EQ(message,
            "URL 'https://<redacted>@am:9093/x': credentials in the URL are not supported: set "
            "an authorization header instead");
  EXPECT_EQ(p, UrlProblem::kUserinfo);
  EXPECT_EQ(message.find("hunter2"), std::string::npos);
  // Another error in a URL with credentials does not echo them either.
  EXPECT_EQ(ErrorOf("ftp://u:secret@h").find("secret"), std::string::npos);
  EXPECT_EQ(RedactUrl("http://u:p@h:1/a@b"), "http://<redacted>@h:1/a@b");
  EXPECT_EQ(RedactUrl("http://h:1/a@b"), "http://h:1/a@b");
}

TEST(UrlTest, CallerChoosesSchemesAndNames) {
  UrlOptions o;
  o.what = "upstream URL";
  o.schemes = {"grpc", "grpcs", "http", "https"};
  o.usage = "grpc://host:port";
  EXPECT_EQ(ErrorOf("ftp://x", o),
            "upstream URL 'ftp://x': scheme must be grpc, grpcs, http or https");
  EXPECT_EQ(ErrorOf("x", o), "upstream URL 'x': no scheme: expected grpc://host:port");
  auto u = ParseUrl("GRPCS://jaeger:4317", o);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "grpcs");
  EXPECT_TRUE(u->tls());
  u = ParseUrl("grpc://jaeger", o);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 0);  // no default: the caller decides
  EXPECT_FALSE(u->explicit_port);
}

}  // namespace
}  // namespace ordertrace::net
