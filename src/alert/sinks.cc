#include "alert/sinks.h"

#include <cctype>

#include "net/http_client.h"
#include "net/url.h"

namespace ordertrace::alert {
namespace {

// One attempt: POST `body` as JSON; the sink's own User-Agent.  Answers are short (a status
// and at most an error text): 1 MiB is plenty.
Result<net::HttpReply> PostJson(const std::string& url, const std::string& body,
                                net::HeaderList headers, std::chrono::milliseconds timeout) {
  net::HttpOptions options;
  options.timeout = timeout;
  options.max_body_bytes = 1 << 20;
  options.headers = {{"Content-Type", "application/json"}, {"User-Agent", "ordertrace-alerts"}};
  for (auto& header : headers) options.headers.push_back(std::move(header));
  return net::HttpPost(url, body, options);
}

SendResult Classify(const Result<net::HttpReply>& reply) {
  SendResult r;
  if (!reply.ok()) {
    r.error = reply.status().message();
    r.retryable = reply.status().code() != StatusCode::kInvalidArgument;
    return r;
  }
  const int status = reply.value().status;
  if (status >= 200 && status < 300) {
    r.ok = true;
    return r;
  }
  std::string body = reply.value().body.substr(0, 300);
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  r.error = "http " + std::to_string(status) + (body.empty() ? "" : ": " + body);
  r.retryable = status >= 500 || status == 408 || status == 429;
  return r;
}

class AlertmanagerSink : public Sink {
 public:
  AlertmanagerSink(std::string base_url, std::chrono::milliseconds timeout)
      : url_(std::move(base_url)), timeout_(timeout) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    post_url_ = url_ + "/api/v2/alerts";
  }
  const std::string& name() const override { return name_; }
  const std::string& url() const override { return url_; }
  size_t max_batch() const override { return 500; }
  bool resends() const override { return true; }
  SendResult Send(const std::vector<Alert>& alerts) override {
    return Classify(PostJson(post_url_, AlertmanagerBody(alerts), {}, timeout_));
  }

 private:
  const std::string name_ = "alertmanager";
  std::string url_, post_url_;
  std::chrono::milliseconds timeout_;
};

class WebhookSink : public Sink {
 public:
  WebhookSink(std::string url, std::string secret, std::chrono::milliseconds timeout)
      : url_(std::move(url)), secret_(std::move(secret)), timeout_(timeout) {}
  const std::string& name() const override { return name_; }
  const std::string& url() const override { return url_; }
  size_t max_batch() const override { return 1; }
  bool resends() const override { return false; }
  SendResult Send(const std::vector<Alert>& alerts) override {
    for (const Alert& a : alerts) {
      const std::string body = WebhookBody(a);
      net::HeaderList headers;
      if (!secret_.empty()) {
        headers.emplace_back(kSignatureHeader, "sha256=" + HmacSha256Hex(secret_, body));
      }
      SendResult r = Classify(PostJson(url_, body, std::move(headers), timeout_));
      if (!r.ok) return r;
    }
    SendResult ok;
    ok.ok = true;
    return ok;
  }

 private:
  const std::string name_ = "webhook";
  std::string url_, secret_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

Status ValidateHttpUrl(std::string_view url) {
  auto parsed = net::ParseUrl(url);
  return parsed.ok() ? Status::Ok() : parsed.status();
}

std::unique_ptr<Sink> NewAlertmanagerSink(std::string base_url, std::chrono::milliseconds timeout) {
  return std::make_unique<AlertmanagerSink>(std::move(base_url), timeout);
}

std::unique_ptr<Sink> NewWebhookSink(std::string url, std::string secret,
                                     std::chrono::milliseconds timeout) {
  return std::make_unique<WebhookSink>(std::move(url), std::move(secret), timeout);
}

}  // namespace ordertrace::alert
