// TlsFiles: test certificates made with the openssl command line in a directory of the test's
// own: a CA, a server certificate for localhost and 127.0.0.1 (SAN) signed by it, a client
// certificate signed by it, and a client certificate of a foreign CA.  Header-only.
//
// Thread-safety: not thread-safe: one owner (runs openssl in the calling thread).
#pragma once

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

}  // namespace ordertrace::testing_support
