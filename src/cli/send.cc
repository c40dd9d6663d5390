#include "cli/send.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/gzip.h"
#include "common/status.h"
#include "google/rpc/status.pb.h"
#include "net/http_client.h"
#include "net/url.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "ordertrace/conventions.h"

namespace ordertrace::cli {
namespace {

namespace pb = opentelemetry::proto;
using Clock = std::chrono::steady_clock;
using pb::trace::v1::Span;

constexpr auto kTick = std::chrono::milliseconds(250);

// ---- endpoint URL ----

Result<net::Url> ParseEndpoint(std::string_view text) {
  if (text.substr(0, 8) == "https://") {
    return Status::InvalidArgument(
        "--endpoint: the sample sender speaks plain http:// only, got '" + net::RedactUrl(text) +
        "'");
  }
  net::UrlOptions options;
  options.what = "--endpoint";
  options.schemes = {"http"};
  options.usage = "a URL like http://127.0.0.1:4318/v1/traces";
  auto url = net::ParseUrl(text, options);
  if (!url.ok()) return url.status();
  if (url->target.empty() || url->target == "/") {
    url->target = "/v1/traces";
  } else if (url->target.front() == '?') {
    url->target = "/v1/traces" + url->target;
  }
  return url;
}

// ---- journeys ----

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  std::string Bytes(size_t n) {
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(gen_() & 0xFF);
    if (out.find_first_not_of('\0') == std::string::npos) out[0] = 1;  // never all-zero ids
    return out;
  }
  std::string Hex(size_t bytes) {
    static const char* kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : Bytes(bytes)) {
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
    return out;
  }
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen_);
  }
  double Real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  bool Chance(double p) { return Real(0, 1) < p; }

 private:
  std::mt19937_64 gen_;
};

uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

void Str(google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>* attrs, std::string_view key,
         const std::string& value) {
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_string_value(value);
}
void Int(google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>* attrs, std::string_view key,
         int64_t value) {
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_int_value(value);
}
void Dbl(google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>* attrs, std::string_view key,
         double value) {
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_double_value(value);
}
void Bool(google::protobuf::RepeatedPtrField<pb::common::v1::KeyValue>* attrs, std::string_view key,
          bool value) {
  auto* kv = attrs->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_bool_value(value);
}

enum class Service { kCrm, kMes };

struct Stats {
  int orders_started = 0;
  int orders_closed = 0;
  int errors = 0;
  std::vector<std::string> stuck;  // order ids stopped on purpose
  uint64_t spans_sent = 0;
  uint64_t spans_rejected = 0;
  uint64_t requests_ok = 0;
  uint64_t requests_failed = 0;
  uint64_t throttled = 0;  // 429/503 answers that were retried
};

// The default order lifecycle (docs/rules.md), compressed from hours into seconds.  Each step emits
// the spans that the real services would: HTTP server spans in the CRM, RabbitMQ publish/process
// pairs (the consumer continues the producer's trace and links to it), the MES's price
// calculation with a heartbeat, and a new trace for each later phase of the order.
class Journeys {
 public:
  Journeys(Rng* rng, Stats* stats) : rng_(rng), stats_(stats) { Reset(); }

  void StartOrder() {
    Order o;
    o.id = "ORD-" + std::to_string(100000 + next_order_++);
    o.partner = "partner-" + std::to_string(rng_->Int(1, 12));
    o.buyer = "buyer" + std::to_string(rng_->Int(100, 999)) + "@" + o.partner + ".example";
    if (rng_->Chance(0.04)) o.stop_at = static_cast<int>(rng_->Int(1, kSteps - 1));
    orders_.push_back(std::move(o));
    ++stats_->orders_started;
  }

  // Advances orders by one step each (each with probability 1/2 unless `finishing`) and
  // returns the request carrying the spans they emitted (no spans: nothing to send).
  const pb::collector::trace::v1::ExportTraceServiceRequest& Tick(bool finishing) {
    Reset();
    for (auto& o : orders_) {
      if (finishing || rng_->Chance(0.5)) Advance(&o);
    }
    std::erase_if(orders_, [](const Order& o) { return o.done; });
    // Drop a resource with no spans this tick.
    auto* rs = request_.mutable_resource_spans();
    for (int i = rs->size() - 1; i >= 0; --i) {
      if (rs->Get(i).scope_spans(0).spans_size() == 0) rs->DeleteSubrange(i, 1);
    }
    return request_;
  }

  size_t active() const { return orders_.size(); }
  int spans() const { return spans_; }

 private:
  static constexpr int kSteps = 7;  // SUBMITTED .. CLOSED, one step each, see Advance()

  struct Order {
    std::string id, partner, buyer;
    int step = 0;
    int stop_at = -1;  // the step this order never takes (a hang, on purpose)
    bool failed_once = false;
    std::string trace;   // current trace id
    std::string parent;  // span the next step continues from
    bool done = false;
  };

  void Reset() {
    request_.Clear();
    spans_ = 0;
    for (Service s : {Service::kCrm, Service::kMes}) {
      auto* rs = request_.add_resource_spans();
      auto* attrs = rs->mutable_resource()->mutable_attributes();
      const bool crm = s == Service::kCrm;
      Str(attrs, "service.name", crm ? "crm" : "mes");
      Str(attrs, "service.version", crm ? "4.2.1" : "2024.3");
      Str(attrs, "service.namespace", "orders");
      Str(attrs, "deployment.environment.name", "demo");
      Str(attrs, "host.name", crm ? "crm-01" : "mes-01");
      auto* scope = rs->add_scope_spans()->mutable_scope();
      scope->set_name("ordertrace-send");
      scope->set_version("1");
    }
  }

  Span* NewSpan(Service s, const Order& o, const std::string& parent, const std::string& name,
                Span::SpanKind kind, int64_t duration_ms, int64_t ends_ms_ago = 0) {
    ++spans_;
    Span* span = request_.mutable_resource_spans(s == Service::kCrm ? 0 : 1)
                     ->mutable_scope_spans(0)
                     ->add_spans();
    span->set_trace_id(o.trace);
    span->set_span_id(rng_->Bytes(8));
    if (!parent.empty()) span->set_parent_span_id(parent);
    span->set_name(name);
    span->set_kind(kind);
    span->set_flags(0x101);  // sampled, parent-is-remote known
    const uint64_t end = NowNanos() - static_cast<uint64_t>(ends_ms_ago) * 1'000'000;
    span->set_end_time_unix_nano(end);
    span->set_start_time_unix_nano(end - static_cast<uint64_t>(duration_ms) * 1'000'000);
    Str(span->mutable_attributes(), kOrderIdKey, o.id);
    return span;
  }

  static void Stage(Span* span, const char* stage) {
    Str(span->mutable_attributes(), kOrderStageKey, stage);
    Str(span->mutable_attributes(), kOrderStepStatusKey, StepStatusName(StepStatus::kOk));
  }

  void Http(Span* span, const std::string& route, const std::string& path, int status) {
    auto* a = span->mutable_attributes();
    Str(a, "http.request.method", "POST");
    Str(a, "http.route", route);
    Str(a, "url.path", path);
    Str(a, "url.scheme", "https");
    Int(a, "http.response.status_code", status);
    Str(a, "server.address", "crm.orders.internal");
    Str(a, "user_agent.original", "partner-gateway/1.8 (+https://partner.example)");
  }

  Span* Publish(Service s, const Order& o, const std::string& parent, const std::string& exchange,
                const std::string& routing_key) {
    Span* span =
        NewSpan(s, o, parent, "publish " + routing_key, Span::SPAN_KIND_PRODUCER, rng_->Int(1, 4));
    auto* a = span->mutable_attributes();
    Str(a, kMessagingSystemKey, "rabbitmq");
    Str(a, kMessagingOperationTypeKey, "send");
    Str(a, kMessagingDestinationNameKey, exchange);
    Str(a, kMessagingRabbitmqRoutingKeyKey, routing_key);
    Str(a, kMessagingMessageIdKey, rng_->Hex(16));
    Int(a, kMessagingBodySizeKey, rng_->Int(300, 2400));
    Str(a, "network.peer.address", "10.20.0.15");
    return span;
  }

  Span* Process(Service s, const Order& o, const std::string& producer, const std::string& exchange,
                const std::string& routing_key) {
    Span* span = NewSpan(s, o, producer, "process " + routing_key, Span::SPAN_KIND_CONSUMER,
                         rng_->Int(5, 40));
    auto* link = span->add_links();
    link->set_trace_id(o.trace);
    link->set_span_id(producer);
    auto* a = span->mutable_attributes();
    Str(a, kMessagingSystemKey, "rabbitmq");
    Str(a, kMessagingOperationTypeKey, "process");
    Str(a, kMessagingDestinationNameKey, exchange);
    Str(a, kMessagingRabbitmqRoutingKeyKey, routing_key);
    Str(a, kMessagingConsumerGroupKey, s == Service::kMes ? "mes.orders" : "crm.orders");
    return span;
  }

  void Advance(Order* o) {
    if (o->step == o->stop_at) {  // this order hangs here: nothing more is ever sent for it
      stats_->stuck.push_back(o->id);
      o->done = true;
      return;
    }
    switch (o->step) {
      case 0: {  // partner submits; CRM asks MES for a price
        o->trace = rng_->Bytes(16);
        Span* server = NewSpan(Service::kCrm, *o, "", "POST /api/orders", Span::SPAN_KIND_SERVER,
                               rng_->Int(20, 90));
        Http(server, "/api/orders", "/api/orders", 201);
        Stage(server, "SUBMITTED");
        Str(server->mutable_attributes(), kPartnerIdKey, o->partner);
        Str(server->mutable_attributes(), kEndUserIdKey, o->buyer);
        o->parent =
            Publish(Service::kCrm, *o, server->span_id(), "orders", "price.calculate")->span_id();
        break;
      }
      case 1: {  // MES takes the message and calculates the price (may fail once)
        Span* process = Process(Service::kMes, *o, o->parent, "orders", "price.calculate");
        Span* calc = NewSpan(Service::kMes, *o, process->span_id(), "calculate price",
                             Span::SPAN_KIND_INTERNAL, rng_->Int(300, 1800));
        auto* a = calc->mutable_attributes();
        Int(a, "pricing.items", rng_->Int(1, 40));
        Span* beat = NewSpan(Service::kMes, *o, calc->span_id(), "calculate price heartbeat",
                             Span::SPAN_KIND_INTERNAL, 1, rng_->Int(50, 250));
        Bool(beat->mutable_attributes(), kHeartbeatKey, true);
        if (!o->failed_once && rng_->Chance(0.08)) {
          o->failed_once = true;
          ++stats_->errors;
          Str(a, kOrderStepStatusKey, StepStatusName(StepStatus::kFail));
          Str(a, kErrorTypeKey, "PriceEngineTimeout");
          calc->mutable_status()->set_code(pb::trace::v1::Status::STATUS_CODE_ERROR);
          calc->mutable_status()->set_message("price engine did not answer within 30s");
          auto* ev = calc->add_events();
          ev->set_name(std::string(kExceptionEventName));
          ev->set_time_unix_nano(calc->end_time_unix_nano());
          Str(ev->mutable_attributes(), kExceptionTypeKey, "PriceEngineTimeout");
          Str(ev->mutable_attributes(), kExceptionMessageKey,
              "price engine did not answer within 30s");
          return;  // same step again: the retry
        }
        Str(a, kOrderStepStatusKey,
            StepStatusName(o->failed_once ? StepStatus::kRetry : StepStatus::kOk));
        Dbl(a, "pricing.total_amount", static_cast<double>(rng_->Int(10000, 9000000)) / 100);
        o->parent = calc->span_id();
        break;
      }
      case 2: {  // MES publishes the price; CRM records PRICE_CALCULATED
        Span* pub = Publish(Service::kMes, *o, o->parent, "orders", "price.calculated");
        Span* process = Process(Service::kCrm, *o, pub->span_id(), "orders", "price.calculated");
        Stage(process, "PRICE_CALCULATED");
        break;
      }
      case 3: {  // later, in a new trace: the partner approves; CRM starts manufacturing
        o->trace = rng_->Bytes(16);
        const std::string path = "/api/orders/" + o->id + "/approve";
        Span* server = NewSpan(Service::kCrm, *o, "", "POST /api/orders/{id}/approve",
                               Span::SPAN_KIND_SERVER, rng_->Int(15, 60));
        Http(server, "/api/orders/{id}/approve", path, 200);
        Stage(server, "APPROVED");
        Str(server->mutable_attributes(), kEndUserIdKey, o->buyer);
        o->parent = Publish(Service::kCrm, *o, server->span_id(), "manufacturing", "order.approved")
                        ->span_id();
        break;
      }
      case 4: {  // MES starts manufacturing
        Span* process = Process(Service::kMes, *o, o->parent, "manufacturing", "order.approved");
        Span* start = NewSpan(Service::kMes, *o, process->span_id(), "start manufacturing",
                              Span::SPAN_KIND_INTERNAL, rng_->Int(50, 400));
        Stage(start, "MANUFACTURING_STARTED");
        Str(start->mutable_attributes(), "mes.line", "line-" + std::to_string(rng_->Int(1, 4)));
        break;
      }
      case 5: {  // days later, a new trace: MES ships and tells the CRM
        o->trace = rng_->Bytes(16);
        Span* ship = NewSpan(Service::kMes, *o, "", "ship order", Span::SPAN_KIND_INTERNAL,
                             rng_->Int(20, 200));
        Stage(ship, "SHIPPED");
        o->parent =
            Publish(Service::kMes, *o, ship->span_id(), "orders", "order.shipped")->span_id();
        break;
      }
      case 6: {  // CRM closes the order
        Span* process = Process(Service::kCrm, *o, o->parent, "orders", "order.shipped");
        Span* close = NewSpan(Service::kCrm, *o, process->span_id(), "close order",
                              Span::SPAN_KIND_INTERNAL, rng_->Int(5, 30));
        Stage(close, "CLOSED");
        ++stats_->orders_closed;
        o->done = true;
        break;
      }
    }
    ++o->step;
  }

  Rng* rng_;
  Stats* stats_;
  std::vector<Order> orders_;
  int next_order_ = 0;
  int spans_ = 0;
  pb::collector::trace::v1::ExportTraceServiceRequest request_;
};

// ---- OTLP/HTTP client ----

// One keep-alive connection to the endpoint, reconnected on demand.
class Poster {
 public:
  Poster(const net::Url& endpoint, bool gzip) : connection_(endpoint), gzip_(gzip) {
    headers_ = {{"Content-Type", "application/x-protobuf"}, {"User-Agent", "ordertrace-send"}};
    if (gzip_) headers_.emplace_back("Content-Encoding", "gzip");
  }

  // Posts one request, retrying throttled answers (429/503, honouring Retry-After) and broken
  // connections a few times.  Returns false when it was not accepted; `error` says why.
  bool Post(const std::string& body, int spans, Stats* stats, std::string* error) {
    std::string payload = body;
    if (gzip_) {
      auto gz = GzipCompress(body, Z_DEFAULT_COMPRESSION);
      payload = gz.ok() ? std::move(gz).value() : std::string();
    }
    for (int attempt = 1; attempt <= 5; ++attempt) {
      net::HttpOutcome out = connection_.Send("POST", connection_.url().target, payload, headers_,
                                              std::chrono::seconds(10), 1 << 20);
      if (!out.ok()) {
        *error = "cannot reach " + connection_.url().HostHeader() + ": " + out.failure->Describe();
        std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
        continue;
      }
      const net::HttpReply& res = out.reply;
      if (res.status == 200) {
        pb::collector::trace::v1::ExportTraceServiceResponse response;
        stats->spans_sent += static_cast<uint64_t>(spans);
        if (response.ParseFromString(res.body) && response.has_partial_success() &&
            response.partial_success().rejected_spans() > 0) {
          stats->spans_rejected +=
              static_cast<uint64_t>(response.partial_success().rejected_spans());
          std::fprintf(stderr, "send: %lld spans rejected: %s\n",
                       static_cast<long long>(response.partial_success().rejected_spans()),
                       response.partial_success().error_message().c_str());
        }
        return true;
      }
      *error = "HTTP " + std::to_string(res.status) + ": " + ErrorMessage(res.body);
      if (res.status != 429 && res.status != 503) return false;  // a client error will not improve
      ++stats->throttled;
      int wait_s = 1;
      if (auto ra = res.Header("retry-after"); !ra.empty()) {
        wait_s = std::clamp(std::atoi(std::string(ra).c_str()), 1, 5);
      }
      std::this_thread::sleep_for(std::chrono::seconds(wait_s));
    }
    return false;
  }

 private:
  // The reason in an OTLP error body (google.rpc.Status), or the body itself.
  static std::string ErrorMessage(const std::string& body) {
    google::rpc::Status status;
    if (status.ParseFromString(body) && !status.message().empty()) return status.message();
    return body.substr(0, 200);
  }

  net::HttpConnection connection_;
  bool gzip_;
  net::HeaderList headers_;
};

void PrintProgress(double seconds, const Stats& s, size_t active) {
  std::printf(
      "[%5.1fs] orders: %d started, %d closed, %zu in flight, %zu stuck | spans: %llu sent, "
      "%llu rejected | requests: %llu ok, %llu failed\n",
      seconds, s.orders_started, s.orders_closed, active, s.stuck.size(),
      static_cast<unsigned long long>(s.spans_sent),
      static_cast<unsigned long long>(s.spans_rejected),
      static_cast<unsigned long long>(s.requests_ok),
      static_cast<unsigned long long>(s.requests_failed));
  std::fflush(stdout);
}

}  // namespace

int RunSend(const SendOptions& options) {
  auto endpoint = ParseEndpoint(options.endpoint);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "ordertrace send: %s\n", endpoint.status().message().c_str());
    return 2;
  }
  const int max_orders = options.orders.value_or(options.duration ? -1 : 20);
  const uint64_t seed = options.seed.value_or(std::random_device{}());
  Rng rng(seed);
  Stats stats;
  Journeys journeys(&rng, &stats);
  Poster poster(*endpoint, options.gzip);

  std::printf(
      "sending order journeys to %s (%s orders, %.1f/s%s%s)\n", options.endpoint.c_str(),
      max_orders < 0 ? "unlimited" : std::to_string(max_orders).c_str(), options.rate,
      options.duration
          ? (", for " + std::to_string(options.duration->count() / 1000.0).substr(0, 4) + "s")
                .c_str()
          : "",
      options.gzip ? ", gzip" : "");
  std::fflush(stdout);

  const auto start = Clock::now();
  auto next_tick = start;
  auto next_progress = start + std::chrono::seconds(1);
  double to_start = 1;  // the first order starts at once
  std::string last_error;
  int consecutive_failures = 0;
  for (;;) {
    const auto now = Clock::now();
    const bool in_time = !options.duration || now - start < *options.duration;
    const bool more_orders = max_orders < 0 || stats.orders_started < max_orders;
    const bool starting = in_time && more_orders;
    if (starting) {
      to_start += options.rate * std::chrono::duration<double>(kTick).count();
      while (to_start >= 1 && (max_orders < 0 || stats.orders_started < max_orders)) {
        journeys.StartOrder();
        to_start -= 1;
      }
    }
    const auto& request = journeys.Tick(!starting);
    if (journeys.spans() > 0) {
      std::string error;
      if (poster.Post(request.SerializeAsString(), journeys.spans(), &stats, &error)) {
        ++stats.requests_ok;
        consecutive_failures = 0;
      } else {
        ++stats.requests_failed;
        ++consecutive_failures;
        if (error != last_error) std::fprintf(stderr, "send: request failed: %s\n", error.c_str());
        last_error = error;
        if (stats.requests_ok == 0 || consecutive_failures >= 10) {
          std::fprintf(stderr,
                       "send: giving up: %s (is `ordertrace serve` running and listening there?)\n",
                       error.c_str());
          return 1;
        }
      }
    }
    if (!starting && journeys.active() == 0) break;
    if (!options.quiet && Clock::now() >= next_progress) {
      PrintProgress(std::chrono::duration<double>(Clock::now() - start).count(), stats,
                    journeys.active());
      next_progress += std::chrono::seconds(1);
    }
    next_tick += kTick;
    std::this_thread::sleep_until(next_tick);
  }

  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  PrintProgress(seconds, stats, 0);
  std::printf(
      "done: %llu spans in %llu requests, %d orders closed, %d price calculations failed "
      "and were retried, stuck on purpose: %zu%s",
      static_cast<unsigned long long>(stats.spans_sent),
      static_cast<unsigned long long>(stats.requests_ok + stats.requests_failed),
      stats.orders_closed, stats.errors, stats.stuck.size(), stats.stuck.empty() ? "" : " (");
  for (size_t i = 0; i < stats.stuck.size() && i < 10; ++i) {
    std::printf("%s%s", i ? " " : "", stats.stuck[i].c_str());
  }
  std::printf("%s%s; seed %llu\n", stats.stuck.size() > 10 ? " ..." : "",
              stats.stuck.empty() ? "" : ")", static_cast<unsigned long long>(seed));
  if (stats.throttled > 0) {
    std::printf("the gateway throttled %llu requests; they were retried after Retry-After\n",
                static_cast<unsigned long long>(stats.throttled));
  }
  return stats.requests_failed > 0 ? 1 : 0;
}

}  // namespace ordertrace::cli
