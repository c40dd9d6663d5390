#include "api/windowed.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

#include "api/etag.h"
#include "common/log.h"
#include "common/url.h"
#include "common/values.h"

namespace ordertrace::api {

using nlohmann::json;

namespace {

void SetJson(net::HttpResponse& res, int status, std::string body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = std::move(body);
}

// FNV-1a, 64 bits: the ETag is opaque and only compared for equality.
uint64_t Fnv1a(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::optional<Duration> ParseWindowQuery(const std::string& query, const WindowRange& range,
                                         net::HttpResponse& res) {
  const std::string accepted = "window: expected a duration from " + FormatDuration(range.min) +
                               " to " + FormatDuration(range.max) +
                               ", a number with s, m, h or d (default " +
                               FormatDuration(range.fallback) + ")";
  url::QueryParams q;
  std::string error;
  if (!url::ParseQuery(query, &q, &error)) {
    AnswerError(res, 400, error);
    return std::nullopt;
  }
  std::optional<Duration> window;
  for (const auto& [k, v] : q.params) {
    if (k != "window") {
      AnswerError(res, 400, "unknown query parameter '" + k.substr(0, 64) + "' (known: window)");
      return std::nullopt;
    }
    if (window.has_value()) {
      AnswerError(res, 400, "window: given more than once");
      return std::nullopt;
    }
    const Result<std::chrono::milliseconds> d = ParseDuration(v);
    if (!d.ok() || d.value() < range.min || d.value() > range.max) {
      AnswerError(res, 400, accepted + ", got '" + v.substr(0, 32) + "'");
      return std::nullopt;
    }
    window = d.value();
  }
  return window.value_or(range.fallback);
}

json Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return nullptr;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

Result<json> AnswerCache::Get(const std::string& key, Nanos now,
                              const std::function<Result<json>()>& compute) {
  MutexLock lock(mu_);
  const Nanos reuse = std::chrono::nanoseconds(reuse_for_).count();
  const auto it = answers_.find(key);
  if (it != answers_.end() && now >= it->second.first && now - it->second.first < reuse) {
    return it->second.second;
  }
  Result<json> fresh = compute();
  if (!fresh.ok() || reuse <= 0) return fresh;
  // Old answers of other keys go (the keys are few: the windows clients ask for).
  std::erase_if(answers_, [&](const auto& e) { return now - e.second.first >= reuse; });
  answers_[key] = {now, fresh.value()};
  return fresh;
}

void AnswerJson(const net::HttpRequest& req, net::HttpResponse& res, json body) {
  json as_of = std::move(body["as_of"]);
  body.erase("as_of");
  // The tag hashes what the answer shows (all but its time), so a window that slides without
  // changing a figure still answers 304, and one that changes a figure never does.
  const std::string etag =
      MakeETag({Fnv1a(body.dump(-1, ' ', false, json::error_handler_t::replace))}, req);
  if (AnswerNotModified(req, res, etag)) return;
  body["as_of"] = std::move(as_of);
  SetJson(res, 200, body.dump(-1, ' ', false, json::error_handler_t::replace));
}

void RegisterWindowedRoute(net::HttpServer& server, const ApiGuard& guard, const Clock& clock,
                           WindowedRoute route) {
  auto cache = std::make_shared<AnswerCache>(route.reuse_for);
  const std::string path = route.path;
  server.Route(
      "GET", path,
      guard.Wrap(path, "orders.list",
                 [&clock, cache, route = std::move(route)](
                     net::HttpRequest& req, net::HttpResponse& res, audit::AuditEvent& event) {
                   event.resource.emplace_back("type", route.type);
                   const std::optional<Duration> window =
                       ParseWindowQuery(req.query, route.range, res);
                   if (!window) return;
                   event.resource.emplace_back("window", FormatDuration(*window));
                   std::string key = std::to_string(window->count());
                   if (route.extra_key) key += "/" + route.extra_key();
                   const Nanos now = clock.Now();
                   Result<json> body =
                       cache->Get(key, now, [&] { return route.compute(*window, now); });
                   if (!body.ok()) {
                     log::Error("windowed answer failed",
                                {{"route", route.path}, {"error", body.status().message()}});
                     AnswerError(res, 500, "journey store: " + body.status().message());
                     return;
                   }
                   AnswerJson(req, res, std::move(body).value());
                 }));
}

void AnswerError(net::HttpResponse& res, int status, const std::string& message) {
  SetJson(res, status,
          json{{"error", message}, {"status", status}}.dump(-1, ' ', false,
                                                            json::error_handler_t::replace));
  res.headers.emplace_back("Cache-Control", "no-store");
}

}  // namespace ordertrace::api
