// TlsFiles: test certificates made with the openssl command line in a directory of the test's
// own: a CA, a server certificate for localhost and 127.0.0.1 (SAN) signed by it, a client
// certificate signed by it, and a client certificate of a foreign CA.  Header-only.
//
// Thread-safety: not thread-safe: one owner (runs openssl in the calling thread).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <fstream>
#include <string>

#include "support/run_command.h"

namespace ordertrace::testing_support {

class TlsFiles {
 public:
  // Makes every file under `dir` (which must exist); false when openssl failed.
  bool Make(const std::string& dir) {
    dir_ = dir;
    ca_cert = dir + "/ca.crt";
    server_cert = dir + "/server.crt";
    server_key = dir + "/server.key";
    client_cert = dir + "/client.crt";
    client_key = dir + "/client.key";
    foreign_ca_cert = dir + "/foreign-ca.crt";
    foreign_client_cert = dir + "/foreign-client.crt";
    foreign_client_key = dir + "/foreign-client.key";
    return MakeCa("ca", "ordertrace test CA") && MakeCa("foreign-ca", "foreign test CA") &&
           Issue("ca", "server", "server-1", "subjectAltName=DNS:localhost,IP:127.0.0.1") &&
           Issue("ca", "client", "client-1", "extendedKeyUsage=clientAuth") &&
           Issue("foreign-ca", "foreign-client", "intruder", "extendedKeyUsage=clientAuth");
  }

  // Another server certificate from the same CA, with common name `cn`, written to
  // <dir>/<name>.crt and .key.
  bool MakeServerCert(const std::string& name, const std::string& cn) {
    return Issue("ca", name, cn, "subjectAltName=DNS:localhost,IP:127.0.0.1");
  }

  std::string ca_cert, server_cert, server_key, client_cert, client_key;
  std::string foreign_ca_cert, foreign_client_cert, foreign_client_key;

 private:
  bool Run(const std::string& command) {
    return RunCommand(command + " >/dev/null 2>&1").exit_code == 0;
  }
  bool MakeCa(const std::string& name, const std::string& cn) {
    const std::string base = dir_ + "/" + name;
    return Run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj '/CN=" +
        cn + "' -keyout '" + base + ".key' -out '" + base + ".crt'");
  }
  bool Issue(const std::string& ca, const std::string& name, const std::string& cn,
             const std::string& extension) {
    const std::string base = dir_ + "/" + name;
    {
      std::ofstream ext(base + ".ext");
      ext << extension << "\n";
      if (!ext) return false;
    }
    const std::string ca_base = dir_ + "/" + ca;
    return Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=" + cn +
               "' -keyout '" + base + ".key' -out '" + base + ".csr'") &&
           Run("openssl x509 -req -days 2 -set_serial " + std::to_string(++serial_) + " -in '" +
               base + ".csr' -CA '" + ca_base + ".crt' -CAkey '" + ca_base + ".key' -extfile '" +
               base + ".ext' -out '" + base + ".crt'");
  }

  std::string dir_;
  int serial_ = 1000;
};

// The common name of the certificate a TLS server on 127.0.0.1:`port` presents to a new
// connection that trusts `ca_file`; "" when the handshake fails.
inline std::string ServerCommonName(uint16_t port, const std::string& ca_file) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ssl::context context(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  context.load_verify_file(ca_file, ec);
  context.set_verify_mode(asio::ssl::verify_peer, ec);
  if (ec) return "";
  asio::ssl::stream<asio::ip::tcp::socket> stream(ioc, context);
  stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (!ec) stream.handshake(asio::ssl::stream_base::client, ec);
  if (ec) return "";
  X509* cert = SSL_get_peer_certificate(stream.native_handle());
  if (cert == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  stream.shutdown(ec);
  return cn;
}

}  // namespace ordertrace::testing_support
