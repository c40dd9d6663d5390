// Server-side TLS for the listeners (TlsServerContext) and client-side TLS for the gateway's
// outgoing HTTPS (and the forward exporter's gRPC credentials): an OpenSSL context (through
// Boost.Asio) that verifies the server against the system's trust store or a CA file, at TLS 1.2 or
// newer, optionally presenting a client certificate (mTLS); and the per-connection setup (SNI, host
// name or address check).
//
// Thread-safety: a TlsClientContext or TlsServerContext is immutable after Create() and may be
// shared by any number of connections on any threads (OpenSSL's SSL_CTX is safe for concurrent
// SSL_new).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace ordertrace::net {

struct TlsOptions {
  std::string ca_file;    // trust these CAs (PEM) instead of the system's
  std::string cert_file;  // client certificate chain (PEM), for mTLS; with key_file
  std::string key_file;   // client private key (PEM)
};

class TlsClientContext {
 public:
  // Reads and checks the files; InvalidArgument naming the file and the problem ("cannot read
  // the CA file '/x': No such file or directory", "client key file '/k' does not match the
  // certificate in '/c'").  A cert_file without key_file (or the reverse) is the caller's
  // error to report; here the certificate is used only when both are given.
  static Result<std::shared_ptr<const TlsClientContext>> Create(const TlsOptions& options = {});

  // The system's trust store, verification on: what an https:// URL gets by default.  Made on
  // first use; nullptr (with the reason logged once) when OpenSSL cannot load it.
  static std::shared_ptr<const TlsClientContext> Default();

  boost::asio::ssl::context& context() const { return *context_; }
  // The PEM text of the files, for gRPC's SslCredentialsOptions ("" when not configured).
  const std::string& ca_pem() const { return ca_pem_; }
  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }

 private:
  TlsClientContext() = default;
  std::unique_ptr<boost::asio::ssl::context> context_;
  std::string ca_pem_, cert_pem_, key_pem_;
};

// Who a verified client certificate names (mTLS): its subject common name and its DNS and URI
// subject alternative names.  Empty (verified == false) when the peer sent no certificate or the
// listener does not verify client certificates.
struct TlsPeer {
  bool verified = false;
  std::string common_name;
  std::vector<std::string> alt_names;  // DNS and URI SANs, as written in the certificate
};

// The identity of the verified client certificate of `ssl` (after its handshake).
TlsPeer PeerOf(SSL* ssl);

enum class TlsMinVersion { k12, k13 };

struct TlsServerOptions {
  std::string cert_file;       // certificate chain (PEM), required
  std::string key_file;        // private key (PEM), required
  std::string client_ca_file;  // when set: client certificates required and verified (mTLS)
  TlsMinVersion min_version = TlsMinVersion::k12;
};

// A listener's certificate, key and client-CA, read from their files.  A reload makes a new one
// (the old one keeps serving the connections that use it).
class TlsServerContext {
 public:
  // Reads and checks the files; InvalidArgument naming the file and the problem ("cannot read
  // the certificate file '/c': ...", "key file '/k' does not match the certificate in '/c'").
  // The messages never contain the files' contents.
  static Result<std::shared_ptr<const TlsServerContext>> Create(const TlsServerOptions& options);

  boost::asio::ssl::context& context() const { return *context_; }
  const TlsServerOptions& options() const { return options_; }
  // The PEM text of the files, for gRPC's SslServerCredentials ("" when not configured).
  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  const std::string& client_ca_pem() const { return client_ca_pem_; }

 private:
  TlsServerContext() = default;
  std::unique_ptr<boost::asio::ssl::context> context_;
  TlsServerOptions options_;
  std::string cert_pem_, key_pem_, client_ca_pem_;
};

// Prepares a client connection to `host` (as in the URL, an IPv6 literal without brackets):
// SNI and a host name check for a name (no partial wildcards), an address check for an IP
// literal (SNI carries names only, RFC 6066).
void PrepareTlsClient(SSL* ssl, const std::string& host, bool host_is_ip);

}  // namespace ordertrace::net
