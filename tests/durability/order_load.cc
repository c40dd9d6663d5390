#include "durability/order_load.h"

#include <chrono>
#include <cstring>
#include <thread>

#include "net/http_client.h"
#include "otlp/span_batch.h"
#include "support/alertmanager_process.h"
#include "support/otlp_requests.h"

namespace ordertrace::durability {

using opentelemetry::proto::trace::v1::Span;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;

namespace {

constexpr Nanos kMs = 1'000'000;

std::string Bytes(uint32_t a, uint32_t b) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &a, 4);
  std::memcpy(s.data() + 4, &b, 4);
  return s;
}

std::string Hex(const std::string& raw) {
  return otlp::ToHex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

}  // namespace

// Spans of one order into one request, grouped by service (one resource each).
class OrderLoad::Builder {
 public:
  Builder(OrderLoad& load, OrderPlan& plan)
      : load_(load),
        plan_(plan),
        trace_(Bytes(0x0d0ab1e5, plan.number) + Bytes(load.trace_salt_, 7)) {}

  // A span of `service`; returns its raw id.  `t` is its end; it starts 5ms earlier.
  std::string Add(const std::string& service, const std::string& name, Nanos t,
                  const std::function<void(SpanBuilder&)>& fill, const std::string& parent = {}) {
    const std::string id = Bytes(load_.trace_salt_, ++load_.next_span_);
    SpanBuilder span(name);
    span.Ids(trace_, id, parent);
    span.Times(static_cast<uint64_t>(t - 5 * kMs), static_cast<uint64_t>(t));
    if (!load_.padding_.empty()) span.Attr("test.padding", load_.padding_);
    fill(span);
    by_service_[service].push_back(span.span());
    plan_.span_ids.insert(Hex(id));
    return id;
  }
  std::string Milestone(const std::string& service, const std::string& stage, Nanos t,
                        const std::string& parent = {}) {
    return Add(
        service, "step " + stage, t,
        [&](SpanBuilder& s) { s.Attr("order.id", plan_.id).Attr("order.stage", stage); }, parent);
  }
  // A publish with the order's id; returns its raw id.
  std::string Publish(const std::string& service, const std::string& message_id,
                      const std::string& routing_key, Nanos t, const std::string& parent) {
    ++plan_.hops;
    return Add(
        service, "publish " + routing_key, t,
        [&](SpanBuilder& s) {
          s.Kind(Span::SPAN_KIND_PRODUCER)
              .Attr("order.id", plan_.id)
              .Attr("messaging.system", "rabbitmq")
              .Attr("messaging.operation.type", "send")
              .Attr("messaging.message.id", message_id)
              .Attr("messaging.destination.name", "orders:" + routing_key)
              .Attr("messaging.rabbitmq.destination.routing_key", routing_key);
        },
        parent);
  }
  // The consumer's span of `message_id`, a child of the publish; with or without order.id.
  std::string Process(const std::string& service, const std::string& message_id,
                      const std::string& queue, Nanos t, const std::string& publish,
                      bool with_order_id) {
    return Add(
        service, queue + " process", t,
        [&](SpanBuilder& s) {
          s.Kind(Span::SPAN_KIND_CONSUMER)
              .Attr("messaging.system", "rabbitmq")
              .Attr("messaging.operation.type", "process")
              .Attr("messaging.message.id", message_id)
              .Attr("messaging.destination.subscription.name", queue);
          if (with_order_id) s.Attr("order.id", plan_.id);
        },
        publish);
  }
  void Into(RequestBuilder& req) const {
    for (const auto& [service, spans] : by_service_) {
      req.Resource(service).Scope("ordertrace-durability-test");
      for (const auto& s : spans) req.Add(s);
    }
  }

 private:
  OrderLoad& load_;
  OrderPlan& plan_;
  std::string trace_;
  std::map<std::string, std::vector<Span>> by_service_;
};

OrderLoad::OrderLoad(std::string prefix, size_t padding)
    : prefix_(std::move(prefix)),
      padding_(padding, 'p'),
      trace_salt_(static_cast<uint32_t>(std::hash<std::string>()(prefix_)) | 1u) {}

std::set<std::string> OrderLoad::ExpectedStuck() const {
  std::set<std::string> out;
  for (const auto& [id, plan] : orders_) {
    if (plan.stuck) out.insert(id);
  }
  return out;
}

namespace {

LoadRequest Serialize(const RequestBuilder& req) {
  LoadRequest out;
  out.body = req.Serialized();
  const auto built = req.Build();
  for (const auto& rs : built.resource_spans()) {
    for (const auto& ss : rs.scope_spans()) {
      for (const auto& s : ss.spans()) out.span_ids.push_back(Hex(s.span_id()));
    }
  }
  return out;
}

}  // namespace

void OrderLoad::FinishPending(Nanos now, RequestBuilder& req) {
  if (pending_.empty()) return;
  OrderPlan& plan = orders_.at(pending_);
  Builder b(*this, plan);
  Nanos t = now - 200 * kMs;
  // The consume span has no order.id: its order comes from its parent, the publish sent in the
  // previous request (attribution), or from its message id.
  b.Process("mes", plan.id + "-m1", "mes.orders", t += kMs, pending_publish_, false);
  const std::string price = b.Milestone("mes", "PRICE_CALCULATED", t += kMs);
  const std::string pub2 = b.Publish("mes", plan.id + "-m2", "price.calculated", t += kMs, price);
  b.Process("crm", plan.id + "-m2", "crm.prices", t += kMs, pub2, true);
  const std::string approve = b.Milestone("crm", "APPROVED", t += kMs);
  const std::string pub3 = b.Publish("crm", plan.id + "-m3", "order.approved", t += kMs, approve);
  b.Process("mes", plan.id + "-m3", "mes.orders", t += kMs, pub3, true);
  b.Milestone("mes", "MANUFACTURING_STARTED", t += kMs);
  b.Milestone("mes", "SHIPPED", t += kMs);
  b.Milestone("crm", "CLOSED", t += kMs);
  b.Into(req);
  pending_.clear();
  pending_publish_.clear();
}

LoadRequest OrderLoad::Next(Nanos now) {
  RequestBuilder req;
  FinishPending(now, req);

  const uint32_t n = next_order_++;
  const std::string id = prefix_ + "-" + std::to_string(n);
  OrderPlan& plan = orders_[id];
  plan.id = id;
  plan.number = n;
  Builder b(*this, plan);
  switch (n % 5) {
    case 3: {  // stuck at once: a minute old, the MES never consumes the message
      plan.kind = OrderKind::kStuckAtOnce;
      plan.final_stage = "SUBMITTED";
      plan.stuck = true;
      plan.open_hops = 1;
      const Nanos t = now - 60'000 * kMs;
      const std::string submit = b.Milestone("crm", "SUBMITTED", t);
      b.Publish("crm", id + "-m1", "order.submitted", t + kMs, submit);
      break;
    }
    case 4: {  // stalls: silent after MANUFACTURING_STARTED's heartbeat
      plan.kind = OrderKind::kStalls;
      plan.final_stage = "MANUFACTURING_STARTED";
      plan.stuck = true;
      Nanos t = now - 100 * kMs;
      const std::string submit = b.Milestone("crm", "SUBMITTED", t += kMs);
      const std::string pub1 = b.Publish("crm", id + "-m1", "order.submitted", t += kMs, submit);
      b.Process("mes", id + "-m1", "mes.orders", t += kMs, pub1, true);
      const std::string price = b.Milestone("mes", "PRICE_CALCULATED", t += kMs);
      const std::string pub2 = b.Publish("mes", id + "-m2", "price.calculated", t += kMs, price);
      b.Process("crm", id + "-m2", "crm.prices", t += kMs, pub2, true);
      const std::string approve = b.Milestone("crm", "APPROVED", t += kMs);
      const std::string pub3 = b.Publish("crm", id + "-m3", "order.approved", t += kMs, approve);
      b.Process("mes", id + "-m3", "mes.orders", t += kMs, pub3, true);
      b.Milestone("mes", "MANUFACTURING_STARTED", t += kMs);
      b.Add("mes", "manufacturing progress", t += kMs,
            [&](SpanBuilder& s) { s.Attr("order.id", id).Attr("ordertrace.heartbeat", true); });
      break;
    }
    default: {  // healthy: the CRM's part now, the rest with the next request
      plan.kind = OrderKind::kHealthy;
      plan.final_stage = "CLOSED";
      plan.closed = true;
      const Nanos t = now - 300 * kMs;
      const std::string submit = b.Milestone("crm", "SUBMITTED", t);
      pending_publish_ = b.Publish("crm", id + "-m1", "order.submitted", t + kMs, submit);
      pending_ = id;
      break;
    }
  }
  b.Into(req);
  return Serialize(req);
}

LoadRequest OrderLoad::Flush(Nanos now) {
  RequestBuilder req;
  FinishPending(now, req);
  if (req.Build().resource_spans_size() == 0) return LoadRequest();
  return Serialize(req);
}

PostResult PostTraces(uint16_t port, const std::string& body) {
  net::HttpOptions options;
  options.timeout = std::chrono::milliseconds(10000);
  options.headers = {{"Content-Type", "application/x-protobuf"}};
  auto reply =
      net::HttpPost("http://127.0.0.1:" + std::to_string(port) + "/v1/traces", body, options);
  PostResult r;
  if (!reply.ok()) return r;
  r.status = reply->status;
  r.retry_after = std::string(reply->Header("retry-after"));
  return r;
}

// ---- LoadClient

PostResult LoadClient::SendOnce(const LoadRequest& r) {
  const uint16_t port = port_();
  if (port == 0) return PostResult();
  PostResult res = PostTraces(port, r.body);
  std::lock_guard lock(mu_);
  ++statuses_[res.status];
  if (!res.retry_after.empty()) retry_afters_[res.status].insert(res.retry_after);
  if (res.status == 200) {
    acked_.insert(r.span_ids.begin(), r.span_ids.end());
    ++acked_requests_;
  }
  return res;
}

bool LoadClient::SendUntilAcknowledged(const LoadRequest& r, const std::function<bool()>& give_up,
                                       bool honour_retry_after) {
  for (;;) {
    const PostResult res = SendOnce(r);
    if (res.status == 200) return true;
    if (give_up()) return false;
    auto pause = std::chrono::milliseconds(20);
    if (honour_retry_after && !res.retry_after.empty()) {
      pause = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000),
                                                  std::chrono::milliseconds(static_cast<int64_t>(
                                                      std::atof(res.retry_after.c_str()) * 1000)));
    }
    std::this_thread::sleep_for(pause);
  }
}

std::set<std::string> LoadClient::acknowledged() const {
  std::lock_guard lock(mu_);
  return acked_;
}

std::map<int, size_t> LoadClient::statuses() const {
  std::lock_guard lock(mu_);
  return statuses_;
}

std::map<int, std::set<std::string>> LoadClient::retry_afters() const {
  std::lock_guard lock(mu_);
  return retry_afters_;
}

// ---- UpstreamRecorder

UpstreamRecorder::UpstreamRecorder() : port_(testing_support::FreePort()), metrics_(registry_) {}

UpstreamRecorder::~UpstreamRecorder() { Stop(); }

bool UpstreamRecorder::Start() {
  Stop();
  net::HttpServerOptions o;
  o.port = port_;
  o.max_body_bytes = 64 << 20;
  server_ = std::make_unique<net::HttpServer>(o);
  receive::RegisterOtlpHttp(*server_, {}, this, &metrics_);
  return server_->Start().ok();
}

void UpstreamRecorder::Stop() {
  if (server_) server_->Shutdown(std::chrono::milliseconds(1000));
  server_.reset();
}

Status UpstreamRecorder::Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept {
  if (refusing_) return Status::Unavailable("the test's upstream is down", 100);
  std::lock_guard lock(mu_);
  for (const auto& s : batch->spans()) {
    ++received_[otlp::ToHex(s.span_id)];
    ++total_;
  }
  return Status::Ok();
}

size_t UpstreamRecorder::distinct() const {
  std::lock_guard lock(mu_);
  return received_.size();
}

size_t UpstreamRecorder::total() const {
  std::lock_guard lock(mu_);
  return total_;
}

std::vector<std::string> UpstreamRecorder::Missing(const std::set<std::string>& wanted) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& id : wanted) {
    if (received_.count(id) == 0) out.push_back(id);
  }
  return out;
}

}  // namespace ordertrace::durability
