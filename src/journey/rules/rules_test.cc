#include "journey/rules/rules.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ordertrace::journey {
namespace {

using namespace std::chrono_literals;

// The message of rules that must not load.
std::string ErrorOf(std::string_view yaml) {
  auto r = ParseRules(yaml, "rules.yaml");
  if (r.ok()) return "<loaded>";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

// Rules with the six default stages and `expect` as given (indented by two spaces).
std::string WithExpect(std::string_view expect) {
  return "stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, "
         "CLOSED]\nexpect:\n" +
         std::string(expect);
}

const char* const kStageList =
    "(stages are SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED)";

void ExpectSameRules(const Rules& a, const Rules& b) {
  EXPECT_EQ(a.entity_key, b.entity_key);
  EXPECT_EQ(a.message_processed_within, b.message_processed_within);
  EXPECT_EQ(a.grace, b.grace);
  ASSERT_EQ(a.stages.size(), b.stages.size());
  for (size_t i = 0; i < a.stages.size(); ++i) {
    SCOPED_TRACE(a.stages[i].name);
    EXPECT_EQ(a.stages[i].name, b.stages[i].name);
    EXPECT_EQ(a.stages[i].next, b.stages[i].next);
    EXPECT_EQ(a.stages[i].within, b.stages[i].within);
    EXPECT_EQ(a.stages[i].heartbeat, b.stages[i].heartbeat);
    EXPECT_EQ(a.stages[i].received_by, b.stages[i].received_by);
    EXPECT_EQ(a.stages[i].within_receipt, b.stages[i].within_receipt);
    EXPECT_EQ(a.stages[i].processed_by, b.stages[i].processed_by);
    EXPECT_EQ(a.stages[i].within_processing, b.stages[i].within_processing);
    EXPECT_EQ(a.stages[i].severity, b.stages[i].severity);
  }
  ASSERT_EQ(a.mappings.size(), b.mappings.size());
  for (size_t i = 0; i < a.mappings.size(); ++i) {
    EXPECT_EQ(a.mappings[i].service, b.mappings[i].service);
    EXPECT_EQ(a.mappings[i].span, b.mappings[i].span);
    EXPECT_EQ(a.mappings[i].attributes, b.mappings[i].attributes);
    EXPECT_EQ(a.mappings[i].stage, b.mappings[i].stage);
    EXPECT_EQ(a.mappings[i].order_id_from, b.mappings[i].order_id_from);
    EXPECT_EQ(a.mappings[i].step, b.mappings[i].step);
    EXPECT_EQ(a.mappings[i].heartbeat, b.mappings[i].heartbeat);
  }
}

std::string ExamplePath() {
  return std::string(ORDERTRACE_SOURCE_DIR) + "/config/rules.example.yaml";
}

TEST(RulesTest, DefaultLifecycle) {
  const Rules r = DefaultRules();
  EXPECT_EQ(r.source, "built-in default");
  EXPECT_EQ(r.entity_key, "order.id");
  ASSERT_EQ(r.stages.size(), 6u);
  const StageRule& submitted = r.stages[0];
  EXPECT_EQ(submitted.name, "SUBMITTED");
  EXPECT_EQ(submitted.next, 1);
  EXPECT_EQ(submitted.within, 30min);
  EXPECT_EQ(submitted.heartbeat, 5min);
  EXPECT_EQ(submitted.received_by, "mes");
  EXPECT_EQ(submitted.within_receipt, 2min);
  const StageRule& price = r.stages[1];
  EXPECT_EQ(price.name, "PRICE_CALCULATED");
  EXPECT_EQ(price.processed_by, "crm");
  EXPECT_EQ(price.within_processing, 5min);
  EXPECT_EQ(price.next, 2);
  EXPECT_EQ(price.within, 24h);
  EXPECT_EQ(price.heartbeat, 0ms);
  const StageRule& approved = r.stages[2];
  EXPECT_EQ(approved.name, "APPROVED");
  EXPECT_EQ(approved.next, 3);
  EXPECT_EQ(approved.within, 4h);
  EXPECT_EQ(approved.received_by, "mes");
  EXPECT_EQ(approved.within_receipt, 10min);
  const StageRule& manufacturing = r.stages[3];
  EXPECT_EQ(manufacturing.name, "MANUFACTURING_STARTED");
  EXPECT_EQ(manufacturing.next, 4);
  EXPECT_EQ(manufacturing.within, 24h * 5);
  EXPECT_EQ(manufacturing.heartbeat, 2h);
  const StageRule& shipped = r.stages[4];
  EXPECT_EQ(shipped.name, "SHIPPED");
  EXPECT_EQ(shipped.next, 5);
  EXPECT_EQ(shipped.within, 24h);
  EXPECT_EQ(r.stages[5].name, "CLOSED");
  for (size_t i = 0; i < 5; ++i) EXPECT_FALSE(r.stages[i].terminal()) << i;
  EXPECT_TRUE(r.stages[5].terminal());
  EXPECT_EQ(r.message_processed_within, 2min);
  EXPECT_EQ(r.grace, 30s);
  EXPECT_TRUE(r.mappings.empty());
}

TEST(RulesTest, DefaultRulesEqualTheExampleFile) {
  auto r = LoadRules(ExamplePath());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->source, ExamplePath());
  ExpectSameRules(*r, DefaultRules());
}

// The commented-out mappings of the example are valid too.
TEST(RulesTest, ExampleMappingsParseWhenUncommented) {
  std::ifstream in(ExamplePath());
  ASSERT_TRUE(in);
  std::string text, line;
  bool in_mappings = false;
  while (std::getline(in, line)) {
    if (line == "mappings: []") {
      text += "mappings:\n";
      in_mappings = true;
      continue;
    }
    if (in_mappings && line.rfind("#  ", 0) == 0) line = line.substr(1);
    text += line + "\n";
  }
  auto r = ParseRules(text, "rules.example.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->mappings.size(), 4u);
  EXPECT_EQ(r->mappings[0].span, "publish price.calculated");
  EXPECT_EQ(r->mappings[0].stage, "PRICE_CALCULATED");
  EXPECT_EQ(r->mappings[2].span, "publish manufacturing.*");
  EXPECT_TRUE(r->mappings[2].heartbeat);
  EXPECT_EQ(r->mappings[3].step, StepStatus::kFail);
}

TEST(RulesTest, MinimalFileTakesDefaultsForTheRest) {
  auto r =
      ParseRules("stages: [OPEN, DONE]\nexpect:\n  OPEN: {next: DONE, within: 1h}\n", "min.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->source, "min.yaml");
  EXPECT_EQ(r->entity_key, "order.id");
  EXPECT_EQ(r->grace, 30s);
  EXPECT_EQ(r->message_processed_within, 0ms);
  ASSERT_EQ(r->stages.size(), 2u);
  EXPECT_EQ(r->stages[0].next, 1);
  EXPECT_EQ(r->stages[0].within, 1h);
  EXPECT_TRUE(r->stages[1].terminal());
}

TEST(RulesTest, ZeroGraceAndMessagesOff) {
  auto r = ParseRules(
      "entity: {key: request.id}\nstages: [A]\ngrace: 0\nmessages: {processed_within: off}\n",
      "r.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->entity_key, "request.id");
  EXPECT_EQ(r->grace, 0ms);
  EXPECT_EQ(r->message_processed_within, 0ms);
  EXPECT_TRUE(r->stages[0].terminal());
}

TEST(RulesTest, MappingsParse) {
  auto r = ParseRules(R"(stages: [SUBMITTED, PRICE_CALCULATED]
mappings:
  - service: mes
    span: "publish price.calculated"
    stage: PRICE_CALCULATED
    order_id_from: messaging.message.conversation_id
  - {service: mes, span: "deliver *", attributes: {messaging.system: rabbitmq, retry: 3},
     step: retry}
  - span: heartbeat
    heartbeat: yes
)",
                      "m.yaml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->mappings.size(), 3u);
  const MappingRule& a = r->mappings[0];
  EXPECT_EQ(a.service, "mes");
  EXPECT_EQ(a.span, "publish price.calculated");
  EXPECT_EQ(a.stage, "PRICE_CALCULATED");
  EXPECT_EQ(a.order_id_from, "messaging.message.conversation_id");
  EXPECT_FALSE(a.step.has_value());
  EXPECT_FALSE(a.heartbeat);
  EXPECT_EQ(a.line, 3);
  const MappingRule& b = r->mappings[1];
  EXPECT_EQ(b.span, "deliver *");
  ASSERT_EQ(b.attributes.size(), 2u);
  EXPECT_EQ(b.attributes[0], (std::pair<std::string, std::string>{"messaging.system", "rabbitmq"}));
  EXPECT_EQ(b.attributes[1], (std::pair<std::string, std::string>{"retry", "3"}));
  EXPECT_EQ(b.step, StepStatus::kRetry);
  EXPECT_EQ(b.stage, "");
  EXPECT_EQ(b.line, 7);
  const MappingRule& c = r->mappings[2];
  EXPECT_EQ(c.service, "");
  EXPECT_TRUE(c.heartbeat);
  EXPECT_EQ(c.line, 9);
}

TEST(RulesTest, StageIndexAndWatchedServices) {
  const Rules r = DefaultRules();
  EXPECT_EQ(r.StageIndex("SUBMITTED"), 0);
  EXPECT_EQ(r.StageIndex("CLOSED"), 5);
  EXPECT_EQ(r.StageIndex("closed"), -1);  // exact
  EXPECT_EQ(r.StageIndex(""), -1);
  EXPECT_EQ(r.WatchedServices(), (std::vector<std::string>{"mes", "crm"}));

  auto custom = ParseRules(WithExpect("  SUBMITTED: {processed_by: erp, within_processing: 1m}\n"
                                      "  APPROVED: {received_by: mes, within_receipt: 1m,\n"
                                      "             processed_by: erp, within_processing: 2m}\n"),
                           "r.yaml");
  ASSERT_TRUE(custom.ok()) << custom.status().ToString();
  EXPECT_EQ(custom->WatchedServices(), (std::vector<std::string>{"erp", "mes"}));
  EXPECT_TRUE(Rules{}.WatchedServices().empty());
}

TEST(RulesTest, NamesOfEnums) {
  EXPECT_STREQ(StepStatusName(StepStatus::kUnset), "");
  EXPECT_STREQ(StepStatusName(StepStatus::kOk), "OK");
  EXPECT_STREQ(StepStatusName(StepStatus::kFail), "FAIL");
  EXPECT_STREQ(StepStatusName(StepStatus::kTimeout), "TIMEOUT");
  EXPECT_STREQ(StepStatusName(StepStatus::kRetry), "RETRY");
  EXPECT_EQ(ParseStepStatus("ok"), StepStatus::kOk);
  EXPECT_EQ(ParseStepStatus("Fail"), StepStatus::kFail);
  EXPECT_EQ(ParseStepStatus("TIMEOUT"), StepStatus::kTimeout);
  EXPECT_EQ(ParseStepStatus("retry"), StepStatus::kRetry);
  for (const char* bad : {"", "UNSET", "failed", " OK"}) {
    EXPECT_FALSE(ParseStepStatus(bad).has_value()) << bad;
  }
  EXPECT_STREQ(HopRoleName(HopRole::kNone), "");
  EXPECT_STREQ(HopRoleName(HopRole::kSend), "send");
  EXPECT_STREQ(HopRoleName(HopRole::kProcess), "process");
  EXPECT_STREQ(StuckKindName(StuckKind::kNone), "");
  EXPECT_STREQ(StuckKindName(StuckKind::kNextOverdue), "next_overdue");
  EXPECT_STREQ(StuckKindName(StuckKind::kNotReceived), "not_received");
  EXPECT_STREQ(StuckKindName(StuckKind::kNotProcessed), "not_processed");
  EXPECT_STREQ(StuckKindName(StuckKind::kSilent), "silent");
  EXPECT_STREQ(StuckKindName(StuckKind::kMessageUnprocessed), "message_unprocessed");
}

TEST(RulesTest, FileErrors) {
  auto r = LoadRules("/nonexistent/rules.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "cannot read rules file '/nonexistent/rules.yaml': No such file or directory");
  r = LoadRules(std::filesystem::temp_directory_path().string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is a directory"), std::string::npos);
}

TEST(RulesTest, DocumentErrors) {
  for (const char* empty : {"", "\n", "# nothing\n", "~\n"}) {
    EXPECT_EQ(ErrorOf(empty),
              "rules.yaml: the rules file is empty; it needs at least `stages` (see "
              "config/rules.example.yaml)")
        << empty;
  }
  EXPECT_EQ(ErrorOf("\n- SUBMITTED\n- CLOSED\n"),
            "rules.yaml:2: expected a mapping of keys at the top level (entity, stages, expect, "
            "messages, grace, mappings)");
  EXPECT_EQ(ErrorOf("stages: [A\n"), ErrorOf("stages: [A\n"));  // stable
  EXPECT_EQ(ErrorOf("stages: [A\n").rfind("rules.yaml:", 0), 0u);
  EXPECT_NE(ErrorOf("stages: [A\n").find("invalid YAML: "), std::string::npos);
  EXPECT_EQ(ErrorOf("# lifecycle\ngrace: 1s\n"),
            "rules.yaml:2: stages: missing: list the lifecycle's stages in order, e.g. "
            "[SUBMITTED, ..., CLOSED]");
}

TEST(RulesTest, UnknownAndDuplicateKeys) {
  EXPECT_EQ(ErrorOf("stages: [A]\nstage: [B]\n"),
            "rules.yaml:2: stage: unknown key (did you mean 'stages'?)");
  EXPECT_EQ(ErrorOf("stages: [A]\ncolour: red\n"),
            "rules.yaml:2: colour: unknown key; known keys here: entity, stages, expect, "
            "messages, grace, mappings");
  EXPECT_EQ(ErrorOf("stages: [A]\ngrace: 1s\ngrace: 2s\n"),
            "rules.yaml:3: grace: duplicate key (first at line 2)");
  EXPECT_EQ(ErrorOf("stages: [A]\nentity: {id: order.id}\n"),
            "rules.yaml:2: entity.id: unknown key; known keys here: key");
  EXPECT_EQ(ErrorOf("stages: [A]\nmessages:\n  processed_witin: 2m\n"),
            "rules.yaml:3: messages.processed_witin: unknown key (did you mean "
            "'processed_within'?)");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n    withinn: 1h\n")),
            "rules.yaml:5: expect.SUBMITTED.withinn: unknown key (did you mean 'within'?)");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED: {next: APPROVED, within: 1h}\n"
                               "  SUBMITTED: {next: SHIPPED, within: 1h}\n")),
            "rules.yaml:4: expect.SUBMITTED: duplicate key (first at line 3)");
}

TEST(RulesTest, StagesErrors) {
  EXPECT_EQ(ErrorOf("stages: []\n"), "rules.yaml:1: stages: expected at least one stage");
  EXPECT_EQ(ErrorOf("grace: 1s\nstages: SUBMITTED\n"),
            "rules.yaml:2: stages: expected a list of stage names in lifecycle order, like "
            "[SUBMITTED, ..., CLOSED]");
  EXPECT_EQ(ErrorOf("stages:\n  - A\n  - B\n  - A\n"),
            "rules.yaml:4: stages[2]: duplicate stage 'A' (first at stages[0])");
  EXPECT_EQ(ErrorOf("stages:\n  - A\n  - \"two words\"\n"),
            "rules.yaml:3: stages[1]: invalid stage name 'two words' (a letter, then letters, "
            "digits, '_', '-' or '.'; at most 64)");
  EXPECT_EQ(ErrorOf("stages: [A, 1B]\n"),
            "rules.yaml:1: stages[1]: invalid stage name '1B' (a letter, then letters, digits, "
            "'_', '-' or '.'; at most 64)");
  EXPECT_EQ(ErrorOf("stages:\n  - A\n  - {B: 1}\n"),
            "rules.yaml:3: stages[1]: expected a stage name");
}

TEST(RulesTest, ExpectErrors) {
  EXPECT_EQ(
      ErrorOf(WithExpect("  SUBMITTED: {next: SHIPPED, within: 1h}\n"
                         "  PRICE_CALC: {next: APPROVED, within: 1h}\n")),
      std::string("rules.yaml:4: expect.PRICE_CALC: unknown stage 'PRICE_CALC' ") + kStageList);
  EXPECT_EQ(
      ErrorOf(WithExpect("  SUBMITTED:\n    next: PRICE_CALC\n    within: 30m\n")),
      std::string("rules.yaml:4: expect.SUBMITTED.next: unknown stage 'PRICE_CALC' ") + kStageList);
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED:\n    next: SUBMITTED\n    within: 30m\n")),
            "rules.yaml:4: expect.APPROVED.next: 'SUBMITTED' is not after APPROVED in stages "
            "(next must be a later stage)");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED:\n    next: APPROVED\n    within: 30m\n")),
            "rules.yaml:4: expect.APPROVED.next: 'APPROVED' is not after APPROVED in stages "
            "(next must be a later stage)");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED: SHIPPED\n")),
            "rules.yaml:3: expect.APPROVED: expected a mapping (next, within, next_by, heartbeat, "
            "received_by, within_receipt, processed_by, within_processing, severity)");
  EXPECT_EQ(ErrorOf("stages: [A]\nexpect: [A]\n"),
            "rules.yaml:2: expect: expected a mapping of stage names to expectations");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED:\n    next:\n    within: 30m\n")),
            "rules.yaml:4: expect.APPROVED.next: expected a value");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED:\n    next: [SHIPPED]\n    within: 30m\n")),
            "rules.yaml:4: expect.APPROVED.next: expected a single value, got a list");
}

TEST(RulesTest, Severity) {
  auto rules = ParseRules(
      WithExpect("  APPROVED: {next: SHIPPED, within: 1h, severity: page-now}\n"), "rules.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  EXPECT_EQ(rules->stages[static_cast<size_t>(rules->StageIndex("APPROVED"))].severity, "page-now");
  EXPECT_EQ(rules->stages[static_cast<size_t>(rules->StageIndex("SHIPPED"))].severity, "warning");
  EXPECT_EQ(DefaultRules().stages[0].severity, "critical");
  EXPECT_EQ(DefaultRules().stages[1].severity, "warning");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED: {next: SHIPPED, within: 1h, severity: Critical}\n")),
            "rules.yaml:3: expect.APPROVED.severity: expected a lowercase word like critical, "
            "warning or info (an Alertmanager label value), got 'Critical'");
  EXPECT_EQ(ErrorOf(WithExpect("  APPROVED:\n    severity: ''\n")),
            "rules.yaml:4: expect.APPROVED.severity: expected a lowercase word like critical, "
            "warning or info (an Alertmanager label value), got ''");
}

TEST(RulesTest, KeysThatGoTogether) {
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    heartbeat: 5m\n    next_by: mes\n")),
            "rules.yaml:5: expect.SUBMITTED.next_by: needs next (the stage this service is "
            "expected to reach)");
  EXPECT_EQ(
      ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n    within: 1h\n    next_by: \"\"\n")),
      "rules.yaml:6: expect.SUBMITTED.next_by: expected a service name");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    heartbeat: 5m\n    within: 30m\n")),
            "rules.yaml:5: expect.SUBMITTED.within: needs next (the stage expected within this "
            "time)");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n")),
            "rules.yaml:4: expect.SUBMITTED.next: needs within (the deadline for reaching it)");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    within_receipt: 2m\n")),
            "rules.yaml:4: expect.SUBMITTED.within_receipt: needs received_by (the service that "
            "must pick the order up)");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    heartbeat: 1m\n    received_by: mes\n")),
            "rules.yaml:5: expect.SUBMITTED.received_by: needs within_receipt (how soon the "
            "service must pick the order up)");
  EXPECT_EQ(ErrorOf(WithExpect("  PRICE_CALCULATED:\n    processed_by: crm\n")),
            "rules.yaml:4: expect.PRICE_CALCULATED.processed_by: needs within_processing (how "
            "soon the service must process the stage)");
  EXPECT_EQ(ErrorOf(WithExpect("  PRICE_CALCULATED:\n    within_processing: 5m\n")),
            "rules.yaml:4: expect.PRICE_CALCULATED.within_processing: needs processed_by (the "
            "service that must process the stage)");
}

TEST(RulesTest, DurationErrors) {
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n    within: 30 minutes\n")),
            "rules.yaml:5: expect.SUBMITTED.within: expected a duration like 500ms, 30s, 2m, 1h "
            "or 5d, got '30 minutes'");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n    within: 0s\n")),
            "rules.yaml:5: expect.SUBMITTED.within: expected a duration above zero, got '0s'");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    heartbeat: 0\n")),
            "rules.yaml:4: expect.SUBMITTED.heartbeat: expected a duration above zero, got '0'");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED: {received_by: mes, within_receipt: -2m}\n")),
            "rules.yaml:3: expect.SUBMITTED.within_receipt: expected a duration like 500ms, 30s, "
            "2m, 1h or 5d, got '-2m'");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    next: APPROVED\n    within: 30m\n"
                               "    heartbeat: 30m\n")),
            "rules.yaml:6: expect.SUBMITTED.heartbeat: must be shorter than within (30m), got "
            "30m");
  EXPECT_EQ(ErrorOf(WithExpect("  SUBMITTED:\n    heartbeat: 2h\n    next: APPROVED\n"
                               "    within: 90m\n")),
            "rules.yaml:4: expect.SUBMITTED.heartbeat: must be shorter than within (90m), got 2h");
  EXPECT_EQ(ErrorOf("stages: [A]\ngrace: -1s\n"),
            "rules.yaml:2: grace: expected a duration like 500ms, 30s, 2m, 1h or 5d, got '-1s'");
  EXPECT_EQ(ErrorOf("stages: [A]\nmessages:\n  processed_within: soon\n"),
            "rules.yaml:3: messages.processed_within: expected a duration like 500ms, 30s, 2m, "
            "1h or 5d, got 'soon'");
}

TEST(RulesTest, AtMostFourWatchedServices) {
  std::string yaml = "stages: [S0, S1, S2, S3, S4]\nexpect:\n";
  for (int i = 0; i < 4; ++i) {
    yaml += "  S" + std::to_string(i) + ": {received_by: svc" + std::to_string(i) +
            ", within_receipt: 1m}\n";
  }
  ASSERT_TRUE(ParseRules(yaml, "r.yaml").ok());
  EXPECT_EQ(ParseRules(yaml, "r.yaml")->WatchedServices().size(), 4u);
  // Watching the same service again is fine; a fifth is not.
  ASSERT_TRUE(
      ParseRules(yaml + "  S4: {processed_by: svc0, within_processing: 1m}\n", "r.yaml").ok());
  EXPECT_EQ(ErrorOf(yaml + "  S4:\n    processed_by: svc4\n    within_processing: 1m\n"),
            "rules.yaml:8: expect.S4.processed_by: at most 4 services may be watched by "
            "received_by/processed_by; 'svc4' would be the 5th (svc0, svc1, svc2, svc3, svc4)");
}

TEST(RulesTest, EntityErrors) {
  EXPECT_EQ(ErrorOf("stages: [A]\nentity:\n  key: \"\"\n"),
            "rules.yaml:3: entity.key: expected the attribute that holds the order id, like "
            "order.id");
  EXPECT_EQ(ErrorOf("stages: [A]\nentity:\n  key:\n"),
            "rules.yaml:3: entity.key: expected the attribute that holds the order id, like "
            "order.id");
  EXPECT_EQ(ErrorOf("stages: [A]\nentity: order.id\n"),
            "rules.yaml:2: entity: expected a mapping (key)");
}

TEST(RulesTest, MappingErrors) {
  const std::string head = "stages: [SUBMITTED, PRICE_CALCULATED]\nmappings:\n";
  EXPECT_EQ(ErrorOf(head + "  - {service: mes, span: x, stage: PRICE_CALC}\n"),
            "rules.yaml:3: mappings[0].stage: unknown stage 'PRICE_CALC' (stages are SUBMITTED, "
            "PRICE_CALCULATED)");
  EXPECT_EQ(ErrorOf(head + "  - service: mes\n    stage: SUBMITTED\n  - servce: mes\n"
                           "    stage: SUBMITTED\n"),
            "rules.yaml:5: mappings[1].servce: unknown key (did you mean 'service'?)");
  EXPECT_EQ(ErrorOf(head + "  - {service: mes, step: DONE}\n"),
            "rules.yaml:3: mappings[0].step: expected OK, FAIL, TIMEOUT or RETRY, got 'DONE'");
  EXPECT_EQ(ErrorOf(head + "  - {stage: SUBMITTED}\n"),
            "rules.yaml:3: mappings[0]: needs at least one condition (service, span or "
            "attributes): it would match every span");
  EXPECT_EQ(ErrorOf(head + "\n  - service: mes\n    span: \"publish *\"\n"),
            "rules.yaml:4: mappings[0]: needs at least one effect (stage, order_id_from, step or "
            "heartbeat: true)");
  EXPECT_EQ(ErrorOf(head + "  - {service: mes, heartbeat: false}\n"),
            "rules.yaml:3: mappings[0]: needs at least one effect (stage, order_id_from, step or "
            "heartbeat: true)");
  EXPECT_EQ(ErrorOf(head + "  - {service: mes, heartbeat: sometimes}\n"),
            "rules.yaml:3: mappings[0].heartbeat: expected true or false, got 'sometimes'");
  EXPECT_EQ(ErrorOf(head + "  - service: mes\n    attributes: [a, b]\n    stage: SUBMITTED\n"),
            "rules.yaml:4: mappings[0].attributes: expected a mapping of attribute names to "
            "values, like {messaging.system: rabbitmq}");
  EXPECT_EQ(ErrorOf(head + "  - service: mes\n    attributes:\n      a: 1\n      b: [1, 2]\n"
                           "    stage: SUBMITTED\n"),
            "rules.yaml:6: mappings[0].attributes.b: expected a single value (the attribute must "
            "equal it)");
  EXPECT_EQ(ErrorOf(head + "  - {service: mes, attributes: {}, stage: SUBMITTED}\n"),
            "rules.yaml:3: mappings[0].attributes: expected at least one attribute");
  EXPECT_EQ(ErrorOf(head + "  - {span: \"publish *.x\", stage: SUBMITTED}\n"),
            "rules.yaml:3: mappings[0].span: '*' may only end a span name (a prefix, like "
            "\"publish *\"), got 'publish *.x'");
  EXPECT_EQ(ErrorOf(head + "  - {service: \"\", stage: SUBMITTED}\n"),
            "rules.yaml:3: mappings[0].service: expected a value");
  EXPECT_EQ(ErrorOf(head + "  - mes\n"),
            "rules.yaml:3: mappings[0]: expected a mapping (service, span, attributes, stage, "
            "order_id_from, step, heartbeat)");
  EXPECT_EQ(ErrorOf(head + "  service: mes\n"),
            "rules.yaml:2: mappings: expected a list of mappings, like - {service: mes, span: "
            "\"publish *\", stage: ...}");
}

}  // namespace
}  // namespace ordertrace::journey
