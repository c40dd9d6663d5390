#include "receive/ingest_auth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "otlp/decoder.h"
#include "support/otlp_requests.h"

namespace ordertrace::receive {
namespace {

// The tokens of BearerOptions(); the config holds only their digests.
const std::string kCrmToken = "token-crm";
const std::string kMesToken = "token-mes";
const std::string kAnyToken = "token-any";

IngestAuthOptions BearerOptions() {
  IngestAuthOptions o;
  o.mode = IngestAuthMode::kBearer;
  IngestAuthOptions::Token crm;
  crm.name = "crm-service";
  crm.sha256 = Sha256Hex(kCrmToken);
  crm.services = {"crm"};
  IngestAuthOptions::Token mes;
  mes.name = "mes-service";
  mes.sha256 = Sha256Hex(kMesToken);
  mes.services = {"mes", "mes-worker"};
  IngestAuthOptions::Token any;
  any.name = "collector";
  any.sha256 = Sha256Hex(kAnyToken);
  o.tokens = {crm, mes, any};
  return o;
}

std::shared_ptr<const otlp::SpanBatch> Batch(const std::vector<std::string>& services) {
  testing_support::RequestBuilder req;
  for (const std::string& service : services) {
    req.Resource(service).Scope();
    req.Add(testing_support::SpanBuilder("work")
                .Ids(std::string(16, '\x01'), std::string(8, '\x02'))
                .Times(1'700'000'000'000'000'000ull, 1'700'000'000'010'000'000ull));
  }
  auto batch = otlp::DecodeExportRequest(std::move(req).Build().SerializeAsString(),
                                         otlp::Protocol::kHttpProtobuf, otlp::Limits{});
  EXPECT_TRUE(batch.ok());
  return batch.ok() ? *batch : nullptr;
}

TEST(IngestAuthTest, Sha256HexIsTheStandardDigest) {
  // echo -n abc | sha256sum
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(IngestAuthTest, ParseBearerTakesAnyCaseOfTheScheme) {
  std::string_view token;
  ASSERT_TRUE(ParseBearer("Bearer abc", &token));
  EXPECT_EQ(token, "abc");
  ASSERT_TRUE(ParseBearer("bearer   abc  ", &token));
  EXPECT_EQ(token, "abc");
  ASSERT_TRUE(ParseBearer("BEARER abc", &token));
  EXPECT_FALSE(ParseBearer("Basic dXNlcjpwYXNz", &token));
  EXPECT_FALSE(ParseBearer("Bearer", &token));
  EXPECT_FALSE(ParseBearer("Bearer ", &token));
  EXPECT_FALSE(ParseBearer("Bearerabc", &token));
  EXPECT_FALSE(ParseBearer("Bearer a b", &token));
  EXPECT_FALSE(ParseBearer("Bearer a, Bearer b", &token));
}

TEST(IngestAuthTest, BearerTokensAreFoundByTheirDigest) {
  auto auth = IngestAuthenticator::Create(BearerOptions());
  ASSERT_TRUE(auth.ok()) << auth.status().message();
  const net::TlsPeer none;
  const std::string crm = "Bearer " + kCrmToken, mes = "bearer " + kMesToken;
  IngestCaller c = auth->Authenticate({crm}, none);
  EXPECT_EQ(c.result, IngestAuthResult::kOk);
  EXPECT_EQ(auth->NameOf(c), "crm-service");
  c = auth->Authenticate({mes}, none);
  EXPECT_EQ(c.result, IngestAuthResult::kOk);
  EXPECT_EQ(auth->NameOf(c), "mes-service");

  EXPECT_EQ(auth->Authenticate({}, none).result, IngestAuthResult::kMissing);
  EXPECT_EQ(auth->Authenticate({"Bearer wrong"}, none).result, IngestAuthResult::kInvalid);
  EXPECT_EQ(auth->Authenticate({"Basic " + kCrmToken}, none).result, IngestAuthResult::kInvalid);
  // The digest itself is not the token.
  EXPECT_EQ(auth->Authenticate({"Bearer " + Sha256Hex(kCrmToken)}, none).result,
            IngestAuthResult::kInvalid);
  // A prefix of a token, and a token with something appended, are wrong tokens.
  EXPECT_EQ(auth->Authenticate({"Bearer token-cr"}, none).result, IngestAuthResult::kInvalid);
  EXPECT_EQ(auth->Authenticate({"Bearer token-crmx"}, none).result, IngestAuthResult::kInvalid);
  // Two Authorization values: refused, even when one is right.
  EXPECT_EQ(auth->Authenticate({crm, "Bearer wrong"}, none).result, IngestAuthResult::kInvalid);
  EXPECT_EQ(auth->NameOf(auth->Authenticate({"Bearer wrong"}, none)), "");
}

TEST(IngestAuthTest, ComparisonTakesTheSameTimeForEveryEntry) {
  // Not a timing-attack proof, but a guard against an early exit creeping back in: a match on
  // the first entry and a miss take about as long when many entries are configured.
  IngestAuthOptions o;
  o.mode = IngestAuthMode::kBearer;
  for (int i = 0; i < 200; ++i) {
    IngestAuthOptions::Token t;
    t.name = "t" + std::to_string(i);
    t.sha256 = Sha256Hex("token-" + std::to_string(i));
    o.tokens.push_back(t);
  }
  auto auth = IngestAuthenticator::Create(o);
  ASSERT_TRUE(auth.ok());
  const net::TlsPeer none;
  volatile int sink = 0;
  // The fastest of a few rounds, so that a busy machine does not decide the outcome.
  auto time = [&](const std::string& header) {
    double best = 1e9;
    for (int round = 0; round < 5; ++round) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 500; ++i) sink = sink + auth->Authenticate({header}, none).entry;
      best = std::min(
          best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  };
  EXPECT_EQ(auth->Authenticate({"Bearer token-0"}, none).entry, 0);
  EXPECT_EQ(auth->Authenticate({"Bearer token-199"}, none).entry, 199);
  const double first = time("Bearer token-0"), miss = time("Bearer no-such-token");
  EXPECT_LT(first, miss * 3);
  EXPECT_LT(miss, first * 3);
}

TEST(IngestAuthTest, ServiceBindingChecksEveryResource) {
  auto auth = IngestAuthenticator::Create(BearerOptions());
  ASSERT_TRUE(auth.ok());
  const net::TlsPeer none;
  const IngestCaller crm = auth->Authenticate({"Bearer " + kCrmToken}, none);
  const IngestCaller mes = auth->Authenticate({"Bearer " + kMesToken}, none);
  const IngestCaller any = auth->Authenticate({"Bearer " + kAnyToken}, none);
  EXPECT_TRUE(auth->MaySend(crm, *Batch({"crm"})));
  EXPECT_FALSE(auth->MaySend(crm, *Batch({"mes"})));
  EXPECT_FALSE(auth->MaySend(crm, *Batch({"crm", "mes"})));  // the second resource is foreign
  EXPECT_TRUE(auth->MaySend(mes, *Batch({"mes", "mes-worker"})));
  EXPECT_FALSE(auth->MaySend(crm, *Batch({""})));  // no service.name: not "crm"
  EXPECT_TRUE(auth->MaySend(any, *Batch({"crm", "mes", ""})));
  EXPECT_FALSE(auth->MaySend(auth->Authenticate({"Bearer x"}, none), *Batch({"crm"})));
  // Mode none allows everything.
  IngestAuthenticator open;
  EXPECT_TRUE(open.MaySend(open.Authenticate({}, none), *Batch({"anything"})));
  EXPECT_EQ(open.Authenticate({}, none).result, IngestAuthResult::kOk);
}

TEST(IngestAuthTest, MtlsIdentitiesMatchTheCommonNameOrASan) {
  IngestAuthOptions o;
  o.mode = IngestAuthMode::kMtls;
  IngestAuthOptions::Identity crm;
  crm.name = "crm";
  crm.subject = "crm.services.example";
  crm.services = {"crm"};
  IngestAuthOptions::Identity mes;
  mes.name = "mes";
  mes.subject = "spiffe://example/mes";
  o.identities = {crm, mes};
  auto auth = IngestAuthenticator::Create(o);
  ASSERT_TRUE(auth.ok()) << auth.status().message();

  net::TlsPeer by_cn;
  by_cn.verified = true;
  by_cn.common_name = "crm.services.example";
  IngestCaller c = auth->Authenticate({}, by_cn);
  EXPECT_EQ(c.result, IngestAuthResult::kOk);
  EXPECT_EQ(auth->NameOf(c), "crm");
  EXPECT_TRUE(auth->MaySend(c, *Batch({"crm"})));
  EXPECT_FALSE(auth->MaySend(c, *Batch({"mes"})));

  net::TlsPeer by_san;
  by_san.verified = true;
  by_san.common_name = "something else";
  by_san.alt_names = {"mes.local", "spiffe://example/mes"};
  EXPECT_EQ(auth->NameOf(auth->Authenticate({}, by_san)), "mes");

  net::TlsPeer unknown;
  unknown.verified = true;
  unknown.common_name = "intruder";
  EXPECT_EQ(auth->Authenticate({}, unknown).result, IngestAuthResult::kInvalid);
  net::TlsPeer unverified = by_cn;
  unverified.verified = false;
  EXPECT_EQ(auth->Authenticate({}, unverified).result, IngestAuthResult::kMissing);
  // A bearer token does not stand in for a certificate.
  EXPECT_EQ(auth->Authenticate({"Bearer " + kCrmToken}, net::TlsPeer{}).result,
            IngestAuthResult::kMissing);
}

TEST(IngestAuthTest, CreateRefusesBadEntriesWithoutEchoingThem) {
  IngestAuthOptions o = BearerOptions();
  o.tokens[1].sha256 = "my-secret-token";  // the token pasted instead of its digest
  auto bad = IngestAuthenticator::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("ingest.auth.tokens[1].sha256: expected 64 hex", 0), 0u)
      << bad.status().message();
  EXPECT_EQ(bad.status().message().find("my-secret-token"), std::string::npos);

  o = BearerOptions();
  o.tokens[2].name = "crm-service";
  bad = IngestAuthenticator::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("used twice"), std::string::npos);

  o = BearerOptions();
  o.tokens.clear();
  EXPECT_FALSE(IngestAuthenticator::Create(o).ok());

  IngestAuthOptions m;
  m.mode = IngestAuthMode::kMtls;
  m.identities.resize(1);
  m.identities[0].name = "x";
  bad = IngestAuthenticator::Create(m);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("identities[0].subject"), std::string::npos);
}

TEST(IngestAuthTest, MetricsCountPerListenerAndResult) {
  metrics::Registry registry;
  IngestAuthMetrics m(registry);
  m.Count(otlp::Protocol::kGrpc, IngestAuthResult::kInvalid);
  m.Count(otlp::Protocol::kHttpJson, IngestAuthResult::kOk);
  const std::string text = registry.Serialize();
  EXPECT_NE(text.find("ordertrace_ingest_auth_total{listener=\"otlp_grpc\",result=\"invalid\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ordertrace_ingest_auth_total{listener=\"otlp_http\",result=\"ok\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace ordertrace::receive
