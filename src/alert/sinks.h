// The sinks alerts go to: Alertmanager's API v2 and a generic JSON webhook, over HTTP/1.1 or
// HTTPS (the system's CAs) with a timeout for the whole request, on net's HTTP client.  Retries are
// the dispatcher's (dispatcher.h); a sink makes one attempt per Send().
//
// Thread-safety: one thread at a time per sink (each request opens its own connection).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "alert/alert.h"
#include "common/status.h"

namespace ordertrace::alert {

// http(s)://HOST[:PORT][/path] with a host; InvalidArgument naming the problem otherwise.
Status ValidateHttpUrl(std::string_view url);

// POST {base_url}/api/v2/alerts, up to 500 alerts per request.  `base_url` is Alertmanager's
// address (with its --web.route-prefix when it has one), like http://alertmanager:9093.
std::unique_ptr<Sink> NewAlertmanagerSink(std::string base_url, std::chrono::milliseconds timeout);

// The header carrying the webhook's signature: "sha256=<hex HMAC-SHA256 of the body>".
inline constexpr char kSignatureHeader[] = "X-Ordertrace-Signature";

// POST `url` with one alert's WebhookBody() per request; signed when `secret` is not empty.
std::unique_ptr<Sink> NewWebhookSink(std::string url, std::string secret,
                                     std::chrono::milliseconds timeout);

}  // namespace ordertrace::alert
