#include "cli/query.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/api_access.h"
#include "common/url.h"
#include "net/http_client.h"

namespace ordertrace::cli {
namespace {

using nlohmann::json;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;
constexpr int kExitStuck = 4;

std::string Str(const json& j, const char* key, const char* none = "-") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return none;
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// Asks the API; prints the reason and returns false when it cannot, or when it refuses
// (401, 403, 503: what the user can do about it).
// GET `target`, or POST `post_body` (JSON) to it when non-empty.
bool Fetch(const QueryOptions& o, const ApiClient& client, const std::string& target, int* status,
           json* body, const std::string& post_body = {}) {
  auto reply = post_body.empty() ? client.Get(target) : client.PostJson(target, post_body);
  if (!reply.ok()) {
    std::fprintf(stderr, "ordertrace: cannot reach the gateway API at %s: %s\n", o.api.c_str(),
                 reply.status().message().c_str());
    return false;
  }
  *status = reply.value().status;
  if (std::string why = ExplainRefusal(*status, client.has_token()); !why.empty()) {
    std::fprintf(stderr, "ordertrace: the gateway answered %d: %s\n", *status, why.c_str());
    return false;
  }
  *body = json::parse(reply.value().body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    std::fprintf(stderr,
                 "ordertrace: the gateway answered %d with a body that is not JSON: %.200s\n",
                 *status, reply.value().body.c_str());
    return false;
  }
  return true;
}

void PrintDiagnosis(const json& d) {
  std::printf("\n  %s\n\n", Str(d, "summary").c_str());
  std::printf("  expected:   %s", Str(d, "expected").c_str());
  // "a span from mes (receipt)" already names the service; "milestone SHIPPED" does not.
  const std::string service = Str(d, "expected_service");
  if (!d["expected_service"].is_null() &&
      Str(d, "expected").find("from " + service) == std::string::npos) {
    std::printf(" from %s", service.c_str());
  }
  std::printf(" (due %s)\n", Str(d, "deadline").c_str());
  const json& last = d["last_span"];
  if (last.is_object()) {
    std::printf("  last span:  %s '%s' %s%s%s at %s\n", Str(last, "service").c_str(),
                Str(last, "operation").c_str(), Str(last, "status").c_str(),
                last["step_status"].is_null() ? "" : (" step " + Str(last, "step_status")).c_str(),
                last["error"].is_null() ? "" : (" (" + Str(last, "error") + ")").c_str(),
                Str(last, "end").c_str());
  }
  const json& hb = d["heartbeat"];
  if (hb.value("expected", false)) {
    std::printf("  heartbeat:  every %gs, last %s: %s\n", hb.value("interval_seconds", 0.0),
                Str(hb, "last", "never").c_str(), hb.value("alive", false) ? "alive" : "SILENT");
  }
  for (const json& h : d["open_hops"]) {
    std::printf(
        "  open hop:   message %s to exchange '%s' routing key '%s' queue %s, published %s\n",
        Str(h, "message_id").c_str(), Str(h, "exchange", "").c_str(),
        Str(h, "routing_key", "").c_str(), Str(h, "queue", "unknown").c_str(),
        Str(h, "published").c_str());
    if (h.contains("broker") && h["broker"].is_string()) {
      std::printf("              broker: %s\n", h["broker"].get<std::string>().c_str());
    }
  }
  if (d.contains("broker") && d["broker"].is_string()) {
    std::printf("  broker:     %s\n", d["broker"].get<std::string>().c_str());
  }
  for (const json& l : d["jaeger_links"])
    std::printf("  trace:      %s\n", l.get<std::string>().c_str());
}

// The "jaeger" member of ?include=jaeger: spans per trace as Jaeger holds them.
void PrintReadBack(const json& r) {
  std::printf("\nfrom Jaeger\n");
  if (!r.is_object()) {
    std::printf("  (no answer)\n");
    return;
  }
  for (const json& t : r.value("traces", json::array())) {
    std::printf("  trace %s  %zu spans\n", Str(t, "trace_id").c_str(),
                t.contains("spans") && t["spans"].is_array() ? t["spans"].size() : size_t{0});
  }
  for (const json& id : r.value("missing", json::array())) {
    std::printf("  trace %s  not in Jaeger (never stored, or gone by its retention)\n",
                id.is_string() ? id.get<std::string>().c_str() : "?");
  }
  for (const json& f : r.value("failed", json::array())) {
    std::printf("  trace %s  failed: %s\n", Str(f, "trace_id").c_str(), Str(f, "error").c_str());
  }
  const json left_out = r.value("left_out", json::array());
  if (!left_out.empty()) {
    std::printf("  %zu older traces not asked for (only the newest are read back)\n",
                left_out.size());
  }
}

}  // namespace

int RunOrder(const QueryOptions& o, const std::string& order_id, bool jaeger) {
  auto client = ApiClient::Make(o.api, o.access);
  if (!client.ok()) {
    std::fprintf(stderr, "ordertrace: %s\n", client.status().message().c_str());
    return kExitUsage;
  }
  int status = 0;
  json j;
  if (!Fetch(o, *client,
             "/api/v1/orders/" + url::PercentEncode(order_id) + (jaeger ? "?include=jaeger" : ""),
             &status, &j)) {
    if (jaeger && status == 403) {
      std::fprintf(stderr,
                   "ordertrace: reading traces back from Jaeger needs the action traces.read "
                   "(Developer and DevOps by default); leave --jaeger out for the journey only\n");
    }
    return kExitFailure;
  }
  if (o.json) std::printf("%s\n", j.dump(2).c_str());
  if (status == 404) {
    if (!o.json) std::fprintf(stderr, "ordertrace: %s\n", Str(j, "error").c_str());
    return kExitNotFound;
  }
  if (status != 200) {
    std::fprintf(stderr, "ordertrace: the gateway answered %d: %s\n", status,
                 Str(j, "error").c_str());
    return kExitFailure;
  }
  if (o.json) return 0;

  std::printf("order %s   stage %s since %s   %s\n", Str(j, "order_id").c_str(),
              Str(j, "stage").c_str(), Str(j, "stage_since").c_str(),
              j.value("stuck", false)    ? ("STUCK (" + Str(j, "stuck_kind") + ")").c_str()
              : j.value("closed", false) ? "closed"
                                         : "on time");
  if (!j["partner"].is_null()) std::printf("  partner %s\n", Str(j, "partner").c_str());
  if (j.contains("jaeger_search_link") && j["jaeger_search_link"].is_string()) {
    std::printf("  traces  %s\n", j["jaeger_search_link"].get<std::string>().c_str());
  }
  if (j["diagnosis"].is_object()) PrintDiagnosis(j["diagnosis"]);
  std::printf("\nmilestones\n");
  for (const json& m : j["milestones"]) {
    std::printf("  %-24s %-22s %-10s trace %s\n", Str(m, "at").c_str(), Str(m, "stage").c_str(),
                Str(m, "service").c_str(), Str(m, "trace_id").c_str());
  }
  std::printf("\nspans (%zu%s)\n", j["spans"].size(),
              j.value("spans_truncated", false) ? ", latest" : "");
  for (const json& s : j["spans"]) {
    std::printf("  %-24s %9.1fms %-10s %-34s %-5s %-7s %s%s\n", Str(s, "start").c_str(),
                s.value("duration_ms", 0.0), Str(s, "service").c_str(), Str(s, "name").c_str(),
                Str(s, "status").c_str(), Str(s, "step_status", "").c_str(),
                Str(s, "stage", "").c_str(),
                s["error"].is_null() ? "" : ("  error: " + Str(s, "error")).c_str());
  }
  if (!j["hops"].empty()) {
    std::printf("\nmessage hops\n");
    for (const json& h : j["hops"]) {
      std::printf("  %-7s %s:%s  published %s by %s, processed %s by %s\n",
                  h.value("open", false) ? "OPEN" : "done", Str(h, "exchange", "").c_str(),
                  Str(h, "routing_key", "").c_str(), Str(h, "published").c_str(),
                  Str(h, "publisher").c_str(), Str(h, "processed").c_str(),
                  Str(h, "processor").c_str());
    }
  }
  if (jaeger) PrintReadBack(j.contains("jaeger") ? j["jaeger"] : json());
  return 0;
}

int RunStuck(const QueryOptions& o, const StuckOptions& s) {
  auto client = ApiClient::Make(o.api, o.access);
  if (!client.ok()) {
    std::fprintf(stderr, "ordertrace: %s\n", client.status().message().c_str());
    return kExitUsage;
  }
  json all = json::array();
  std::string cursor;
  do {
    // A clear partner id goes in a POST body, never in the URL.
    const bool clear_partner = !s.partner.empty() && s.partner.rfind("pse:", 0) != 0;
    std::string target =
        std::string(clear_partner ? "/api/v1/orders/lookup-partner" : "/api/v1/orders") +
        "?stuck=true&limit=" + std::to_string(std::min<size_t>(s.limit - all.size(), 1000));
    if (!s.stage.empty()) target += "&stage=" + url::PercentEncode(s.stage);
    if (!s.service.empty()) target += "&service=" + url::PercentEncode(s.service);
    if (!s.partner.empty() && !clear_partner) target += "&partner=" + url::PercentEncode(s.partner);
    if (!cursor.empty()) target += "&cursor=" + url::PercentEncode(cursor);
    int status = 0;
    json page;
    if (!Fetch(o, *client, target, &status, &page,
               clear_partner ? json{{"partner", s.partner}}.dump() : std::string())) {
      if (clear_partner && status == 403) {
        std::fprintf(stderr,
                     "ordertrace: looking a partner up by its clear id needs the action "
                     "orders.lookup_partner (DevOps by default); give its pseudonym instead\n");
      }
      return kExitFailure;
    }
    if (status != 200) {
      std::fprintf(stderr, "ordertrace: the gateway answered %d: %s\n", status,
                   Str(page, "error").c_str());
      return kExitFailure;
    }
    for (json& order : page["orders"]) all.push_back(std::move(order));
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
  } while (!cursor.empty() && all.size() < s.limit);

  if (o.json) {
    std::printf("%s\n", json{{"orders", all}, {"more", !cursor.empty()}}.dump(2).c_str());
  } else if (all.empty()) {
    std::printf("no stuck orders\n");
  } else {
    std::printf("%-20s %-22s %-14s %-24s %s\n", "ORDER", "STAGE", "MISSED", "STUCK SINCE",
                "SUMMARY");
    for (const json& r : all) {
      std::printf("%-20s %-22s %-14s %-24s %s\n", Str(r, "order_id").c_str(),
                  Str(r, "stage").c_str(), Str(r, "stuck_kind").c_str(),
                  Str(r, "stuck_since").c_str(), Str(r, "summary").c_str());
    }
    if (!cursor.empty()) std::printf("(more: raise --limit)\n");
  }
  return all.empty() ? 0 : kExitStuck;
}

}  // namespace ordertrace::cli
