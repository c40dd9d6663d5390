#include "net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/buffer.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/log.h"

namespace ordertrace::net {
namespace {

namespace ssl = boost::asio::ssl;

Result<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument(std::string("cannot read the ") + what + " '" + path +
                                   "': " + std::strerror(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return Status::InvalidArgument(std::string("cannot read the ") + what + " '" + path + "'");
  }
  return ss.str();
}

bool IsPemPrivateKey(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    ERR_clear_error();
    return false;
  }
  EVP_PKEY_free(key);
  return true;
}

// Reads the certificate chain and private key files into `context` (and their PEM text into
// `cert_pem` and `key_pem`); errors name the files ("client " + "key file '/k' does not match
// the certificate in '/c'" with `who` = "client "), never their contents.
Status UseCertificateAndKey(const std::string& cert_file, const std::string& key_file,
                            const std::string& who, ssl::context* context, std::string* cert_pem,
                            std::string* key_pem) {
  const std::string cert_what = who + "certificate file";
  const std::string key_what = who + "key file";
  auto cert = ReadFile(cert_file, cert_what.c_str());
  if (!cert.ok()) return cert.status();
  *cert_pem = std::move(cert).value();
  auto key = ReadFile(key_file, key_what.c_str());
  if (!key.ok()) return key.status();
  *key_pem = std::move(key).value();
  boost::system::error_code ec;
  context->use_certificate_chain(boost::asio::buffer(*cert_pem), ec);
  if (ec) {
    ERR_clear_error();
    return Status::InvalidArgument(cert_what + " '" + cert_file +
                                   "' holds no usable PEM certificate: " + ec.message());
  }
  if (!IsPemPrivateKey(*key_pem)) {
    return Status::InvalidArgument(key_what + " '" + key_file +
                                   "' holds no usable PEM private key");
  }
  context->use_private_key(boost::asio::buffer(*key_pem), ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(context->native_handle()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(key_what + " '" + key_file +
                                   "' does not match the certificate in '" + cert_file + "'");
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const TlsClientContext>> TlsClientContext::Create(const TlsOptions& o) try {
  std::shared_ptr<TlsClientContext> tls(new TlsClientContext());
  tls->context_ = std::make_unique<ssl::context>(ssl::context::tls_client);
  ssl::context& context = *tls->context_;
  boost::system::error_code ec;
  context.set_verify_mode(ssl::verify_peer, ec);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
  if (!o.ca_file.empty()) {
    auto ca = ReadFile(o.ca_file, "CA file");
    if (!ca.ok()) return ca.status();
    tls->ca_pem_ = std::move(ca).value();
    context.add_certificate_authority(boost::asio::buffer(tls->ca_pem_), ec);
    if (ec) {
      return Status::InvalidArgument("CA file '" + o.ca_file +
                                     "' holds no usable PEM certificate: " + ec.message());
    }
  } else {
    context.set_default_verify_paths(ec);
    if (ec) {
      return Status::InvalidArgument("cannot load the system's trusted CAs: " + ec.message());
    }
  }
  if (!o.cert_file.empty() && !o.key_file.empty()) {
    if (Status st = UseCertificateAndKey(o.cert_file, o.key_file, "client ", &context,
                                         &tls->cert_pem_, &tls->key_pem_);
        !st.ok()) {
      return st;
    }
  }
  return std::shared_ptr<const TlsClientContext>(std::move(tls));
} catch (const std::exception& e) {
  return Status::InvalidArgument(std::string("TLS: ") + e.what());
}

Result<std::shared_ptr<const TlsServerContext>> TlsServerContext::Create(
    const TlsServerOptions& o) try {
  if (o.cert_file.empty() || o.key_file.empty()) {
    return Status::InvalidArgument("TLS needs both a certificate file and a key file");
  }
  std::shared_ptr<TlsServerContext> tls(new TlsServerContext());
  tls->options_ = o;
  tls->context_ = std::make_unique<ssl::context>(ssl::context::tls_server);
  ssl::context& context = *tls->context_;
  SSL_CTX* native = context.native_handle();
  SSL_CTX_set_min_proto_version(
      native, o.min_version == TlsMinVersion::k13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                      ssl::context::single_dh_use);
  if (Status st = UseCertificateAndKey(o.cert_file, o.key_file, "", &context, &tls->cert_pem_,
                                       &tls->key_pem_);
      !st.ok()) {
    return st;
  }
  boost::system::error_code ec;
  if (!o.client_ca_file.empty()) {
    auto ca = ReadFile(o.client_ca_file, "client CA file");
    if (!ca.ok()) return ca.status();
    tls->client_ca_pem_ = std::move(ca).value();
    context.add_certificate_authority(boost::asio::buffer(tls->client_ca_pem_), ec);
    if (ec) {
      ERR_clear_error();
      return Status::InvalidArgument("client CA file '" + o.client_ca_file +
                                     "' holds no usable PEM certificate");
    }
    context.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
    // Session resumption across contexts is off (no session id context is needed then).
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(native, 0);
    SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  } else {
    context.set_verify_mode(ssl::verify_none, ec);
  }
  return std::shared_ptr<const TlsServerContext>(std::move(tls));
} catch (const std::exception& e) {
  return Status::InvalidArgument(std::string("TLS: ") + e.what());
}

std::shared_ptr<const TlsClientContext> TlsClientContext::Default() {
  static std::once_flag once;
  static std::shared_ptr<const TlsClientContext>* context = nullptr;
  std::call_once(once, [] {
    auto created = Create();
    if (!created.ok()) {
      log::Error("cannot set up TLS with the system's trusted CAs",
                 {{"error", created.status().message()}});
      context = new std::shared_ptr<const TlsClientContext>();
      return;
    }
    context = new std::shared_ptr<const TlsClientContext>(std::move(created).value());
  });
  return *context;
}

void PrepareTlsClient(SSL* ssl, const std::string& host, bool host_is_ip) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (host_is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
}

TlsPeer PeerOf(SSL* ssl) {
  TlsPeer peer;
  X509* cert = SSL_get_peer_certificate(ssl);
  if (cert == nullptr) return peer;
  if (SSL_get_verify_result(ssl) == X509_V_OK &&
      (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0) {
    peer.verified = true;
    char cn[256] = {};
    const int n =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n > 0) peer.common_name.assign(cn, static_cast<size_t>(n));
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_DNS && name->type != GEN_URI) continue;
      const ASN1_IA5STRING* text =
          name->type == GEN_DNS ? name->d.dNSName : name->d.uniformResourceIdentifier;
      peer.alt_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                                  static_cast<size_t>(ASN1_STRING_length(text)));
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(cert);
  return peer;
}

}  // namespace ordertrace::net
