#include "api/journey_api.h"

#include <charconv>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/text_format.h"
#include "common/url.h"
#include "redact/pseudonym.h"
#include "redact/value_redactor.h"

namespace ordertrace::api {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";
constexpr std::string_view kOrdersPrefix = "/api/v1/orders/";

json TimeOrNull(Nanos t) { return t == 0 ? json(nullptr) : json(Rfc3339(t)); }
json StrOrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

void JsonResponse(net::HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.content_type = kJson;
  res.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  res.headers.emplace_back("Cache-Control", "no-store");
}

void JsonError(net::HttpResponse& res, int status, const std::string& message) {
  JsonResponse(res, status, json{{"error", message}, {"status", status}});
}

const char* OtelStatusName(uint8_t s) { return s == 2 ? "ERROR" : s == 1 ? "OK" : "UNSET"; }

json SpanJson(const journey::SpanRecord& s, std::string_view jaeger_ui) {
  json j{
      {"trace_id", s.trace_id},
      {"span_id", s.span_id},
      {"parent_span_id", StrOrNull(s.parent_span_id)},
      {"service", s.service},
      {"name", s.name},
      {"start", Rfc3339OrEmpty(s.start_ns)},
      {"end", Rfc3339OrEmpty(s.end_ns)},
      {"duration_ms", static_cast<double>(s.end_ns - s.start_ns) / 1e6},
      {"status", OtelStatusName(s.otel_status)},
      {"step_status", s.step == StepStatus::kUnset ? json(nullptr) : json(StepStatusName(s.step))},
      {"error", StrOrNull(s.error)},
      {"stage", StrOrNull(s.stage)},
      {"heartbeat", s.heartbeat},
      {"jaeger_link", journey::JaegerSpanLink(jaeger_ui, s.trace_id, s.span_id)}};
  if (s.hop != journey::HopRole::kNone) {
    j["messaging"] = json{{"operation", journey::HopRoleName(s.hop)},
                          {"message_id", StrOrNull(s.message_id)},
                          {"exchange", s.exchange},
                          {"routing_key", s.routing_key},
                          {"queue", StrOrNull(s.queue)}};
  }
  return j;
}

json HopJson(const journey::Hop& h) {
  return json{{"open", h.open()},
              {"message_id", StrOrNull(h.message_id)},
              {"exchange", h.exchange},
              {"routing_key", h.routing_key},
              {"queue", StrOrNull(h.queue)},
              {"published", TimeOrNull(h.published_ns)},
              {"publisher", StrOrNull(h.send_service)},
              {"send_span_id", h.send_span_id},
              {"send_trace_id", StrOrNull(h.send_trace_id)},
              {"processed", TimeOrNull(h.processed_ns)},
              {"processor", StrOrNull(h.process_service)},
              {"process_span_id", StrOrNull(h.process_span_id)}};
}

json DiagnosisJson(const journey::Diagnosis& d) {
  json last = nullptr;
  if (d.last_span) {
    const journey::SpanRecord& s = *d.last_span;
    last = json{{"service", s.service},
                {"operation", s.name},
                {"status", OtelStatusName(s.otel_status)},
                {"step_status",
                 s.step == StepStatus::kUnset ? json(nullptr) : json(StepStatusName(s.step))},
                {"error", StrOrNull(s.error)},
                {"end", Rfc3339OrEmpty(s.end_ns)},
                {"trace_id", s.trace_id},
                {"span_id", s.span_id}};
  }
  json hops = json::array();
  for (size_t i = 0; i < d.open_hops.size(); ++i) {
    json h = HopJson(d.open_hops[i]);
    h["broker"] = i < d.open_hop_broker.size() ? StrOrNull(d.open_hop_broker[i]) : json(nullptr);
    hops.push_back(std::move(h));
  }
  return json{
      {"summary", d.summary},
      {"kind", journey::StuckKindName(d.kind)},
      {"stage", d.stage},
      {"stage_since", TimeOrNull(d.stage_since_ns)},
      {"in_stage_seconds", std::chrono::duration<double>(d.in_stage).count()},
      {"allowed_seconds", std::chrono::duration<double>(d.allowed).count()},
      {"deadline", TimeOrNull(d.deadline_ns)},
      {"expected", d.expected},
      {"expected_stage", StrOrNull(d.expected_stage)},
      {"expected_service", StrOrNull(d.expected_service)},
      {"last_span", last},
      {"open_hops", hops},
      {"heartbeat",
       json{{"expected", d.heartbeat.expected},
            {"interval_seconds", std::chrono::duration<double>(d.heartbeat.interval).count()},
            {"last", TimeOrNull(d.heartbeat.last_ns)},
            {"alive", d.heartbeat.expected ? json(d.heartbeat.alive) : json(nullptr)}}},
      {"broker", StrOrNull(d.broker)},
      {"trace_ids", d.trace_ids},
      {"jaeger_links", d.jaeger_links},
      {"jaeger_search_link", StrOrNull(d.jaeger_search_link)}};
}

bool ParseLimit(const std::string& text, size_t max, size_t* out) {
  size_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0 || v > max) return false;
  *out = v;
  return true;
}

// The query of GET /api/v1/orders/{id}: `include` only, a comma-separated list of what to add
// (known: jaeger).  False after answering 400 for anything else.
bool ParseInclude(const std::string& query, bool* jaeger, net::HttpResponse& res) {
  url::QueryParams q;
  std::string error;
  if (!url::ParseQuery(query, &q, &error)) {
    JsonError(res, 400, error);
    return false;
  }
  for (const auto& [k, v] : q.params) {
    if (k != "include") {
      JsonError(res, 400, "unknown query parameter '" + k + "' (known: include)");
      return false;
    }
    for (std::string_view rest = v; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (item == "jaeger") {
        *jaeger = true;
      } else if (!item.empty()) {
        JsonError(
            res, 400,
            "include: unknown value '" + std::string(item.substr(0, 64)) + "' (known: jaeger)");
        return false;
      }
    }
  }
  return true;
}

// The list filters whose values the audit records: none of them can hold personal data (the
// partner is recorded apart, as a pseudonym or as the pseudonyms a clear id was searched as).
bool IsAuditedFilter(std::string_view key) {
  return key == "stuck" || key == "stage" || key == "service" || key == "limit" || key == "closed";
}

// A clear partner id's pseudonyms under every retained key, current first, made as the redactor
// makes them from a partner.id attribute (redact::PseudonymInputOf).
std::vector<std::string> PartnerPseudonyms(const redact::Pseudonymizer& pseudonymizer,
                                           std::string_view clear) {
  std::string buffer;
  const redact::PseudonymInput in = redact::PseudonymInputOf(kPartnerIdKey, clear, &buffer);
  return pseudonymizer.AllPseudonyms(in.label, in.normalised);
}

// {"partner": "<non-empty string>"}: false for anything else (the reason is not echoed: the body
// holds a clear id, and a parser's message quotes what it read).
bool PartnerOfBody(const std::string& body, std::string* partner) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.size() != 1) return false;
  const auto it = j.find("partner");
  if (it == j.end() || !it->is_string()) return false;
  *partner = it->get<std::string>();
  return !partner->empty();
}

// GET /api/v1/orders, and POST /api/v1/orders/lookup-partner with the partner from its body
// (`body_partner` non-null).  A `partner` is a pseudonym (filtered by as it is) or a clear id
// (orders.lookup_partner only; hashed under every retained key; audited with the pseudonyms
// searched).  The clear value goes nowhere: not into the audit, a log line, an error message or
// the answer.
void ListOrders(journey::Engine& engine, const ApiGuard& guard, const JourneyApiOptions& options,
                const net::HttpRequest& req, const std::string* body_partner,
                net::HttpResponse& res, audit::AuditEvent& event) {
  event.resource.emplace_back("type", "order_list");
  url::QueryParams q;
  std::string error;
  if (!url::ParseQuery(req.query, &q, &error)) {
    JsonError(res, 400, error);
    return;
  }
  journey::OrderQuery query;
  query.limit = options.default_limit;
  std::optional<std::string> partner;
  if (body_partner != nullptr) partner = *body_partner;
  for (const auto& [k, v] : q.params) {
    if (k == "partner") {
      // Kept out of the audit here: it may be a clear id (below says what was searched).
      if (body_partner != nullptr) {
        JsonError(res, 400, "partner: give it in the body only, not in the query string");
        return;
      }
      if (partner.has_value()) {
        JsonError(res, 400, "partner: given more than once");
        return;
      }
      partner = v;
      continue;
    }
    // The filters, not the cursor (an opaque position, kept out of the audit); only the values of
    // the filters below are written: any other parameter (a typo) may carry personal data.
    if (k != "cursor") {
      event.resource.emplace_back(
          k, IsAuditedFilter(k) ? v.substr(0, 128) : std::string("[not recorded]"));
    }
    if (k == "stuck") {
      if (v == "true" || v == "1") {
        query.stuck = true;
      } else if (v == "false" || v == "0") {
        query.stuck = false;
      } else if (!v.empty()) {
        JsonError(res, 400, "stuck: expected true or false, got '" + v + "'");
        return;
      }
    } else if (k == "stage") {
      query.stage = v;
    } else if (k == "service") {
      query.service = v;
    } else if (k == "cursor") {
      query.cursor = v;
    } else if (k == "limit") {
      if (!v.empty() && !ParseLimit(v, options.max_limit, &query.limit)) {
        JsonError(res, 400,
                  "limit: expected 1.." + std::to_string(options.max_limit) + ", got '" + v + "'");
        return;
      }
    } else if (k == "closed") {
      query.include_closed = v != "false" && v != "0";
    } else {
      JsonError(res, 400,
                "unknown query parameter '" + k +
                    "' (known: stuck, stage, service, partner, limit, cursor, closed)");
      return;
    }
  }
  if (!query.stage.empty() && engine.rules()->StageIndex(query.stage) < 0) {
    JsonError(res, 400, "stage: unknown stage '" + query.stage + "'");
    return;
  }
  bool clear_lookup = false;
  if (partner.has_value()) {
    if (partner->empty()) {
      JsonError(res, 400, "partner: expected a partner id or its pseudonym, got nothing");
      return;
    }
    if (partner->size() > journey::kMaxPartnerBytes) {
      JsonError(res, 400,
                "partner: longer than " + std::to_string(journey::kMaxPartnerBytes) + " bytes");
      return;
    }
    const std::shared_ptr<const redact::Pseudonymizer> pseudonymizer =
        options.pseudonymizer ? options.pseudonymizer() : nullptr;
    // A pseudonym under any key id: one of ours, a retired key's, a gateway in front's.
    if (redact::HasPseudonymShape(*partner)) {
      event.resource.emplace_back("partner", *partner);
      query.partners.push_back(std::move(*partner));
    } else {
      // A clear id: said in the audit (who, when, which pseudonyms), never the value.
      event.resource.emplace_back("partner_lookup", "clear_id");
      if (!guard.Check(req, kLookupPartnerAction, res, event)) return;
      if (!pseudonymizer) {
        JsonError(res, 400,
                  "partner: looking up a clear partner id needs redaction on (redaction.enabled: "
                  "partner ids are stored as they arrived); give the value as it is stored");
        return;
      }
      query.partners = PartnerPseudonyms(*pseudonymizer, *partner);
      event.resource.emplace_back("partner_pseudonyms", Join(query.partners, ","));
      clear_lookup = true;
    }
  }
  auto page = engine.store().ListOrders(query);
  if (!page.ok()) {
    JsonError(res, 500, "journey store: " + page.status().message());
    return;
  }
  json orders = json::array();
  const auto rules = engine.rules();
  const Nanos now = engine.clock().Now();
  for (journey::OrderRow& r : page.value().orders) {
    // The stored line was written when the order was flagged; say it as of now.
    if (r.stuck != journey::StuckKind::kNone) r.summary = journey::SummaryLine(r, *rules, now);
    orders.push_back(OrderSummaryJson(r));
  }
  json body{{"orders", std::move(orders)}, {"next_cursor", StrOrNull(page.value().next_cursor)}};
  // The pseudonyms a clear id was looked up as: the client may use them from now on.
  if (clear_lookup) body["partner_pseudonyms"] = query.partners;
  JsonResponse(res, 200, body);
}

}  // namespace

json OrderSummaryJson(const journey::OrderRow& r) {
  return json{
      {"order_id", r.order_id},
      {"stage", StrOrNull(r.stage)},
      {"stage_since", TimeOrNull(r.stage_ns)},
      {"stuck", r.stuck != journey::StuckKind::kNone},
      {"stuck_kind", r.stuck == journey::StuckKind::kNone ? json(nullptr)
                                                          : json(journey::StuckKindName(r.stuck))},
      {"stuck_since", TimeOrNull(r.stuck_since_ns)},
      {"summary", StrOrNull(r.summary)},
      {"expected_service", StrOrNull(r.expected_service)},
      {"last_service", StrOrNull(r.last_service)},
      {"first_seen", TimeOrNull(r.first_ns)},
      {"last_seen", TimeOrNull(r.last_ns)},
      {"open_hops", r.open_hops},
      {"closed", r.closed},
      {"partner", StrOrNull(r.partner)}};
}

json OrderJson(const journey::Journey& jr, const std::optional<journey::Diagnosis>& diagnosis,
               std::string_view jaeger_ui) {
  json j = OrderSummaryJson(jr.order);
  j["deadline"] = TimeOrNull(jr.order.deadline_ns);
  j["last_heartbeat"] = TimeOrNull(jr.order.last_heartbeat_ns);
  j["diagnosis"] = diagnosis ? DiagnosisJson(*diagnosis) : json(nullptr);
  if (diagnosis) j["summary"] = diagnosis->summary;
  json milestones = json::array();
  for (const journey::Milestone& m : jr.milestones) {
    milestones.push_back(json{{"stage", m.stage},
                              {"at", Rfc3339OrEmpty(m.at_ns)},
                              {"service", m.service},
                              {"trace_id", m.trace_id},
                              {"span_id", m.span_id}});
  }
  j["milestones"] = std::move(milestones);
  json spans = json::array();
  for (const journey::SpanRecord& s : jr.spans) spans.push_back(SpanJson(s, jaeger_ui));
  j["spans"] = std::move(spans);
  j["spans_truncated"] = jr.spans_truncated;
  json hops = json::array();
  for (const journey::Hop& h : jr.hops) hops.push_back(HopJson(h));
  j["hops"] = std::move(hops);
  // All of the order's traces on one page of the Jaeger UI (the latest 20), stuck or not.
  j["jaeger_search_link"] = StrOrNull(
      journey::JaegerSearchLink(jaeger_ui, journey::TraceIdsOf(journey::TraceWindows(jr))));
  return j;
}

void RegisterBrokerRoute(net::HttpServer& server, const ApiGuard& guard,
                         std::function<std::string()> status_json) {
  server.Route("GET", "/api/v1/broker",
               guard.Wrap("/api/v1/broker", "broker.read",
                          [status_json](net::HttpRequest&, net::HttpResponse& res,
                                        audit::AuditEvent& event) {
                            event.resource.emplace_back("type", "broker");
                            if (!status_json) {
                              JsonError(res, 404,
                                        "no broker configured (broker.management_url / "
                                        "--rabbitmq-management)");
                              return;
                            }
                            res.status = 200;
                            res.content_type = kJson;
                            res.body = status_json();
                            res.headers.emplace_back("Cache-Control", "no-store");
                          }));
}

void RegisterJourneyRoutes(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                           JourneyApiOptions options) {
  server.Route(
      "GET", "/api/v1/orders/*",
      guard.Wrap(
          "/api/v1/orders/{id}", "orders.read",
          [&engine, &guard, options](net::HttpRequest& req, net::HttpResponse& res,
                                     audit::AuditEvent& event) {
            event.resource.emplace_back("type", "order");
            std::string id;
            const std::string_view raw = std::string_view(req.path).substr(kOrdersPrefix.size());
            if (raw.empty() || raw.find('/') != std::string_view::npos ||
                !url::PercentDecode(raw, &id) || id.empty()) {
              JsonError(res, 400, "expected /api/v1/orders/{id} with one percent-encoded order id");
              return;
            }
            event.resource.emplace_back("id", id);
            bool include_jaeger = false;
            if (!ParseInclude(req.query, &include_jaeger, res)) return;
            if (include_jaeger) {
              event.resource.emplace_back("include", "jaeger");
              // Before the store is read: a refused caller learns nothing of the order.
              if (!guard.Check(req, kTracesReadAction, res, event)) return;
              if (!options.jaeger_read_back) {
                JsonError(res, 409,
                          "include=jaeger: Jaeger's query service is not configured "
                          "(jaeger.query_url, docs/jaeger.md)");
                return;
              }
            }
            auto jr = engine.store().GetJourney(id, options.max_spans);
            if (!jr.ok()) {
              log::Error("journey read failed",
                         {{"order_id", id}, {"error", jr.status().message()}});
              JsonError(res, 500, "journey store: " + jr.status().message());
              return;
            }
            if (!jr.value().has_value()) {
              JsonError(res, 404, "order '" + id + "' not found");
              return;
            }
            const journey::Journey& journey = *jr.value();
            const auto rules = engine.rules();
            auto d = journey::Diagnose(journey, *rules, engine.clock().Now(), options.jaeger_ui,
                                       options.broker);
            json body = OrderJson(journey, d, options.jaeger_ui);
            if (include_jaeger) body["jaeger"] = options.jaeger_read_back(journey);
            JsonResponse(res, 200, body);
          }));
  server.Route("GET", "/api/v1/orders",
               guard.Wrap("/api/v1/orders", "orders.list",
                          [&engine, &guard, options](net::HttpRequest& req, net::HttpResponse& res,
                                                     audit::AuditEvent& event) {
                            ListOrders(engine, guard, options, req, nullptr, res, event);
                          }));
  server.Route("POST", "/api/v1/orders/lookup-partner",
               guard.Wrap("/api/v1/orders/lookup-partner", "orders.list",
                          [&engine, &guard, options](net::HttpRequest& req, net::HttpResponse& res,
                                                     audit::AuditEvent& event) {
                            // A JSON body only: a cross-site form cannot send one without CORS, so
                            // a browser session cannot be made to look a partner up.
                            const std::string_view type = req.Header("content-type");
                            if (type.substr(0, type.find(';')) != kJson) {
                              event.resource.emplace_back("type", "order_list");
                              JsonError(res, 415, "expected Content-Type: application/json");
                              return;
                            }
                            std::string partner;
                            if (!PartnerOfBody(req.body, &partner)) {
                              event.resource.emplace_back("type", "order_list");
                              JsonError(
                                  res, 400,
                                  "expected a JSON object {\"partner\": \"...\"} (a partner id or "
                                  "its pseudonym; the other filters go in the query string)");
                              return;
                            }
                            ListOrders(engine, guard, options, req, &partner, res, event);
                          }));
}

}  // namespace ordertrace::api
