#include "sim/runtime/outbox.h"

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>
#include <vector>

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
    // Up to kWindow messages handed to the socket, then their confirms read together: one
    // round trip to the broker per window, not per message.
    const size_t n = std::min(kWindow, waiting_.size());
    std::vector<Span> retries(n);
    size_t sent = 0;
    std::string error;
    for (; sent < n; ++sent) {
      Message& m = waiting_[sent];
      const SpanContext* parent = &m.parent;
      if (m.attempts > 0) {
        // libordertrace's Publish ends its own span with OK or FAIL; the retry is marked on a
        // wrapper span, the parent of the retried publish.
        StartOptions so;
        so.parent = &m.parent;
        Span& retry = retries[sent];
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
      po.defer_confirm = true;
      po.mandatory = false;
      po.parent = parent;
      po.provider = &provider_;
      rabbitmq::PublishResult r =
          rabbitmq::Publish(link_.get(), 1, kExchange, m.routing_key, m.body, &props, po);
      ++m.attempts;
      if (!r.ok()) {  // not handed to the socket: its span ended FAIL; retried (kept below)
        ++stats_.publish_failures;
        error = "publish " + m.routing_key + ": " + r.error;
        retries[sent].End();
        break;
      }
      m.sequence = r.sequence;
    }
    // The broker's answers, oldest first (every deferred publish of the channel: these).
    std::vector<rabbitmq::ConfirmOutcome> outcomes = rabbitmq::AwaitConfirms(link_.get(), 1);
    std::vector<std::function<void()>> dones;
    std::deque<Message> kept;
    size_t o = 0;
    for (size_t i = 0; i < sent; ++i) {
      Message& m = waiting_[i];
      while (o < outcomes.size() && outcomes[o].sequence < m.sequence) ++o;
      const bool confirmed =
          o < outcomes.size() && outcomes[o].sequence == m.sequence && outcomes[o].ok();
      if (confirmed) {
        ++stats_.published;
        if (m.attempts > 1) retries[i].SetStatus(SpanStatus::kOk);
        retries[i].End();
        dones.push_back(std::move(m.done));
        continue;
      }
      ++stats_.publish_failures;
      retries[i].End();
      if (error.empty()) {
        error =
            "publish " + m.routing_key + ": " +
            (o < outcomes.size() && outcomes[o].sequence == m.sequence ? outcomes[o].error
                                                                       : std::string("no confirm"));
      }
      kept.push_back(std::move(m));  // published again after the reconnect
    }
    // What was not confirmed goes first again, in its order, then what was not sent.
    for (size_t i = sent; i < waiting_.size(); ++i) kept.push_back(std::move(waiting_[i]));
    waiting_.swap(kept);
    for (auto& done : dones)
      if (done) done();
    if (!error.empty()) {
      link_.MarkDead(error);
      break;
    }
  }
  flushing_ = false;
}

}  // namespace ordertrace::sim
