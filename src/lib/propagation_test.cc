// Propagation tests: W3C Trace Context (the test suite's valid and invalid traceparent/tracestate
// examples), W3C Baggage, and inject/extract round trips over header maps and AMQP tables.
#include "ordertrace/propagation.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace ordertrace {
namespace {

constexpr std::string_view kTid = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kPid = "00f067aa0ba902b7";

std::string Tp(std::string_view version, std::string_view tid, std::string_view pid,
               std::string_view flags) {
  return std::string(version) + "-" + std::string(tid) + "-" + std::string(pid) + "-" +
         std::string(flags);
}

SpanContext SampleContext() {
  SpanContext c;
  EXPECT_TRUE(ParseTraceparent(Tp("00", kTid, kPid, "01"), &c));
  c.remote = false;
  return c;
}

// ---------------------------------------------------------------------------------------------
// traceparent

TEST(Traceparent, ValidVersion00) {
  SpanContext c;
  ASSERT_TRUE(ParseTraceparent(Tp("00", kTid, kPid, "01"), &c));
  EXPECT_TRUE(c.valid());
  EXPECT_TRUE(c.sampled());
  EXPECT_TRUE(c.remote);
  EXPECT_EQ(c.trace_id[0], 0x4b);
  EXPECT_EQ(c.trace_id[15], 0x36);
  EXPECT_EQ(c.span_id[0], 0x00);
  EXPECT_EQ(c.span_id[7], 0xb7);
  EXPECT_EQ(FormatTraceparent(c), Tp("00", kTid, kPid, "01"));

  ASSERT_TRUE(ParseTraceparent(Tp("00", kTid, kPid, "00"), &c));
  EXPECT_FALSE(c.sampled());
  EXPECT_EQ(FormatTraceparent(c), Tp("00", kTid, kPid, "00"));
}

TEST(Traceparent, FlagsKeepKnownBitsOnly) {
  SpanContext c;
  ASSERT_TRUE(ParseTraceparent(Tp("00", kTid, kPid, "ff"), &c));
  EXPECT_TRUE(c.sampled());
  EXPECT_EQ(c.trace_flags, 0x03);
  ASSERT_TRUE(ParseTraceparent(Tp("00", kTid, kPid, "08"), &c));
  EXPECT_EQ(c.trace_flags, 0x00);
}

TEST(Traceparent, OwsTrimmed) {
  SpanContext c;
  EXPECT_TRUE(ParseTraceparent(" \t" + Tp("00", kTid, kPid, "01") + "\t ", &c));
  EXPECT_TRUE(c.valid());
}

TEST(Traceparent, FutureVersions) {
  SpanContext c;
  // test suite: test_traceparent_version_0x01 / 0xcc with extra fields
  EXPECT_TRUE(ParseTraceparent(Tp("01", kTid, kPid, "01"), &c));
  EXPECT_TRUE(ParseTraceparent(Tp("cc", kTid, kPid, "01"), &c));
  EXPECT_TRUE(ParseTraceparent(Tp("cc", kTid, kPid, "01") + "-what-the-future-will-be-like", &c));
  EXPECT_TRUE(c.valid());
  EXPECT_TRUE(c.sampled());
  EXPECT_EQ(FormatTraceparent(c), Tp("00", kTid, kPid, "01"));  // re-emitted as version 00
  // The character after the 00 fields must be '-'.
  EXPECT_FALSE(ParseTraceparent(Tp("cc", kTid, kPid, "01") + ".what-the-future-will-be-like", &c));
  EXPECT_FALSE(c.valid());
  EXPECT_FALSE(ParseTraceparent(Tp("cc", kTid, kPid, "01") + "x", &c));
}

TEST(Traceparent, InvalidExamples) {
  const std::vector<std::string> invalid = {
      "",
      " ",
      "00",
      Tp("ff", kTid, kPid, "01"),                                   // version ff forbidden
      Tp("0", kTid, kPid, "01"),                                    // version too short
      Tp("000", kTid, kPid, "01"),                                  // version too long
      Tp("0x", kTid, kPid, "01"),                                   // non-hex version
      Tp("0A", kTid, kPid, "01"),                                   // upper-case version
      Tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", kPid, "01"),     // upper-case trace-id
      Tp("00", kTid, "00F067AA0BA902B7", "01"),                     // upper-case parent-id
      Tp("00", kTid, kPid, "0A"),                                   // upper-case flags
      Tp("00", "00000000000000000000000000000000", kPid, "01"),     // all-zero trace-id
      Tp("00", kTid, "0000000000000000", "01"),                     // all-zero parent-id
      Tp("00", "4bf92f3577b34da6a3ce929d0e0e473", kPid, "01"),      // trace-id 31 chars
      Tp("00", "4bf92f3577b34da6a3ce929d0e0e47366", kPid, "01"),    // trace-id 33 chars
      Tp("00", kTid, "00f067aa0ba902b", "01"),                      // parent-id 15 chars
      Tp("00", kTid, "00f067aa0ba902b77", "01"),                    // parent-id 17 chars
      Tp("00", kTid, kPid, "1"),                                    // flags 1 char
      Tp("00", kTid, kPid, "011"),                                  // flags 3 chars
      Tp("00", "4bf92f3577b34da6a3ce929d0e0e473g", kPid, "01"),     // non-hex trace-id
      Tp("00", kTid, "00f067aa0ba902bz", "01"),                     // non-hex parent-id
      Tp("00", kTid, kPid, "0g"),                                   // non-hex flags
      Tp("00", kTid, kPid, "01") + "-extra",                        // version 00 with extra data
      Tp("00", kTid, kPid, "01") + "-",                             // version 00 with trailing dash
      Tp("00", kTid, kPid, "01") + "x",                             // version 00 too long
      "00_" + std::string(kTid) + "-" + std::string(kPid) + "-01",  // bad separators
      "00-" + std::string(kTid) + "_" + std::string(kPid) + "-01",
      "00-" + std::string(kTid) + "-" + std::string(kPid) + "_01",
      "00 " + std::string(kTid) + " " + std::string(kPid) + " 01",
      "00-" + std::string(kTid) + "-" + std::string(kPid) + "-01-",
      "00-" + std::string(kTid) + "--" + std::string(kPid) + "-1",
      Tp("00", kTid, kPid, "01").substr(0, 54),
      std::string("00-") + std::string(kTid) + "-" + std::string(kPid) + "-0\x01",
      std::string(55, '-'),
      std::string(55, '0'),
  };
  for (const std::string& h : invalid) {
    SpanContext c;
    c.trace_state = "leftover=1";
    EXPECT_FALSE(ParseTraceparent(h, &c)) << "'" << h << "'";
    EXPECT_FALSE(c.valid()) << h;
    EXPECT_TRUE(c.trace_state.empty());
  }
}

TEST(Traceparent, RandomInputNeverCrashes) {
  std::mt19937 rng(42);
  const std::string base = Tp("00", kTid, kPid, "01");
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      switch (rng() % 3) {
        case 0:
          s[rng() % s.size()] = static_cast<char>(rng() % 256);
          break;
        case 1:
          s.insert(s.begin() + static_cast<long>(rng() % (s.size() + 1)), '-');
          break;
        default:
          if (!s.empty()) s.erase(rng() % s.size(), 1);
      }
    }
    SpanContext c;
    bool ok = ParseTraceparent(s, &c);
    EXPECT_EQ(ok, c.valid());
  }
}

// ---------------------------------------------------------------------------------------------
// tracestate

std::string MembersList(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ",";
    s += "k" + std::to_string(i) + "=v" + std::to_string(i);
  }
  return s;
}

TEST(TraceState, Valid) {
  std::string out;
  EXPECT_TRUE(ParseTraceState("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", &out));
  EXPECT_EQ(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  EXPECT_TRUE(ParseTraceState("foo=1", &out));
  EXPECT_EQ(out, "foo=1");
  EXPECT_TRUE(ParseTraceState("", &out));
  EXPECT_EQ(out, "");
}

TEST(TraceState, OwsAndEmptyMembers) {
  std::string out;
  EXPECT_TRUE(ParseTraceState("  foo=1 ,\tbar=2\t, ,,baz=3 ", &out));
  EXPECT_EQ(out, "foo=1,bar=2,baz=3");
  EXPECT_TRUE(ParseTraceState(",,,", &out));
  EXPECT_EQ(out, "");
  // A value may begin with a space (chr includes 0x20); only the trailing side is OWS.
  EXPECT_TRUE(ParseTraceState("foo= bar", &out));
  EXPECT_EQ(out, "foo= bar");
}

TEST(TraceState, MemberLimit) {
  std::string out;
  EXPECT_TRUE(ParseTraceState(MembersList(32), &out));
  EXPECT_EQ(out, MembersList(32));
  EXPECT_FALSE(ParseTraceState(MembersList(33), &out));
  EXPECT_EQ(out, "");
  // Empty members do not count.
  EXPECT_TRUE(ParseTraceState(MembersList(32) + ",,, ,", &out));
}

TEST(TraceState, Keys) {
  EXPECT_TRUE(IsValidTraceStateKey("foo"));
  EXPECT_TRUE(IsValidTraceStateKey("f0_-*/"));
  EXPECT_TRUE(IsValidTraceStateKey("tenant@system"));
  EXPECT_TRUE(IsValidTraceStateKey("0tenant@sys"));       // tenant may start with a digit
  EXPECT_TRUE(IsValidTraceStateKey("t@s0123456789abc"));  // system: 14 characters
  EXPECT_TRUE(IsValidTraceStateKey("a" + std::string(255, 'b')));
  EXPECT_TRUE(IsValidTraceStateKey(std::string(241, 't') + "@s"));

  EXPECT_FALSE(IsValidTraceStateKey(""));
  EXPECT_FALSE(IsValidTraceStateKey("Foo"));   // upper case
  EXPECT_FALSE(IsValidTraceStateKey("0foo"));  // simple key starts with lcalpha
  EXPECT_FALSE(IsValidTraceStateKey("_foo"));
  EXPECT_FALSE(IsValidTraceStateKey("foo bar"));
  EXPECT_FALSE(IsValidTraceStateKey("foo.bar"));
  EXPECT_FALSE(IsValidTraceStateKey("a" + std::string(256, 'b')));  // 257 chars
  EXPECT_FALSE(IsValidTraceStateKey("@system"));
  EXPECT_FALSE(IsValidTraceStateKey("tenant@"));
  EXPECT_FALSE(IsValidTraceStateKey("tenant@0sys"));        // system starts with lcalpha
  EXPECT_FALSE(IsValidTraceStateKey("t@s0123456789abcd"));  // system: 15 characters
  EXPECT_FALSE(IsValidTraceStateKey(std::string(242, 't') + "@s"));
  EXPECT_FALSE(IsValidTraceStateKey("a@b@c"));
  EXPECT_FALSE(IsValidTraceStateKey("Tenant@system"));
}

TEST(TraceState, Values) {
  EXPECT_TRUE(IsValidTraceStateValue("x"));
  EXPECT_TRUE(IsValidTraceStateValue(" !\"#$%&'()*+-./0~"));
  EXPECT_TRUE(IsValidTraceStateValue(std::string(256, 'v')));
  EXPECT_FALSE(IsValidTraceStateValue(""));
  EXPECT_FALSE(IsValidTraceStateValue(std::string(257, 'v')));
  EXPECT_FALSE(IsValidTraceStateValue("a,b"));
  EXPECT_FALSE(IsValidTraceStateValue("a=b"));
  EXPECT_FALSE(IsValidTraceStateValue("ab "));
  EXPECT_FALSE(IsValidTraceStateValue("a\tb"));
  EXPECT_FALSE(IsValidTraceStateValue("a\x7f"));
  EXPECT_FALSE(IsValidTraceStateValue("caf\xc3\xa9"));
}

TEST(TraceState, InvalidHeadersDropped) {
  const std::vector<std::string> invalid = {
      "foo=1,foo=2",        // duplicate key
      "foo=1,bar=2,foo=3",  // duplicate key
      "foo",                // no '='
      "foo=",               // empty value
      "=bar",               // empty key
      "Foo=1",              // upper-case key
      "foo=1,BAR=2",        // one bad member spoils the header
      "foo=a=b",            // '=' in value
      "foo =1",             // space inside the member before '='
      "foo=1;bar=2",        // not a separator
      "foo=\x01",           // control character
      "te@nant@sys=1",      // two '@'
      "foo=1,," + std::string("x=\x80"),
  };
  for (const std::string& h : invalid) {
    std::string out = "stale";
    EXPECT_FALSE(ParseTraceState(h, &out)) << h;
    EXPECT_EQ(out, "") << h;
  }
}

TEST(TraceState, TruncationBeyond512) {
  // 4 members of 130 characters (key "aN", value 127) and 2 short ones: 4*130+2*5+5 = 535 > 512.
  std::string longv(127, 'v');
  std::string h = "a0=" + longv + ",b=1,a1=" + longv + ",a2=" + longv + ",c=2,a3=" + longv;
  std::string out;
  ASSERT_TRUE(ParseTraceState(h, &out));
  EXPECT_LE(out.size(), kMaxTraceStateLength);
  // The last long member goes first; the short ones stay.
  EXPECT_EQ(out, "a0=" + longv + ",b=1,a1=" + longv + ",a2=" + longv + ",c=2");

  // Only short members: removed from the end.
  std::string many;
  for (int i = 0; i < 32; ++i)
    many += (i ? "," : "") + ("k" + std::to_string(100 + i) + "=" + std::string(14, 'x'));
  ASSERT_GT(many.size(), kMaxTraceStateLength);  // 32*19+31 = 639
  ASSERT_TRUE(ParseTraceState(many, &out));
  EXPECT_LE(out.size(), kMaxTraceStateLength);
  EXPECT_EQ(out, many.substr(0, out.size()));
  EXPECT_EQ(out.size(), 25u * 19 + 24);  // 25 members fit in 512

  // One member of 513 characters (256-character key, 256-character value) cannot fit at all.
  std::string huge = "a" + std::string(255, 'k') + "=" + std::string(256, 'v');
  ASSERT_TRUE(ParseTraceState(huge, &out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(ParseTraceState("x=1," + huge + ",y=2", &out));
  EXPECT_EQ(out, "x=1,y=2");
}

// ---------------------------------------------------------------------------------------------
// Baggage

TEST(Baggage, ParseBasic) {
  Baggage b;
  ASSERT_TRUE(ParseBaggage("userId=alice,serverNode=DF%2028,isProduction=false", &b));
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.Get("userId"), "alice");
  EXPECT_EQ(b.Get("serverNode"), "DF 28");
  EXPECT_EQ(b.Get("isProduction"), "false");
  EXPECT_EQ(b.Get("missing"), std::nullopt);
  EXPECT_EQ(b.entries()[1].key, "serverNode");
}

TEST(Baggage, PercentDecoding) {
  Baggage b;
  ASSERT_TRUE(ParseBaggage("a=%E2%9C%93,b=%3d%2C%3B%25,c=caf%C3%A9", &b));
  EXPECT_EQ(b.Get("a"), "\xE2\x9C\x93");  // U+2713
  EXPECT_EQ(b.Get("b"), "=,;%");
  EXPECT_EQ(b.Get("c"), "caf\xC3\xA9");
  // Invalid UTF-8 after decoding becomes U+FFFD.
  ASSERT_TRUE(ParseBaggage("d=a%FFb,e=%C3", &b));
  EXPECT_EQ(b.Get("d"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(b.Get("e"), "\xEF\xBF\xBD");
  // Bad escapes drop the member.
  ASSERT_TRUE(ParseBaggage("x=%G1,y=%2,z=%,ok=1", &b));
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b.Get("ok"), "1");
}

TEST(Baggage, Properties) {
  Baggage b;
  ASSERT_TRUE(ParseBaggage(
      "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
      &b));
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.entries()[0].properties, "property1;property2");
  EXPECT_EQ(b.Get("key2"), "value2");
  EXPECT_EQ(b.entries()[1].properties, "");
  EXPECT_EQ(b.entries()[2].properties, "propertyKey=propertyValue");
  EXPECT_EQ(FormatBaggage(b),
            "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue");
}

TEST(Baggage, InvalidMembersDropped) {
  Baggage b;
  ASSERT_TRUE(ParseBaggage(
      "good=1,noequals,=nokey,bad key=1,k\"q=1,sp=a b,semi=1;,prop=1;bad prop,quote=\"x\","
      "back=a\\b,ok2=2",
      &b));
  ASSERT_EQ(b.size(), 2u) << FormatBaggage(b);
  EXPECT_EQ(b.Get("good"), "1");
  EXPECT_EQ(b.Get("ok2"), "2");
  EXPECT_FALSE(ParseBaggage("", &b));
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(ParseBaggage(",,, ,", &b));
  EXPECT_FALSE(ParseBaggage("a", &b));
}

TEST(Baggage, EmptyValueAndDuplicates) {
  Baggage b;
  ASSERT_TRUE(ParseBaggage("a=,b=1,a=2", &b));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b.Get("a"), "2");  // the later one wins, in the earlier one's place
  EXPECT_EQ(b.entries()[0].key, "a");
  EXPECT_EQ(FormatBaggage(b), "a=2,b=1");
}

TEST(Baggage, MemberLimit) {
  std::string h;
  for (int i = 0; i < 200; ++i) h += (i ? "," : "") + ("k" + std::to_string(i) + "=v");
  Baggage b;
  ASSERT_TRUE(ParseBaggage(h, &b));
  EXPECT_EQ(b.size(), kMaxBaggageMembers);
  EXPECT_EQ(b.entries().back().key, "k179");
  for (int i = 180; i < 200; ++i) ASSERT_TRUE(b.Set("k" + std::to_string(i), "v"));
  EXPECT_EQ(b.size(), 200u);
  Baggage back;
  ParseBaggage(FormatBaggage(b), &back);
  EXPECT_EQ(back.size(), kMaxBaggageMembers);
}

TEST(Baggage, ByteLimits) {
  // Each member "kNN=" + 1000 bytes; 9 of them exceed 8192 → the 9th is dropped whole.
  std::string h;
  for (int i = 0; i < 9; ++i)
    h += (i ? "," : "") + ("k" + std::to_string(10 + i) + "=" + std::string(1000, 'x'));
  Baggage b;
  ASSERT_TRUE(ParseBaggage(h, &b));
  EXPECT_EQ(b.size(), 8u);
  EXPECT_LE(FormatBaggage(b).size(), kMaxBaggageBytes);
  // A smaller later member still fits.
  ASSERT_TRUE(ParseBaggage(h + ",s=1", &b));
  EXPECT_EQ(b.size(), 9u);
  EXPECT_EQ(b.Get("s"), "1");
  // A member over 4096 bytes is dropped.
  ASSERT_TRUE(ParseBaggage("big=" + std::string(4100, 'x') + ",small=1", &b));
  EXPECT_EQ(b.size(), 1u);
  // Formatting applies the limits too (percent-encoding counts).
  Baggage f;
  ASSERT_TRUE(f.Set("big", std::string(1400, ' ')));  // 4200 bytes encoded
  ASSERT_TRUE(f.Set("small", "1"));
  EXPECT_EQ(FormatBaggage(f), "small=1");
}

TEST(Baggage, SetGetRemoveAndFormat) {
  Baggage b;
  EXPECT_TRUE(b.Set("user", "alice smith"));
  EXPECT_TRUE(b.Set("order", "A-1,2;3=4%", "ttl=60;flag"));
  EXPECT_TRUE(b.Set("user", "bob"));
  EXPECT_FALSE(b.Set("bad key", "x"));
  EXPECT_FALSE(b.Set("", "x"));
  EXPECT_FALSE(b.Set("k", "x", "bad prop"));
  EXPECT_FALSE(b.Set("k", "x", "p;"));
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.Get("user"), "bob");
  std::string f = FormatBaggage(b);
  EXPECT_EQ(f, "user=bob,order=A-1%2C2%3B3=4%25;ttl=60;flag");
  Baggage back;
  ASSERT_TRUE(ParseBaggage(f, &back));
  EXPECT_EQ(back.Get("order"), "A-1,2;3=4%");
  EXPECT_EQ(back.entries()[1].properties, "ttl=60;flag");
  EXPECT_TRUE(b.Remove("user"));
  EXPECT_FALSE(b.Remove("user"));
  EXPECT_EQ(b.size(), 1u);
  b.Clear();
  EXPECT_EQ(FormatBaggage(b), "");
}

TEST(Baggage, Utf8RoundTrip) {
  Baggage b;
  ASSERT_TRUE(b.Set("city", "Z\xC3\xBCrich \xE2\x82\xAC"));
  std::string f = FormatBaggage(b);
  EXPECT_EQ(f, "city=Z%C3%BCrich%20%E2%82%AC");
  Baggage back;
  ASSERT_TRUE(ParseBaggage(f, &back));
  EXPECT_EQ(back.Get("city"), "Z\xC3\xBCrich \xE2\x82\xAC");
}

// ---------------------------------------------------------------------------------------------
// Header maps

TEST(HeaderMap, RoundTrip) {
  SpanContext ctx = SampleContext();
  ctx.trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
  Baggage bag;
  bag.Set("order.id", "ORD-42");
  bag.Set("partner", "acme corp", "src=edi");
  std::map<std::string, std::string> headers{{"content-type", "application/json"}};
  Inject(ctx, &bag, &headers);
  EXPECT_EQ(headers.size(), 4u);
  EXPECT_EQ(headers["traceparent"], Tp("00", kTid, kPid, "01"));
  EXPECT_EQ(headers["tracestate"], ctx.trace_state);
  EXPECT_EQ(headers["baggage"], "order.id=ORD-42,partner=acme%20corp;src=edi");

  SpanContext got;
  Baggage got_bag;
  ASSERT_TRUE(Extract(headers, &got, &got_bag));
  EXPECT_EQ(got.trace_id, ctx.trace_id);
  EXPECT_EQ(got.span_id, ctx.span_id);
  EXPECT_EQ(got.trace_flags, ctx.trace_flags);
  EXPECT_EQ(got.trace_state, ctx.trace_state);
  EXPECT_TRUE(got.remote);
  EXPECT_EQ(got_bag.Get("partner"), "acme corp");
  EXPECT_EQ(got_bag.entries()[1].properties, "src=edi");
}

TEST(HeaderMap, CaseInsensitiveNamesAndReplace) {
  std::map<std::string, std::string> headers{
      {"TraceParent", Tp("00", kTid, kPid, "00")},
      {"TRACESTATE", "foo=bar"},
      {"Baggage", "a=1"},
  };
  SpanContext got;
  Baggage bag;
  ASSERT_TRUE(Extract(headers, &got, &bag));
  EXPECT_FALSE(got.sampled());
  EXPECT_EQ(got.trace_state, "foo=bar");
  EXPECT_EQ(bag.Get("a"), "1");
  // Inject replaces the existing headers, whatever their case.
  Inject(SampleContext(), nullptr, &headers);
  EXPECT_EQ(headers.size(), 3u);
  EXPECT_EQ(headers["TraceParent"], Tp("00", kTid, kPid, "01"));
}

TEST(HeaderMap, InvalidContextInjectsNothing) {
  std::map<std::string, std::string> headers;
  SpanContext invalid;
  invalid.trace_state = "foo=bar";
  Inject(invalid, nullptr, &headers);
  EXPECT_TRUE(headers.empty());
  Baggage bag;
  bag.Set("k", "v");
  Inject(invalid, &bag, &headers);
  EXPECT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers["baggage"], "k=v");
}

TEST(HeaderMap, TracestateOnlyWithValidTraceparent) {
  std::map<std::string, std::string> headers{
      {"traceparent", Tp("00", "00000000000000000000000000000000", kPid, "01")},
      {"tracestate", "foo=bar"},
      {"baggage", "k=v"},
  };
  SpanContext got = SampleContext();
  Baggage bag;
  EXPECT_FALSE(Extract(headers, &got, &bag));
  EXPECT_FALSE(got.valid());
  EXPECT_EQ(got.trace_state, "");
  EXPECT_EQ(bag.Get("k"), "v");  // baggage does not depend on traceparent

  headers["traceparent"] = Tp("00", kTid, kPid, "01");
  headers["tracestate"] = "foo=1,foo=2";  // invalid: dropped, context kept
  ASSERT_TRUE(Extract(headers, &got, nullptr));
  EXPECT_EQ(got.trace_state, "");
  headers.erase("tracestate");
  ASSERT_TRUE(Extract(headers, &got, nullptr));
  EXPECT_EQ(got.trace_state, "");
}

TEST(HeaderMap, MalformedNeverCrash) {
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789abcdefABCDEF-=,; %\t@\"\\\x01\xff";
  for (int i = 0; i < 5000; ++i) {
    std::map<std::string, std::string> headers;
    for (const char* name : {"traceparent", "tracestate", "baggage"}) {
      std::string v;
      std::size_t len = rng() % 80;
      for (std::size_t k = 0; k < len; ++k) v += alphabet[rng() % alphabet.size()];
      headers[name] = v;
    }
    SpanContext c;
    Baggage b;
    bool ok = Extract(headers, &c, &b);
    EXPECT_FALSE(ok);
    EXPECT_FALSE(c.valid());
  }
}

// ---------------------------------------------------------------------------------------------
// AMQP tables

amqp_bytes_t Bytes(const char* s) { return amqp_bytes_t{std::strlen(s), const_cast<char*>(s)}; }

amqp_table_entry_t StringEntry(const char* key, const char* value,
                               uint8_t kind = AMQP_FIELD_KIND_UTF8) {
  amqp_table_entry_t e{};
  e.key = Bytes(key);
  e.value.kind = kind;
  e.value.value.bytes = Bytes(value);
  return e;
}

amqp_table_entry_t IntEntry(const char* key, int32_t v) {
  amqp_table_entry_t e{};
  e.key = Bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I32;
  e.value.value.i32 = v;
  return e;
}

TEST(Amqp, InjectBuildsLongStringTable) {
  SpanContext ctx = SampleContext();
  ctx.trace_state = "foo=bar";
  Baggage bag;
  bag.Set("order.id", "ORD-42");
  AmqpHeaders h;
  Inject(ctx, &bag, h);
  const amqp_table_t& t = h.table();
  ASSERT_EQ(t.num_entries, 3);
  std::map<std::string, std::string> seen;
  for (int i = 0; i < t.num_entries; ++i) {
    const amqp_table_entry_t& e = t.entries[i];
    EXPECT_EQ(e.value.kind, AMQP_FIELD_KIND_UTF8);
    seen[std::string(static_cast<const char*>(e.key.bytes), e.key.len)] =
        std::string(static_cast<const char*>(e.value.value.bytes.bytes), e.value.value.bytes.len);
  }
  EXPECT_EQ(seen["traceparent"], Tp("00", kTid, kPid, "01"));
  EXPECT_EQ(seen["tracestate"], "foo=bar");
  EXPECT_EQ(seen["baggage"], "order.id=ORD-42");

  SpanContext got;
  Baggage got_bag;
  ASSERT_TRUE(Extract(t, &got, &got_bag));
  EXPECT_EQ(got.trace_id, ctx.trace_id);
  EXPECT_EQ(got.span_id, ctx.span_id);
  EXPECT_EQ(got.trace_state, "foo=bar");
  EXPECT_EQ(got_bag.Get("order.id"), "ORD-42");
}

TEST(Amqp, EncodeDecodeThroughLibrabbitmq) {
  // The table as it crosses the wire: amqp_encode_table, then amqp_decode_table into a pool.
  SpanContext ctx = SampleContext();
  Baggage bag;
  bag.Set("user", "a b");
  amqp_table_entry_t app[] = {StringEntry("x-app", "1"), IntEntry("x-retries", 3)};
  AmqpHeaders h(amqp_table_t{2, app});
  Inject(ctx, &bag, h);
  const amqp_table_t& t = h.table();
  ASSERT_EQ(t.num_entries, 4);

  std::vector<char> buf(4096);
  size_t offset = 0;
  ASSERT_EQ(amqp_encode_table(amqp_bytes_t{buf.size(), buf.data()}, const_cast<amqp_table_t*>(&t),
                              &offset),
            AMQP_STATUS_OK);
  // amqp_decode_table reads the 4-byte length prefix too.
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t decoded{};
  size_t read = 0;
  ASSERT_EQ(amqp_decode_table(amqp_bytes_t{offset, buf.data()}, &pool, &decoded, &read),
            AMQP_STATUS_OK);
  ASSERT_EQ(decoded.num_entries, 4);
  SpanContext got;
  Baggage got_bag;
  EXPECT_TRUE(Extract(decoded, &got, &got_bag));
  EXPECT_EQ(got.span_id, ctx.span_id);
  EXPECT_EQ(got_bag.Get("user"), "a b");
  AmqpTableCarrier carrier(decoded);
  EXPECT_EQ(carrier.Get("x-app"), "1");
  EXPECT_EQ(carrier.Get("x-retries"), std::nullopt);  // not a long string
  empty_amqp_pool(&pool);
}

TEST(Amqp, BasicPropertiesThroughLibrabbitmq) {
  // As a publish carries it: amqp_basic_properties_t.headers, encoded and decoded by librabbitmq's
  // own content-header property codec.
  SpanContext ctx = SampleContext();
  ctx.trace_state = "congo=t61rcWkgMzE";
  AmqpHeaders h;
  Inject(ctx, nullptr, h);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.content_type = Bytes("application/json");
  props.headers = h.table();
  std::vector<char> buf(4096);
  int len = amqp_encode_properties(AMQP_BASIC_CLASS, &props, amqp_bytes_t{buf.size(), buf.data()});
  ASSERT_GT(len, 0);
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  void* decoded = nullptr;
  ASSERT_EQ(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                   amqp_bytes_t{static_cast<size_t>(len), buf.data()}, &decoded),
            AMQP_STATUS_OK);
  const auto* got_props = static_cast<const amqp_basic_properties_t*>(decoded);
  ASSERT_TRUE(got_props->_flags & AMQP_BASIC_HEADERS_FLAG);
  SpanContext got;
  EXPECT_TRUE(Extract(got_props->headers, &got, nullptr));
  EXPECT_EQ(got.trace_id, ctx.trace_id);
  EXPECT_EQ(got.span_id, ctx.span_id);
  EXPECT_EQ(got.trace_state, "congo=t61rcWkgMzE");
  empty_amqp_pool(&pool);
}

TEST(Amqp, HandBuiltTableWithUnrelatedHeaders) {
  std::string tp = Tp("00", kTid, kPid, "01");
  amqp_table_entry_t entries[] = {
      StringEntry("content-encoding", "gzip"),
      IntEntry("x-death-count", 2),
      StringEntry("traceparent", tp.c_str(), AMQP_FIELD_KIND_BYTES),  // 'x' also accepted
      StringEntry("tracestate", "vendor@sys=v1"),
      StringEntry("baggage", "tenant=t1"),
      StringEntry("x-order-id", "ORD-1"),
  };
  amqp_table_t table{6, entries};
  SpanContext got;
  Baggage bag;
  ASSERT_TRUE(Extract(table, &got, &bag));
  EXPECT_TRUE(got.sampled());
  EXPECT_EQ(got.trace_state, "vendor@sys=v1");
  EXPECT_EQ(bag.Get("tenant"), "t1");
}

TEST(Amqp, NonStringValuesForOurKeysIgnored) {
  amqp_table_entry_t entries[] = {
      IntEntry("traceparent", 1),
      IntEntry("tracestate", 2),
      IntEntry("baggage", 3),
  };
  entries[2].value.kind = AMQP_FIELD_KIND_TABLE;
  entries[2].value.value.table = amqp_table_t{0, nullptr};
  amqp_table_t table{3, entries};
  SpanContext got;
  Baggage bag;
  EXPECT_FALSE(Extract(table, &got, &bag));
  EXPECT_FALSE(got.valid());
  EXPECT_TRUE(bag.empty());
  // A string entry later in the table is still found.
  std::string tp = Tp("00", kTid, kPid, "01");
  amqp_table_entry_t mixed[] = {IntEntry("traceparent", 1), StringEntry("traceparent", tp.c_str())};
  EXPECT_TRUE(Extract(amqp_table_t{2, mixed}, &got, nullptr));
}

TEST(Amqp, EmptyAndNullTables) {
  SpanContext got;
  Baggage bag;
  EXPECT_FALSE(Extract(amqp_empty_table, &got, &bag));
  EXPECT_FALSE(Extract(amqp_table_t{5, nullptr}, &got, &bag));
  amqp_table_entry_t null_value = StringEntry("traceparent", "");
  null_value.value.value.bytes = amqp_bytes_t{0, nullptr};
  EXPECT_FALSE(Extract(amqp_table_t{1, &null_value}, &got, &bag));
  AmqpHeaders h;
  EXPECT_EQ(h.table().num_entries, 0);
  Inject(SpanContext{}, nullptr, h);
  EXPECT_EQ(h.table().num_entries, 0);
}

TEST(Amqp, BaseTableEntriesReplaced) {
  amqp_table_entry_t base[] = {StringEntry("traceparent", "stale"), StringEntry("keep", "me")};
  AmqpHeaders h(amqp_table_t{2, base});
  Inject(SampleContext(), nullptr, h);
  const amqp_table_t& t = h.table();
  ASSERT_EQ(t.num_entries, 2);
  AmqpTableCarrier c(t);
  EXPECT_EQ(c.Get("keep"), "me");
  EXPECT_EQ(c.Get("traceparent"), Tp("00", kTid, kPid, "01"));
  EXPECT_EQ(h.Get("traceparent"), Tp("00", kTid, kPid, "01"));
}

TEST(Amqp, MalformedNeverCrash) {
  std::mt19937 rng(11);
  for (int i = 0; i < 3000; ++i) {
    std::string v[3];
    for (auto& s : v) {
      std::size_t len = rng() % 70;
      for (std::size_t k = 0; k < len; ++k) s += static_cast<char>(rng() % 256);
    }
    amqp_table_entry_t entries[] = {StringEntry("traceparent", ""), StringEntry("tracestate", ""),
                                    StringEntry("baggage", "")};
    for (int k = 0; k < 3; ++k)
      entries[k].value.value.bytes = amqp_bytes_t{v[k].size(), v[k].data()};
    SpanContext c;
    Baggage b;
    EXPECT_FALSE(Extract(amqp_table_t{3, entries}, &c, &b));
    EXPECT_FALSE(c.valid());
  }
}

}  // namespace
}  // namespace ordertrace
