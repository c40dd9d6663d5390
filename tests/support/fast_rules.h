// Lifecycle rules of the request with every deadline in seconds, for the end-to-end tests that
// run the reference pipeline (tests/e2e/critical_points_test.cc, tests/ui/ui_browser_test.cc):
// a test then runs in about 20 s.  The sims pace healthy steps at 0.3 x these deadlines
// (docs/sim.md).  As in the request's rules (receipt 2m, heartbeat 5m), the MES's receipt is due
// before its first heartbeat, so an order whose message never reached the MES is "not
// received", not merely "silent".
//
// Thread-safety: a constant.
#pragma once

namespace ordertrace::testing_support {

inline constexpr char kFastLifecycleRules[] =
    R"(stages: [SUBMITTED, PRICE_CALCULATED, APPROVED, MANUFACTURING_STARTED, SHIPPED, CLOSED]
expect:
  SUBMITTED:             {next: PRICE_CALCULATED, within: 4s, next_by: mes, heartbeat: 3s, received_by: mes, within_receipt: 2s}
  PRICE_CALCULATED:      {processed_by: crm, within_processing: 2s, next: APPROVED, within: 4s, next_by: crm}
  APPROVED:              {next: MANUFACTURING_STARTED, within: 4s, next_by: mes, received_by: mes, within_receipt: 2s}
  MANUFACTURING_STARTED: {next: SHIPPED, within: 4s, next_by: mes, heartbeat: 2s}
  SHIPPED:               {next: CLOSED, within: 4s, next_by: crm}
messages: {processed_within: 2s}
grace: 1s
)";

}  // namespace ordertrace::testing_support
