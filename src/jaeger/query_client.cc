#include "jaeger/query_client.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <utility>

#include "common/json_nesting.h"
#include "common/url.h"
#include "jaeger/query_endpoint.h"
#include "net/http_client.h"

namespace ordertrace::jaeger {
namespace {

using nlohmann::json;

// Jaeger's v1 trace JSON nests about 7 levels (data, trace, spans, span, tags, tag); far deeper
// is no trace, and would cost the stack of a recursive consumer (json::dump) later.
constexpr int kMaxNesting = 64;
constexpr size_t kMaxQuotedMessage = 200;

// Printable ASCII of `text`, at most kMaxQuotedMessage bytes: Jaeger's own words in a message.
std::string Quoted(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= kMaxQuotedMessage) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

// The messages of Jaeger's {"errors": [{"code": 404, "msg": "trace not found"}]}; empty when
// `j` has none.
std::vector<std::string> JaegerErrors(const json& j) {
  std::vector<std::string> out;
  if (!j.is_object()) return out;
  const auto it = j.find("errors");
  if (it == j.end() || !it->is_array()) return out;
  for (const json& e : *it) {
    if (!e.is_object()) continue;
    const auto msg = e.find("msg");
    out.push_back(msg != e.end() && msg->is_string() ? msg->get<std::string>() : "");
  }
  return out;
}

TraceAnswer Failed(std::string_view trace_id, std::string error,
                   TraceAnswer::Outcome outcome = TraceAnswer::Outcome::kFailed) {
  TraceAnswer a;
  a.trace_id = std::string(trace_id);
  a.outcome = outcome;
  a.error = std::move(error);
  return a;
}

std::string DescribeFailure(const net::HttpFailure& f) {
  switch (f.kind) {
    case net::HttpFailure::Kind::kConnect:
      return "Jaeger is not reachable: " + f.Describe();
    case net::HttpFailure::Kind::kTimeout:
      return "Jaeger did not answer in time (jaeger.timeout): " + f.Describe();
    case net::HttpFailure::Kind::kTls:
      return "TLS with Jaeger failed: " + f.Describe();
    case net::HttpFailure::Kind::kProtocol:
      return "Jaeger's answer is not HTTP: " + f.Describe();
    case net::HttpFailure::Kind::kTooLarge:
      return "Jaeger's answer is too large (jaeger.max_response_bytes, for all the answers of "
             "one read-back): " +
             f.Describe();
    case net::HttpFailure::Kind::kInternal:
      break;
  }
  return "the request to Jaeger failed: " + f.Describe();
}

int64_t Micros(Nanos ns) { return std::max<Nanos>(ns, 0) / 1000; }

}  // namespace

TraceAnswer ParseTraceAnswer(std::string_view trace_id, int status, std::string_view body) {
  if (status != 200 && status != 404) {
    std::string error = "Jaeger answered HTTP " + std::to_string(status);
    if (JsonNestingWithin(body, kMaxNesting)) {
      const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
      const std::vector<std::string> errors = JaegerErrors(j);
      if (!errors.empty() && !errors.front().empty()) error += ": " + Quoted(errors.front());
    }
    TraceAnswer a = Failed(trace_id, std::move(error));
    a.bytes = body.size();
    return a;
  }
  const std::string not_jaeger_404 =
      "Jaeger answered HTTP 404 without its JSON errors: is jaeger.query_url right, its "
      "base_path included (http://HOST:16686/jaeger)?";
  if (!JsonNestingWithin(body, kMaxNesting)) {
    return Failed(trace_id, status == 404 ? not_jaeger_404
                                          : "Jaeger's answer nests deeper than " +
                                                std::to_string(kMaxNesting) + " levels");
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    // The parser's own message quotes what it read; the byte offset is enough.
    if (status == 404) return Failed(trace_id, not_jaeger_404);
    const auto* pe = dynamic_cast<const json::parse_error*>(&e);
    return Failed(trace_id, "Jaeger's answer is not JSON (at byte " +
                                std::to_string(pe != nullptr ? pe->byte : 0) + ")");
  }
  TraceAnswer a;
  a.trace_id = std::string(trace_id);
  a.bytes = body.size();
  if (!j.is_object()) {
    a.error = status == 404 ? not_jaeger_404 : "Jaeger's answer is not a JSON object";
    return a;
  }
  if (status == 404) {
    if (JaegerErrors(j).empty()) {
      a.error = not_jaeger_404;
    } else {
      a.outcome = TraceAnswer::Outcome::kMissing;
    }
    return a;
  }
  const auto data = j.find("data");
  if (data == j.end() || data->is_null() || (data->is_array() && data->empty())) {
    a.outcome = TraceAnswer::Outcome::kMissing;
    return a;
  }
  if (!data->is_array() || !(*data)[0].is_object()) {
    a.error = "Jaeger's answer is not the v1 trace JSON (\"data\" is not a list of traces)";
    return a;
  }
  json& trace = (*data)[0];
  const auto spans = trace.find("spans");
  if (spans == trace.end() || !spans->is_array()) {
    a.error = "Jaeger's answer is not the v1 trace JSON (a trace without \"spans\")";
    return a;
  }
  const auto processes = trace.find("processes");
  if (processes != trace.end() && !processes->is_null() && !processes->is_object()) {
    a.error = "Jaeger's answer is not the v1 trace JSON (\"processes\" is not an object)";
    return a;
  }
  a.outcome = TraceAnswer::Outcome::kFound;
  a.spans = std::move(*spans);
  if (processes != trace.end() && processes->is_object()) a.processes = std::move(*processes);
  return a;
}

Result<std::unique_ptr<QueryClient>> QueryClient::Create(QueryClientOptions options) {
  auto endpoint = ResolveQueryEndpoint(options.query_url, options.ca_file);
  if (!endpoint.ok()) return endpoint.status();
  if (options.parallel == 0 || options.parallel > 16) {
    return Status::InvalidArgument("jaeger read-back: parallel must be 1..16, got " +
                                   std::to_string(options.parallel));
  }
  if (options.timeout <= std::chrono::milliseconds(0) || options.max_response_bytes == 0) {
    return Status::InvalidArgument("jaeger read-back: timeout and max_response_bytes must be > 0");
  }
  QueryEndpoint& e = endpoint.value();
  return std::unique_ptr<QueryClient>(new QueryClient(std::move(options), std::move(e.url),
                                                      std::move(e.base_path), std::move(e.tls)));
}

QueryClient::QueryClient(QueryClientOptions options, net::Url url, std::string base_path,
                         std::shared_ptr<const net::TlsClientContext> tls)
    : options_(std::move(options)),
      url_(std::move(url)),
      base_path_(std::move(base_path)),
      tls_(std::move(tls)) {}

std::string QueryClient::TargetOf(const TraceQuery& trace) const {
  // Ids are hex as stored; encoding keeps anything else from changing the path.
  std::string target = base_path_ + "/api/traces/" + url::PercentEncode(trace.trace_id);
  if (trace.first_ns > 0 && trace.last_ns >= trace.first_ns) {
    const Nanos margin = std::chrono::nanoseconds(options_.margin).count();
    target += "?start=" + std::to_string(Micros(trace.first_ns - margin)) +
              "&end=" + std::to_string(Micros(trace.last_ns + margin));
  }
  return target;
}

TraceAnswer QueryClient::GetTrace(const TraceQuery& trace) const {
  return GetTraces({trace}).front();
}

std::vector<TraceAnswer> QueryClient::GetTraces(const std::vector<TraceQuery>& traces) const {
  std::vector<TraceAnswer> out(traces.size());
  if (traces.empty()) return out;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + options_.timeout;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> remaining{options_.max_response_bytes};
  const net::HeaderList headers{{"Accept", "application/json"}};

  // Asks for traces[i] on `connection`, within what is left of the time and size budgets.
  auto ask = [&](net::HttpConnection& connection, const TraceQuery& q) -> TraceAnswer {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= std::chrono::milliseconds(0)) {
      return Failed(q.trace_id,
                    "not asked: the read-back's time (jaeger.timeout, " +
                        std::to_string(options_.timeout.count()) + "ms) ran out",
                    TraceAnswer::Outcome::kNotAsked);
    }
    const uint64_t budget = remaining.load();
    if (budget == 0) {
      return Failed(q.trace_id,
                    "not asked: Jaeger's answers so far fill jaeger.max_response_bytes (" +
                        std::to_string(options_.max_response_bytes) + " bytes)",
                    TraceAnswer::Outcome::kNotAsked);
    }
    net::HttpOutcome reply = connection.Send("GET", TargetOf(q), {}, headers, left, budget);
    if (!reply.ok()) {
      connection.Close();  // a timed-out or oversized answer leaves the connection unusable
      return Failed(q.trace_id, DescribeFailure(*reply.failure));
    }
    // Another worker may have taken part of the budget meanwhile.
    const uint64_t size = reply.reply.body.size();
    uint64_t r = remaining.load();
    do {
      if (size > r) {
        return Failed(q.trace_id,
                      "Jaeger's answers together are larger than jaeger.max_response_bytes (" +
                          std::to_string(options_.max_response_bytes) + " bytes)");
      }
    } while (!remaining.compare_exchange_weak(r, r - size));
    return ParseTraceAnswer(q.trace_id, reply.reply.status, reply.reply.body);
  };
  // Each worker takes the next trace not yet taken; each writes only the slots it took.
  auto work = [&] {
    net::HttpConnection connection(url_, tls_, /*keep_alive=*/true);
    for (size_t i = next.fetch_add(1); i < traces.size(); i = next.fetch_add(1)) {
      out[i] = ask(connection, traces[i]);
    }
  };
  const size_t workers = std::min(options_.parallel, traces.size());
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers; ++w) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no thread to spare: fewer workers, the same answers
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  return out;
}

}  // namespace ordertrace::jaeger
