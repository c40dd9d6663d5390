// Gateway: `ordertrace serve` assembled from its parts.
//
//   OTLP/gRPC  ─┐
//   OTLP/HTTP  ─┴─► receivers (decode, validate, redact) ─► ingest log (durable, before the OK)
//                     consumer `journeys`: span log, journey stage (engine + store) ◄─┤
//                     consumer `forward`:  Forwarder → upstream                    ◄─┘
//   API HTTP   ───► /healthz /readyz /metrics /api/v1/orders
//
// With neither journeys nor forwarding there is no log: receivers → IngestQueue → span log.
//
// Journeys (journeys.enabled, on by default): the rules are loaded and the engine recovers its
// deadlines from the store before any listener opens; its detector thread flags stuck orders;
// SIGHUP reloads the rules (Run()); a background thread enforces the retention.  With an
// alerting sink configured, an AlertDispatcher listens to the engine (docs/alerting.md); Stop()
// stops it after the detector, so clears raised while draining are still sent.
//
// Lifecycle: Start() binds every listener (an address in use is an error naming the key and
// flag), then readiness turns "ready".  Stop() drains: readiness turns "draining" (503), the
// receivers refuse new requests and finish those in flight, the queue (or the log's consumers,
// within forward.drain_timeout: the rest is read after the next start) runs everything accepted
// through the stages, and the API listener closes last, so health and metrics stay visible
// while the gateway drains.
//
// Thread-safety: Start(), Stop() and Run() from one controlling thread; RequestStop() from
// any thread.  The accessors are safe after Start().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"

namespace ordertrace::api {
class Readiness;
}
namespace ordertrace::audit {
class AuditLog;
}

namespace ordertrace::gateway {

// "0.1.0": the project version this binary was built from.
const char* Version();

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, so that threads created afterwards
// inherit the mask and Run() can wait for them synchronously.  Run() calls it; main() may call it
// earlier, before any thread exists.
void BlockTerminationSignals();

class Gateway {
 public:
  explicit Gateway(config::Config config);
  ~Gateway();  // Stop()

  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Creates the data directory, registers metrics, starts the pipeline and binds the three
  // listeners.  On failure everything started is stopped again and the Status says what
  // failed and which config key / flag to change.
  Status Start();

  // Drains and stops (see the file comment); `drain` bounds each listener's wait for requests
  // in flight.  Idempotent.
  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));

  // Start(), then wait for SIGINT/SIGTERM or RequestStop(), then Stop().  Returns Start()'s
  // error, or OK after a clean drain.
  Status Run();
  void RequestStop() noexcept { stop_requested_.store(true); }

  // Reads the rules file again (SIGHUP does this in Run()).  On an error the previous rules stay
  // in force and the Status says what is wrong with the file.
  Status ReloadRules();

  // Reads the TLS certificates, keys and client CAs of the listeners again (SIGHUP does this in
  // Run(), after reopening the audit file, and audits a config_reload); new connections get the
  // new ones (OTLP/gRPC within about a second: OtlpGrpcReceiver::SetTls).  A listener whose
  // files fail keeps its previous certificate and the Status names its key.
  Status ReloadTls();

  // Re-reads the redaction keys (SIGHUP does this in Run(), after the rules): the config file
  // again through the loader (SetConfigLoader), for its redaction section (a rotation lists a
  // new key first in redaction.keys), then the key files; the new redactor replaces the old
  // atomically, and the counters go on.  On an error the previous keys stay in force and the
  // Status names the config key and file.  Audited as redaction_keys_reloaded (key ids only)
  // when the keys changed or the reload failed.
  // redaction.enabled changes only with a restart.
  Status ReloadRedaction();

  // How ReloadRedaction() reads the config again (the file and the command-line flags, as at
  // start); without one it re-reads only the key files the start-up config names.  Set before
  // Start().
  using ConfigLoader = std::function<Result<config::Config>()>;
  void SetConfigLoader(ConfigLoader loader) { config_loader_ = std::move(loader); }

  // Bound ports (useful when the config asked for port 0).
  uint16_t otlp_grpc_port() const;
  uint16_t otlp_http_port() const;
  uint16_t http_port() const;

  metrics::Registry& registry() { return registry_; }
  const api::Readiness& readiness() const;
  // The access audit log (audit.*), after Start(); null when audit.enabled is false.  The API
  // routes record their requests to it.
  audit::AuditLog* audit_log() const;

 private:
  struct Impl;
  Status StartJourneys();
  Status StartPipeline();  // the sink: the ingest log and its consumers, or the IngestQueue
  // The API's sign-in: the OIDC client (its first fetch runs on its worker), the authorizer
  // and the guard; AllowAll without auth.oidc.issuer.
  Status StartSignIn();
  Status StartBrowserSignIn();
  Status StartRedaction();
  std::string EntityKey() const;  // the journeys' entity key (order.id without journeys)
  Status StartAlerts();           // alerting.*: the dispatcher, listening to the engine

  config::Config config_;
  ConfigLoader config_loader_;
  metrics::Registry registry_;
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace ordertrace::gateway
