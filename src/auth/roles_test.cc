#include "auth/roles.h"

#include <gtest/gtest.h>

namespace ordertrace::auth {
namespace {

using nlohmann::json;

RoleMapper Mapper(RoleOptions o = {}) {
  auto m = RoleMapper::Create(std::move(o));
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(m).value();
}

TEST(RoleMapperTest, DefaultClaimLocationsAreUnioned) {
  RoleOptions o;
  o.client = "ordertrace";
  RoleMapper m = Mapper(o);
  EXPECT_EQ(m.Map(json{{"realm_access", {{"roles", {"offline_access", "Developer"}}}}}).roles,
            std::vector<std::string>{"Developer"});
  EXPECT_EQ(m.Map(json{{"resource_access", {{"ordertrace", {{"roles", {"DevOps"}}}}}}}).roles,
            std::vector<std::string>{"DevOps"});
  EXPECT_EQ(m.Map(json{{"roles", {"DevOps"}}, {"groups", {"Developer"}}}).roles,
            (std::vector<std::string>{"Developer", "DevOps"}));
  // Another client's resource_access roles do not count.
  EXPECT_TRUE(m.Map(json{{"resource_access", {{"other", {{"roles", {"DevOps"}}}}}}}).roles.empty());
}

TEST(RoleMapperTest, ExactCaseSensitiveMatchAndOnlyAllowedRoles) {
  RoleMapper m = Mapper();
  EXPECT_TRUE(m.Map(json{{"roles", {"developer", "DEVOPS", "Sales"}}}).roles.empty());
  EXPECT_TRUE(m.Map(json{{"roles", {"Developer "}}}).roles.empty());
  EXPECT_TRUE(m.Map(json::object()).roles.empty());
  // Non-string values are ignored, not stringified.
  EXPECT_TRUE(m.Map(json{{"roles", {1, true, json::object({{"Developer", 1}})}}}).roles.empty());
}

TEST(RoleMapperTest, SingleStringAndUriClaimsAndMappedGroups) {
  RoleOptions o;
  o.claims = {"/role", "/http:~1~1schemas.microsoft.com~1ws~12008~106~1identity~1claims~1role",
              "/groups"};
  o.map = {{"Developer", {"Developer", "1b2c3d4e-0000-4000-8000-000000000001"}},
           {"DevOps", {"DevOps"}}};
  RoleMapper m = Mapper(o);
  EXPECT_EQ(m.Map(json{{"role", "DevOps"}}).roles, std::vector<std::string>{"DevOps"});
  EXPECT_EQ(
      m.Map(json{{"http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "Developer"}})
          .roles,
      std::vector<std::string>{"Developer"});
  EXPECT_EQ(m.Map(json{{"groups", {"1b2c3d4e-0000-4000-8000-000000000001"}}}).roles,
            std::vector<std::string>{"Developer"});
  // The default `/roles` is not read once claims are configured.
  EXPECT_TRUE(m.Map(json{{"roles", {"DevOps"}}}).roles.empty());
}

TEST(RoleMapperTest, EntraGroupsOverageIsFlagged) {
  RoleMapper m = Mapper();
  RoleGrant g = m.Map(json{{"_claim_names", {{"groups", "src1"}}},
                           {"_claim_sources", {{"src1", {{"endpoint", "https://graph"}}}}}});
  EXPECT_TRUE(g.groups_overage);
  EXPECT_TRUE(g.roles.empty());
}

TEST(RoleMapperTest, ActionsPerRole) {
  RoleOptions o;
  o.actions = {{"Developer", {"orders.read", "orders.list", "broker.read"}},
               {"DevOps", {"orders.read", "orders.list", "broker.read", "audit.read"}}};
  RoleMapper m = Mapper(o);
  EXPECT_TRUE(m.Allows({"Developer"}, "orders.read"));
  EXPECT_FALSE(m.Allows({"Developer"}, "audit.read"));
  EXPECT_TRUE(m.Allows({"Developer", "DevOps"}, "audit.read"));
  EXPECT_FALSE(m.Allows({}, "orders.read"));
  RoleMapper d = Mapper();
  for (const char* a : {"orders.read", "orders.list", "broker.read", "traces.read"}) {
    EXPECT_TRUE(d.Allows({"Developer"}, a));
    EXPECT_TRUE(d.Allows({"DevOps"}, a));
  }
  // A clear partner id's lookup: DevOps only.
  EXPECT_FALSE(d.Allows({"Developer"}, "orders.lookup_partner"));
  EXPECT_TRUE(d.Allows({"DevOps"}, "orders.lookup_partner"));
}

TEST(RoleMapperTest, BadPointersAreConfigErrors) {
  for (std::string p : {"roles", "/a~2", ""}) {
    RoleOptions o;
    o.claims = {p};
    EXPECT_FALSE(RoleMapper::Create(o).ok()) << p;
  }
}

}  // namespace
}  // namespace ordertrace::auth
