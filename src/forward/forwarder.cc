#include "forward/forwarder.h"

#include <fstream>
#include <thread>

#include "common/log.h"
#include "forward/encoder.h"

namespace ordertrace::forward {

Result<std::unique_ptr<OtlpExporter>> Forwarder::Prepare(const ForwarderOptions& options) {
  auto exporter = OtlpExporter::Create(options.exporter);
  if (!exporter.ok()) return exporter.status();
  std::error_code ec;
  std::filesystem::create_directories(options.dead_letter_dir, ec);
  if (ec) {
    return Status::InvalidArgument("dead-letter directory " + options.dead_letter_dir.string() +
                                   ": " + ec.message());
  }
  return exporter;
}

Result<std::unique_ptr<Forwarder>> Forwarder::Start(const ForwarderOptions& options,
                                                    metrics::Registry& registry) {
  auto exporter = Prepare(options);
  if (!exporter.ok()) return exporter.status();
  RecoveryReport report;
  auto queue = DurableQueue::Open(options.queue, &report);
  if (!queue.ok()) {
    return Status(queue.status().code(), "forward queue in " + options.queue.dir.string() + ": " +
                                             queue.status().message());
  }
  if (report.records > 0 || report.torn_records > 0) {
    log::Info("forward queue recovered", {{"dir", options.queue.dir.string()},
                                          {"records", report.records},
                                          {"bytes", report.bytes},
                                          {"torn_records_dropped", report.torn_records},
                                          {"torn_bytes_dropped", report.torn_bytes}});
  }
  ingest_log::DurableLog::Consumer& consumer = (*queue)->consumer();
  return std::unique_ptr<Forwarder>(new Forwarder(options, std::move(queue).value(), consumer,
                                                  std::move(exporter).value(), registry));
}

Result<std::unique_ptr<Forwarder>> Forwarder::Start(const ForwarderOptions& options,
                                                    ingest_log::DurableLog::Consumer& log,
                                                    metrics::Registry& registry) {
  auto exporter = Prepare(options);
  if (!exporter.ok()) return exporter.status();
  if (const uint64_t n = log.lag_records(); n > 0) {
    log::Info("forward queue recovered: unsent records in the ingest log",
              {{"records", n}, {"bytes", log.lag_bytes()}});
  }
  return std::unique_ptr<Forwarder>(
      new Forwarder(options, nullptr, log, std::move(exporter).value(), registry));
}

Forwarder::Forwarder(const ForwarderOptions& options, std::unique_ptr<DurableQueue> own_queue,
                     ingest_log::DurableLog::Consumer& queue,
                     std::unique_ptr<OtlpExporter> exporter, metrics::Registry& registry)
    : options_(options),
      batch_limit_(options.batch_max_bytes),
      own_queue_(std::move(own_queue)),
      queue_(&queue),
      exporter_(std::move(exporter)),
      rng_(std::random_device{}()),
      exports_(registry.AddCounter("ordertrace_forward_export_requests_total",
                                   "Export requests sent upstream, by result code (200, 503, "
                                   "UNAVAILABLE, connect_error, ...).",
                                   {"code"})),
      retries_(registry
                   .AddCounter("ordertrace_forward_retries_total",
                               "Exports retried after a retryable failure.")
                   .With({})),
      dead_letters_(registry
                        .AddCounter("ordertrace_forward_dead_letter_records_total",
                                    "Queued requests moved to the dead-letter directory after "
                                    "a permanent upstream failure.")
                        .With({})),
      upstream_rejected_spans_(
          registry
              .AddCounter("ordertrace_forward_upstream_rejected_spans_total",
                          "Spans the upstream refused in a partial success answer.")
              .With({})),
      latency_(registry
                   .AddHistogram("ordertrace_forward_export_duration_seconds",
                                 "Upstream export latency.")
                   .With({})),
      exported_bytes_(registry
                          .AddCounter("ordertrace_forward_exported_bytes_total",
                                      "Request bytes the upstream accepted.")
                          .With({})),
      auth_failures_(registry
                         .AddCounter("ordertrace_forward_auth_failures_total",
                                     "Exports the upstream refused for credentials (401, 403, "
                                     "UNAUTHENTICATED, PERMISSION_DENIED); the data is held.")
                         .With({})) {
  if (own_queue_) {
    accepted_records_ = &registry
                             .AddCounter("ordertrace_forward_queued_records_total",
                                         "Batches made durable in the forward queue.")
                             .With({});
    refused_ =
        &registry.AddCounter("ordertrace_forward_refused_batches_total",
                             "Batches the forward queue refused (full, closed, io).", {"reason"});
  }
  ingest_log::DurableLog::Consumer* q = queue_;
  registry.AddCallbackGauge("ordertrace_forward_queue_bytes",
                            "Bytes in the durable log not yet accepted upstream (the forward "
                            "consumer's lag).",
                            [q] { return static_cast<double>(q->lag_bytes()); });
  registry.AddCallbackGauge("ordertrace_forward_queue_records",
                            "Requests in the durable log not yet accepted upstream.",
                            [q] { return static_cast<double>(q->lag_records()); });
  registry.AddCallbackGauge("ordertrace_forward_queue_oldest_age_seconds",
                            "Age of the oldest request waiting to be forwarded.",
                            [q] { return q->lag_age_ms() / 1000.0; });
  // The body loops by itself (it blocks in the queue's Next()); the worker gives it the stop
  // flag and the interruptible sleep.
  sender_.Start("forwarder", std::chrono::milliseconds(0), [this] { Run(); });
}

Forwarder::~Forwarder() { Close(); }

Status Forwarder::Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept {
  if (!batch) return Status::InvalidArgument("null batch");
  if (!own_queue_ || !accepting_.load()) {
    // Without a queue of its own, the gateway's ingest log takes the batches, not Accept().
    if (refused_ != nullptr) refused_->With({"closed"}).Inc();
    return Status::Unavailable("the gateway is shutting down");
  }
  if (batch->spans().empty()) return Status::Ok();
  try {
    // An unmodified batch goes to the queue straight from its wire bytes, without a copy.
    Status s = batch->modified() ? own_queue_->Append(EncodeForForwarding(*batch))
                                 : own_queue_->Append(batch->wire());
    if (s.ok()) {
      accepted_records_->Inc();
    } else {
      refused_
          ->With({s.code() == StatusCode::kResourceExhausted ? "full"
                  : accepting_.load()                        ? "io"
                                                             : "closed"})
          .Inc();
    }
    return s;
  } catch (const std::exception& e) {  // allocation failure while re-encoding
    refused_->With({"io"}).Inc();
    return Status::Unavailable(std::string("forward queue: ") + e.what());
  }
}

void Forwarder::Close() {
  if (!sender_.running()) return;
  accepting_.store(false);
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  while (queue_->lag_records() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (own_queue_) own_queue_->Close();  // unblocks the sender's Next() (the gateway's log: 200 ms)
  sender_.Stop();
  if (queue_->lag_records() > 0) {
    log::Warn("forward queue not empty at shutdown; sent after the next start",
              {{"records", queue_->lag_records()}, {"bytes", queue_->lag_bytes()}});
  }
}

bool Forwarder::IsAuthFailure(const std::string& code) {
  return code == "401" || code == "403" || code == "UNAUTHENTICATED" || code == "PERMISSION_DENIED";
}

bool Forwarder::IsTooLarge(const std::string& code) {
  return code == "RESOURCE_EXHAUSTED" || code == "413";
}

bool Forwarder::Sleep(std::chrono::milliseconds d) { return sender_.SleepFor(d); }

void Forwarder::Run() {
  while (!sender_.stopping()) {
    std::vector<QueueRecord> records = queue_->Next(batch_limit_, std::chrono::milliseconds(200));
    if (records.empty()) continue;
    // Batch by size and age: wait for more while under the size and younger than the age.  Only
    // records that fit are added (`within`): a request over the limit is one an upstream with
    // that message limit refuses whole (OTLP/gRPC receivers refuse over 4 MiB by default).
    uint64_t bytes = 0;
    for (const auto& r : records) bytes += r.payload.size();
    const auto deadline = std::chrono::steady_clock::now() + options_.batch_max_age;
    while (bytes < batch_limit_) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      auto more = queue_->Next(
          batch_limit_ - bytes,
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now), /*within=*/true);
      if (more.empty()) break;
      for (auto& r : more) {
        bytes += r.payload.size();
        records.push_back(std::move(r));
      }
    }
    if (!Send(records)) return;
  }
}

bool Forwarder::Send(std::vector<QueueRecord>& records) {
  std::string joined;
  if (records.size() > 1) {
    for (const auto& r : records) joined += r.payload;  // repeated resource_spans concatenate
  }
  const std::string& request = records.size() == 1 ? records[0].payload : joined;
  std::chrono::milliseconds backoff = options_.retry_initial;
  while (true) {
    const auto t0 = std::chrono::steady_clock::now();
    ExportResult result = exporter_->Export(request);
    latency_.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    exports_.With({result.code}).Inc();
    switch (result.kind) {
      case ExportResult::Kind::kOk: {
        if (result.rejected_spans > 0) {
          upstream_rejected_spans_.Inc(static_cast<uint64_t>(result.rejected_spans));
          log::Warn(
              "upstream refused spans (partial success)",
              {{"rejected_spans", result.rejected_spans}, {"message", result.partial_message}});
        }
        exported_bytes_.Inc(request.size());
        if (Status s = queue_->Ack(records.back().id); !s.ok()) {
          log::Error("forward queue ack failed", {{"error", s.message()}});
        }
        return true;
      }
      case ExportResult::Kind::kPermanent: {
        if (IsAuthFailure(result.code)) {
          // The OTLP specification calls these permanent, but they say nothing about the data:
          // a wrong or expired token would dead-letter every batch.  Hold the data instead,
          // retry slowly, and let the growing queue (and then throttled clients) show it.
          auth_failures_.Inc();
          log::Error("upstream refuses our credentials; holding the data and retrying",
                     {{"code", result.code},
                      {"reason", result.reason},
                      {"retry_in_ms", static_cast<int64_t>(options_.retry_max.count())},
                      {"queued_records", queue_->lag_records()}});
          if (!Sleep(options_.retry_max)) {
            queue_->Rewind();
            return false;
          }
          break;
        }
        if (records.size() > 1 && IsTooLarge(result.code)) {
          // The upstream's message limit is below ours: halve the batches from now on (not one
          // record at a time, which would send every record of the refused batch in a request of
          // its own and refuse the next full batch again).
          const uint64_t limit = std::max<uint64_t>(request.size() / 2, 1);
          if (limit < batch_limit_) {
            batch_limit_ = limit;
            log::Warn("upstream refused a batch as too large; sending smaller batches",
                      {{"code", result.code},
                       {"refused_bytes", static_cast<int64_t>(request.size())},
                       {"batch_max_bytes", static_cast<int64_t>(batch_limit_)}});
          }
          queue_->Rewind();
          std::vector<QueueRecord> again = queue_->Next(batch_limit_, std::chrono::milliseconds(0));
          return again.empty() || Send(again);
        }
        if (records.size() > 1) {
          // One bad record must not take its neighbours with it: send them one by one.
          queue_->Rewind();
          std::vector<QueueRecord> again =
              queue_->Next(0, std::chrono::milliseconds(0));  // the oldest record alone
          return again.empty() || Send(again);
        }
        DeadLetter(records[0], result);
        if (Status s = queue_->Ack(records[0].id); !s.ok()) {
          log::Error("forward queue ack failed", {{"error", s.message()}});
        }
        return true;
      }
      case ExportResult::Kind::kRetryable: {
        retries_.Inc();
        std::chrono::milliseconds delay;
        if (result.retry_after_ms >= 0) {
          delay = std::chrono::milliseconds(result.retry_after_ms);
        } else {
          // Exponential backoff with "equal jitter": half fixed, half random.
          const auto half = backoff.count() / 2;
          delay = std::chrono::milliseconds(
              half + static_cast<int64_t>(rng_() % static_cast<uint64_t>(half + 1)));
          backoff = std::min(backoff * 2, options_.retry_max);
        }
        log::Warn("upstream export failed; retrying",
                  {{"reason", result.reason},
                   {"retry_in_ms", static_cast<int64_t>(delay.count())},
                   {"queued_records", queue_->lag_records()}});
        if (!Sleep(delay)) {
          queue_->Rewind();  // not sent: handed out again after the next start
          return false;
        }
        break;
      }
    }
  }
}

void Forwarder::DeadLetter(const QueueRecord& record, const ExportResult& result) {
  dead_letters_.Inc();
  const auto name = options_.dead_letter_dir / ("request-" + std::to_string(record.id) + ".pb");
  {
    std::ofstream out(name, std::ios::binary);
    out.write(record.payload.data(), static_cast<std::streamsize>(record.payload.size()));
  }
  std::ofstream index(options_.dead_letter_dir / "index.jsonl", std::ios::app);
  std::string reason = result.reason;
  for (char& c : reason) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  index << "{\"id\":" << record.id << ",\"file\":\"" << name.filename().string()
        << "\",\"bytes\":" << record.payload.size() << ",\"code\":\"" << result.code
        << "\",\"reason\":\"" << reason << "\",\"unix_ms\":"
        << std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count()
        << "}\n";
  log::Error("upstream refused a request permanently; moved to the dead-letter directory",
             {{"file", name.string()}, {"code", result.code}, {"reason", result.reason}});
}

}  // namespace ordertrace::forward
