// libordertrace's tracing API: a TracerProvider (configured in code or from the standard
// OTEL_* variables), RAII Spans, a thread-local current span (Scope), and export over
// OTLP/HTTP protobuf from a batch processor on a background thread.
//
// Cheap and safe when nothing is configured: the global provider is a no-op until
// SetGlobalTracerProvider(); a Span on a no-op provider (or one the sampler drops) records
// nothing and allocates nothing.  Span methods are noexcept and never block; the batch
// processor drops (and counts) spans when its queue is full.
//
// Thread-safety: TracerProvider is thread-safe.  A Span is used by one thread at a time (it
// may be moved to another thread).  A provider must outlive the spans started from it;
// providers made global are kept alive until the process exits.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ordertrace/context.h"

namespace ordertrace {

enum class SpanKind : uint8_t {
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5
};
enum class SpanStatus : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

using AttributeValue = std::variant<std::string, int64_t, double, bool, std::vector<std::string>>;
struct Attribute {
  std::string key;
  AttributeValue value;
};
struct Link {
  SpanContext context;
  std::vector<Attribute> attributes;
};
struct Event {
  uint64_t time_unix_nano = 0;
  std::string name;
  std::vector<Attribute> attributes;
};

// A finished span as handed to an exporter.
struct SpanData {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_span_id{};  // all zero for a root span
  std::string trace_state;
  uint8_t trace_flags = 0;
  bool parent_remote = false;
  bool has_parent = false;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  uint64_t start_time_unix_nano = 0;
  uint64_t end_time_unix_nano = 0;
  std::vector<Attribute> attributes;
  std::vector<Event> events;
  std::vector<Link> links;
  SpanStatus status = SpanStatus::kUnset;
  std::string status_message;
  uint32_t dropped_attributes = 0;
  uint32_t dropped_events = 0;
  uint32_t dropped_links = 0;
};

enum class Sampler : uint8_t {
  kAlwaysOn,
  kAlwaysOff,
  kTraceIdRatio,
  kParentBasedAlwaysOn,
  kParentBasedAlwaysOff,
  kParentBasedTraceIdRatio,
};

struct ExporterOptions {
  // Full URL of the traces endpoint, http:// or https://.
  std::string endpoint = "http://localhost:4318/v1/traces";
  std::vector<std::pair<std::string, std::string>> headers;
  // https:// only.  The server is always verified (chain, host name or IP address in the URL,
  // SNI for a name) at TLS 1.2 or newer: against the CAs in `certificate_file` (PEM) when set,
  // else the system's trust store.  `client_certificate_file` and `client_key_file` (PEM,
  // both or neither) present a client certificate for mTLS.  The files are read when the
  // exporter is made; errors name the file, never its content.
  std::string certificate_file;         // OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE
  std::string client_certificate_file;  // OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE
  std::string client_key_file;          // OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_KEY
  // Told, in one line, why the exporter cannot work (a bad URL, an unreadable CA file) and
  // why an export failed (refused, TLS verification failed, HTTP 401): each reason once until
  // it changes or an export succeeds.  Never the headers' values nor a file's content.  Called
  // on the export thread.  Empty: the line goes to stderr as "libordertrace: <reason>".
  std::function<void(const std::string& reason)> on_error;
  std::chrono::milliseconds timeout{10000};  // per HTTP attempt
  int max_attempts = 5;                      // then the batch is dropped and counted
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{30000};  // also caps Retry-After
};

struct TracerOptions {
  bool disabled = false;  // OTEL_SDK_DISABLED=true: a no-op provider
  std::string service_name = "unknown_service";
  std::vector<std::pair<std::string, std::string>> resource_attributes;  // besides service.name
  Sampler sampler = Sampler::kParentBasedAlwaysOn;
  double sampler_ratio = 1.0;  // for the ratio samplers, 0..1
  ExporterOptions exporter;
  size_t max_queue_size = 2048;  // ended spans waiting for export; beyond: dropped, counted
  size_t max_export_batch_size = 512;
  std::chrono::milliseconds schedule_delay{1000};
  uint32_t max_attributes = 128;  // per span; also events and links per span
};

// Options from the standard variables (see docs/instrumenting.md); malformed values are
// ignored and keep their defaults.  `getenv` is injectable for tests.
using GetEnv = std::function<const char*(const char*)>;
TracerOptions TracerOptionsFromEnv(const GetEnv& getenv = nullptr);

// What an exporter reports after its own retries; the processor counts the spans of a batch
// that did not succeed as dropped (TracerStats::dropped_export_failed).
enum class ExportResult : uint8_t { kSuccess, kFailure };

class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  // Called from the processor's thread only, one batch at a time.
  virtual ExportResult Export(const std::vector<std::unique_ptr<SpanData>>& spans) noexcept = 0;
  // Interrupts retries in progress; later Export() calls fail fast.
  virtual void Shutdown() noexcept {}
};

// The OTLP/HTTP protobuf exporter.  `resource` are the resource attributes sent with every
// batch (service.name first).  Options it cannot use (see CheckExporterOptions) make an
// exporter whose every Export() fails, reported once through on_error.
std::unique_ptr<SpanExporter> MakeOtlpHttpExporter(
    ExporterOptions options, std::vector<std::pair<std::string, std::string>> resource);

// "" when MakeOtlpHttpExporter can use `options`, else the reason: "endpoint 'ftp://x' is not
// an http:// or https:// URL", "cannot read the CA file '/etc/x.pem': No such file or
// directory", "client_key_file is set without client_certificate_file".  Reads the files;
// for a program's start-up check.
std::string CheckExporterOptions(const ExporterOptions& options);

// Encodes an ExportTraceServiceRequest (protobuf wire format) with one resource and one
// scope ("libordertrace").  Exposed for tests and benchmarks.
std::string EncodeExportRequest(const std::vector<std::pair<std::string, std::string>>& resource,
                                const std::vector<std::unique_ptr<SpanData>>& spans);

struct TracerStats {
  uint64_t spans_started = 0;  // recording spans
  uint64_t spans_ended = 0;
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_export_failed = 0;
  uint64_t exported = 0;
};

class TracerProvider {
 public:
  // A no-op provider.
  TracerProvider();
  // Exports with the OTLP/HTTP exporter, unless `exporter` is given.  Starts the export
  // thread unless the options say disabled.
  explicit TracerProvider(TracerOptions options, std::unique_ptr<SpanExporter> exporter = nullptr);
  ~TracerProvider();  // Shutdown()
  TracerProvider(const TracerProvider&) = delete;
  TracerProvider& operator=(const TracerProvider&) = delete;

  // A provider from TracerOptionsFromEnv().
  static std::shared_ptr<TracerProvider> FromEnv();

  bool enabled() const noexcept;
  // Exports every span ended so far; false when `timeout` passed first.
  bool ForceFlush(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) noexcept;
  // Flushes, stops the thread; spans ended afterwards are dropped.  Idempotent.  After
  // `timeout`, retries still waiting are abandoned (their spans counted as dropped); an HTTP
  // attempt in progress still finishes within the exporter's own timeout.
  void Shutdown(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) noexcept;
  TracerStats stats() const noexcept;
  // The resource attributes sent: service.name, the configured ones, telemetry.sdk.*.
  const std::vector<std::pair<std::string, std::string>>& resource() const noexcept;

  struct Impl;
  Impl* impl() const noexcept { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;
};

// The global provider: a no-op until set.  Setting keeps the previous one alive (spans may
// still reference it) and does not shut it down.
void SetGlobalTracerProvider(std::shared_ptr<TracerProvider> provider);
TracerProvider& GlobalTracerProvider() noexcept;

struct StartOptions {
  SpanKind kind = SpanKind::kInternal;
  // Explicit parent; nullptr: the thread's current span (see Scope), unless `root`.
  const SpanContext* parent = nullptr;
  bool root = false;
  std::vector<Link> links;
  uint64_t start_time_unix_nano = 0;  // 0: now
};

class Span {
 public:
  Span() noexcept = default;  // an empty, non-recording span
  // Starts a span on the global provider.
  explicit Span(std::string_view name, const StartOptions& options = {}) noexcept;
  Span(TracerProvider& provider, std::string_view name, const StartOptions& options = {}) noexcept;
  ~Span() { End(); }
  Span(Span&& other) noexcept;
  Span& operator=(Span&& other) noexcept;
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  // The span's context; for a no-op span, its parent's (so propagation still works).
  const SpanContext& context() const noexcept { return context_; }
  bool recording() const noexcept { return data_ != nullptr; }

  void SetAttribute(std::string_view key, std::string_view value) noexcept;
  void SetAttribute(std::string_view key, const char* value) noexcept {
    SetAttribute(key, std::string_view(value));
  }
  void SetAttribute(std::string_view key, int64_t value) noexcept;
  void SetAttribute(std::string_view key, int value) noexcept {
    SetAttribute(key, static_cast<int64_t>(value));
  }
  void SetAttribute(std::string_view key, double value) noexcept;
  void SetAttribute(std::string_view key, bool value) noexcept;
  void SetAttribute(std::string_view key, std::vector<std::string> value) noexcept;
  void AddEvent(std::string_view name, std::vector<Attribute> attributes = {}) noexcept;
  void AddLink(const SpanContext& context, std::vector<Attribute> attributes = {}) noexcept;
  // OK overrides ERROR; the message is kept for ERROR only (OTel rules).
  void SetStatus(SpanStatus status, std::string_view message = {}) noexcept;
  // An "exception" event (exception.type, exception.message) and error.type = type.
  void RecordException(std::string_view type, std::string_view message) noexcept;
  // Ends the span (now, or at `end_time_unix_nano`) and hands it to the processor.  Idempotent.
  void End(uint64_t end_time_unix_nano = 0) noexcept;

 private:
  void Start(TracerProvider& provider, std::string_view name, const StartOptions& o) noexcept;
  void Set(std::string_view key, AttributeValue value) noexcept;

  SpanContext context_;
  std::unique_ptr<SpanData> data_;  // null when not recording
  TracerProvider::Impl* provider_ = nullptr;
};

// Makes a span's context the thread's current one until the Scope ends (restoring the
// previous).  Holds a copy of the context, so the span may end or move meanwhile.  Scopes on
// one thread nest strictly (destroy in reverse order).
class Scope {
 public:
  explicit Scope(const Span& span) noexcept : Scope(span.context()) {}
  explicit Scope(const SpanContext& context) noexcept;
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  SpanContext context_;
  const SpanContext* previous_;
};

// The thread's current span context; an invalid one when there is none.
const SpanContext& CurrentSpanContext() noexcept;

// New random ids (never all zero), from a per-thread xoshiro256** generator.
TraceId NewTraceId() noexcept;
SpanId NewSpanId() noexcept;

}  // namespace ordertrace
