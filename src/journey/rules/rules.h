// Lifecycle rules: the stages of an order, what each stage expects next and by when, and how
// third-party spans are recognised.  A YAML file (config/rules.example.yaml is the default
// lifecycle, documented in docs/rules.md):
//
//   entity: {key: order.id}
//   stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED]
//   expect:
//     SUBMITTED:        {next: PRICE_CALCULATED, within: 30m, next_by: mes, heartbeat: 5m,
//                        received_by: mes, within_receipt: 2m}
//     PRICE_CALCULATED: {processed_by: crm, within_processing: 5m, next: APPROVED, within: 24h,
//                        next_by: crm, severity: critical}
//     ...
//   messages: {processed_within: 2m}   # any publish for an order must be processed in time
//   grace: 30s                         # exporters are late; never flag before this
//   mappings:                          # recognise spans of services we cannot change
//     - {service: mes, span: "publish price.calculated", stage: PRICE_CALCULATED,
//        order_id_from: messaging.message.conversation_id}
//
// Errors name the file, the line and the problem ("rules.yaml:7: expect.SUBMITTED.next:
// unknown stage 'PRICE_CALC' (stages are SUBMITTED, ...)"); a gateway refuses to start on them.
//
// Thread-safety: immutable values; share as std::shared_ptr<const Rules>.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "journey/types.h"

namespace ordertrace::journey {

struct StageRule {
  std::string name;
  // The next milestone expected and its deadline, counted from entering this stage.  Reaching
  // `next` or any later stage satisfies it.  -1: none.
  int next = -1;
  Duration within{0};
  // The service expected to reach `next` (for the diagnosis: "expected from"); "" unknown, and
  // then the last service that acted on the order is named.
  std::string next_by;
  // While in this stage, a heartbeat span (ordertrace.heartbeat=true) at least this often,
  // counted from entering the stage and then from the latest heartbeat.  0: none.
  Duration heartbeat{0};
  // A span from this service (any operation) must start after the stage's milestone span
  // started, within the given time.  "": none.
  std::string received_by;
  Duration within_receipt{0};
  std::string processed_by;
  Duration within_processing{0};
  // The severity label of the alert for an order stuck in this stage (Alertmanager routes on
  // it): a lowercase word like critical, warning or info.
  std::string severity = "warning";

  // A stage with no expectation at all ends the journey (CLOSED).
  bool terminal() const {
    return next < 0 && heartbeat.count() == 0 && received_by.empty() && processed_by.empty();
  }
};

// Recognises a span that does not carry order.stage itself (a third-party service's span).
// Every non-empty condition must hold; the first matching rule wins.
struct MappingRule {
  std::string service;  // resource service.name, exact; "" any
  std::string span;     // span name: exact, or a prefix when it ends with '*'; "" any
  std::vector<std::pair<std::string, std::string>> attributes;  // span attribute == value
  // What the span means:
  std::string stage;               // the milestone it reaches ("" none)
  std::string order_id_from;       // attribute holding the order id when the entity key is absent
  std::optional<StepStatus> step;  // order.step.status to assume when the span has none
  bool heartbeat = false;          // treat it as a heartbeat
  int line = 0;                    // where it was defined (for messages)
};

struct Rules {
  std::string entity_key = std::string(kOrderIdKey);
  std::vector<StageRule> stages;  // in lifecycle order
  // Any published message of an order must be processed within this.  0: off.
  Duration message_processed_within{0};
  // Added to every deadline before an order is flagged: exporters batch and arrive late.
  Duration grace{30000};
  std::vector<MappingRule> mappings;
  std::string source = "built-in default";  // file name, or "built-in default"

  // Index of a stage by name (exact), or -1.
  int StageIndex(std::string_view name) const;
  // Services named by received_by / processed_by, each once, in rule order.
  std::vector<std::string> WatchedServices() const;
};

// The request's lifecycle, used when no rules file is configured; identical to
// config/rules.example.yaml (a test keeps them equal):
//   SUBMITTED             → PRICE_CALCULATED within 30m, heartbeat every 5m, received by mes in 2m
//                           (alert severity critical; every other stage warning)
//   PRICE_CALCULATED      → processed by crm in 5m; APPROVED within 24h
//   APPROVED              → MANUFACTURING_STARTED within 4h, received by mes in 10m
//   MANUFACTURING_STARTED → SHIPPED within 5d, heartbeat every 2h
//   SHIPPED               → CLOSED within 24h
//   CLOSED                (terminal)
//   messages processed within 2m, grace 30s
Rules DefaultRules();

// Parses and validates YAML rules.  `file_name` is used in messages only.
Result<Rules> ParseRules(std::string_view yaml, std::string_view file_name);
Result<Rules> LoadRules(const std::string& path);

}  // namespace ordertrace::journey
