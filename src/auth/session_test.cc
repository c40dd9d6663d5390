#include "auth/session.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace ordertrace::auth {
namespace {

constexpr Nanos kSecond = 1'000'000'000;

TEST(RandomUrlToken, IsBase64UrlAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = RandomUrlToken(32);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->size(), 43u);  // 32 bytes, base64url without padding
    EXPECT_EQ(
        t->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        std::string::npos);
    seen.insert(*t);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Pkce, MatchesRfc7636AppendixB) {
  // RFC 7636, Appendix B: the verifier and the S256 challenge it gives.
  EXPECT_EQ(PkceChallengeS256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(Sha256Hex, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CookieValue, FindsTrimsAndRefusesDuplicates) {
  EXPECT_EQ(CookieValue("a=1; __Host-x=abc;b=2", "__Host-x").value_or("?"), "abc");
  EXPECT_EQ(CookieValue("__Host-x=\"q\"", "__Host-x").value_or("?"), "q");
  EXPECT_FALSE(CookieValue("a=1; b=2", "__Host-x").has_value());
  EXPECT_FALSE(CookieValue("", "a").has_value());
  EXPECT_FALSE(CookieValue("ax=1", "a").has_value());
  // A second cookie of the same name (e.g. set by a sibling domain) makes it ambiguous.
  EXPECT_FALSE(CookieValue("a=1; a=2", "a").has_value());
}

TEST(HostCookie, HasEveryAttributeAndNoDomain) {
  const std::string c = HostCookie(kSessionCookie, "v", std::chrono::seconds(60));
  EXPECT_EQ(c, "__Host-ordertrace_session=v; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=60");
  EXPECT_EQ(c.find("Domain"), std::string::npos);
  EXPECT_NE(HostCookie(kSessionCookie, "", std::chrono::seconds(0)).find("Max-Age=0"),
            std::string::npos);
}

TEST(SafeReturnPath, KeepsOwnPathsOnly) {
  EXPECT_EQ(SafeReturnPath("/ui/orders/A-1?x=y#z"), "/ui/orders/A-1?x=y#z");
  EXPECT_EQ(SafeReturnPath("/"), "/");
  for (const char* bad :
       {"", "https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil", "ui/x",
        "javascript:alert(1)", "/ok\r\nSet-Cookie: x=y", "/a\\b", "/\x7f"}) {
    EXPECT_EQ(SafeReturnPath(bad), "/") << bad;
  }
  EXPECT_EQ(SafeReturnPath("/" + std::string(3000, 'a')), "/");
}

TEST(PendingLogins, FinishOnceWithTheRightState) {
  ManualClock clock(1000 * kSecond);
  PendingLogins logins(clock, PendingLoginOptions{});
  auto s = logins.Start("/ui/stuck");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->login.return_to, "/ui/stuck");
  EXPECT_NE(s->login.state, s->login.nonce);
  EXPECT_NE(s->cookie, s->login.state);
  auto done = logins.Finish(s->cookie, s->login.state);
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->code_verifier, s->login.code_verifier);
  // Used once: the same cookie and state again (a replayed callback) finds nothing.
  EXPECT_EQ(logins.Finish(s->cookie, s->login.state).status().code(), StatusCode::kNotFound);
}

TEST(PendingLogins, WrongStateEndsTheSignIn) {
  ManualClock clock(1000 * kSecond);
  PendingLogins logins(clock, PendingLoginOptions{});
  auto s = logins.Start("https://evil/");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->login.return_to, "/");
  EXPECT_EQ(logins.Finish(s->cookie, "forged").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(logins.Finish(s->cookie, s->login.state).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(logins.Finish("unknown-cookie", s->login.state).status().code(), StatusCode::kNotFound);
}

TEST(PendingLogins, ExpireAndStayBounded) {
  ManualClock clock(1000 * kSecond);
  PendingLoginOptions o;
  o.max_entries = 3;
  PendingLogins logins(clock, o);
  auto first = logins.Start("/");
  ASSERT_TRUE(first.ok());
  clock.Set(clock.Now() + 601 * kSecond);
  EXPECT_EQ(logins.Finish(first->cookie, first->login.state).status().code(),
            StatusCode::kNotFound);
  for (int i = 0; i < 10; ++i) {
    clock.Set(clock.Now() + kSecond);
    ASSERT_TRUE(logins.Start("/").ok());
  }
  EXPECT_EQ(logins.size(), 3u);
}

TEST(SessionStore, TouchKeepsAliveUntilIdleTimeout) {
  ManualClock clock(1000 * kSecond);
  SessionOptions o;
  o.idle_timeout = std::chrono::minutes(30);
  o.absolute_timeout = std::chrono::hours(10);
  SessionStore store(clock, o);
  Session s;
  s.principal.sub = "alice";
  auto id = store.Create(s);
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 5; ++i) {
    clock.Set(clock.Now() + 29 * 60 * kSecond);
    auto t = store.Touch(*id);
    ASSERT_TRUE(t.session.has_value()) << i;
    EXPECT_EQ(t.session->principal.sub, "alice");
  }
  clock.Set(clock.Now() + 30 * 60 * kSecond);
  auto t = store.Touch(*id);
  EXPECT_FALSE(t.session.has_value());
  EXPECT_TRUE(t.expired);
  // Reported once: afterwards the cookie is just unknown.
  EXPECT_FALSE(store.Touch(*id).expired);
}

TEST(SessionStore, AbsoluteTimeoutEndsAnActiveSession) {
  ManualClock clock(1000 * kSecond);
  SessionOptions o;
  o.idle_timeout = std::chrono::minutes(30);
  o.absolute_timeout = std::chrono::hours(1);
  SessionStore store(clock, o);
  auto id = store.Create(Session{});
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 5; ++i) {
    clock.Set(clock.Now() + 10 * 60 * kSecond);
    EXPECT_TRUE(store.Touch(*id).session.has_value());
  }
  clock.Set(clock.Now() + 10 * 60 * kSecond);
  EXPECT_TRUE(store.Touch(*id).expired);
}

TEST(SessionStore, NewIdEachSignInRemoveAndRefreshDue) {
  ManualClock clock(1000 * kSecond);
  SessionStore store(clock, SessionOptions{});
  Session s;
  s.access_expires = clock.Now() + 60 * kSecond;
  auto a = store.Create(s);
  auto b = store.Create(s);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(store.RefreshDue(clock.Now() + 30 * kSecond).size(), 0u);
  auto due = store.RefreshDue(clock.Now() + 61 * kSecond);
  ASSERT_EQ(due.size(), 2u);
  Session refreshed = due[0].session;
  refreshed.principal.sub = "renewed";
  EXPECT_TRUE(store.Update(due[0].cookie_hash, refreshed));
  EXPECT_TRUE(store.Remove(*a).has_value());
  EXPECT_FALSE(store.Remove(*a).has_value());
  EXPECT_FALSE(store.Touch(*a).session.has_value());
  store.RemoveByHash(Sha256Hex(*b));
  EXPECT_EQ(store.size(), 0u);
  EXPECT_FALSE(store.Update(due[0].cookie_hash, refreshed));
}

TEST(SessionStore, KeepsOnlyHashesAndStaysBounded) {
  ManualClock clock(1000 * kSecond);
  SessionOptions o;
  o.max_sessions = 4;
  SessionStore store(clock, o);
  for (int i = 0; i < 20; ++i) {
    clock.Set(clock.Now() + kSecond);
    ASSERT_TRUE(store.Create(Session{}).ok());
  }
  EXPECT_EQ(store.size(), 4u);
}

}  // namespace
}  // namespace ordertrace::auth
