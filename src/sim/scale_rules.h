// `ordertrace-sim scale-rules`: a lifecycle rules file with every duration divided by a time
// scale, for the gateway, while the sim runs the original file with the same --time-scale.
// So the request's lifecycle (30-minute calculation, days of manufacturing) runs K times faster
// end to end without writing a second rules file by hand (docs/sim.md, "Pacing and time
// scale").
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ordertrace::sim {

// Parses `yaml` as rules (errors as the gateway reports them, naming `file_name`), divides the
// durations (expect.*.within / heartbeat / within_receipt / within_processing,
// messages.processed_within, grace) by `time_scale` (> 0), rounded to milliseconds, and returns
// the scaled file (YAML, a header comment saying what was scaled from what; other keys as
// they were).  An error when a non-zero duration would scale below 1 ms, or the result is not
// valid rules.
Result<std::string> ScaleRules(std::string_view yaml, std::string_view file_name,
                               double time_scale);

}  // namespace ordertrace::sim
