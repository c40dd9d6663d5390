#include "api/journey_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>
#include <utility>
#include <vector>

#include "api/etag.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/text_format.h"
#include "common/url.h"
#include "journey/store/semantics.h"
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
  // An answer with an ETag has Cache-Control: no-cache already (AnswerNotModified); the others
  // are not kept at all.
  for (const auto& [name, value] : res.headers) {
    if (name == "Cache-Control") return;
  }
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

// A list entry's oldest open hop, with the broker's sentence for it as the diagnosis has it.
json OpenHopJson(const journey::Hop& h, const journey::BrokerView* broker, Nanos now) {
  json broker_says = nullptr;
  if (broker != nullptr) broker_says = StrOrNull(broker->DescribeHop(h, now));
  return json{{"message_id", StrOrNull(h.message_id)},
              {"exchange", h.exchange},
              {"routing_key", h.routing_key},
              {"queue", StrOrNull(h.queue)},
              {"published", TimeOrNull(h.published_ns)},
              {"broker", broker_says}};
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
  return key == "stuck" || key == "stage" || key == "service" || key == "limit" ||
         key == "closed" || key == "kind" || key == "queue" || key == "sort" || key == "trace_id" ||
         key == "message_id";
}

// Values of one repeatable filter (stage=A&stage=B), and of any value: bounded, so that a query
// cannot make a statement of every shape (the store caches a few hundred).
constexpr size_t kMaxFilterValues = 32;
constexpr size_t kMaxFilterBytes = 256;

const journey::StuckKind kStuckKinds[] = {
    journey::StuckKind::kNextOverdue, journey::StuckKind::kNotReceived,
    journey::StuckKind::kNotProcessed, journey::StuckKind::kSilent,
    journey::StuckKind::kMessageUnprocessed};

std::string KnownStages(const journey::Rules& rules) {
  std::vector<std::string> names;
  for (const journey::StageRule& st : rules.stages) names.push_back(st.name);
  return Join(names, ", ");
}

bool IsHex32(std::string_view v) {
  return v.size() == 32 && std::all_of(v.begin(), v.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The list's cursor: base64url of "<sort>\n<key>\n<order_id>", the position after the page's
// last order (OrderPage::next_key, next_cursor), valid with the same sort only.
std::string EncodeCursor(journey::OrderSort sort, Nanos key, const std::string& order_id) {
  return Base64UrlEncode(std::string(journey::OrderSortName(sort)) + "\n" + std::to_string(key) +
                         "\n" + order_id);
}

// False (and the reason in *error) for a cursor that is not one EncodeCursor made for `sort`.
bool DecodeCursor(std::string_view text, journey::OrderSort sort, journey::OrderQuery* q,
                  std::string* error) {
  std::string raw;
  const size_t a = Base64UrlDecode(text, &raw) ? raw.find('\n') : std::string::npos;
  const size_t b = a == std::string::npos ? a : raw.find('\n', a + 1);
  Nanos key = 0;
  if (b == std::string::npos || b + 1 >= raw.size()) {
    *error = "cursor: not a cursor of this list (give next_cursor as it came)";
    return false;
  }
  const auto [end, ec] = std::from_chars(raw.data() + a + 1, raw.data() + b, key);
  journey::OrderSort got = journey::OrderSort::kOrderId;
  if (ec != std::errc() || end != raw.data() + b ||
      !journey::ParseOrderSort(std::string_view(raw).substr(0, a), &got)) {
    *error = "cursor: not a cursor of this list (give next_cursor as it came)";
    return false;
  }
  if (got != sort) {
    *error = std::string("cursor: made for sort=") + journey::OrderSortName(got) +
             ", not sort=" + journey::OrderSortName(sort) + " (start again without a cursor)";
    return false;
  }
  q->cursor_key = key;
  q->cursor = raw.substr(b + 1);
  return true;
}

// The first thing a stage expects from a service: who the board names for it.
std::string ExpectedServiceOf(const journey::StageRule& st) {
  for (const std::string* s : {&st.received_by, &st.processed_by, &st.next_by}) {
    if (!s->empty()) return *s;
  }
  return "";
}

json SecondsOrNull(Duration d) {
  return d.count() <= 0 ? json(nullptr) : json(std::chrono::duration<double>(d).count());
}

json OptionalCount(const std::function<std::optional<uint64_t>()>& fn) {
  if (!fn) return nullptr;
  const std::optional<uint64_t> v = fn();
  return v ? json(*v) : json(nullptr);
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
  std::string cursor;
  const std::shared_ptr<const journey::Rules> rules = engine.rules();
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
    if (k != "cursor" && v.size() > kMaxFilterBytes) {
      JsonError(res, 400, k + ": longer than " + std::to_string(kMaxFilterBytes) + " bytes");
      return;
    }
    // A repeatable filter: any of its values.
    std::vector<std::string>* list = k == "stage"     ? &query.stages
                                     : k == "service" ? &query.services
                                     : k == "queue"   ? &query.queues
                                                      : nullptr;
    if ((list != nullptr && list->size() >= kMaxFilterValues) ||
        (k == "kind" && query.kinds.size() >= kMaxFilterValues)) {
      JsonError(res, 400,
                k + ": at most " + std::to_string(kMaxFilterValues) + " values in one query");
      return;
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
      if (rules->StageIndex(v) < 0) {
        JsonError(res, 400,
                  "stage: unknown stage '" + v + "' (known: " + KnownStages(*rules) + ")");
        return;
      }
      list->push_back(v);
    } else if (k == "service" || k == "queue") {
      if (v.empty()) {
        JsonError(res, 400, k + ": expected a name, got nothing");
        return;
      }
      list->push_back(v);
    } else if (k == "kind") {
      std::vector<std::string> names;
      for (const journey::StuckKind x : kStuckKinds) {
        if (v == journey::StuckKindName(x)) query.kinds.push_back(x);
        names.emplace_back(journey::StuckKindName(x));
      }
      if (query.kinds.empty() || v != journey::StuckKindName(query.kinds.back())) {
        JsonError(res, 400, "kind: unknown kind '" + v + "' (known: " + Join(names, ", ") + ")");
        return;
      }
    } else if (k == "trace_id") {
      std::string id = v;
      std::transform(id.begin(), id.end(), id.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!IsHex32(id) || id == std::string(32, '0')) {
        JsonError(res, 400, "trace_id: expected 32 hex digits (not all zero), got '" + v + "'");
        return;
      }
      query.trace_id = std::move(id);
    } else if (k == "message_id") {
      if (v.empty()) {
        JsonError(res, 400, "message_id: expected a message id, got nothing");
        return;
      }
      query.message_id = v;
    } else if (k == "sort") {
      if (!journey::ParseOrderSort(v, &query.sort)) {
        JsonError(res, 400,
                  "sort: unknown sort '" + v +
                      "' (known: order_id, stuck_since, -stuck_since, stage_since, -stage_since)");
        return;
      }
    } else if (k == "cursor") {
      cursor = v;
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
                    "' (known: stuck, stage, service, kind, queue, trace_id, message_id, partner, "
                    "sort, limit, cursor, closed)");
      return;
    }
  }
  if (query.stuck == false && (journey::OrderSortStuckOnly(query.sort) || !query.kinds.empty())) {
    JsonError(res, 400,
              !query.kinds.empty() ? "kind: only stuck orders have one; not with stuck=false"
                                   : std::string("sort=") + journey::OrderSortName(query.sort) +
                                         " lists stuck orders only; not with stuck=false");
    return;
  }
  if (!cursor.empty()) {
    if (!DecodeCursor(cursor, query.sort, &query, &error)) {
      JsonError(res, 400, error);
      return;
    }
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
  // A GET is conditional (a POST's body is not in the tag): the store's revision and what the
  // broker said, read before the data.
  if (body_partner == nullptr &&
      AnswerNotModified(req, res,
                        MakeETag({engine.revision(),
                                  options.broker != nullptr ? options.broker->generation() : 0},
                                 req))) {
    return;
  }
  query.count_total = true;
  query.with_open_hop = true;
  query.settle_wait = options.list_settle_wait;
  auto page = engine.store().ListOrders(query);
  if (!page.ok()) {
    JsonError(res, 500, "journey store: " + page.status().message());
    return;
  }
  json orders = json::array();
  const Nanos now = engine.clock().Now();
  journey::OrderPage& p = page.value();
  for (size_t i = 0; i < p.orders.size(); ++i) {
    journey::OrderRow& r = p.orders[i];
    // The stored line was written when the order was flagged; say it as of now.
    if (r.stuck != journey::StuckKind::kNone) r.summary = journey::SummaryLine(r, *rules, now);
    json o = OrderSummaryJson(r);
    const std::optional<journey::Hop>* hop = i < p.open_hop.size() ? &p.open_hop[i] : nullptr;
    o["open_hop"] = hop != nullptr && hop->has_value() ? OpenHopJson(**hop, options.broker, now)
                                                       : json(nullptr);
    orders.push_back(std::move(o));
  }
  json body{{"orders", std::move(orders)},
            {"total", p.total.value_or(0)},
            {"next_cursor", p.next_cursor.empty()
                                ? json(nullptr)
                                : json(EncodeCursor(query.sort, p.next_key, p.next_cursor))},
            {"unsettled", p.unsettled}};
  // A page the store answered before it had indexed every verdict changes without a new
  // revision: no ETag, not kept.
  if (p.unsettled > 0) {
    std::erase_if(res.headers,
                  [](const auto& h) { return h.first == "ETag" || h.first == "Cache-Control"; });
    res.headers.emplace_back("Cache-Control", "no-store");
  }
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
      {"partner", StrOrNull(r.partner)},
      {"deadline", TimeOrNull(r.deadline_ns)}};
}

json OrderJson(const journey::Journey& jr, const std::optional<journey::Diagnosis>& diagnosis,
               std::string_view jaeger_ui) {
  json j = OrderSummaryJson(jr.order);
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

json SummaryJson(const journey::EngineSummary& s, Nanos now, const JourneyApiOptions& options) {
  const journey::Rules& rules = *s.rules;
  auto stage_name = [&rules](int index) -> std::string {
    return index < 0 || static_cast<size_t>(index) >= rules.stages.size()
               ? "none"
               : rules.stages[static_cast<size_t>(index)].name;
  };
  auto optional_seconds = [](const std::optional<double>& v) {
    return v ? json(*v) : json(nullptr);
  };
  json stages = json::array();
  for (const journey::EngineSummary::Stage& st : s.stages) {
    const journey::StageRule* rule =
        st.index < 0 ? nullptr : &rules.stages[static_cast<size_t>(st.index)];
    stages.push_back(json{
        {"stage", stage_name(st.index)},
        {"index", st.index},
        {"terminal", rule != nullptr && rule->terminal()},
        {"active", st.active},
        {"stuck", st.stuck},
        {"allowed_seconds",
         rule != nullptr && rule->next >= 0 ? SecondsOrNull(rule->within) : json(nullptr)},
        {"expected_service", rule != nullptr ? StrOrNull(ExpectedServiceOf(*rule)) : json(nullptr)},
        {"p50_seconds", optional_seconds(st.p50_seconds)},
        {"p95_seconds", optional_seconds(st.p95_seconds)}});
  }
  json stuck_by = json::array();
  for (const journey::EngineSummary::StuckCell& c : s.stuck_by) {
    stuck_by.push_back(json{{"stage", stage_name(c.stage)},
                            {"service", StrOrNull(c.service)},
                            {"kind", journey::StuckKindName(c.kind)},
                            {"count", c.count}});
  }
  return json{{"as_of", Rfc3339(now)},
              {"revision", s.revision},
              {"totals", json{{"active", s.active},
                              {"stuck", s.stuck},
                              {"open_hops", s.open_hops},
                              {"flagged_total", s.flagged_total},
                              {"cleared_total", s.cleared_total},
                              {"closed_total", s.closed_total},
                              {"spans_accepted_total", OptionalCount(options.spans_accepted_total)},
                              {"alerts_sent_total", OptionalCount(options.alerts_sent_total)}}},
              {"stages", std::move(stages)},
              {"stuck_by", std::move(stuck_by)}};
}

json RulesJson(const journey::Rules& rules, uint64_t generation) {
  json stages = json::array();
  for (size_t i = 0; i < rules.stages.size(); ++i) {
    const journey::StageRule& st = rules.stages[i];
    const bool has_next = st.next >= 0 && static_cast<size_t>(st.next) < rules.stages.size();
    stages.push_back(json{
        {"name", st.name},
        {"index", i},
        {"terminal", st.terminal()},
        {"next", has_next ? json(rules.stages[static_cast<size_t>(st.next)].name) : json(nullptr)},
        {"within_seconds", has_next ? SecondsOrNull(st.within) : json(nullptr)},
        {"next_by", StrOrNull(st.next_by)},
        {"heartbeat_seconds", SecondsOrNull(st.heartbeat)},
        {"received_by", StrOrNull(st.received_by)},
        {"within_receipt_seconds",
         st.received_by.empty() ? json(nullptr) : SecondsOrNull(st.within_receipt)},
        {"processed_by", StrOrNull(st.processed_by)},
        {"within_processing_seconds",
         st.processed_by.empty() ? json(nullptr) : SecondsOrNull(st.within_processing)},
        {"severity", st.severity}});
  }
  return json{{"source", rules.source},
              {"entity_key", rules.entity_key},
              {"grace_seconds", std::chrono::duration<double>(rules.grace).count()},
              {"message_processed_within_seconds", SecondsOrNull(rules.message_processed_within)},
              {"stages", std::move(stages)},
              {"revision", generation}};
}

// An OptionalCount as an ETag part (null apart from every count).
uint64_t CountPart(const json& count) {
  return count.is_null() ? ~uint64_t{0} : count.get<uint64_t>();
}

// A query string with no parameter (summary and rules take none): false after answering 400.
bool NoQuery(const net::HttpRequest& req, net::HttpResponse& res) {
  if (req.query.empty()) return true;
  url::QueryParams q;
  std::string error;
  if (!url::ParseQuery(req.query, &q, &error)) {
    JsonError(res, 400, error);
    return false;
  }
  if (q.params.empty()) return true;
  JsonError(res, 400,
            "unknown query parameter '" + q.params.front().first.substr(0, 64) +
                "' (this route takes none)");
  return false;
}

void RegisterJourneyRoutes(net::HttpServer& server, journey::Engine& engine, const ApiGuard& guard,
                           JourneyApiOptions options) {
  server.Route(
      "GET", "/api/v1/summary",
      guard.Wrap(
          "/api/v1/summary", "orders.list",
          [&engine, options](net::HttpRequest& req, net::HttpResponse& res,
                             audit::AuditEvent& event) {
            event.resource.emplace_back("type", "summary");
            if (!NoQuery(req, res)) return;
            // The counters of other parts (spans accepted, alerts sent) are shown too.
            const json accepted = OptionalCount(options.spans_accepted_total);
            const json sent = OptionalCount(options.alerts_sent_total);
            if (AnswerNotModified(
                    req, res,
                    MakeETag({engine.revision(), CountPart(accepted), CountPart(sent)}, req))) {
              return;
            }
            const journey::EngineSummary s = engine.Summary();
            JsonResponse(res, 200, SummaryJson(s, engine.clock().Now(), options));
          }));
  server.Route("GET", "/api/v1/rules",
               guard.Wrap("/api/v1/rules", "orders.list",
                          [&engine](net::HttpRequest& req, net::HttpResponse& res,
                                    audit::AuditEvent& event) {
                            event.resource.emplace_back("type", "rules");
                            if (!NoQuery(req, res)) return;
                            const uint64_t generation = engine.rules_generation();
                            const std::shared_ptr<const journey::Rules> rules = engine.rules();
                            if (AnswerNotModified(req, res, MakeETag({generation}, req))) return;
                            JsonResponse(res, 200, RulesJson(*rules, generation));
                          }));
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
            // Conditional unless Jaeger is read too (its answer is not in the revision).
            if (!include_jaeger &&
                AnswerNotModified(
                    req, res,
                    MakeETag({engine.revision(),
                              options.broker != nullptr ? options.broker->generation() : 0},
                             req))) {
              return;
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
