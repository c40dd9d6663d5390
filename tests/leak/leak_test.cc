// The canary leak test (issue 15, "Done when"): personal data sent to the gateway must come out
// of NOTHING it keeps or sends.  Fresh canaries each run (a partner id, an e-mail, a phone in two
// formats, a Luhn-valid card number, an IBAN, a bearer token) go into every carrier of a span
// (resource, scope, span, event and link attributes, arrays, key-value lists, bytes values, values
// cut at the attribute limit, the span name, event names, the status message, error.type) over
// OTLP/gRPC (plain and gzip) and OTLP/HTTP (protobuf, JSON, each plain and gzip) into gateway A,
// which forwards (gRPC, gzip) to gateway B, which forwards (HTTP) to an upstream recorder run
// here.  Both gateways run journeys with a rules file whose deadline has passed when the spans
// arrive (the canary order is stuck at once), alert to a real Alertmanager (whose notifications go
// to a recorder) and to a webhook recorder, keep the audit log, and log at debug with span logging
// on.
//
// Then every sink is searched for each canary and its normalised forms (lower-cased e-mail,
// E.164 and digits-only phone, card digits without separators, IBAN without spaces, ...): every
// file under both gateways' directories (journey database and WAL, ingest log segments,
// audit log, the gateways' stdout/stderr), every body the upstream and the webhook receivers
// got, Alertmanager's API and its files, and the gateways' API answers and /metrics.  Pass:
// zero hits; the pseudonyms the test computes itself (HMAC-SHA256 over gateway A's key file,
// pseudonym.h's format) are where they belong, unchanged by gateway B; and the order was in
// fact stuck and alerted, so the search cannot pass on empty sinks.
//
// A partner id has no shape a detector could find in free text (by design: it is pseudonymised
// by its key, partner.id), so that canary is placed under partner.id (at every level, in arrays
// and key-value lists) and not in free text.
//
// Without Alertmanager (Debian prometheus-alertmanager) the test skips with the reason, or fails
// when ORDERTRACE_REQUIRE_INTEROP=1.  A twin with redaction off proves that the search finds the
// canaries in each of those sinks.  What the test found in the product is tested here too
// (src/redact/pseudonym_test.cc, LoadOrCreateKey) or beside the fix (src/api/journey_api_test.cc,
// the audit of list filters).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/gzip.h"
#include "net/http_client.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "redact/pseudonym.h"
#include "support/alertmanager_process.h"
#include "support/gateway_process.h"
#include "support/otlp_requests.h"

namespace ordertrace {
namespace {

using nlohmann::json;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;
using testing_support::Alertmanager;
using testing_support::ArrayValue;
using testing_support::GatewayProcess;
using testing_support::KvListValue;
using testing_support::Receiver;
using testing_support::RequestBuilder;
using testing_support::SpanBuilder;
using testing_support::StringValue;
using testing_support::WaitFor;
namespace pb = opentelemetry::proto;
using namespace std::chrono_literals;

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- canaries

class Random {
 public:
  Random() : rng_(std::random_device{}()) {}
  std::string Digits(size_t n) { return Of("0123456789", n); }
  std::string Upper(size_t n) { return Of("ABCDEFGHIJKLMNOPQRSTUVWXYZ", n); }
  std::string Lower(size_t n) { return Of("abcdefghijklmnopqrstuvwxyz", n); }
  std::string Hex(size_t n) { return Of("0123456789abcdef", n); }

 private:
  std::string Of(std::string_view alphabet, size_t n) {
    std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
    std::string out;
    for (size_t i = 0; i < n; ++i) out.push_back(alphabet[pick(rng_)]);
    return out;
  }
  std::mt19937_64 rng_;
};

// The Luhn check digit that completes `digits`.
char LuhnCheckDigit(const std::string& digits) {
  int sum = 0;
  bool dbl = true;  // the digit next to the check digit is doubled
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    dbl = !dbl;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

// ISO 13616 check digits of an IBAN "CC00BBAN": 98 - (BBAN CC 00 as digits mod 97).
std::string IbanCheckDigits(const std::string& country, const std::string& bban) {
  std::string rearranged = bban + country + "00";
  int mod = 0;
  for (char c : rearranged) {
    const int v = (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : c - '0';
    mod = v >= 10 ? (mod * 100 + v) % 97 : (mod * 10 + v) % 97;
  }
  const int check = 98 - mod;
  return std::string(1, static_cast<char>('0' + check / 10)) + static_cast<char>('0' + check % 10);
}

std::string Grouped(const std::string& s, size_t group, char sep) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && i % group == 0) out.push_back(sep);
    out.push_back(s[i]);
  }
  return out;
}

std::string Lowered(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Canaries {
  std::string partner;      // PRT-<letters><digits>
  std::string email;        // mixed case
  std::string email_token;  // the random part of its local part
  std::string phone_intl;   // +7 912 345 67 89
  std::string phone_local;  // 8 (912) 345-67-89, the same number
  std::string phone_e164;   // +79123456789
  std::string card;         // 4xxx xxxx xxxx xxxx, Luhn-valid
  std::string card_digits;
  std::string iban;  // DEkk bbbb ... in groups of four
  std::string iban_compact;
  std::string bban;
  std::string bearer;  // an Authorization header's token
};

Canaries MakeCanaries(Random& r) {
  Canaries c;
  c.partner = "PRT-" + r.Upper(8) + r.Digits(4);
  c.email_token = r.Lower(10);
  c.email = "Canary." + c.email_token + "@Leak" + r.Lower(6) + ".Example.com";
  const std::string sub = r.Digits(7);  // 912 XXX XX XX
  c.phone_e164 = "+7912" + sub;
  c.phone_intl = "+7 912 " + sub.substr(0, 3) + " " + sub.substr(3, 2) + " " + sub.substr(5, 2);
  c.phone_local = "8 (912) " + sub.substr(0, 3) + "-" + sub.substr(3, 2) + "-" + sub.substr(5, 2);
  const std::string card15 = "4" + r.Digits(14);
  c.card_digits = card15 + LuhnCheckDigit(card15);
  c.card = Grouped(c.card_digits, 4, ' ');
  c.bban = r.Digits(18);  // German: 8-digit bank code, 10-digit account
  c.iban_compact = "DE" + IbanCheckDigits("DE", c.bban) + c.bban;
  c.iban = Grouped(c.iban_compact, 4, ' ');
  c.bearer = "tok" + r.Lower(12) + r.Digits(8) + r.Upper(12);
  return c;
}

// The beginnings of canaries that a value cut at the attribute limit would keep.
std::string EmailCut(const Canaries& c) { return c.email.substr(0, c.email.find('@') + 1); }
std::string PhoneCut(const Canaries& c) { return c.phone_intl.substr(0, 10); }
std::string CardCut(const Canaries& c) { return c.card.substr(0, 14); }
std::string IbanCut(const Canaries& c) { return c.iban.substr(0, 19); }

// The gateways' limits.max_attribute_value_bytes (the default).
constexpr size_t kValueLimit = 32 * 1024;

// A value longer than the limit whose cut falls inside `canary`, right after its first
// `kept` bytes: the gateway must not keep that beginning ("nothing partial survives at the
// truncation boundary").
std::string CutInside(const std::string& canary, size_t kept) {
  return std::string(kValueLimit - kept - 1, 'x') + " " + canary + " and more text after it";
}

// One way a canary may be written, searched for in every sink.
struct Form {
  std::string canary;  // "e-mail"
  std::string form;    // "lower-cased"
  std::string bytes;
};

std::vector<Form> FormsOf(const Canaries& c) {
  const std::string national = c.phone_e164.substr(2);  // 912XXXXXXX
  return {
      {"partner id", "as sent", c.partner},
      {"partner id", "lower-cased", Lowered(c.partner)},
      {"e-mail", "as sent", c.email},
      {"e-mail", "lower-cased", Lowered(c.email)},
      {"e-mail", "random part of the local part", c.email_token},
      {"phone", "+7 912 ... as sent", c.phone_intl},
      {"phone", "8 (912) ... as sent", c.phone_local},
      {"phone", "E.164", c.phone_e164},
      {"phone", "digits of the international form", c.phone_e164.substr(1)},
      {"phone", "digits of the local form", "8" + national},
      {"phone", "national number", national},
      {"card", "as sent (grouped by spaces)", c.card},
      {"card", "digits only", c.card_digits},
      {"card", "grouped by dashes", Grouped(c.card_digits, 4, '-')},
      {"IBAN", "as sent (grouped by spaces)", c.iban},
      {"IBAN", "without spaces", c.iban_compact},
      {"IBAN", "lower-case without spaces", Lowered(c.iban_compact)},
      {"IBAN", "account digits (BBAN)", c.bban},
      {"bearer token", "as sent", c.bearer},
      // What a cut at the attribute limit would leave of each (CutInside below).
      {"e-mail", "cut after the @", EmailCut(c)},
      {"phone", "cut after 10 characters", PhoneCut(c)},
      {"card", "cut after three groups", CardCut(c)},
      {"IBAN", "cut after four groups", IbanCut(c)},
  };
}

// ---- pseudonyms, computed independently of src/redact

std::string Base64UrlNoPad(const unsigned char* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int nbits = 0;
  for (size_t i = 0; i < n; ++i) {
    bits = (bits << 8) | data[i];
    nbits += 8;
    while (nbits >= 6) {
      nbits -= 6;
      out.push_back(kAlphabet[(bits >> nbits) & 63]);
    }
  }
  if (nbits > 0) out.push_back(kAlphabet[(bits << (6 - nbits)) & 63]);
  return out;
}

// pse:<kid>:<base64url of the first 16 bytes of HMAC-SHA256(key, label 0x1F value)>.
std::string ExpectedPseudonym(const std::string& key, const std::string& kid,
                              const std::string& label, const std::string& normalised) {
  const std::string message = label + '\x1f' + normalised;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return "pse:" + kid + ":" + Base64UrlNoPad(mac, 16);
}

// ---- the requests

pb::common::v1::AnyValue BytesValue(const std::string& bytes) {
  pb::common::v1::AnyValue v;
  v.set_bytes_value(bytes);
  return v;
}

// A request of one span of the canary order, with every canary in every carrier; `encoding`
// marks it (leak.encoding) so the upstream's copy can be told apart.
ExportTraceServiceRequest CanaryRequest(const Canaries& c, const std::string& order,
                                        const std::string& encoding, Random& r) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  // A minute ago: the rules' 2 s deadline has passed on arrival, the order is stuck at once.
  const uint64_t t0 = static_cast<uint64_t>(now) - 60'000'000'000ULL;
  const std::string text = "call " + c.phone_intl + " or " + c.phone_local + ", mail " + c.email +
                           ", card " + c.card + ", IBAN " + c.iban;
  RequestBuilder req;
  req.Resource("crm", {{"partner.id", c.partner},
                       {"enduser.id", c.email},
                       {"contact.note", text},
                       {"billing.iban", c.iban},
                       {"leak.encoding", encoding}});
  req.Scope("leak-canary", "1.0",
            {{"partner.id", c.partner}, {"scope.note", "owner " + c.email + " " + c.phone_local}});
  SpanBuilder span("checkout by " + c.email + " tel " + c.phone_intl + " card " + c.card +
                   " iban " + c.iban);
  span.Ids(testing_support::IdFromHex(r.Hex(32)), testing_support::IdFromHex(r.Hex(16)))
      .Kind(pb::trace::v1::Span::SPAN_KIND_SERVER)
      .Times(t0, t0 + 50'000'000)
      .Attr("order.id", order)
      .Attr("order.stage", "SUBMITTED")
      .Attr("leak.encoding", encoding)
      .Attr("partner.id", c.partner)
      .Attr("enduser.id", c.email)
      .Attr("user.email", c.email)
      .Attr("customer.phone", c.phone_local)
      .Attr("payment.card", c.card_digits)
      .Attr("payment.iban", c.iban_compact)
      .Attr("error.type", "declined for " + c.email)
      .Attr("http.request.header.authorization", "Bearer " + c.bearer)
      .Attr("customer.raw", BytesValue(text))
      .Attr("long.email", CutInside(c.email, EmailCut(c).size()))
      .Attr("long.phone", CutInside(c.phone_intl, PhoneCut(c).size()))
      .Attr("long.card", CutInside(c.card, CardCut(c).size()))
      .Attr("long.iban", CutInside(c.iban, IbanCut(c).size()))
      .Attr("customer.phones",
            ArrayValue({StringValue(c.phone_intl), StringValue(c.phone_local), StringValue(c.email),
                        StringValue(c.card), StringValue(c.iban)}))
      .Attr("customer",
            KvListValue({{"partner.id", c.partner},
                         {"email", c.email},
                         {"note", text},
                         {"accounts",
                          KvListValue({{"iban", c.iban},
                                       {"card", c.card},
                                       {"partner.id", ArrayValue({StringValue(c.partner)})}})}}))
      .Event("exception", t0 + 10'000'000,
             {{"exception.type", "PaymentDeclined"},
              {"exception.message", "card " + c.card + " of " + c.email + " (" + c.phone_intl +
                                        ") declined, IBAN " + c.iban},
              {"exception.stacktrace", "at checkout(" + c.email + ")\n  " + text},
              {"partner.id", c.partner}})
      .Event("notified " + c.email + " at " + c.phone_local, t0 + 20'000'000,
             {{"channel", "sms " + c.phone_intl}})
      .Link(testing_support::IdFromHex(r.Hex(32)), testing_support::IdFromHex(r.Hex(16)),
            {{"partner.id", c.partner},
             {"link.note", "refund to " + c.iban + " for " + c.email},
             {"link.values", ArrayValue({StringValue(c.phone_local), StringValue(c.card)})}})
      .Status(pb::trace::v1::Status::STATUS_CODE_ERROR,
              "declined: " + c.card + " " + c.iban + " " + c.email + " " + c.phone_local);
  req.Add(span);
  return std::move(req).Build();
}

// ---- the search

struct Hit {
  std::string canary, form, sink;
  size_t offset;
};

class LeakSearch {
 public:
  explicit LeakSearch(std::vector<Form> forms) : forms_(std::move(forms)) {}

  void Search(const std::string& sink, const std::string& bytes) {
    ++sinks_;
    bytes_ += bytes.size();
    for (const Form& f : forms_) {
      for (size_t at = bytes.find(f.bytes); at != std::string::npos;
           at = bytes.find(f.bytes, at + 1)) {
        hits_.push_back({f.canary, f.form, sink, at});
      }
    }
  }
  // Every regular file under `dir`, recursively.
  void SearchTree(const std::string& name, const std::filesystem::path& dir) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      files_.insert(std::filesystem::relative(it->path(), dir).string());
      Search(name + "/" + std::filesystem::relative(it->path(), dir).string(),
             ReadFile(it->path()));
    }
  }

  const std::vector<Hit>& hits() const { return hits_; }
  size_t sinks() const { return sinks_; }
  size_t bytes() const { return bytes_; }
  bool SawFile(const std::string& suffix) const {
    for (const auto& f : files_) {
      if (f.size() >= suffix.size() &&
          f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    }
    return false;
  }
  bool SawFileContaining(const std::string& part) const {
    for (const auto& f : files_) {
      if (f.find(part) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::vector<Form> forms_;
  std::vector<Hit> hits_;
  std::set<std::string> files_;
  size_t sinks_ = 0, bytes_ = 0;
};

std::string Describe(const std::vector<Hit>& hits) {
  std::ostringstream out;
  size_t n = 0;
  for (const Hit& h : hits) {
    if (++n > 50) {
      out << "  ... and " << hits.size() - 50 << " more\n";
      break;
    }
    out << "  canary " << h.canary << " (" << h.form << ") in " << h.sink << " at offset "
        << h.offset << "\n";
  }
  return out.str();
}

// ---- the gateways

std::string MissingAlertmanager() {
  if (!std::filesystem::exists(testing_support::kAlertmanagerBin)) {
    return std::string(testing_support::kAlertmanagerBin) +
           " is missing: install the Debian package prometheus-alertmanager (scripts/setup)";
  }
  return "";
}

// Rules whose only deadline (2 s + 1 s grace) has long passed for spans stamped a minute ago.
constexpr char kRules[] =
    "entity: {key: order.id}\n"
    "stages: [SUBMITTED, PRICE_CALCULATED, CLOSED]\n"
    "expect:\n"
    "  SUBMITTED: {next: PRICE_CALCULATED, within: 2s, next_by: mes}\n"
    "  PRICE_CALCULATED: {next: CLOSED, within: 1h, next_by: crm}\n"
    "grace: 1s\n";

std::vector<std::string> GatewayFlags(const GatewayProcess& gw, const std::string& upstream,
                                      const std::string& forward_extra, const Alertmanager& am,
                                      const std::string& webhook, bool redaction) {
  const std::filesystem::path rules = gw.dir() / "rules.yaml";
  std::ofstream(rules) << kRules;
  const std::filesystem::path config = gw.dir() / "gateway.yaml";
  std::ofstream(config) << "forward:\n  upstream: " << upstream << "\n"
                        << forward_extra
                        << "  batch:\n    max_age: 20ms\n"
                           "  retry:\n    initial: 50ms\n    max: 200ms\n"
                           "log:\n  level: debug\n  spans: true\n"
                           "audit:\n  enabled: true\n"
                        << "redaction:\n  enabled: " << (redaction ? "true" : "false")
                        << "\n  debug: true\n"  // which rule fired is logged, never the value
                           "journeys:\n  rules: "
                        << rules.string()
                        << "\n"
                           "alerting:\n  resend_interval: 2s\n  timeout: 2s\n"
                           "  webhook:\n    url: "
                        << webhook << "\n    timeout: 2s\n";
  return {"--config", config.string(), "--alertmanager", am.url()};
}

// GETs `target` from a gateway's API; "" on a failure (the test then fails elsewhere).
std::string ApiGet(const GatewayProcess& gw, const std::string& target, int* status = nullptr) {
  auto r = net::HttpGet(gw.http_port(), target);
  if (!r.ok()) return "";
  if (status != nullptr) *status = r.value().status;
  return r.value().body;
}

// The warning and error lines of a log, for a failure message once canaries were sent (the
// rest could quote them; a leak is reported by the search, canary by canary).
std::string Problems(const std::string& log) {
  std::istringstream in(log);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.find("level=warn") != std::string::npos ||
        line.find("level=error") != std::string::npos)
      out += line + "\n";
  }
  return out;
}

// POSTs a JSON `body` to a gateway's API; the answer's body ("" on a failure).
std::string ApiPost(const GatewayProcess& gw, const std::string& target, const std::string& body) {
  net::HttpOptions o;
  o.headers = {{"Content-Type", "application/json"}};
  auto r = net::HttpPost(gw.api_url() + target, body, o);
  return r.ok() ? r.value().body : "";
}

bool SendGrpc(uint16_t port, const ExportTraceServiceRequest& request, bool gzip,
              std::string* error) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = TraceService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  if (gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
  ExportTraceServiceResponse response;
  const grpc::Status s = stub->Export(&ctx, request, &response);
  if (!s.ok()) *error = s.error_message();
  return s.ok();
}

bool SendHttp(uint16_t port, const std::string& body, const std::string& content_type, bool gzip,
              std::string* error) {
  net::HttpOptions o;
  o.headers = {{"Content-Type", content_type}};
  std::string payload = body;
  if (gzip) {
    auto zipped = GzipCompress(body, 6);
    if (!zipped.ok()) {
      *error = zipped.status().message();
      return false;
    }
    payload = std::move(zipped).value();
    o.headers.push_back({"Content-Encoding", "gzip"});
  }
  auto r = net::HttpPost("http://127.0.0.1:" + std::to_string(port) + "/v1/traces", payload, o);
  if (!r.ok()) {
    *error = r.status().message();
    return false;
  }
  if (r.value().status != 200) *error = "HTTP " + std::to_string(r.value().status);
  return r.value().status == 200;
}

// The string value of attribute `key` in `attrs`, "" when absent.
template <typename Attrs>
std::string StringAttr(const Attrs& attrs, const std::string& key) {
  for (const auto& kv : attrs) {
    if (kv.key() == key) return kv.value().string_value();
  }
  return "";
}

const char* kEncodings[] = {"grpc",      "grpc-gzip",          "http-protobuf",
                            "http-json", "http-protobuf-gzip", "http-json-gzip"};

// The chain of the test: the recorder (upstream, webhooks, Alertmanager's receiver), a private
// Alertmanager, gateway B forwarding to the recorder over OTLP/HTTP and gateway A forwarding to
// B over OTLP/gRPC with gzip; the canary order sent to A in every encoding, forwarded to the
// upstream, stuck and alerted at both gateways.
class LeakTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = MissingAlertmanager();
    if (!missing.empty()) {
      const char* required = std::getenv("ORDERTRACE_REQUIRE_INTEROP");
      if (required != nullptr && std::string(required) == "1") FAIL() << missing;
      GTEST_SKIP() << missing;
    }
    began_ = std::chrono::steady_clock::now();
    order_ = "LEAK-" + random_.Digits(8);
  }

  void StartChain(bool redaction) {
    ASSERT_TRUE(recorder_.started());
    am_ = std::make_unique<Alertmanager>(a_.dir() / "alertmanager", recorder_.url("/am"));
    ASSERT_TRUE(am_->Start()) << am_->Log();
    ASSERT_TRUE(b_.Start(GatewayFlags(b_, recorder_.url("/v1/traces"), "", *am_,
                                      recorder_.url("/hook-b"), redaction)))
        << b_.Log();
    ASSERT_TRUE(
        a_.Start(GatewayFlags(a_, "grpc://127.0.0.1:" + std::to_string(b_.otlp_grpc_port()),
                              "  compression: gzip\n", *am_, recorder_.url("/hook-a"), redaction)))
        << a_.Log();
  }

  // Every encoding, each its own span of the canary order.
  void SendEveryEncoding() {
    for (const std::string encoding : kEncodings) {
      const ExportTraceServiceRequest request = CanaryRequest(c_, order_, encoding, random_);
      std::string error;
      bool sent = false;
      if (encoding == "grpc" || encoding == "grpc-gzip") {
        sent = SendGrpc(a_.otlp_grpc_port(), request, encoding == "grpc-gzip", &error);
      } else if (encoding.rfind("http-protobuf", 0) == 0) {
        sent = SendHttp(a_.otlp_http_port(), request.SerializeAsString(), "application/x-protobuf",
                        encoding == "http-protobuf-gzip", &error);
      } else {
        sent = SendHttp(a_.otlp_http_port(), testing_support::ToOtlpJson(request),
                        "application/json", encoding == "http-json-gzip", &error);
      }
      ASSERT_TRUE(sent) << encoding << ": " << error;
    }
  }

  // Waits until the upstream got a span of every encoding; fills upstream_spans_/_resources_.
  void WaitForUpstream() {
    ASSERT_TRUE(WaitFor(
        [&] {
          for (const std::string& body : recorder_.raw_bodies("/v1/traces")) {
            ExportTraceServiceRequest req;
            if (!req.ParseFromString(body)) continue;
            for (const auto& rs : req.resource_spans()) {
              for (const auto& ss : rs.scope_spans()) {
                for (const auto& s : ss.spans()) {
                  const std::string enc = StringAttr(s.attributes(), "leak.encoding");
                  upstream_spans_[enc] = s;
                  upstream_resources_[enc] = rs;
                }
              }
            }
          }
          return upstream_spans_.size() == std::size(kEncodings);
        },
        20s))
        << "the upstream got spans of " << upstream_spans_.size() << " encodings\n"
        << Problems(a_.Log()) << Problems(b_.Log());
  }

  bool Notified(const std::string& path) const {
    for (const std::string& body : recorder_.raw_bodies(path)) {
      if (body.find(order_) != std::string::npos) return true;
    }
    return false;
  }

  // The order is stuck at both gateways, alerted in Alertmanager, notified by both webhooks and
  // by Alertmanager: the sinks the search reads did get the order.
  void WaitForStuckAndAlerted() {
    for (GatewayProcess* gw : {&a_, &b_}) {
      json j;
      EXPECT_TRUE(WaitFor(
          [&] {
            j = json::parse(ApiGet(*gw, "/api/v1/orders/" + order_), nullptr, false);
            return j.is_object() && j.value("stuck", false);
          },
          15s))
          << "stuck: " << j.value("stuck", false) << "\n"
          << Problems(gw->Log());
    }
    EXPECT_TRUE(WaitFor(
        [&] {
          alerts_ = am_->Alerts({{"order_id", order_}});
          return !alerts_.empty();
        },
        15s))
        << Problems(am_->Log());
    EXPECT_TRUE(WaitFor([&] { return Notified("/hook-a") && Notified("/hook-b"); }, 15s))
        << "webhook notifications of both gateways";
    EXPECT_TRUE(WaitFor([&] { return Notified("/am"); }, 15s)) << "Alertmanager's notification";
  }

  // Every sink into search_: both gateways' directories (data, logs), their API answers and
  // /metrics while they run, every body the recorder got, Alertmanager's API.
  void SearchSinks(const std::string& when, const std::string& partner_query) {
    for (GatewayProcess* gw : {&a_, &b_}) {
      const std::string name = std::string(gw == &a_ ? "gateway A" : "gateway B") + " " + when;
      search_.SearchTree(name + " dir", gw->dir());
      if (!gw->running()) continue;
      std::vector<std::string> targets{
          "/", "/healthz", "/readyz", "/metrics", "/api/v1/me", "/api/v1/broker", "/api/v1/orders",
          "/api/v1/orders?stuck=true", "/api/v1/orders?stage=SUBMITTED",
          "/api/v1/orders?service=mes",
          // A lookup by a pseudonym, and by a clear
          // partner id (hashed by the server, issue 15 point 5):
          // neither may leave the clear id in the audit or a log.
          "/api/v1/orders?partner=" + partner_query, "/api/v1/orders?partner=" + c_.partner};
      const json list = json::parse(ApiGet(*gw, "/api/v1/orders"), nullptr, false);
      if (list.is_object() && list["orders"].is_array()) {
        for (const auto& o : list["orders"]) {
          targets.push_back("/api/v1/orders/" + o.value("order_id", std::string()));
        }
      }
      for (const std::string& t : targets) {
        const bool query = t.find("?partner=") != std::string::npos;
        search_.Search(name + " GET " + (query ? "/api/v1/orders?partner=..." : t), ApiGet(*gw, t));
      }
      // The clear partner id in a body (issue 15 point 5: POST lookup-partner), well-formed and
      // not: answered or refused, it must not be quoted, audited or logged.
      for (const std::string& body :
           {json{{"partner", c_.partner}}.dump(), json{{"partner", c_.partner}, {"x", 1}}.dump()}) {
        search_.Search(name + " POST /api/v1/orders/lookup-partner",
                       ApiPost(*gw, "/api/v1/orders/lookup-partner?stuck=true", body));
      }
    }
    for (const std::string path : {"/v1/traces", "/hook-a", "/hook-b", "/am"}) {
      size_t i = 0;
      for (const std::string& body : recorder_.raw_bodies(path)) {
        search_.Search("recorder POST " + path + " #" + std::to_string(i++), body);
      }
    }
    for (const std::string t : {"/api/v2/alerts", "/api/v2/alerts/groups", "/api/v2/status"}) {
      auto r = net::HttpGet(am_->url(), t, 5000ms);
      if (r.ok()) search_.Search("Alertmanager GET " + t + " " + when, r.value().body);
    }
  }

  // Stops the gateways (their exit codes 0) and Alertmanager, searching what they leave.
  void StopAndSearch(const std::string& partner_query) {
    EXPECT_EQ(b_.Stop(), 0);
    EXPECT_EQ(a_.Stop(), 0);
    SearchSinks("(stopped)", partner_query);
    search_.SearchTree("Alertmanager dir", a_.dir() / "alertmanager");
    am_->Stop();
    search_.SearchTree("Alertmanager dir (stopped)", a_.dir() / "alertmanager");
  }

  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
  }

  Random random_;
  const Canaries c_ = MakeCanaries(random_);
  std::string order_;
  std::chrono::steady_clock::time_point began_;
  Receiver recorder_;  // the upstream (/v1/traces), the webhooks and Alertmanager's receiver
  GatewayProcess a_{"leak_a"}, b_{"leak_b"};
  std::unique_ptr<Alertmanager> am_;
  std::map<std::string, pb::trace::v1::Span> upstream_spans_;
  std::map<std::string, pb::trace::v1::ResourceSpans> upstream_resources_;
  json alerts_;
  LeakSearch search_{FormsOf(c_)};
};

bool FileHolds(const std::filesystem::path& dir, const std::string& needle) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && ReadFile(it->path()).find(needle) != std::string::npos)
      return true;
  }
  return false;
}

TEST_F(LeakTest, CanariesInEveryCarrierReachNoSinkThroughTwoGateways) {
  StartChain(true);
  if (HasFatalFailure()) return;
  SendEveryEncoding();
  if (HasFatalFailure()) return;

  // The key gateway A created, read as LoadKey reads it (a trailing newline is not part of it).
  std::string key = ReadFile(a_.data_dir() / "pseudonym.key");
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  ASSERT_GE(key.size(), 32u);
  // B has a key of its own under the same id: a pseudonym of A that B hashed again would differ.
  EXPECT_NE(ReadFile(b_.data_dir() / "pseudonym.key"), ReadFile(a_.data_dir() / "pseudonym.key"));
  const std::string p_partner = ExpectedPseudonym(key, "k1", "partner", c_.partner);
  const std::string p_email = ExpectedPseudonym(key, "k1", "email", Lowered(c_.email));
  const std::string p_phone = ExpectedPseudonym(key, "k1", "phone", c_.phone_e164);
  const std::string p_iban = ExpectedPseudonym(key, "k1", "iban", c_.iban_compact);

  WaitForUpstream();
  if (HasFatalFailure()) return;
  WaitForStuckAndAlerted();

  // The pseudonyms: the independent HMAC under A's key, unchanged by B (B has its own key; a
  // second hash would differ).
  for (const auto& [enc, span] : upstream_spans_) {
    SCOPED_TRACE("upstream span from " + enc);
    const auto& rs = upstream_resources_[enc];
    EXPECT_EQ(StringAttr(rs.resource().attributes(), "partner.id"), p_partner);
    EXPECT_EQ(StringAttr(rs.resource().attributes(), "enduser.id"), p_email);
    EXPECT_EQ(StringAttr(span.attributes(), "partner.id"), p_partner);
    EXPECT_EQ(StringAttr(span.attributes(), "enduser.id"), p_email);
    EXPECT_EQ(StringAttr(span.attributes(), "user.email"), p_email);
    EXPECT_EQ(StringAttr(span.attributes(), "customer.phone"), p_phone);
    EXPECT_EQ(StringAttr(span.attributes(), "payment.iban"), p_iban);
    EXPECT_EQ(StringAttr(span.attributes(), "order.id"), order_);
    EXPECT_EQ(StringAttr(span.attributes(), "http.request.header.authorization"), "")
        << "the authorization header is dropped";
    for (const std::string long_key : {"long.email", "long.phone", "long.card", "long.iban"}) {
      const std::string v = StringAttr(span.attributes(), long_key);
      EXPECT_LE(v.size(), kValueLimit) << long_key;
      EXPECT_GT(v.size(), kValueLimit - 100) << long_key << " was cut at the limit, no more";
    }
    for (const auto& kv : span.attributes()) {
      if (kv.key() != "customer.phones") continue;
      ASSERT_EQ(kv.value().array_value().values_size(), 5);
      // Two formats of one phone: one pseudonym.
      EXPECT_EQ(kv.value().array_value().values(0).string_value(), p_phone);
      EXPECT_EQ(kv.value().array_value().values(1).string_value(), p_phone);
      EXPECT_EQ(kv.value().array_value().values(2).string_value(), p_email);
      EXPECT_EQ(kv.value().array_value().values(4).string_value(), p_iban);
    }
    EXPECT_EQ(span.name(), "checkout by " + p_email + " tel " + p_phone +
                               " card [card:redacted] iban " + p_iban);
    ASSERT_EQ(span.events_size(), 2);
    EXPECT_EQ(StringAttr(span.events(0).attributes(), "exception.message"),
              "card [card:redacted] of " + p_email + " (" + p_phone + ") declined, IBAN " + p_iban);
    EXPECT_EQ(StringAttr(span.events(0).attributes(), "partner.id"), p_partner);
    EXPECT_EQ(span.events(1).name(), "notified " + p_email + " at " + p_phone);
    ASSERT_EQ(span.links_size(), 1);
    EXPECT_EQ(StringAttr(span.links(0).attributes(), "partner.id"), p_partner);
    EXPECT_EQ(span.status().message(),
              "declined: [card:redacted] " + p_iban + " " + p_email + " " + p_phone);
    ASSERT_EQ(rs.scope_spans_size(), 1);
    EXPECT_EQ(StringAttr(rs.scope_spans(0).scope().attributes(), "partner.id"), p_partner);
  }

  // The search, twice: while everything runs (the WAL, the ingest log's active segments)
  // and after the gateways stopped (complete logs, checkpointed database).
  SearchSinks("(running)", p_partner);

  // Non-vacuous: the files that must be searched were there, with pseudonyms in them.
  EXPECT_TRUE(search_.SawFile("data/journeys.db")) << "no journey database";
  EXPECT_TRUE(search_.SawFile("data/journeys.db-wal")) << "no journey WAL";
  EXPECT_TRUE(search_.SawFileContaining("data/ingest-log/seg-")) << "no ingest log segment";
  EXPECT_TRUE(search_.SawFile("data/audit.log")) << "no audit log";
  EXPECT_TRUE(FileHolds(a_.data_dir() / "ingest-log", p_partner))
      << "gateway A's ingest log holds the partner's pseudonym";
  EXPECT_TRUE(FileHolds(b_.data_dir() / "ingest-log", p_partner))
      << "gateway B's ingest log holds the partner's pseudonym (A's, unchanged)";
  EXPECT_NE(a_.Log().find(p_email), std::string::npos) << "the span log shows the pseudonym";
  EXPECT_NE(b_.Log().find(p_email), std::string::npos) << "the span log shows the pseudonym";
  if (!alerts_.empty()) {
    EXPECT_NE(alerts_[0].dump().find(p_email), std::string::npos)
        << "the alert's diagnosis names the last span (its name, pseudonymised)";
  }
  // Once the API looks orders up by partner (issue 15 point 5), both ways find the canary order.
  const json by_pseudonym =
      json::parse(ApiGet(a_, "/api/v1/orders?partner=" + p_partner), nullptr, false);
  if (by_pseudonym.is_object() && by_pseudonym.contains("orders")) {
    EXPECT_NE(by_pseudonym.dump().find(order_), std::string::npos)
        << "GET /api/v1/orders?partner=<pseudonym> finds the canary order";
  }
  const json by_clear_id = json::parse(
      ApiPost(a_, "/api/v1/orders/lookup-partner", json{{"partner", c_.partner}}.dump()), nullptr,
      false);
  if (by_clear_id.is_object() && by_clear_id.contains("orders")) {
    EXPECT_NE(by_clear_id.dump().find(order_), std::string::npos)
        << "POST /api/v1/orders/lookup-partner with the clear id finds the canary order";
  }

  StopAndSearch(p_partner);
  EXPECT_TRUE(search_.hits().empty())
      << search_.hits().size() << " hits of canaries in " << search_.sinks() << " sinks:\n"
      << Describe(search_.hits());
  std::cout << "leak test: " << FormsOf(c_).size() << " canary forms searched in "
            << search_.sinks() << " sinks (" << search_.bytes() << " bytes), "
            << search_.hits().size() << " hits, " << Seconds() << " s\n";
}

// The search itself, proven: with redaction off the same chain leaves the canaries in every
// sink that keeps or sends span data, and the search finds them there.
TEST_F(LeakTest, WithRedactionOffTheSearchFindsCanariesInEverySink) {
  StartChain(false);
  if (HasFatalFailure()) return;
  SendEveryEncoding();
  if (HasFatalFailure()) return;
  WaitForUpstream();
  if (HasFatalFailure()) return;
  WaitForStuckAndAlerted();
  SearchSinks("(running)", c_.partner);
  StopAndSearch(c_.partner);

  std::set<std::string> sinks;
  for (const Hit& h : search_.hits()) sinks.insert(h.sink);
  auto found = [&](const std::string& part) {
    for (const std::string& s : sinks) {
      if (s.find(part) != std::string::npos) return true;
    }
    return false;
  };
  for (const std::string part :
       {"gateway A (running) dir/data/journeys.db", "gateway B (running) dir/data/journeys.db",
        "gateway A (running) dir/data/ingest-log/seg-",
        "gateway B (running) dir/data/ingest-log/seg-", "gateway A (stopped) dir/gateway-0.log",
        "gateway B (stopped) dir/gateway-0.log", "gateway A (running) GET /api/v1/orders/LEAK-",
        "gateway B (running) GET /api/v1/orders/LEAK-", "recorder POST /v1/traces",
        "recorder POST /hook-a", "recorder POST /hook-b", "recorder POST /am",
        "Alertmanager GET /api/v2/alerts"}) {
    EXPECT_TRUE(found(part)) << "no canary found in " << part;
  }
  std::set<std::string> canaries;
  for (const Hit& h : search_.hits()) canaries.insert(h.canary + " (" + h.form + ")");
  std::cout << "with redaction off: " << search_.hits().size() << " hits of " << canaries.size()
            << " canary forms in " << sinks.size() << " sinks, " << Seconds() << " s\n";
}

}  // namespace
}  // namespace ordertrace
