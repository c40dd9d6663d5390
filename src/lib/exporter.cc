// The OTLP/HTTP protobuf exporter: a hand-written protobuf encoder (no libprotobuf at run
// time) and a small Boost.Beast HTTP/1.1 client (keep-alive, per-attempt timeout, http://
// only), with retries on 429/502/503/504 and connection errors, honouring Retry-After.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>

#include "lib/internal.h"
#include "ordertrace/tracer.h"

namespace ordertrace {

namespace {

// --- protobuf wire encoding ---

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, WireType type) { Varint((uint64_t{field} << 3) | type); }
  void Bytes(uint32_t field, const void* data, size_t n) {
    Tag(field, kLen);
    Varint(n);
    out_->append(static_cast<const char*>(data), n);
  }
  void String(uint32_t field, std::string_view s) {
    if (!s.empty()) Bytes(field, s.data(), s.size());
  }
  void UInt(uint32_t field, uint64_t v) {
    if (v == 0) return;
    Tag(field, kVarint);
    Varint(v);
  }
  void Fixed64(uint32_t field, uint64_t v) {
    Tag(field, kFixed64);
    for (int i = 0; i < 8; ++i) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  void Fixed32(uint32_t field, uint32_t v) {
    Tag(field, kFixed32);
    for (int i = 0; i < 4; ++i) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  // A nested message: reserves a 5-byte length, patched (non-minimal varint is valid protobuf
  // but we rewrite it minimal by moving the payload, which is cheap for span-sized messages).
  template <typename F>
  void Message(uint32_t field, F&& body) {
    Tag(field, kLen);
    const size_t len_pos = out_->size();
    out_->append(5, '\0');
    const size_t start = out_->size();
    body();
    const size_t n = out_->size() - start;
    char len[5];
    size_t len_bytes = 0;
    uint64_t v = n;
    do {
      len[len_bytes++] = static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      v >>= 7;
    } while (v != 0);
    std::memcpy(out_->data() + len_pos, len, len_bytes);
    if (len_bytes < 5) out_->erase(len_pos + len_bytes, 5 - len_bytes);
  }

 private:
  std::string* out_;
};

// common.v1: AnyValue {string 1, bool 2, int 3, double 4, array 5}; ArrayValue {values 1};
// KeyValue {key 1, value 2}.
void EncodeValue(Writer& w, uint32_t field, const AttributeValue& value) {
  w.Message(field, [&] {
    if (const auto* s = std::get_if<std::string>(&value)) {
      w.Bytes(1, s->data(), s->size());  // even when empty: a present string value
    } else if (const auto* b = std::get_if<bool>(&value)) {
      w.Tag(2, kVarint);
      w.Varint(*b ? 1 : 0);
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      w.Tag(3, kVarint);
      w.Varint(static_cast<uint64_t>(*i));
    } else if (const auto* d = std::get_if<double>(&value)) {
      uint64_t bits;
      std::memcpy(&bits, d, sizeof bits);
      w.Fixed64(4, bits);
    } else if (const auto* a = std::get_if<std::vector<std::string>>(&value)) {
      w.Message(5, [&] {
        for (const std::string& s : *a) {
          w.Message(1, [&] { w.Bytes(1, s.data(), s.size()); });
        }
      });
    }
  });
}

void EncodeKeyValue(Writer& w, uint32_t field, std::string_view key, const AttributeValue& v) {
  w.Message(field, [&] {
    w.String(1, key);
    EncodeValue(w, 2, v);
  });
}

void EncodeAttributes(Writer& w, uint32_t field, const std::vector<Attribute>& attrs) {
  for (const Attribute& a : attrs) EncodeKeyValue(w, field, a.key, a.value);
}

// trace.v1.Span; see proto/opentelemetry/proto/trace/v1/trace.proto for the field numbers.
void EncodeSpan(Writer& w, const SpanData& s) {
  w.Message(2, [&] {
    w.Bytes(1, s.trace_id.data(), s.trace_id.size());
    w.Bytes(2, s.span_id.data(), s.span_id.size());
    w.String(3, s.trace_state);
    if (s.has_parent) w.Bytes(4, s.parent_span_id.data(), s.parent_span_id.size());
    w.String(5, s.name);
    w.UInt(6, static_cast<uint64_t>(s.kind));
    w.Fixed64(7, s.start_time_unix_nano);
    w.Fixed64(8, s.end_time_unix_nano);
    EncodeAttributes(w, 9, s.attributes);
    w.UInt(10, s.dropped_attributes);
    for (const Event& e : s.events) {
      w.Message(11, [&] {
        w.Fixed64(1, e.time_unix_nano);
        w.String(2, e.name);
        EncodeAttributes(w, 3, e.attributes);
      });
    }
    w.UInt(12, s.dropped_events);
    for (const Link& l : s.links) {
      w.Message(13, [&] {
        w.Bytes(1, l.context.trace_id.data(), l.context.trace_id.size());
        w.Bytes(2, l.context.span_id.data(), l.context.span_id.size());
        w.String(3, l.context.trace_state);
        EncodeAttributes(w, 4, l.attributes);
        // flags: W3C trace flags, "has is_remote" (0x100) and "is remote" (0x200).
        w.Fixed32(6, l.context.trace_flags | 0x100u | (l.context.remote ? 0x200u : 0u));
      });
    }
    w.UInt(14, s.dropped_links);
    if (s.status != SpanStatus::kUnset) {
      w.Message(15, [&] {
        w.String(2, s.status_message);
        w.UInt(3, static_cast<uint64_t>(s.status));
      });
    }
    w.Fixed32(16, s.trace_flags | 0x100u | (s.parent_remote ? 0x200u : 0u));
  });
}

}  // namespace

std::string EncodeExportRequest(const std::vector<std::pair<std::string, std::string>>& resource,
                                const std::vector<std::unique_ptr<SpanData>>& spans) {
  std::string out;
  out.reserve(256 + spans.size() * 256);
  Writer w(&out);
  w.Message(1, [&] {                         // ResourceSpans
    w.Message(1, [&] {                       // Resource
      for (const auto& [k, v] : resource) {  // attributes = 1
        EncodeKeyValue(w, 1, k, AttributeValue(v));
      }
    });
    w.Message(2, [&] {                       // ScopeSpans
      w.Message(1, [&] {                     // InstrumentationScope
        w.String(1, internal::kScopeName);   // name
        w.String(2, internal::kSdkVersion);  // version
      });
      for (const auto& s : spans) EncodeSpan(w, *s);
    });
  });
  return out;
}

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Url {
  std::string host, port, target;
};

std::optional<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;  // https: not yet
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  Url u;
  u.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty()) return std::nullopt;
  if (authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    u.port =
        authority.size() > 1 && authority.front() == ':' ? std::string(authority.substr(1)) : "80";
  } else {
    const size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    u.port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  }
  return u;
}

class OtlpHttpExporter : public SpanExporter {
 public:
  OtlpHttpExporter(ExporterOptions options,
                   std::vector<std::pair<std::string, std::string>> resource)
      : options_(std::move(options)),
        resource_(std::move(resource)),
        url_(ParseUrl(options_.endpoint)) {
    if (options_.max_attempts < 1) options_.max_attempts = 1;
  }

  ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept override {
    if (!url_) return ExportResult::kFailure;
    try {
      const std::string body = EncodeExportRequest(resource_, spans);
      auto backoff = options_.initial_backoff;
      for (int attempt = 1;; ++attempt) {
        if (stopped()) return ExportResult::kFailure;
        std::chrono::milliseconds retry_after{-1};
        const int status = Post(body, &retry_after);
        if (status >= 200 && status < 300) return ExportResult::kSuccess;
        const bool retryable =
            status == 0 || status == 429 || status == 502 || status == 503 || status == 504;
        if (!retryable || attempt >= options_.max_attempts) return ExportResult::kFailure;
        auto wait = retry_after.count() >= 0 ? retry_after : backoff;
        if (wait > options_.max_backoff) wait = options_.max_backoff;
        backoff = std::min(backoff * 2, options_.max_backoff);
        std::unique_lock<std::mutex> lock(mu_);
        if (stop_cv_.wait_for(lock, wait, [&] { return stopped_; })) {
          return ExportResult::kFailure;
        }
      }
    } catch (...) {
      return ExportResult::kFailure;
    }
  }

  void Shutdown() noexcept override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    stop_cv_.notify_all();
  }

 private:
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

  // One attempt; returns the HTTP status, or 0 on a connection error or timeout.
  int Post(const std::string& body, std::chrono::milliseconds* retry_after) {
    const auto deadline = Clock::now() + options_.timeout;
    for (int reuse = 0; reuse < 2; ++reuse) {
      const bool reused = stream_ != nullptr;
      if (!stream_ && !Connect(deadline)) return 0;
      http::request<http::string_body> req{http::verb::post, url_->target, 11};
      req.set(http::field::host, url_->host + ":" + url_->port);
      req.set(http::field::user_agent, std::string("libordertrace/") + internal::kSdkVersion);
      req.set(http::field::content_type, "application/x-protobuf");
      for (const auto& [k, v] : options_.headers) req.set(k, v);
      req.body() = body;
      req.keep_alive(true);
      req.prepare_payload();
      beast::error_code ec;
      stream_->expires_at(deadline);
      bool done = false;
      http::async_write(*stream_, req, [&](beast::error_code e, size_t) {
        ec = e;
        done = true;
      });
      Run(done);
      http::response<http::string_body> res;
      if (!ec) {
        done = false;
        http::async_read(*stream_, buffer_, res, [&](beast::error_code e, size_t) {
          ec = e;
          done = true;
        });
        Run(done);
      }
      if (ec) {
        Close();
        // A keep-alive connection the server closed meanwhile: once more on a new one.
        if (reused && ec != beast::error::timeout && Clock::now() < deadline) continue;
        return 0;
      }
      if (auto ra = res[http::field::retry_after]; !ra.empty()) {
        int64_t seconds = 0;
        auto [p, e] = std::from_chars(ra.data(), ra.data() + ra.size(), seconds);
        if (e == std::errc() && p == ra.data() + ra.size() && seconds >= 0) {
          *retry_after = std::chrono::seconds(seconds);
        }
      }
      if (!res.keep_alive()) Close();
      return res.result_int();
    }
    return 0;
  }

  bool Connect(Clock::time_point deadline) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(url_->host, url_->port, ec);
    if (ec) return false;
    stream_ = std::make_unique<beast::tcp_stream>(ioc_);
    stream_->expires_at(deadline);
    bool done = false;
    stream_->async_connect(results, [&](beast::error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    Run(done);
    if (ec) {
      Close();
      return false;
    }
    stream_->socket().set_option(tcp::no_delay(true), ec);
    return true;
  }

  void Run(bool& done) {
    ioc_.restart();
    while (!done && ioc_.run_one() > 0) {
    }
  }

  void Close() {
    if (!stream_) return;
    beast::error_code ignored;
    stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_->socket().close(ignored);
    stream_.reset();
    buffer_.clear();
  }

  ExporterOptions options_;
  std::vector<std::pair<std::string, std::string>> resource_;
  std::optional<Url> url_;
  net::io_context ioc_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<SpanExporter> MakeOtlpHttpExporter(
    ExporterOptions options, std::vector<std::pair<std::string, std::string>> resource) {
  return std::make_unique<OtlpHttpExporter>(std::move(options), std::move(resource));
}

}  // namespace ordertrace
