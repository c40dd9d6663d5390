// TracerOptionsFromEnv: the standard OpenTelemetry SDK variables.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lib/internal.h"
#include "ordertrace/tracer.h"

namespace ordertrace {

namespace internal {

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int h = hex(in[i + 1]), l = hex(in[i + 2]);
    if (h < 0 || l < 0) return false;
    out->push_back(static_cast<char>(h * 16 + l));
    i += 2;
  }
  return true;
}

}  // namespace internal

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "k=v,k2=v2", percent-decoded; malformed members are skipped.
std::vector<std::pair<std::string, std::string>> ParseList(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    std::string_view member = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    const size_t eq = member.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key, value;
    if (!internal::PercentDecode(Trim(member.substr(0, eq)), &key) ||
        !internal::PercentDecode(Trim(member.substr(eq + 1)), &value) || key.empty()) {
      continue;
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

bool ParseDouble(std::string_view s, double* out) {
  s = Trim(s);
  if (s.empty()) return false;
  std::string copy(s);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return false;
  *out = v;
  return true;
}

}  // namespace

TracerOptions TracerOptionsFromEnv(const GetEnv& getenv_fn) {
  auto get = [&](const char* name) -> std::string_view {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v ? Trim(v) : std::string_view();
  };
  TracerOptions o;
  if (Lower(get("OTEL_SDK_DISABLED")) == "true") o.disabled = true;

  // Resource: OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME wins for service.name.
  for (auto& kv : ParseList(get("OTEL_RESOURCE_ATTRIBUTES"))) {
    if (kv.first == "service.name") {
      o.service_name = std::move(kv.second);
    } else {
      o.resource_attributes.push_back(std::move(kv));
    }
  }
  if (auto name = get("OTEL_SERVICE_NAME"); !name.empty()) o.service_name = std::string(name);

  if (auto ep = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); !ep.empty()) {
    o.exporter.endpoint = std::string(ep);
  } else if (auto base = get("OTEL_EXPORTER_OTLP_ENDPOINT"); !base.empty()) {
    std::string url(base);
    if (url.back() != '/') url.push_back('/');
    o.exporter.endpoint = url + "v1/traces";
  }
  o.exporter.headers = ParseList(get("OTEL_EXPORTER_OTLP_HEADERS"));
  // TLS files (https:// endpoints): the signal-specific variable wins over the general one, as
  // the OTLP exporter specification says of every option.
  auto traces_or_general = [&](const char* traces, const char* general) {
    const std::string_view v = get(traces);
    return std::string(v.empty() ? get(general) : v);
  };
  o.exporter.certificate_file =
      traces_or_general("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
  o.exporter.client_certificate_file = traces_or_general(
      "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
  o.exporter.client_key_file =
      traces_or_general("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY");
  if (auto t = get("OTEL_EXPORTER_OTLP_TIMEOUT"); !t.empty()) {
    int64_t ms = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
    if (ec == std::errc() && p == t.data() + t.size() && ms > 0) {
      o.exporter.timeout = std::chrono::milliseconds(ms);
    }
  }

  // Batch span processor (OpenTelemetry SDK environment variables, "Batch Span Processor"):
  // OTEL_BSP_SCHEDULE_DELAY in milliseconds, the sizes in spans.  A batch larger than the queue
  // is not allowed: the batch size is capped at the queue size, as the specification says.
  auto positive = [&](const char* name, int64_t* out) {
    const std::string_view t = get(name);
    if (t.empty()) return false;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size() || v <= 0) return false;
    *out = v;
    return true;
  };
  int64_t v = 0;
  if (positive("OTEL_BSP_SCHEDULE_DELAY", &v)) o.schedule_delay = std::chrono::milliseconds(v);
  if (positive("OTEL_BSP_MAX_QUEUE_SIZE", &v)) o.max_queue_size = static_cast<size_t>(v);
  if (positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v)) {
    o.max_export_batch_size = static_cast<size_t>(v);
  }
  o.max_export_batch_size = std::min(o.max_export_batch_size, o.max_queue_size);

  const std::string sampler = Lower(get("OTEL_TRACES_SAMPLER"));
  bool ratio_sampler = false;
  if (sampler == "always_on") {
    o.sampler = Sampler::kAlwaysOn;
  } else if (sampler == "always_off") {
    o.sampler = Sampler::kAlwaysOff;
  } else if (sampler == "traceidratio") {
    o.sampler = Sampler::kTraceIdRatio;
    ratio_sampler = true;
  } else if (sampler == "parentbased_always_on") {
    o.sampler = Sampler::kParentBasedAlwaysOn;
  } else if (sampler == "parentbased_always_off") {
    o.sampler = Sampler::kParentBasedAlwaysOff;
  } else if (sampler == "parentbased_traceidratio") {
    o.sampler = Sampler::kParentBasedTraceIdRatio;
    ratio_sampler = true;
  }
  if (ratio_sampler) {
    o.sampler_ratio = 1.0;
    double r = 0;
    if (ParseDouble(get("OTEL_TRACES_SAMPLER_ARG"), &r) && r >= 0.0 && r <= 1.0) {
      o.sampler_ratio = r;
    }
  }
  return o;
}

}  // namespace ordertrace
