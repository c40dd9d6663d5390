// Unit tests of the OTLP decoder's validation policy: what is refused, what is repaired, and
// what makes a request malformed.  Requests are built with libprotobuf's generated classes.
#include "otlp/decoder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace ordertrace::otlp {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::common::v1::KeyValue;
using opentelemetry::proto::trace::v1::Span;

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

const std::string kTrace = Bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
const std::string kSpan = Bytes({0xa1, 2, 3, 4, 5, 6, 7, 8});
const std::string kParent = Bytes({0xb1, 2, 3, 4, 5, 6, 7, 8});

Span* AddSpan(ExportTraceServiceRequest* req, const std::string& name = "op") {
  auto* rs =
      req->resource_spans_size() ? req->mutable_resource_spans(0) : req->add_resource_spans();
  if (!rs->has_resource()) {
    auto* kv = rs->mutable_resource()->add_attributes();
    kv->set_key("service.name");
    kv->mutable_value()->set_string_value("crm");
  }
  auto* ss = rs->scope_spans_size() ? rs->mutable_scope_spans(0) : rs->add_scope_spans();
  auto* span = ss->add_spans();
  span->set_trace_id(kTrace);
  span->set_span_id(kSpan);
  span->set_name(name);
  span->set_start_time_unix_nano(1'700'000'000'000'000'000ULL);
  span->set_end_time_unix_nano(1'700'000'000'500'000'000ULL);
  return span;
}

void AddAttr(google::protobuf::RepeatedPtrField<KeyValue>* attrs, const std::string& k,
             const std::string& v) {
  auto* kv = attrs->Add();
  kv->set_key(k);
  kv->mutable_value()->set_string_value(v);
}

// "k3" for ("k", 3).  (Not `Numbered("k", i)`: GCC 12 at -O3 warns falsely about it,
// -Wrestrict, GCC bug 105651.)
std::string Numbered(const char* prefix, int i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

std::shared_ptr<const SpanBatch> MustDecode(const ExportTraceServiceRequest& req,
                                            const Limits& limits = {}) {
  auto r = DecodeExportRequest(req.SerializeAsString(), Protocol::kHttpProtobuf, limits);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : nullptr;
}

std::map<std::string, AnyValueView> Attributes(const SpanBatch& b, const SpanRef& s) {
  std::map<std::string, AnyValueView> out;
  b.ForEachAttribute(s, [&](const KeyValueView& kv) { out[std::string(kv.key)] = kv.value; });
  return out;
}

TEST(DecoderTest, EmptyRequestIsValid) {
  ExportTraceServiceRequest req;
  auto b = MustDecode(req);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->spans().size(), 0u);
  EXPECT_EQ(b->refused_spans(), 0u);
}

TEST(DecoderTest, DecodesEveryField) {
  ExportTraceServiceRequest req;
  Span* s = AddSpan(&req, "publish mes.orders");
  s->set_parent_span_id(kParent);
  s->set_trace_state("vendor=1");
  s->set_flags(0x301);
  s->set_kind(Span::SPAN_KIND_PRODUCER);
  AddAttr(s->mutable_attributes(), "order.id", "ORD-1");
  auto* i = s->add_attributes();
  i->set_key("n");
  i->mutable_value()->set_int_value(-42);
  auto* d = s->add_attributes();
  d->set_key("d");
  d->mutable_value()->set_double_value(2.5);
  auto* bo = s->add_attributes();
  bo->set_key("b");
  bo->mutable_value()->set_bool_value(true);
  auto* by = s->add_attributes();
  by->set_key("bytes");
  by->mutable_value()->set_bytes_value(Bytes({0, 1, 2}));
  auto* arr = s->add_attributes();
  arr->set_key("arr");
  arr->mutable_value()->mutable_array_value()->add_values()->set_string_value("x");
  arr->mutable_value()->mutable_array_value()->add_values()->set_int_value(7);
  auto* kvl = s->add_attributes();
  kvl->set_key("kv");
  AddAttr(kvl->mutable_value()->mutable_kvlist_value()->mutable_values(), "inner", "v");
  s->set_dropped_attributes_count(3);
  auto* ev = s->add_events();
  ev->set_name("exception");
  ev->set_time_unix_nano(1'700'000'000'100'000'000ULL);
  AddAttr(ev->mutable_attributes(), "exception.message", "boom");
  ev->set_dropped_attributes_count(1);
  auto* link = s->add_links();
  link->set_trace_id(kTrace);
  link->set_span_id(kParent);
  link->set_trace_state("a=b");
  link->set_flags(1);
  AddAttr(link->mutable_attributes(), "link.kind", "follows");
  s->mutable_status()->set_code(opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  s->mutable_status()->set_message("price engine timeout");
  auto* scope = req.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_scope();
  scope->set_name("libordertrace");
  scope->set_version("0.1.0");
  req.mutable_resource_spans(0)->set_schema_url("https://opentelemetry.io/schemas/1.26.0");

  auto b = MustDecode(req);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->spans().size(), 1u);
  const SpanRef& r = b->spans()[0];
  EXPECT_EQ(std::string(r.trace_id.begin(), r.trace_id.end()), kTrace);
  EXPECT_EQ(std::string(r.span_id.begin(), r.span_id.end()), kSpan);
  EXPECT_EQ(std::string(r.parent_span_id.begin(), r.parent_span_id.end()), kParent);
  EXPECT_TRUE(r.has_parent());
  EXPECT_EQ(r.name, "publish mes.orders");
  EXPECT_EQ(r.trace_state, "vendor=1");
  EXPECT_EQ(r.flags, 0x301u);
  EXPECT_EQ(r.kind, 4);
  EXPECT_EQ(r.start_time_unix_nano, 1'700'000'000'000'000'000ULL);
  EXPECT_EQ(r.end_time_unix_nano, 1'700'000'000'500'000'000ULL);
  EXPECT_EQ(r.status_code, 2);
  EXPECT_EQ(r.status_message, "price engine timeout");
  EXPECT_EQ(r.attributes, 7u);
  EXPECT_EQ(r.dropped_attributes, 3u);
  EXPECT_EQ(r.events, 1u);
  EXPECT_EQ(r.links, 1u);
  EXPECT_EQ(r.repairs, 0u);

  auto attrs = Attributes(*b, r);
  EXPECT_EQ(attrs["order.id"].type, ValueType::kString);
  EXPECT_EQ(attrs["order.id"].str, "ORD-1");
  EXPECT_EQ(attrs["n"].type, ValueType::kInt);
  EXPECT_EQ(attrs["n"].int_value, -42);
  EXPECT_EQ(attrs["d"].double_value, 2.5);
  EXPECT_TRUE(attrs["b"].bool_value);
  EXPECT_EQ(attrs["bytes"].type, ValueType::kBytes);
  EXPECT_EQ(attrs["bytes"].str, Bytes({0, 1, 2}));
  std::vector<std::string> elems;
  ForEachArrayValue(attrs["arr"], 100, [&](const AnyValueView& v) {
    elems.push_back(v.type == ValueType::kString ? std::string(v.str)
                                                 : std::to_string(v.int_value));
  });
  EXPECT_EQ(elems, (std::vector<std::string>{"x", "7"}));
  std::string inner;
  ForEachKeyValue(attrs["kv"], 100, [&](const KeyValueView& kv) {
    inner = std::string(kv.key) + "=" + std::string(kv.value.str);
  });
  EXPECT_EQ(inner, "inner=v");

  AnyValueView found;
  ASSERT_TRUE(b->FindAttribute(r, "order.id", &found));
  EXPECT_EQ(found.str, "ORD-1");
  EXPECT_FALSE(b->FindAttribute(r, "missing", &found));

  int events = 0;
  b->ForEachEvent(r, [&](const EventView& e) {
    ++events;
    EXPECT_EQ(e.name, "exception");
    EXPECT_EQ(e.time_unix_nano, 1'700'000'000'100'000'000ULL);
    EXPECT_EQ(e.dropped_attributes, 1u);
    b->ForEachAttribute(e, [&](const KeyValueView& kv) { EXPECT_EQ(kv.value.str, "boom"); });
  });
  EXPECT_EQ(events, 1);
  int links = 0;
  b->ForEachLink(r, [&](const LinkView& l) {
    ++links;
    EXPECT_EQ(std::string(l.span_id.begin(), l.span_id.end()), kParent);
    EXPECT_EQ(l.trace_state, "a=b");
    EXPECT_EQ(l.flags, 1u);
  });
  EXPECT_EQ(links, 1);

  ASSERT_EQ(b->resources().size(), 1u);
  EXPECT_EQ(b->resources()[0].service_name, "crm");
  EXPECT_EQ(b->resources()[0].schema_url, "https://opentelemetry.io/schemas/1.26.0");
  ASSERT_EQ(b->scopes().size(), 1u);
  EXPECT_EQ(b->scopes()[0].name, "libordertrace");
  EXPECT_EQ(b->scopes()[0].version, "0.1.0");
}

struct RefuseCase {
  const char* name;
  void (*mutate)(Span*);
  RefuseReason reason;
};

TEST(DecoderTest, RefusesInvalidSpansWithPartialSuccess) {
  const RefuseCase cases[] = {
      {"zero trace id", [](Span* s) { s->set_trace_id(std::string(16, '\0')); },
       RefuseReason::kInvalidTraceId},
      {"short trace id", [](Span* s) { s->set_trace_id("abc"); }, RefuseReason::kInvalidTraceId},
      {"missing trace id", [](Span* s) { s->clear_trace_id(); }, RefuseReason::kInvalidTraceId},
      {"zero span id", [](Span* s) { s->set_span_id(std::string(8, '\0')); },
       RefuseReason::kInvalidSpanId},
      {"long span id", [](Span* s) { s->set_span_id(std::string(9, 'x')); },
       RefuseReason::kInvalidSpanId},
      {"bad parent", [](Span* s) { s->set_parent_span_id("abcd"); },
       RefuseReason::kInvalidParentId},
      {"no start", [](Span* s) { s->set_start_time_unix_nano(0); },
       RefuseReason::kMissingStartTime},
      {"bad link id", [](Span* s) { s->add_links()->set_trace_id("short"); },
       RefuseReason::kInvalidTraceId},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ExportTraceServiceRequest req;
    AddSpan(&req, "good1");
    c.mutate(AddSpan(&req, "bad"));
    AddSpan(&req, "good2");
    auto b = MustDecode(req);
    ASSERT_TRUE(b);
    ASSERT_EQ(b->spans().size(), 2u);
    EXPECT_EQ(b->spans()[0].name, "good1");
    EXPECT_EQ(b->spans()[1].name, "good2");
    EXPECT_EQ(b->refused_spans(), 1u);
    EXPECT_EQ(b->refused(c.reason), 1u);
    EXPECT_NE(b->refusal_message().find(RefuseReasonName(c.reason)), std::string::npos)
        << b->refusal_message();
    EXPECT_NE(b->refusal_message().find("spans[1]"), std::string::npos) << b->refusal_message();
  }
}

// Invalid UTF-8 cannot be set through the generated setters' checks in every build, so the
// bytes are patched after serialization: "BAD!" becomes 0xC3 0x28 ... (an invalid sequence).
std::string PatchUtf8(std::string wire) {
  auto pos = wire.find("BAD!");
  EXPECT_NE(pos, std::string::npos);
  wire[pos] = static_cast<char>(0xC3);
  wire[pos + 1] = '(';
  return wire;
}

TEST(DecoderTest, InvalidUtf8RefusesTheSpan) {
  ExportTraceServiceRequest req;
  AddSpan(&req, "good");
  AddAttr(AddSpan(&req, "bad")->mutable_attributes(), "k", "BAD!");
  auto r = DecodeExportRequest(PatchUtf8(req.SerializeAsString()), Protocol::kGrpc, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value()->spans().size(), 1u);
  EXPECT_EQ(r.value()->refused(RefuseReason::kInvalidUtf8), 1u);
}

TEST(DecoderTest, InvalidUtf8InResourceRefusesAllItsSpans) {
  ExportTraceServiceRequest req;
  AddSpan(&req, "a");
  AddSpan(&req, "b");
  AddAttr(req.mutable_resource_spans(0)->mutable_resource()->mutable_attributes(), "host", "BAD!");
  auto* other = req.add_resource_spans()->add_scope_spans()->add_spans();
  other->CopyFrom(req.resource_spans(0).scope_spans(0).spans(0));
  other->set_name("other-resource");
  auto r = DecodeExportRequest(PatchUtf8(req.SerializeAsString()), Protocol::kGrpc, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value()->spans().size(), 1u);
  EXPECT_EQ(r.value()->spans()[0].name, "other-resource");
  EXPECT_EQ(r.value()->spans()[0].resource, 1u);
  EXPECT_EQ(r.value()->refused(RefuseReason::kInvalidUtf8), 2u);
}

TEST(DecoderTest, ValuesNestedTooDeepRefuseTheSpan) {
  ExportTraceServiceRequest req;
  auto* kv = AddSpan(&req)->add_attributes();
  kv->set_key("deep");
  auto* v = kv->mutable_value();
  for (int i = 0; i < 10; ++i) v = v->mutable_array_value()->add_values();
  v->set_string_value("bottom");
  Limits limits;
  limits.max_value_depth = 8;
  auto b = MustDecode(req, limits);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->spans().size(), 0u);
  EXPECT_EQ(b->refused(RefuseReason::kValueTooDeep), 1u);
  limits.max_value_depth = 16;
  b = MustDecode(req, limits);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->spans().size(), 1u);
}

TEST(DecoderTest, RepairsAndCountsFixableProblems) {
  ExportTraceServiceRequest req;
  Span* s = AddSpan(&req);
  s->set_end_time_unix_nano(s->start_time_unix_nano() - 5);
  s->set_kind(static_cast<Span::SpanKind>(9));
  s->mutable_status()->set_code(
      static_cast<opentelemetry::proto::trace::v1::Status::StatusCode>(7));
  for (int i = 0; i < 5; ++i) AddAttr(s->mutable_attributes(), Numbered("k", i), "v");
  AddAttr(s->mutable_attributes(), "long",
          std::string(10, 'a').append("\xc3\xa9zz"));  // é at 10..11
  for (int i = 0; i < 4; ++i) s->add_events()->set_name(Numbered("e", i));
  for (int i = 0; i < 4; ++i) {
    auto* l = s->add_links();
    l->set_trace_id(kTrace);
    l->set_span_id(kParent);
  }
  Limits limits;
  limits.max_attributes = 6;
  limits.max_events_per_span = 2;
  limits.max_links_per_span = 3;
  limits.max_attribute_value_bytes = 11;  // cuts inside é: must back up to 10
  auto b = MustDecode(req, limits);
  ASSERT_TRUE(b);
  ASSERT_EQ(b->spans().size(), 1u);
  const SpanRef& r = b->spans()[0];
  EXPECT_EQ(r.end_time_unix_nano, r.start_time_unix_nano);
  EXPECT_EQ(r.kind, 0);
  EXPECT_EQ(r.status_code, 0);
  EXPECT_EQ(r.attributes, 6u);
  EXPECT_EQ(r.dropped_attributes, 0u);
  EXPECT_EQ(r.events, 2u);
  EXPECT_EQ(r.dropped_events, 2u);
  EXPECT_EQ(r.links, 3u);
  EXPECT_EQ(r.dropped_links, 1u);
  for (Repair rep : {Repair::kEndBeforeStart, Repair::kInvalidKind, Repair::kInvalidStatusCode,
                     Repair::kValueTruncated, Repair::kEventsTruncated, Repair::kLinksTruncated}) {
    EXPECT_TRUE(r.repaired(rep)) << RepairName(rep);
    EXPECT_EQ(b->repaired(rep), 1u) << RepairName(rep);
  }
  EXPECT_FALSE(r.repaired(Repair::kAttributesTruncated));
  auto attrs = Attributes(*b, r);
  EXPECT_EQ(attrs["long"].str, std::string(10, 'a'));
  int events = 0;
  b->ForEachEvent(r, [&](const EventView&) { ++events; });
  EXPECT_EQ(events, 2);

  // One more attribute than the limit: truncated and counted as dropped.
  AddAttr(s->mutable_attributes(), "extra", "v");
  b = MustDecode(req, limits);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->spans()[0].attributes, 6u);
  EXPECT_EQ(b->spans()[0].dropped_attributes, 1u);
  EXPECT_TRUE(b->spans()[0].repaired(Repair::kAttributesTruncated));
  EXPECT_EQ(Attributes(*b, b->spans()[0]).count("extra"), 0u);
}

TEST(DecoderTest, SkipsUnknownFieldsOfEveryWireType) {
  ExportTraceServiceRequest req;
  AddSpan(&req, "known");
  std::string wire = req.SerializeAsString();
  // Unknown fields at the top level: varint (field 7), fixed64 (8), fixed32 (9),
  // length-delimited (10), and a group (11) holding a varint.
  wire += Bytes({7 << 3 | 0, 0x96, 0x01});
  wire += Bytes({8 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8});
  wire += Bytes({9 << 3 | 5, 1, 2, 3, 4});
  wire += Bytes({10 << 3 | 2, 3, 'a', 'b', 'c'});
  wire += Bytes({11 << 3 | 3, 1 << 3 | 0, 5, 11 << 3 | 4});
  auto r = DecodeExportRequest(wire, Protocol::kHttpProtobuf, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r.value()->spans().size(), 1u);
  EXPECT_EQ(r.value()->spans()[0].name, "known");
}

TEST(DecoderTest, MalformedInputIsAnErrorWithItsPlace) {
  ExportTraceServiceRequest req;
  AddSpan(&req);
  const std::string good = req.SerializeAsString();
  struct Case {
    const char* name;
    std::string wire;
    const char* expect;
  };
  const Case cases[] = {
      {"truncated", good.substr(0, good.size() - 3), "malformed OTLP protobuf"},
      {"length past end", Bytes({1 << 3 | 2, 50, 1, 2}), "length"},
      {"field zero", Bytes({0, 1}), "field number 0"},
      {"wire type 7", Bytes({1 << 3 | 7}), "invalid wire type"},
      {"stray end group", Bytes({2 << 3 | 4}), "end-group"},
      {"unterminated group", Bytes({2 << 3 | 3, 1 << 3 | 0, 1}), "unterminated group"},
      {"varint too long",
       Bytes({5 << 3 | 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}),
       "varint"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = DecodeExportRequest(c.wire, Protocol::kHttpProtobuf, {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("at byte"), std::string::npos);
  }
}

TEST(DecoderTest, DuplicateResourceIsRefusedNotMerged) {
  ExportTraceServiceRequest req;
  AddSpan(&req);
  // A ResourceSpans with a second `resource` field appended; libprotobuf would merge the two.
  const auto& rs = req.resource_spans(0);
  const std::string res = rs.resource().SerializeAsString();
  std::string dup = rs.SerializeAsString();
  dup += static_cast<char>(1 << 3 | 2);
  dup += static_cast<char>(res.size());
  dup += res;
  std::string outer;
  {
    google::protobuf::io::StringOutputStream sos(&outer);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.WriteTag(1 << 3 | 2);
    cos.WriteVarint32(static_cast<uint32_t>(dup.size()));
    cos.WriteString(dup);
  }
  auto r = DecodeExportRequest(outer, Protocol::kHttpProtobuf, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("resource given twice"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace ordertrace::otlp
