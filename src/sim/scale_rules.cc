#include "sim/scale_rules.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/values.h"
#include "journey/rules/rules.h"

namespace ordertrace::sim {
namespace {

// Divides the duration held by `node` (a scalar like "30m") by `k`, in place.
Status ScaleNode(YAML::Node node, const std::string& key, double k) {
  auto d = ParseDuration(node.as<std::string>());
  if (!d.ok()) return Status::InvalidArgument(key + ": " + d.status().message());
  if (d->count() == 0) return Status::Ok();
  const double scaled = std::round(static_cast<double>(d->count()) / k);
  if (scaled < 1) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: %s scaled by %g is below 1ms; use a smaller --time-scale",
                  key.c_str(), node.as<std::string>().c_str(), k);
    return Status::InvalidArgument(buf);
  }
  node = FormatDuration(std::chrono::milliseconds(static_cast<int64_t>(scaled)));
  return Status::Ok();
}

}  // namespace

Result<std::string> ScaleRules(std::string_view yaml, std::string_view file_name,
                               double time_scale) {
  if (!(time_scale > 0) || !std::isfinite(time_scale)) {
    return Status::InvalidArgument("--time-scale must be a positive number");
  }
  // The file must be valid rules first: its errors read as the gateway's.
  if (auto rules = journey::ParseRules(yaml, file_name); !rules.ok()) return rules.status();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {  // ParseRules accepted it, so not expected
    return Status::InvalidArgument(std::string(file_name) + ": " + e.what());
  }
  if (root["expect"] && root["expect"].IsMap()) {
    for (auto stage : root["expect"]) {
      if (!stage.second.IsMap()) continue;
      for (const char* key : {"within", "heartbeat", "within_receipt", "within_processing"}) {
        if (!stage.second[key]) continue;
        const std::string path = "expect." + stage.first.as<std::string>() + "." + key;
        if (Status s = ScaleNode(stage.second[key], path, time_scale); !s.ok()) return s;
      }
    }
  }
  if (root["messages"] && root["messages"].IsMap() && root["messages"]["processed_within"]) {
    if (Status s = ScaleNode(root["messages"]["processed_within"], "messages.processed_within",
                             time_scale);
        !s.ok()) {
      return s;
    }
  }
  if (root["grace"]) {
    if (Status s = ScaleNode(root["grace"], "grace", time_scale); !s.ok()) return s;
  }
  YAML::Emitter out;
  out << root;
  char header[512];
  std::snprintf(header, sizeof header,
                "# %.*s with every duration divided by %g (ordertrace-sim scale-rules): for the\n"
                "# gateway, while ordertrace-sim runs the original with --time-scale %g.\n",
                static_cast<int>(file_name.size()), file_name.data(), time_scale, time_scale);
  std::string text = std::string(header) + out.c_str() + "\n";
  if (auto check = journey::ParseRules(text, "scaled rules"); !check.ok()) {
    return Status::InvalidArgument("the scaled rules are not valid: " + check.status().message());
  }
  return text;
}

}  // namespace ordertrace::sim
