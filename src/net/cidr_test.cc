#include "net/cidr.h"

#include <gtest/gtest.h>

namespace ordertrace::net {
namespace {

IpAddress Ip(std::string_view text) {
  auto ip = IpAddress::Parse(text);
  EXPECT_TRUE(ip.ok()) << text;
  return ip.ok() ? *ip : IpAddress{};
}

std::string CidrError(std::string_view text) {
  auto c = Cidr::Parse(text);
  EXPECT_FALSE(c.ok()) << text;
  return c.ok() ? "" : c.status().message();
}

TEST(CidrTest, ParsesIpv4AndIpv6NetworksAndSingleAddresses) {
  auto a = Cidr::Parse("10.0.0.0/8");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(a->network.v4);
  EXPECT_EQ(a->prefix, 8);
  EXPECT_EQ(a->ToString(), "10.0.0.0/8");
  auto b = Cidr::Parse(" 2001:db8::/32 ");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->network.v4);
  EXPECT_EQ(b->ToString(), "2001:db8::/32");
  auto one = Cidr::Parse("192.168.1.7");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->prefix, 32);
  auto loop6 = Cidr::Parse("::1");
  ASSERT_TRUE(loop6.ok());
  EXPECT_EQ(loop6->prefix, 128);
  auto all = Cidr::Parse("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->Contains(Ip("203.0.113.9")));
  EXPECT_FALSE(all->Contains(Ip("2001:db8::1")));  // IPv4 only
}

TEST(CidrTest, ContainsChecksThePrefixBitByBit) {
  auto c = Cidr::Parse("172.16.0.0/12");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->Contains(Ip("172.16.0.1")));
  EXPECT_TRUE(c->Contains(Ip("172.31.255.255")));
  EXPECT_FALSE(c->Contains(Ip("172.32.0.0")));
  EXPECT_FALSE(c->Contains(Ip("172.15.255.255")));
  auto v6 = Cidr::Parse("fd00::/8");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Contains(Ip("fd12:3456::1")));
  EXPECT_FALSE(v6->Contains(Ip("fe80::1")));
  EXPECT_FALSE(v6->Contains(Ip("10.0.0.1")));
}

TEST(CidrTest, Ipv4MappedIpv6IsNormalisedToIpv4) {
  auto ip = IpAddress::Parse("::ffff:10.1.2.3");
  ASSERT_TRUE(ip.ok());
  EXPECT_TRUE(ip->v4);
  EXPECT_EQ(ip->ToString(), "10.1.2.3");
  auto net4 = Cidr::Parse("10.0.0.0/8");
  ASSERT_TRUE(net4.ok());
  EXPECT_TRUE(net4->Contains(*ip));
  // A mapped network in the config is the IPv4 network.
  auto mapped = Cidr::Parse("::ffff:10.0.0.0/104");
  ASSERT_TRUE(mapped.ok()) << mapped.status().message();
  EXPECT_TRUE(mapped->network.v4);
  EXPECT_EQ(mapped->ToString(), "10.0.0.0/8");
  EXPECT_TRUE(mapped->Contains(Ip("10.200.0.1")));
}

TEST(CidrTest, ErrorsSayWhatIsWrong) {
  EXPECT_NE(CidrError("10.0.0/8").find("expected an IPv4 or IPv6 network"), std::string::npos);
  EXPECT_NE(CidrError("localhost").find("expected an IPv4 or IPv6 network"), std::string::npos);
  EXPECT_NE(CidrError("").find("expected"), std::string::npos);
  EXPECT_NE(CidrError("10.0.0.0/33").find("must be 0 to 32 (IPv4)"), std::string::npos);
  EXPECT_NE(CidrError("fd00::/129").find("must be 0 to 128 (IPv6)"), std::string::npos);
  EXPECT_NE(CidrError("10.0.0.0/").find("prefix length"), std::string::npos);
  EXPECT_NE(CidrError("10.0.0.0/8x").find("prefix length"), std::string::npos);
  EXPECT_NE(CidrError("10.0.0.0/-1").find("prefix length"), std::string::npos);
  EXPECT_EQ(CidrError("10.1.2.3/8"),
            "'10.1.2.3/8' has address bits set after the /8 prefix: did you mean 10.0.0.0/8?");
  EXPECT_NE(CidrError("fe80::1%eth0").find("expected"), std::string::npos);
  EXPECT_NE(CidrError(std::string(200, '1')).find("expected"), std::string::npos);
}

TEST(CidrTest, SetParsesAllOrNamesTheBadEntry) {
  auto set = CidrSet::Parse({"10.0.0.0/8", "::1"});
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->Contains("10.9.9.9"));
  EXPECT_TRUE(set->Contains("::1"));
  EXPECT_TRUE(set->Contains("::ffff:10.0.0.1"));
  EXPECT_FALSE(set->Contains("11.0.0.1"));
  EXPECT_FALSE(set->Contains("not an address"));
  auto bad = CidrSet::Parse({"10.0.0.0/8", "300.0.0.0/8"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'300.0.0.0/8'"), std::string::npos);
}

TEST(CidrTest, GrpcPeers) {
  uint16_t port = 0;
  auto v4 = ParseGrpcPeer("ipv4:127.0.0.1:50051", &port);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->ToString(), "127.0.0.1");
  EXPECT_EQ(port, 50051);
  auto v6 = ParseGrpcPeer("ipv6:[::1]:443", &port);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ToString(), "::1");
  EXPECT_EQ(port, 443);
  auto mapped = ParseGrpcPeer("ipv6:[::ffff:192.0.2.1]:80");
  ASSERT_TRUE(mapped.ok());
  EXPECT_TRUE(mapped->v4);
  EXPECT_FALSE(ParseGrpcPeer("unix:/tmp/sock").ok());
  EXPECT_FALSE(ParseGrpcPeer("ipv4:garbage").ok());
  EXPECT_FALSE(ParseGrpcPeer("ipv6:[::1").ok());
}

TEST(CidrTest, ForwardedClientIsTheRightMostUntrustedHop) {
  auto proxies = CidrSet::Parse({"10.0.0.0/8"});
  ASSERT_TRUE(proxies.ok());
  // client, then two proxies of ours
  auto c = ForwardedClient({"203.0.113.7, 10.0.0.5", "10.0.0.6"}, *proxies);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->ToString(), "203.0.113.7");
  // A spoofed left part is not believed: the right-most untrusted hop wins.
  auto spoofed = ForwardedClient({"1.2.3.4, 198.51.100.9"}, *proxies);
  ASSERT_TRUE(spoofed.ok());
  EXPECT_EQ(spoofed->ToString(), "198.51.100.9");
  // Ports and brackets as some proxies write them.
  auto ported = ForwardedClient({"[2001:db8::5]:4711"}, *proxies);
  ASSERT_TRUE(ported.ok());
  EXPECT_EQ(ported->ToString(), "2001:db8::5");
  auto v4port = ForwardedClient({"198.51.100.1:8080"}, *proxies);
  ASSERT_TRUE(v4port.ok());
  EXPECT_EQ(v4port->ToString(), "198.51.100.1");
  // Every hop trusted: the left-most.
  auto inner = ForwardedClient({"10.1.1.1, 10.2.2.2"}, *proxies);
  ASSERT_TRUE(inner.ok());
  EXPECT_EQ(inner->ToString(), "10.1.1.1");
  EXPECT_EQ(ForwardedClient({"unknown"}, *proxies).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ForwardedClient({" , "}, *proxies).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ForwardedClient({}, *proxies).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ordertrace::net
