#include "alert/alert.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace ordertrace::alert {
namespace {

using nlohmann::json;

void PutIfSet(json& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

}  // namespace

Alert BrokerUnreachableAlert(const std::string& broker, const std::string& error, Nanos since) {
  Alert a;
  a.system = kBrokerUnreachable;
  a.labels = {{"broker", broker}};
  a.severity = "critical";
  a.starts_at = since;
  a.summary =
      "RabbitMQ at " + broker + " unreachable since " + Rfc3339(since, false) + ": " + error;
  a.description =
      "The gateway cannot read RabbitMQ's management API at " + broker + " (" + error +
      "). Messages between the services may not be delivered; orders waiting on a message hop "
      "will be flagged as stuck, and their diagnosis names this outage. Check the broker "
      "node (rabbitmqctl status) and the network between the gateway and the broker.";
  return a;
}

std::string AlertmanagerBody(const std::vector<Alert>& alerts) {
  json out = json::array();
  for (const Alert& a : alerts) {
    if (!a.system.empty()) {
      json labels = {{"alertname", a.alertname()}, {"severity", a.severity}};
      for (const auto& [k, v] : a.labels) labels[k] = v;
      json annotations = json::object();
      PutIfSet(annotations, "summary", a.summary);
      PutIfSet(annotations, "description", a.description);
      PutIfSet(annotations, "runbook_url", a.runbook_url);
      json item = {
          {"labels", labels}, {"annotations", annotations}, {"startsAt", Rfc3339(a.starts_at)}};
      if (a.resolved) item["endsAt"] = Rfc3339(a.ends_at);
      out.push_back(std::move(item));
      continue;
    }
    json labels = {{"alertname", a.alertname()},
                   {"stage", a.stage},
                   {"service", a.service},
                   {"severity", a.severity}};
    if (!a.storm) labels["order_id"] = a.order_id;
    json annotations = json::object();
    PutIfSet(annotations, "summary", a.summary);
    PutIfSet(annotations, "description", a.description);
    PutIfSet(annotations, "ui_url", a.ui_url);
    PutIfSet(annotations, "jaeger_url", a.jaeger_url());
    PutIfSet(annotations, "jaeger_trace_url", a.jaeger_trace_url());
    PutIfSet(annotations, "runbook_url", a.runbook_url);
    if (!a.storm) {
      PutIfSet(annotations, "kind", a.kind);
    } else {
      annotations["count"] = std::to_string(a.count);
      PutIfSet(annotations, "example_order_id", a.example_order_id);
    }
    json item = {
        {"labels", labels}, {"annotations", annotations}, {"startsAt", Rfc3339(a.starts_at)}};
    // While firing, no endsAt: Alertmanager keeps the alert for its resolve_timeout after
    // each receipt, and the dispatcher re-sends well within it.
    if (a.resolved) item["endsAt"] = Rfc3339(a.ends_at);
    if (!a.jaeger_url().empty()) item["generatorURL"] = a.jaeger_url();
    out.push_back(std::move(item));
  }
  return out.dump();
}

std::string WebhookBody(const Alert& a) {
  if (!a.system.empty()) {
    json labels = json::object();
    for (const auto& [k, v] : a.labels) labels[k] = v;
    json j = {{"version", "1"},
              {"event", a.resolved ? "resolved" : "firing"},
              {"alertname", a.alertname()},
              {"severity", a.severity},
              {"labels", labels},
              {"summary", a.summary},
              {"description", a.description},
              {"starts_at", Rfc3339(a.starts_at)},
              {"ends_at", a.resolved ? json(Rfc3339(a.ends_at)) : json(nullptr)}};
    if (!a.runbook_url.empty()) j["runbook_url"] = a.runbook_url;
    return j.dump();
  }
  json j = {{"version", "1"},
            {"event", a.resolved ? "resolved" : "firing"},
            {"alertname", a.alertname()},
            {"stage", a.stage},
            {"service", a.service},
            {"severity", a.severity},
            {"summary", a.summary},
            {"description", a.description},
            {"starts_at", Rfc3339(a.starts_at)},
            {"ends_at", a.resolved ? json(Rfc3339(a.ends_at)) : json(nullptr)},
            {"jaeger_search_link",
             a.jaeger_search_link.empty() ? json(nullptr) : json(a.jaeger_search_link)},
            {"jaeger_links", a.jaeger_links},
            {"ui_url", a.ui_url.empty() ? json(nullptr) : json(a.ui_url)}};
  if (!a.runbook_url.empty()) j["runbook_url"] = a.runbook_url;
  if (a.storm) {
    j["count"] = a.count;
    j["example_order_id"] = a.example_order_id;
    return j.dump();
  }
  j["order_id"] = a.order_id;
  j["kind"] = a.kind;
  json d = {{"expected", a.expected},
            {"expected_stage", a.expected_stage},
            {"in_stage_seconds", a.in_stage_seconds},
            {"allowed_seconds", a.allowed_seconds},
            {"stage_since", a.stage_since != 0 ? json(Rfc3339(a.stage_since)) : json(nullptr)},
            {"deadline", a.deadline != 0 ? json(Rfc3339(a.deadline)) : json(nullptr)}};
  if (!a.last_span_service.empty() || !a.last_span_name.empty()) {
    d["last_span"] = {{"service", a.last_span_service},
                      {"name", a.last_span_name},
                      {"status", a.last_span_status},
                      {"error", a.last_span_error}};
  } else {
    d["last_span"] = nullptr;
  }
  json hops = json::array();
  for (const auto& h : a.open_hops) {
    hops.push_back({{"message_id", h.message_id},
                    {"exchange", h.exchange},
                    {"routing_key", h.routing_key},
                    {"queue", h.queue},
                    {"published_by", h.send_service},
                    {"published_at", Rfc3339(h.published_at)}});
  }
  d["open_hops"] = std::move(hops);
  d["heartbeat"] = {
      {"expected", a.heartbeat_expected},
      {"alive", a.heartbeat_alive},
      {"last", a.last_heartbeat != 0 ? json(Rfc3339(a.last_heartbeat)) : json(nullptr)}};
  j["diagnosis"] = std::move(d);
  return j.dump();
}

std::string HmacSha256Hex(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

}  // namespace ordertrace::alert
