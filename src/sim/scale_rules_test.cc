#include "sim/scale_rules.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "journey/rules/rules.h"

namespace ordertrace::sim {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const journey::StageRule& Stage(const journey::Rules& r, const std::string& name) {
  return r.stages[static_cast<size_t>(r.StageIndex(name))];
}

TEST(SimScaleRules, TheRequestsLifecycleSixtyTimesFaster) {
  const std::string file = std::string(ORDERTRACE_SOURCE_DIR) + "/config/rules.example.yaml";
  auto scaled = ScaleRules(ReadFile(file), file, 60);
  ASSERT_TRUE(scaled.ok()) << scaled.status().message();
  EXPECT_NE(scaled->find("divided by 60"), std::string::npos);
  auto rules = journey::ParseRules(*scaled, "scaled");
  ASSERT_TRUE(rules.ok()) << rules.status().message() << "\n" << *scaled;
  auto original = journey::ParseRules(ReadFile(file), file);
  ASSERT_TRUE(original.ok());
  // 30m → 30s, 5m → 5s, 2m → 2s, 5d → 2h, 24h → 24m; grace 30s → 500ms.
  const auto& submitted = Stage(*rules, "SUBMITTED");
  EXPECT_EQ(submitted.within, 30s);
  EXPECT_EQ(submitted.heartbeat, 5s);
  EXPECT_EQ(submitted.within_receipt, 2s);
  EXPECT_EQ(Stage(*rules, "PRICE_CALCULATED").within_processing, 5s);
  EXPECT_EQ(Stage(*rules, "MANUFACTURING_STARTED").within, 2h);
  EXPECT_EQ(Stage(*rules, "SHIPPED").within, 24min);
  EXPECT_EQ(rules->message_processed_within, 2s);
  EXPECT_EQ(rules->grace, 500ms);
  // Everything else is kept: stages, services, severities.
  EXPECT_EQ(rules->stages.size(), original->stages.size());
  for (size_t i = 0; i < rules->stages.size(); ++i) {
    EXPECT_EQ(rules->stages[i].name, original->stages[i].name);
    EXPECT_EQ(rules->stages[i].next_by, original->stages[i].next_by);
    EXPECT_EQ(rules->stages[i].received_by, original->stages[i].received_by);
    EXPECT_EQ(rules->stages[i].severity, original->stages[i].severity);
  }
}

TEST(SimScaleRules, RoundsToMillisecondsAndRefusesWhatVanishes) {
  const std::string yaml =
      "stages: [A, B]\n"
      "expect:\n"
      "  A: {next: B, within: 10s}\n"
      "grace: 1s\n";
  auto scaled = ScaleRules(yaml, "r.yaml", 3);
  ASSERT_TRUE(scaled.ok()) << scaled.status().message();
  auto rules = journey::ParseRules(*scaled, "scaled");
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(Stage(*rules, "A").within, 3333ms);
  EXPECT_EQ(rules->grace, 333ms);

  auto vanished = ScaleRules(yaml, "r.yaml", 5000);
  ASSERT_FALSE(vanished.ok());
  EXPECT_EQ(vanished.status().message(),
            "grace: 1s scaled by 5000 is below 1ms; use a smaller --time-scale");
  EXPECT_FALSE(ScaleRules(yaml, "r.yaml", 0).ok());
  EXPECT_FALSE(ScaleRules(yaml, "r.yaml", -2).ok());
  // A broken rules file fails as the gateway would say it.
  auto broken = ScaleRules("stages: [A]\nexpect:\n  A: {within: soon}\n", "bad.yaml", 10);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("bad.yaml:3"), std::string::npos)
      << broken.status().message();
}

}  // namespace
}  // namespace ordertrace::sim
