#include "sim/runtime/outbox.h"

#include <nlohmann/json.hpp>

#include "ordertrace/order.h"
#include "ordertrace/rabbitmq.h"

namespace ordertrace::sim {

Outbox::Outbox(const Options& options, const std::string& role, std::vector<QueueDef> declared,
               TracerProvider& provider, Stats& stats)
    : order_on_span_(options.order_id_on_every_span),
      declared_(std::move(declared)),
      provider_(provider),
      stats_(stats),
      link_(options.amqp, role + " publish") {}

void Outbox::Send(const std::string& routing_key, const std::string& order,
                  const SpanContext& parent, std::function<void()> done) {
  nlohmann::json body;
  body["order_id"] = order;
  body["what"] = routing_key;
  Message m;
  m.routing_key = routing_key;
  m.order_id = order;
  m.message_id = order + "/" + routing_key;
  m.body = body.dump();
  m.parent = parent;
  m.done = std::move(done);
  waiting_.push_back(std::move(m));
  Flush();
}

void Outbox::Connect(Clock::time_point now) {
  if (!link_.Due(now)) return;
  std::string error;
  if (!link_.Connect(1, &error)) return;
  if (!link_.DeclareTopology(declared_, &error) ||
      !rabbitmq::EnableConfirms(link_.get(), 1, &error))
    link_.MarkDead(error);
}

void Outbox::Flush() {
  if (flushing_) return;
  flushing_ = true;
  while (!waiting_.empty() && link_.connected()) {
    Message& m = waiting_.front();
    Span retry;
    const SpanContext* parent = &m.parent;
    if (m.attempts > 0) {
      // libordertrace's Publish ends its own span with OK or FAIL; the retry is marked on a
      // wrapper span, the parent of the retried publish.
      StartOptions so;
      so.parent = &m.parent;
      retry = Span(provider_, "publish retry " + m.routing_key, so);
      if (order_on_span_) SetOrder(retry, m.order_id);
      SetStepStatus(retry, StepStatus::kRetry);
      retry.SetAttribute("ordertrace.sim.attempt", static_cast<int64_t>(m.attempts + 1));
      parent = &retry.context();
      ++stats_.publish_retries;
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;  // persistent
    props.content_type = Bytes("application/json");
    rabbitmq::PublishOptions po;
    po.order_id = m.order_id;
    po.order_on_span = order_on_span_;
    po.message_id = m.message_id;
    po.wait_for_confirm = true;
    po.mandatory = false;
    po.parent = parent;
    po.provider = &provider_;
    rabbitmq::PublishResult r =
        rabbitmq::Publish(link_.get(), 1, kExchange, m.routing_key, m.body, &props, po);
    ++m.attempts;
    if (r.ok()) {
      ++stats_.published;
      if (m.attempts > 1) retry.SetStatus(SpanStatus::kOk);
      retry.End();
      std::function<void()> done = std::move(m.done);
      waiting_.pop_front();
      if (done) done();
      continue;
    }
    ++stats_.publish_failures;
    retry.End();
    link_.MarkDead("publish " + m.routing_key + ": " + r.error);
    break;
  }
  flushing_ = false;
}

}  // namespace ordertrace::sim
