// Jaeger's own ports are not reachable from outside loopback in the shipped configs (issue 16):
// every `endpoint:` of every deploy/jaeger/*.yaml (a listener: OTLP receivers, query HTTP and
// gRPC, health check, ...) is on 127.0.0.1, ::1 or localhost, and one set from the environment
// (${env:X:-default}) has a loopback default.  Jaeger has no sign-in; the gateway's /jaeger/ is
// the way in (docs/security.md).  Globs the folder, so a config added later is checked too.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace {

struct Endpoint {
  std::string where;  // "memory.yaml: receivers.otlp.protocols.grpc.endpoint"
  std::string value;
};

void Collect(const YAML::Node& node, const std::string& path, const std::string& file,
             std::vector<Endpoint>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      const std::string child = path.empty() ? key : path + "." + key;
      if (key == "endpoint" && kv.second.IsScalar()) {
        out->push_back({file + ": " + child, kv.second.as<std::string>()});
      } else {
        Collect(kv.second, child, file, out);
      }
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      Collect(node[i], path + "[" + std::to_string(i) + "]", file, out);
    }
  }
}

// The address a value listens on: the default of ${env:NAME:-default}, else the value; "" when
// it comes from the environment without a default.
std::string Effective(const std::string& value) {
  if (value.rfind("${", 0) != 0) return value;
  const size_t dash = value.find(":-");
  const size_t close = value.rfind('}');
  if (dash == std::string::npos || close == std::string::npos || close < dash) return "";
  return value.substr(dash + 2, close - dash - 2);
}

// The host of "host:port", "[v6]:port" or "scheme://host:port/...".
std::string HostOf(std::string address) {
  const size_t scheme = address.find("://");
  if (scheme != std::string::npos) address = address.substr(scheme + 3);
  address = address.substr(0, address.find('/'));
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    return close == std::string::npos ? address : address.substr(1, close - 1);
  }
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

bool Loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8, written as an IPv4 address (not a name that starts with "127.").
  return host.rfind("127.", 0) == 0 && std::count(host.begin(), host.end(), '.') == 3 &&
         host.find_first_not_of("0123456789.") == std::string::npos;
}

TEST(JaegerDeployConfigsTest, EveryListenerIsOnLoopback) {
  const std::filesystem::path folder =
      std::filesystem::path(ORDERTRACE_SOURCE_DIR) / "deploy" / "jaeger";
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    const std::string ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 2u) << "expected at least memory.yaml and badger.yaml in " << folder;

  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    YAML::Node root;
    try {
      root = YAML::LoadFile(file);
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << "cannot read: " << e.what();
      continue;
    }
    std::vector<Endpoint> endpoints;
    Collect(root, "", std::filesystem::path(file).filename().string(), &endpoints);
    EXPECT_FALSE(endpoints.empty()) << "no endpoint: at all (every Jaeger listens somewhere)";
    for (const Endpoint& e : endpoints) {
      const std::string address = Effective(e.value);
      EXPECT_FALSE(address.empty())
          << e.where << " = " << e.value << ": set from the environment without a default";
      if (address.empty()) continue;
      EXPECT_TRUE(Loopback(HostOf(address)))
          << e.where << " = " << e.value << ": listens on '" << HostOf(address)
          << "', not loopback (Jaeger has no sign-in: reach it through the gateway's /jaeger/)";
    }
  }
}

TEST(JaegerDeployConfigsTest, TheCheckItselfTellsLoopbackFromTheRest) {
  EXPECT_EQ(Effective("${env:JAEGER_OTLP_GRPC:-127.0.0.1:4317}"), "127.0.0.1:4317");
  EXPECT_EQ(Effective("${env:JAEGER_OTLP_GRPC}"), "");
  EXPECT_EQ(Effective("[::1]:16686"), "[::1]:16686");
  EXPECT_TRUE(Loopback(HostOf("127.0.0.1:4317")));
  EXPECT_TRUE(Loopback(HostOf("[::1]:4317")));
  EXPECT_TRUE(Loopback(HostOf("localhost:4317")));
  EXPECT_FALSE(Loopback(HostOf("0.0.0.0:4317")));
  EXPECT_FALSE(Loopback(HostOf(":4317")));
  EXPECT_FALSE(Loopback(HostOf("[::]:4317")));
  EXPECT_FALSE(Loopback(HostOf("jaeger:4317")));
  EXPECT_FALSE(Loopback(HostOf("127.evil.example:4317")));
  EXPECT_TRUE(Loopback(HostOf("127.0.0.2:4317")));
}

}  // namespace
