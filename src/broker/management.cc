#include "broker/management.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/url.h"
#include "net/http_client.h"
#include "net/url.h"

namespace ordertrace::broker {
namespace {

using nlohmann::json;

// Reads one field of an object defensively: absent or null keeps the default; a value of
// another type is an error naming the field.
class Fields {
 public:
  Fields(const json& object, std::string where) : o_(object), where_(std::move(where)) {}

  bool String(const char* key, std::string* out) {
    auto it = o_.find(key);
    if (it == o_.end() || it->is_null()) return true;
    if (!it->is_string()) return Fail(key, "a string", *it);
    *out = it->get<std::string>();
    return true;
  }
  bool Count(const char* key, uint64_t* out, bool* present = nullptr) {
    auto it = o_.find(key);
    if (present != nullptr) *present = it != o_.end() && !it->is_null();
    if (it == o_.end() || it->is_null()) return true;
    if (it->is_number_unsigned()) {
      *out = it->get<uint64_t>();
      return true;
    }
    if (it->is_number_integer() && it->get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(it->get<int64_t>());
      return true;
    }
    return Fail(key, "a count", *it);
  }
  // {object}.{key} as a string, when both are there.
  bool Nested(const char* object, const char* key, std::string* out) {
    auto obj = o_.find(object);
    if (obj == o_.end() || obj->is_null()) return true;
    if (!obj->is_object()) return Fail(object, "an object", *obj);
    auto it = obj->find(key);
    if (it == obj->end() || it->is_null()) return true;
    if (!it->is_string()) return Fail(key, "a string", *it);
    *out = it->get<std::string>();
    return true;
  }
  // message_stats.{key}_details.rate, 0 when any part is missing.
  bool Rate(const char* key, double* out) {
    auto stats = o_.find("message_stats");
    if (stats == o_.end() || stats->is_null()) return true;
    if (!stats->is_object()) return Fail("message_stats", "an object", *stats);
    auto details = stats->find(std::string(key) + "_details");
    if (details == stats->end() || details->is_null()) return true;
    if (!details->is_object()) return Fail(key, "an object with a rate", *details);
    auto rate = details->find("rate");
    if (rate == details->end() || rate->is_null()) return true;
    if (!rate->is_number() || !std::isfinite(rate->get<double>())) {
      return Fail(key, "a number", *rate);
    }
    *out = std::max(0.0, rate->get<double>());
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool Fail(const char* key, const char* expected, const json& got) {
    std::string shown = got.dump(-1, ' ', false, json::error_handler_t::replace);
    if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
    error_ = where_ + ": " + key + ": expected " + expected + ", got " + shown;
    return false;
  }

  const json& o_;
  std::string where_;
  std::string error_;
};

// Parses `body` as a JSON array of objects and calls `item` for each.
template <typename Fn>
Status ParseArray(std::string_view body, const char* endpoint, Fn item) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument(std::string(endpoint) + ": not JSON");
  if (!doc.is_array()) {
    return Status::InvalidArgument(std::string(endpoint) + ": expected a JSON array, got " +
                                   doc.type_name());
  }
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string where = std::string(endpoint) + "[" + std::to_string(i) + "]";
    if (!doc[i].is_object()) {
      return Status::InvalidArgument(where + ": expected an object, got " + doc[i].type_name());
    }
    Fields f(doc[i], where);
    if (!item(f)) return Status::InvalidArgument(f.error());
  }
  return Status::Ok();
}

}  // namespace

const QueueState* Snapshot::FindQueue(std::string_view name) const {
  auto it = std::lower_bound(queues.begin(), queues.end(), name,
                             [](const QueueState& q, std::string_view n) { return q.name < n; });
  return it != queues.end() && it->name == name ? &*it : nullptr;
}

const ExchangeInfo* Snapshot::FindExchange(std::string_view name) const {
  for (const ExchangeInfo& e : exchanges) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Status ParseOverview(std::string_view body, Overview* out) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("/api/overview: not JSON");
  if (!doc.is_object()) {
    return Status::InvalidArgument(std::string("/api/overview: expected a JSON object, got ") +
                                   doc.type_name());
  }
  Overview o;
  Fields f(doc, "/api/overview");
  if (!f.String("node", &o.node) || !f.String("cluster_name", &o.cluster_name) ||
      !f.String("rabbitmq_version", &o.rabbitmq_version) ||
      !f.String("management_version", &o.management_version) ||
      !f.String("erlang_version", &o.erlang_version)) {
    return Status::InvalidArgument(f.error());
  }
  *out = std::move(o);
  return Status::Ok();
}

Status ParseQueues(std::string_view body, std::vector<QueueState>* out) {
  std::vector<QueueState> queues;
  Status s = ParseArray(body, "/api/queues", [&](Fields& f) {
    QueueState q;
    if (!f.String("vhost", &q.vhost) || !f.String("name", &q.name) ||
        !f.Count("messages_ready", &q.ready, &q.counted) ||
        !f.Count("messages_unacknowledged", &q.unacked) || !f.Count("consumers", &q.consumers) ||
        !f.Rate("publish", &q.publish_rate) || !f.Rate("deliver_get", &q.deliver_rate) ||
        !f.Rate("ack", &q.ack_rate)) {
      return false;
    }
    queues.push_back(std::move(q));
    return true;
  });
  if (!s.ok()) return s;
  std::sort(queues.begin(), queues.end(),
            [](const QueueState& a, const QueueState& b) { return a.name < b.name; });
  *out = std::move(queues);
  return Status::Ok();
}

Status ParseExchanges(std::string_view body, std::vector<ExchangeInfo>* out) {
  std::vector<ExchangeInfo> exchanges;
  Status s = ParseArray(body, "/api/exchanges", [&](Fields& f) {
    ExchangeInfo e;
    if (!f.String("vhost", &e.vhost) || !f.String("name", &e.name) || !f.String("type", &e.type) ||
        !f.Nested("arguments", "alternate-exchange", &e.alternate_exchange)) {
      return false;
    }
    exchanges.push_back(std::move(e));
    return true;
  });
  if (!s.ok()) return s;
  *out = std::move(exchanges);
  return Status::Ok();
}

Status ParseBindings(std::string_view body, std::vector<BindingInfo>* out) {
  std::vector<BindingInfo> bindings;
  Status s = ParseArray(body, "/api/bindings", [&](Fields& f) {
    BindingInfo b;
    if (!f.String("vhost", &b.vhost) || !f.String("source", &b.source) ||
        !f.String("destination", &b.destination) ||
        !f.String("destination_type", &b.destination_type) ||
        !f.String("routing_key", &b.routing_key)) {
      return false;
    }
    bindings.push_back(std::move(b));
    return true;
  });
  if (!s.ok()) return s;
  *out = std::move(bindings);
  return Status::Ok();
}

ManagementClient::ManagementClient(ManagementOptions options) : options_(std::move(options)) {
  std::string_view text = options_.url;
  while (!text.empty() && text.back() == '/') text.remove_suffix(1);
  if (auto url = net::ParseUrl(text); url.ok()) {
    base_ = url->Origin();
    prefix_ = url->target;
    host_port_ = url->explicit_port ? url->Authority() : url->HostHeader();
  } else {
    base_ = std::string(text);  // every Get() then reports the URL's problem
  }
  vhost_encoded_ = url::PercentEncode(options_.vhost);
  authorization_ = net::BasicAuthorization(options_.user, options_.password);
}

Result<std::string> ManagementClient::Get(const std::string& path) const {
  net::HttpOptions o;
  o.timeout = options_.timeout;
  o.max_body_bytes = options_.max_body_bytes;
  o.headers = {{"Authorization", authorization_}};
  auto reply = net::HttpGet(base_, prefix_ + path, o);
  if (!reply.ok()) {
    // "GET http://h:p/api/overview: connect: Connection refused" -> "connection refused": the
    // cause alone reads well in a diagnosis; logs add the URL.
    std::string cause = reply.status().message();
    if (const size_t sep = cause.rfind(": "); sep != std::string::npos) {
      cause = cause.substr(sep + 2);
    }
    if (!cause.empty() && cause[0] >= 'A' && cause[0] <= 'Z' &&
        (cause.size() < 2 || !(cause[1] >= 'A' && cause[1] <= 'Z'))) {
      cause[0] = static_cast<char>(cause[0] - 'A' + 'a');
    }
    return Status::Unavailable(cause);
  }
  if (reply.value().status != 200) {
    // The management API explains itself in {"error": ..., "reason": ...}.
    std::string reason;
    json doc = json::parse(reply.value().body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("reason") && doc["reason"].is_string()) {
      reason = doc["reason"].get<std::string>();
    }
    const int status = reply.value().status;
    const char* phrase = status == 401   ? " Unauthorized"
                         : status == 403 ? " Forbidden"
                         : status == 404 ? " Not Found"
                         : status == 503 ? " Service Unavailable"
                                         : "";
    std::string message = "GET " + prefix_ + path + ": HTTP " + std::to_string(status) + phrase;
    if (!reason.empty()) message += ": " + reason.substr(0, 200);
    return Status::Unavailable(message);
  }
  return std::move(reply.value().body);
}

Result<Snapshot> ManagementClient::Fetch(Nanos now) const {
  Snapshot snap;
  snap.at_ns = now;
  auto overview = Get("/api/overview");
  if (!overview.ok()) return overview.status();
  if (Status s = ParseOverview(overview.value(), &snap.overview); !s.ok()) return s;
  auto queues = Get("/api/queues/" + vhost_encoded_);
  if (!queues.ok()) return queues.status();
  if (Status s = ParseQueues(queues.value(), &snap.queues); !s.ok()) return s;
  auto exchanges = Get("/api/exchanges/" + vhost_encoded_);
  if (!exchanges.ok()) return exchanges.status();
  if (Status s = ParseExchanges(exchanges.value(), &snap.exchanges); !s.ok()) return s;
  auto bindings = Get("/api/bindings/" + vhost_encoded_);
  if (!bindings.ok()) return bindings.status();
  if (Status s = ParseBindings(bindings.value(), &snap.bindings); !s.ok()) return s;
  return snap;
}

}  // namespace ordertrace::broker
