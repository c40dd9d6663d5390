// Data-driven tests of order journeys and the stuck-order detector: one test per case file in
// tests/journeys/cases/ (the format is in tests/journeys/README.md), each run on every journey
// store.  Spans take the real path: an OTLP ExportTraceServiceRequest built with libprotobuf,
// serialised, decoded by otlp::DecodeExportRequest and handed to a JourneyStage, which runs the
// FactExtractor through the Attributor (attribution/attributor.h, on unless a case turns it off)
// and applies the facts to the Engine; a ManualClock drives the attributor's waits
// (JourneyStage::ExpireWaits) and the detector (Engine::Tick).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "journey/attribution/attributor.h"
#include "journey/diagnosis.h"
#include "journey/engine.h"
#include "journey/journey_stage.h"
#include "journey/rules/rules.h"
#include "journey/store/memory/memory_store.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::journey {
namespace {

namespace fs = std::filesystem;
using testing_support::Attribute;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

constexpr Nanos kSecond = 1'000'000'000;
// The default start: 2026-01-05T08:00:00Z.
constexpr Nanos kDefaultStart = 1'767'600'000LL * kSecond;

// ---------------------------------------------------------------------------------------------
// Names → deterministic ids.

uint64_t Fnv1a(std::string_view s, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h == 0 ? 1 : h;
}

std::string BytesOf(uint64_t v) {
  std::string b(8, '\0');
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (56 - 8 * i)) & 0xff);
  return b;
}

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string TraceBytes(const std::string& name) {
  return BytesOf(Fnv1a(name, 0x7472616365)) + BytesOf(Fnv1a(name, 0x7472616366));
}
std::string SpanBytes(const std::string& name) { return BytesOf(Fnv1a(name, 0x7370616e)); }
std::string TraceHex(const std::string& name) { return Hex(TraceBytes(name)); }
std::string SpanHex(const std::string& name) { return Hex(SpanBytes(name)); }

// ---------------------------------------------------------------------------------------------
// Relative times: "0s", "31m", "-2h", "1h30m", "2m30s500ms", "5d".

Nanos ParseRel(const std::string& text) {
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) throw std::runtime_error("empty time '" + text + "'");
  Nanos total = 0;
  while (!s.empty()) {
    size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 0) throw std::runtime_error("bad time '" + text + "'");
    const Nanos v = std::stoll(std::string(s.substr(0, i)));
    s.remove_prefix(i);
    size_t j = 0;
    while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
    const std::string_view unit = s.substr(0, j);
    s.remove_prefix(j);
    Nanos mul;
    if (unit == "ns") {
      mul = 1;
    } else if (unit == "ms") {
      mul = 1'000'000;
    } else if (unit == "s") {
      mul = kSecond;
    } else if (unit == "m") {
      mul = 60 * kSecond;
    } else if (unit == "h") {
      mul = 3600 * kSecond;
    } else if (unit == "d") {
      mul = 86400 * kSecond;
    } else {
      throw std::runtime_error("bad unit in time '" + text + "' (ns, ms, s, m, h, d)");
    }
    total += v * mul;
  }
  return neg ? -total : total;
}

// ---------------------------------------------------------------------------------------------
// YAML helpers.

std::string Str(const YAML::Node& n, const std::string& def = "") {
  return n ? n.as<std::string>() : def;
}

std::vector<std::string> StrList(const YAML::Node& n) {
  std::vector<std::string> out;
  if (!n || n.IsNull()) return out;
  if (n.IsScalar()) return {n.as<std::string>()};
  for (const auto& x : n) out.push_back(x.as<std::string>());
  return out;
}

std::string Where(const YAML::Node& n) { return "line " + std::to_string(n.Mark().line + 1); }

// Unknown keys are errors (a typo must not silently switch a check off).
void CheckKeys(const YAML::Node& n, std::initializer_list<const char*> known, const char* what) {
  if (!n.IsMap())
    throw std::runtime_error(std::string(what) + ": expected a mapping at " + Where(n));
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    bool ok = false;
    for (const char* x : known) ok = ok || k == x;
    if (!ok) {
      std::string list;
      for (const char* x : known) list += std::string(list.empty() ? "" : ", ") + x;
      throw std::runtime_error(std::string(what) + ": unknown key '" + k + "' at " +
                               Where(kv.first) + " (known: " + list + ")");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Building the OTLP request of one step.

int KindOf(const std::string& k) {
  static const std::map<std::string, int> kinds = {{"unspecified", 0}, {"internal", 1},
                                                   {"server", 2},      {"client", 3},
                                                   {"producer", 4},    {"consumer", 5}};
  auto it = kinds.find(k);
  if (it == kinds.end()) throw std::runtime_error("unknown span kind '" + k + "'");
  return it->second;
}

struct CaseState;

// The span a case's `spans:` entry describes; *service is its service.name.
SpanBuilder CaseSpan(const YAML::Node& s, const CaseState& st, size_t step, size_t index,
                     std::string* service);

// ---------------------------------------------------------------------------------------------
// Listener: orders flagged and cleared during the current step; a second flag without a clear
// in between is recorded as an error.

class Recorder : public EngineListener {
 public:
  void OnStuck(const OrderRow& row) override {
    std::lock_guard lock(mu_);
    flagged.push_back(row.order_id);
    flagged_rows[row.order_id] = row;
    if (!currently_.insert(row.order_id).second) {
      errors.push_back("order " + row.order_id + " flagged twice without a clear in between");
    }
    if (row.stuck == StuckKind::kNone) errors.push_back("OnStuck with a row not stuck");
  }
  void OnCleared(const OrderRow& row) override {
    std::lock_guard lock(mu_);
    cleared.push_back(row.order_id);
    if (currently_.erase(row.order_id) == 0) {
      errors.push_back("order " + row.order_id + " cleared without being flagged");
    }
    if (row.stuck != StuckKind::kNone) errors.push_back("OnCleared with a row still stuck");
  }
  void NewStep() {
    flagged.clear();
    cleared.clear();
    flagged_rows.clear();
  }
  // Orders flagged before a restart stay flagged: seed from the store.
  void Seed(const std::set<std::string>& stuck) { currently_ = stuck; }

  std::mutex mu_;
  std::vector<std::string> flagged, cleared, errors;
  std::map<std::string, OrderRow> flagged_rows;

 private:
  std::set<std::string> currently_;
};

// ---------------------------------------------------------------------------------------------
// Stores.

enum class StoreKind { kMemory, kSqlite };

struct CaseParam {
  std::string file;  // path
  StoreKind store;
};

void PrintTo(const CaseParam& p, std::ostream* os) {
  *os << p.file << (p.store == StoreKind::kMemory ? " (memory)" : " (sqlite)");
}

std::string ParamName(const testing::TestParamInfo<CaseParam>& info) {
  std::string stem = fs::path(info.param.file).stem().string();
  for (char& c : stem) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return stem + (info.param.store == StoreKind::kMemory ? "_memory" : "_sqlite");
}

struct CaseState {
  Nanos start = kDefaultStart;
  std::string jaeger_ui = "http://jaeger.test:16686";
  std::shared_ptr<const Rules> rules;
  ManualClock clock;
  AttributionOptions attribution;  // the case's `attribution:` (on by default)
  std::unique_ptr<JourneyStore> store;
  std::unique_ptr<Engine> engine;
  // A stage per engine, with a registry of its own (a restart registers its metrics anew).
  std::unique_ptr<metrics::Registry> registry;
  std::unique_ptr<JourneyStage> stage;
  Recorder recorder;
  fs::path temp_dir;

  Nanos At(const YAML::Node& n) const { return start + ParseRel(n.as<std::string>()); }
};

SpanBuilder CaseSpan(const YAML::Node& s, const CaseState& st, size_t step, size_t index,
                     std::string* service) {
  CheckKeys(s,
            {"order",     "trace",       "span",         "parent", "service",   "name",
             "start",     "end",         "stage",        "status", "heartbeat", "error",
             "exception", "otel_status", "otel_message", "kind",   "op",        "message_id",
             "exchange",  "routing_key", "queue",        "links",  "attrs",     "messaging_system",
             "order_key"},
            "span");
  *service = Str(s["service"], "crm");
  const std::string order = Str(s["order"]);
  const std::string span_name =
      Str(s["span"], "step" + std::to_string(step) + "." + std::to_string(index));
  const std::string trace_id = TraceBytes(Str(s["trace"], order.empty() ? "default" : order));
  SpanBuilder span(Str(s["name"], span_name));
  span.Ids(trace_id, SpanBytes(span_name), s["parent"] ? SpanBytes(Str(s["parent"])) : "");
  const Nanos start = s["start"] ? st.At(s["start"]) : st.clock.Now();
  const Nanos end = s["end"] ? st.At(s["end"]) : start + 100'000'000;  // 100ms
  span.Times(static_cast<uint64_t>(start), static_cast<uint64_t>(end));
  if (s["kind"]) {
    span.Kind(static_cast<opentelemetry::proto::trace::v1::Span_SpanKind>(KindOf(Str(s["kind"]))));
  }
  if (!order.empty()) span.Attr(Str(s["order_key"], st.rules->entity_key), order);
  if (s["stage"]) span.Attr("order.stage", Str(s["stage"]));
  if (s["status"]) span.Attr("order.step.status", Str(s["status"]));
  if (s["heartbeat"] && s["heartbeat"].as<bool>()) span.Attr("ordertrace.heartbeat", true);
  if (s["error"]) span.Attr("error.type", Str(s["error"]));
  const bool messaging =
      s["op"] || s["message_id"] || s["exchange"] || s["routing_key"] || s["queue"];
  const bool system = s["messaging_system"] ? s["messaging_system"].as<bool>() : messaging;
  if (system) span.Attr("messaging.system", "rabbitmq");
  if (s["op"]) span.Attr("messaging.operation.type", Str(s["op"]));
  if (s["message_id"]) span.Attr("messaging.message.id", Str(s["message_id"]));
  const std::string exchange = Str(s["exchange"]), rk = Str(s["routing_key"]);
  if (!exchange.empty() || !rk.empty()) {
    span.Attr("messaging.destination.name", exchange.empty() ? rk
                                            : rk.empty()     ? exchange
                                                             : exchange + ":" + rk);
  }
  if (!rk.empty()) span.Attr("messaging.rabbitmq.destination.routing_key", rk);
  if (s["queue"]) span.Attr("messaging.destination.subscription.name", Str(s["queue"]));
  if (s["attrs"]) {
    // Plain integers and booleans keep their type (messaging.message.body.size: 42,
    // messaging.destination.temporary: true), as instrumentations send them; quoted values and
    // any other text are strings.
    for (const auto& kv : s["attrs"]) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      const bool plain = v.IsScalar() && v.Tag() == "?";
      int64_t i = 0;
      if (plain && YAML::convert<int64_t>::decode(v, i)) {
        span.Attr(key, i);
      } else if (plain && (v.Scalar() == "true" || v.Scalar() == "false")) {
        span.Attr(key, v.Scalar() == "true");
      } else {
        span.Attr(key, v.as<std::string>());
      }
    }
  }
  if (s["exception"]) {
    const YAML::Node& ex = s["exception"];
    CheckKeys(ex, {"type", "message"}, "exception");
    std::vector<Attribute> attributes;
    if (ex["type"]) attributes.emplace_back("exception.type", Str(ex["type"]));
    if (ex["message"]) attributes.emplace_back("exception.message", Str(ex["message"]));
    span.Event("exception", static_cast<uint64_t>(end), attributes);
  }
  if (s["otel_status"]) {
    const std::string os = Str(s["otel_status"]);
    auto code = opentelemetry::proto::trace::v1::Status::STATUS_CODE_UNSET;
    if (os == "ok") {
      code = opentelemetry::proto::trace::v1::Status::STATUS_CODE_OK;
    } else if (os == "error") {
      code = opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR;
    } else if (os != "unset") {
      throw std::runtime_error("otel_status: ok, error or unset, got '" + os + "'");
    }
    span.Status(code, Str(s["otel_message"]));
  }
  for (const auto& l : s["links"]) {
    if (l.IsMap()) {
      CheckKeys(l, {"span", "trace"}, "links[]");
      span.Link(l["trace"] ? TraceBytes(Str(l["trace"])) : trace_id, SpanBytes(Str(l["span"])));
    } else {
      span.Link(trace_id, SpanBytes(l.as<std::string>()));
    }
  }
  return span;
}

// ---------------------------------------------------------------------------------------------
// The runner.

std::set<std::string> StuckSet(JourneyStore& store) {
  std::set<std::string> out;
  OrderQuery q;
  q.stuck = true;
  q.limit = 1000;
  for (;;) {
    auto page = store.ListOrders(q);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    for (const OrderRow& r : page->orders) out.insert(r.order_id);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s = "[";
  for (const auto& x : v) s += (s.size() > 1 ? ", " : "") + x;
  return s + "]";
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class JourneyCaseTest : public testing::TestWithParam<CaseParam> {
 protected:
  void TearDown() override {
    st_.stage.reset();
    st_.engine.reset();
    st_.store.reset();
    if (!st_.temp_dir.empty()) {
      std::error_code ec;
      fs::remove_all(st_.temp_dir, ec);
    }
  }

  // MemoryStore, or SqliteStore on a file in a temporary directory (removed by TearDown).
  // A restart on SQLite closes and reopens the file, as a gateway restart does.
  void OpenStore() {
    if (GetParam().store == StoreKind::kMemory) {
      st_.store = NewMemoryStore();
      return;
    }
    if (st_.temp_dir.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "journey-cases-XXXXXX").string();
      ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "mkdtemp";
      st_.temp_dir = tmpl;
    }
    SqliteStoreOptions o;
    o.path = (st_.temp_dir / "journeys.db").string();
    auto store = OpenSqliteStore(o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    st_.store = std::move(store).value();
  }

  // A new Engine and JourneyStage on the store, as a gateway start does: Recover(), then the
  // attributor's warm-up from the store (JourneyStage::Start() without its timer: the case's
  // ticks end the waits).  The previous stage is dropped without Stop(), like a crash: spans
  // still waiting for their ancestor are lost with it.  `warm_up` false skips the warm-up (a
  // store whose recent spans were not read): the attributor then relies on the engine's open
  // publishes alone.
  void NewEngine(bool warm_up = true) {
    st_.stage.reset();
    st_.engine.reset();
    st_.engine = std::make_unique<Engine>(st_.rules, *st_.store, st_.clock, nullptr);
    st_.engine->AddListener(&st_.recorder);
    Status s = st_.engine->Recover();
    ASSERT_TRUE(s.ok()) << s.ToString();
    st_.registry = std::make_unique<metrics::Registry>();
    st_.stage = std::make_unique<JourneyStage>(*st_.engine, *st_.registry, st_.attribution);
    if (warm_up) st_.stage->RememberRecentSpans();
  }

  // The stage swallows failures (counted, logged): a case must see none.
  void CheckNoFailedBatches() {
    const std::string text = st_.registry->Serialize();
    const std::string key = "\nordertrace_journey_failed_batches_total ";
    const size_t at = text.find(key);
    ASSERT_NE(at, std::string::npos) << "no failed-batches counter in:\n" << text;
    EXPECT_EQ(text.substr(at + key.size(), 2), "0\n") << "the journey stage failed on a batch";
  }

  std::shared_ptr<const Rules> ParseInlineRules(const YAML::Node& n) {
    auto r = ParseRules(n.as<std::string>(), "inline rules (" + Where(n) + ")");
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return std::make_shared<const Rules>(std::move(r).value());
  }

  void ApplySpans(const YAML::Node& spans, size_t step) {
    // One resource per service, in the order the services first appear.
    std::vector<std::pair<std::string, std::vector<SpanBuilder>>> by_service;
    size_t i = 0;
    for (const auto& s : spans) {
      std::string service;
      SpanBuilder span = CaseSpan(s, st_, step, i++, &service);
      auto it = std::find_if(by_service.begin(), by_service.end(),
                             [&](const auto& entry) { return entry.first == service; });
      if (it == by_service.end()) it = by_service.insert(by_service.end(), {service, {}});
      it->second.push_back(std::move(span));
    }
    RequestBuilder req;
    for (const auto& [service, service_spans] : by_service) {
      req.Resource(service).Scope("journey-cases");
      for (const SpanBuilder& span : service_spans) req.Add(span);
    }
    auto batch = otlp::DecodeExportRequest(req.Serialized(), otlp::Protocol::kHttpProtobuf, {});
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    st_.stage->Process(batch.value());
    CheckNoFailedBatches();
  }

  // `attribution: {enabled: true|false, wait: 10s}`.
  void ParseAttribution(const YAML::Node& n) {
    CheckKeys(n, {"enabled", "wait"}, "attribution");
    if (n["enabled"]) st_.attribution.enabled = n["enabled"].as<bool>();
    if (n["wait"]) {
      const Nanos wait = ParseRel(Str(n["wait"]));
      if (wait <= 0) throw std::runtime_error("attribution.wait: a positive time, at " + Where(n));
      st_.attribution.wait = std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(wait));
    }
  }

  void CheckOrder(const std::string& id, const YAML::Node& want);
  void CheckDiagnosis(const Journey& j, const YAML::Node& want);
  void CheckExpect(const YAML::Node& e);

  CaseState st_;
  std::map<std::string, Journey> journeys_;  // for same_as
};

void JourneyCaseTest::CheckDiagnosis(const Journey& j, const YAML::Node& want) {
  const auto d = Diagnose(j, *st_.engine->rules(), st_.clock.Now(), st_.jaeger_ui);
  if (want.IsNull() || (want.IsScalar() && want.as<std::string>() == "null")) {
    EXPECT_FALSE(d.has_value()) << "a diagnosis: " << d->summary;
    return;
  }
  CheckKeys(want,
            {"kind", "stage", "expected", "expected_stage", "expected_service", "in_stage",
             "allowed", "deadline", "last_span", "open_hops", "heartbeat", "trace_ids",
             "jaeger_links", "summary_contains", "summary_not_contains"},
            "diagnosis");
  ASSERT_TRUE(d.has_value()) << "no diagnosis (order not stuck)";
  if (want["kind"]) {
    EXPECT_EQ(StuckKindName(d->kind), Str(want["kind"])) << "StuckKindName(d->kind)";
  }
  if (want["stage"]) {
    EXPECT_EQ(d->stage, Str(want["stage"])) << "d->stage";
  }
  if (want["expected"]) {
    EXPECT_EQ(d->expected, Str(want["expected"])) << "d->expected";
  }
  if (want["expected_stage"]) {
    EXPECT_EQ(d->expected_stage, Str(want["expected_stage"])) << "d->expected_stage";
  }
  if (want["expected_service"]) {
    EXPECT_EQ(d->expected_service, Str(want["expected_service"])) << "d->expected_service";
  }
  if (want["in_stage"]) {
    EXPECT_EQ(std::chrono::nanoseconds(d->in_stage).count(), ParseRel(Str(want["in_stage"])))
        << "std::chrono::nanoseconds(d->in_stage).count()";
  }
  if (want["allowed"]) {
    EXPECT_EQ(std::chrono::nanoseconds(d->allowed).count(), ParseRel(Str(want["allowed"])))
        << "std::chrono::nanoseconds(d->allowed).count()";
  }
  if (want["deadline"]) {
    EXPECT_EQ(d->deadline_ns, st_.At(want["deadline"])) << "d->deadline_ns";
  }
  if (const YAML::Node& ls = want["last_span"]) {
    CheckKeys(ls, {"service", "name", "status", "step", "error"}, "diagnosis.last_span");
    ASSERT_TRUE(d->last_span.has_value()) << "no last span";
    const SpanRecord& s = *d->last_span;
    if (ls["service"]) {
      EXPECT_EQ(s.service, Str(ls["service"])) << "s.service";
    }
    if (ls["name"]) {
      EXPECT_EQ(s.name, Str(ls["name"])) << "s.name";
    }
    if (ls["status"]) {
      const char* names[] = {"unset", "ok", "error"};
      EXPECT_EQ(names[std::min<int>(s.otel_status, 2)], Str(ls["status"]))
          << "names[std::min<int>(s.otel_status";
    }
    if (ls["step"]) {
      EXPECT_EQ(StepStatusName(s.step), Str(ls["step"])) << "StepStatusName(s.step)";
    }
    if (ls["error"]) {
      EXPECT_EQ(s.error, Str(ls["error"])) << "s.error";
    }
  }
  if (const YAML::Node& oh = want["open_hops"]) {
    ASSERT_EQ(d->open_hops.size(), oh.size()) << "open hops in the diagnosis";
    for (size_t i = 0; i < oh.size(); ++i) {
      const YAML::Node& w = oh[i];
      const Hop& h = d->open_hops[i];
      CheckKeys(w,
                {"message_id", "exchange", "routing_key", "queue", "send_service", "publish_span"},
                "diagnosis.open_hops[]");
      if (w["message_id"]) {
        EXPECT_EQ(h.message_id, Str(w["message_id"])) << "h.message_id";
      }
      if (w["exchange"]) {
        EXPECT_EQ(h.exchange, Str(w["exchange"])) << "h.exchange";
      }
      if (w["routing_key"]) {
        EXPECT_EQ(h.routing_key, Str(w["routing_key"])) << "h.routing_key";
      }
      if (w["queue"]) {
        EXPECT_EQ(h.queue, Str(w["queue"])) << "h.queue";
      }
      if (w["send_service"]) {
        EXPECT_EQ(h.send_service, Str(w["send_service"])) << "h.send_service";
      }
      if (w["publish_span"]) {
        EXPECT_EQ(h.send_span_id, SpanHex(Str(w["publish_span"]))) << "h.send_span_id";
      }
    }
  }
  if (const YAML::Node& hb = want["heartbeat"]) {
    CheckKeys(hb, {"expected", "alive", "last"}, "diagnosis.heartbeat");
    if (hb["expected"]) {
      EXPECT_EQ(d->heartbeat.expected, hb["expected"].as<bool>()) << "d->heartbeat.expected";
    }
    if (hb["alive"]) {
      EXPECT_EQ(d->heartbeat.alive, hb["alive"].as<bool>()) << "heartbeat alive";
    }
    if (hb["last"]) {
      EXPECT_EQ(d->heartbeat.last_ns, st_.At(hb["last"])) << "d->heartbeat.last_ns";
    }
  }
  if (want["trace_ids"]) {
    std::vector<std::string> ids;
    for (const auto& t : StrList(want["trace_ids"])) ids.push_back(TraceHex(t));
    EXPECT_EQ(Join(d->trace_ids), Join(ids)) << "trace ids (latest first)";
  }
  if (want["jaeger_links"]) {
    std::vector<std::string> links;
    for (const auto& t : StrList(want["jaeger_links"])) {
      links.push_back("http://jaeger.test:16686/trace/" + TraceHex(t));
    }
    EXPECT_EQ(Join(d->jaeger_links), Join(links)) << "Join(d->jaeger_links)";
  }
  for (const auto& text : StrList(want["summary_contains"])) {
    EXPECT_NE(d->summary.find(text), std::string::npos)
        << "diagnosis summary lacks '" << text << "': " << d->summary;
  }
  for (const auto& text : StrList(want["summary_not_contains"])) {
    EXPECT_EQ(d->summary.find(text), std::string::npos)
        << "diagnosis summary has '" << text << "': " << d->summary;
  }
}

void JourneyCaseTest::CheckOrder(const std::string& id, const YAML::Node& want) {
  SCOPED_TRACE("order " + id);
  CheckKeys(want,
            {"absent", "stage", "stuck", "stuck_since", "expected_service", "open_hops", "closed",
             "milestones", "milestone_at", "milestone_service", "spans", "span_names",
             "summary_contains", "hops", "diagnosis", "same_as", "last_service"},
            "order");
  auto j = st_.store->GetJourney(id);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  if (want["absent"] && want["absent"].as<bool>()) {
    EXPECT_FALSE(j.value().has_value()) << "order exists";
    return;
  }
  ASSERT_TRUE(j.value().has_value()) << "order unknown to the store";
  const Journey& journey = *j.value();
  journeys_[id] = journey;
  const OrderRow& row = journey.order;
  auto row2 = st_.store->GetOrder(id);
  ASSERT_TRUE(row2.ok() && row2.value().has_value());
  EXPECT_EQ(*row2.value(), row) << "GetOrder and GetJourney disagree";
  if (want["stage"]) {
    EXPECT_EQ(row.stage, Str(want["stage"])) << "row.stage";
  }
  if (want["stuck"]) {
    const std::string k = Str(want["stuck"]);
    EXPECT_EQ(StuckKindName(row.stuck), k == "none" || k == "false" ? "" : k) << "stuck kind";
  }
  if (want["stuck_since"]) {
    EXPECT_EQ(row.stuck_since_ns, st_.At(want["stuck_since"])) << "row.stuck_since_ns";
  }
  if (want["expected_service"]) {
    EXPECT_EQ(row.expected_service, Str(want["expected_service"])) << "row.expected_service";
  }
  if (want["last_service"]) {
    EXPECT_EQ(row.last_service, Str(want["last_service"])) << "row.last_service";
  }
  if (want["open_hops"]) {
    EXPECT_EQ(row.open_hops, want["open_hops"].as<uint32_t>()) << "open hops";
  }
  if (want["closed"]) {
    EXPECT_EQ(row.closed, want["closed"].as<bool>()) << "closed";
  }
  if (want["milestones"]) {
    std::vector<std::string> got;
    for (const Milestone& m : journey.milestones) got.push_back(m.stage);
    EXPECT_EQ(Join(got), Join(StrList(want["milestones"]))) << "milestones (by time)";
  }
  if (want["milestone_at"]) {
    for (const auto& kv : want["milestone_at"]) {
      const std::string stage = kv.first.as<std::string>();
      auto it = std::find_if(journey.milestones.begin(), journey.milestones.end(),
                             [&](const Milestone& m) { return m.stage == stage; });
      ASSERT_NE(it, journey.milestones.end()) << "no milestone " << stage;
      EXPECT_EQ(it->at_ns, st_.At(kv.second)) << "milestone " << stage << " at";
    }
  }
  if (want["milestone_service"]) {
    for (const auto& kv : want["milestone_service"]) {
      const std::string stage = kv.first.as<std::string>();
      auto it = std::find_if(journey.milestones.begin(), journey.milestones.end(),
                             [&](const Milestone& m) { return m.stage == stage; });
      ASSERT_NE(it, journey.milestones.end()) << "no milestone " << stage;
      EXPECT_EQ(it->service, kv.second.as<std::string>()) << "milestone " << stage << " service";
    }
  }
  if (want["spans"]) {
    EXPECT_EQ(journey.spans.size(), want["spans"].as<size_t>()) << "spans stored";
  }
  if (want["span_names"]) {
    std::vector<std::string> got;
    for (const SpanRecord& s : journey.spans) got.push_back(s.name);
    EXPECT_EQ(Join(Sorted(got)), Join(Sorted(StrList(want["span_names"])))) << "span names";
  }
  // The order's summary line as the API's list shows it: built from the stored row when read
  // (the engine stores none: engine.h EngineListener).
  const std::string summary = row.stuck == StuckKind::kNone
                                  ? row.summary
                                  : SummaryLine(row, *st_.engine->rules(), st_.clock.Now());
  for (const auto& text : StrList(want["summary_contains"])) {
    EXPECT_NE(summary.find(text), std::string::npos)
        << "row summary lacks '" << text << "': " << summary;
  }
  if (const YAML::Node& hops = want["hops"]) {
    ASSERT_EQ(journey.hops.size(), hops.size()) << "hops";
    for (size_t i = 0; i < hops.size(); ++i) {
      const YAML::Node& w = hops[i];
      const Hop& h = journey.hops[i];
      CheckKeys(w,
                {"open", "message_id", "exchange", "routing_key", "queue", "send_service",
                 "process_service", "publish_span", "process_span", "published", "processed"},
                "hops[]");
      if (w["open"]) {
        EXPECT_EQ(h.open(), w["open"].as<bool>()) << "hop " << i << " open";
      }
      if (w["message_id"]) {
        EXPECT_EQ(h.message_id, Str(w["message_id"])) << "h.message_id";
      }
      if (w["exchange"]) {
        EXPECT_EQ(h.exchange, Str(w["exchange"])) << "h.exchange";
      }
      if (w["routing_key"]) {
        EXPECT_EQ(h.routing_key, Str(w["routing_key"])) << "h.routing_key";
      }
      if (w["queue"]) {
        EXPECT_EQ(h.queue, Str(w["queue"])) << "h.queue";
      }
      if (w["send_service"]) {
        EXPECT_EQ(h.send_service, Str(w["send_service"])) << "h.send_service";
      }
      if (w["process_service"]) {
        EXPECT_EQ(h.process_service, Str(w["process_service"])) << "h.process_service";
      }
      if (w["publish_span"]) {
        EXPECT_EQ(h.send_span_id, SpanHex(Str(w["publish_span"]))) << "h.send_span_id";
      }
      if (w["process_span"]) {
        EXPECT_EQ(h.process_span_id, SpanHex(Str(w["process_span"]))) << "h.process_span_id";
      }
      if (w["published"]) {
        EXPECT_EQ(h.published_ns, st_.At(w["published"])) << "h.published_ns";
      }
      if (w["processed"]) {
        EXPECT_EQ(h.processed_ns, st_.At(w["processed"])) << "h.processed_ns";
      }
    }
  }
  if (want["same_as"]) {
    // The same journey as another order (arrival order must not matter): every derived field
    // of the row, the milestones' stages and times, the span count, the hops' state.
    const std::string other_id = Str(want["same_as"]);
    auto o = st_.store->GetJourney(other_id);
    ASSERT_TRUE(o.ok() && o.value().has_value()) << "same_as: unknown order " << other_id;
    OrderRow a = row, b = o.value()->order;
    a.order_id = b.order_id = "";
    a.summary = b.summary = "";
    EXPECT_EQ(a, b) << "order rows differ from " << other_id;
    auto ms = [](const Journey& x) {
      std::vector<std::string> v;
      for (const Milestone& m : x.milestones) {
        v.push_back(m.stage + "@" + std::to_string(m.at_ns) + "/" + m.service);
      }
      return Join(v);
    };
    EXPECT_EQ(ms(journey), ms(*o.value())) << "milestones differ from " << other_id;
    EXPECT_EQ(journey.spans.size(), o.value()->spans.size()) << "span count differs";
    auto hs = [](const Journey& x) {
      std::vector<std::string> v;
      for (const Hop& h : x.hops) {
        v.push_back(std::to_string(h.published_ns) + "/" + std::to_string(h.processed_ns) + "/" +
                    h.exchange + "/" + h.routing_key + "/" + h.queue + "/" + h.process_service);
      }
      return Join(v);
    };
    EXPECT_EQ(hs(journey), hs(*o.value())) << "hops differ from " << other_id;
  }
  if (want["diagnosis"]) CheckDiagnosis(journey, want["diagnosis"]);
}

void JourneyCaseTest::CheckExpect(const YAML::Node& e) {
  CheckKeys(e,
            {"stuck", "flagged", "cleared", "active_orders", "open_hops", "stuck_orders", "orders",
             "next_deadline"},
            "expect");
  if (e["stuck"]) {
    std::set<std::string> got = StuckSet(*st_.store);
    EXPECT_EQ(Join({got.begin(), got.end()}), Join(Sorted(StrList(e["stuck"]))))
        << "the stuck set (store)";
    EXPECT_EQ(st_.engine->stuck_orders(), got.size()) << "engine stuck_orders()";
  }
  if (e["flagged"]) {
    EXPECT_EQ(Join(Sorted(st_.recorder.flagged)), Join(Sorted(StrList(e["flagged"]))))
        << "orders flagged by this step";
  }
  if (e["cleared"]) {
    EXPECT_EQ(Join(Sorted(st_.recorder.cleared)), Join(Sorted(StrList(e["cleared"]))))
        << "orders cleared by this step";
  }
  if (e["active_orders"]) {
    EXPECT_EQ(st_.engine->active_orders(), e["active_orders"].as<size_t>()) << "active orders";
  }
  if (e["open_hops"]) {
    EXPECT_EQ(st_.engine->open_hops(), e["open_hops"].as<size_t>()) << "open hops";
  }
  if (e["stuck_orders"]) {
    EXPECT_EQ(st_.engine->stuck_orders(), e["stuck_orders"].as<size_t>()) << "stuck_orders()";
  }
  if (e["next_deadline"]) {
    const std::string t = Str(e["next_deadline"]);
    EXPECT_EQ(st_.engine->NextDeadline(),
              t == "never" ? Engine::kNever : st_.At(e["next_deadline"]))
        << "next deadline";
  }
  if (const YAML::Node& orders = e["orders"]) {
    for (const auto& kv : orders) CheckOrder(kv.first.as<std::string>(), kv.second);
  }
}

TEST_P(JourneyCaseTest, Run) {
  const std::string file = GetParam().file;
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file);
  } catch (const std::exception& ex) {
    FAIL() << file << ": " << ex.what();
  }
  try {
    CheckKeys(
        doc,
        {"name", "description", "rules", "start", "clock", "jaeger_ui", "attribution", "steps"},
        "case");
    if (doc["attribution"]) ParseAttribution(doc["attribution"]);
    if (doc["start"]) {
      // An absolute start is not needed: the default is a fixed Monday morning.  Accept an
      // offset in seconds since the epoch for cases that care.
      st_.start = doc["start"].as<int64_t>() * kSecond;
    }
    st_.rules = doc["rules"] ? ParseInlineRules(doc["rules"])
                             : std::make_shared<const Rules>(DefaultRules());
    st_.clock.Set(st_.start + (doc["clock"] ? ParseRel(Str(doc["clock"])) : 0));
    OpenStore();
    if (HasFatalFailure()) return;
    NewEngine();
    if (HasFatalFailure()) return;

    size_t n = 0;
    for (const YAML::Node& step : doc["steps"]) {
      ++n;
      SCOPED_TRACE(file + ": step " + std::to_string(n) + " (" + Where(step) + ")" +
                   (step["note"] ? ": " + Str(step["note"]) : ""));
      CheckKeys(step, {"note", "at", "spans", "restart", "rules", "tick", "expect"}, "step");
      st_.recorder.NewStep();
      if (step["at"]) {
        const Nanos at = st_.At(step["at"]);
        ASSERT_GE(at, st_.clock.Now()) << "the clock does not go back";
        st_.clock.Set(at);
      }
      // `restart: true`, or `restart: {warm_up: false}`.
      bool restart = false, warm_up = true;
      if (const YAML::Node& r = step["restart"]) {
        if (r.IsMap()) {
          CheckKeys(r, {"warm_up"}, "restart");
          restart = true;
          if (r["warm_up"]) warm_up = r["warm_up"].as<bool>();
        } else {
          restart = r.as<bool>();
        }
      }
      if (restart) {
        st_.recorder.Seed(StuckSet(*st_.store));
        if (GetParam().store == StoreKind::kSqlite) {
          st_.stage.reset();
          st_.engine.reset();
          st_.store.reset();
          OpenStore();
          if (HasFatalFailure()) return;
        }
        NewEngine(warm_up);
        if (HasFatalFailure()) return;
      }
      if (step["rules"]) {
        Status s = st_.engine->SetRules(ParseInlineRules(step["rules"]));
        ASSERT_TRUE(s.ok()) << s.ToString();
      }
      if (step["spans"]) {
        ApplySpans(step["spans"], n);
        if (HasFatalFailure()) return;
      }
      const bool tick = step["tick"] ? step["tick"].as<bool>() : true;
      if (tick) {
        // The waits that end by now first: what they attribute is due at this tick too.
        st_.stage->ExpireWaits(st_.clock.Now());
        CheckNoFailedBatches();
        st_.engine->Tick(st_.clock.Now());
      }
      for (const auto& err : st_.recorder.errors) ADD_FAILURE() << err;
      st_.recorder.errors.clear();
      if (step["expect"]) CheckExpect(step["expect"]);
    }
    EXPECT_GT(n, 0u) << "a case needs steps";
  } catch (const std::exception& ex) {
    FAIL() << file << ": " << ex.what();
  }
}

std::vector<CaseParam> AllCases() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(JOURNEY_CASES_DIR)) {
    if (e.path().extension() == ".yaml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::vector<CaseParam> out;
  for (const auto& f : files) {
    out.push_back({f, StoreKind::kMemory});
    out.push_back({f, StoreKind::kSqlite});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, JourneyCaseTest, testing::ValuesIn(AllCases()), ParamName);

}  // namespace
}  // namespace ordertrace::journey
