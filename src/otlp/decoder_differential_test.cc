// Differential test: the hand-written decoder against libprotobuf, on generated requests
// (every field, every value type, unknown fields) and on mutated, malformed bytes.
//
// Agreement means: whenever libprotobuf parses a request, the decoder accepts it too and every
// field of every span it keeps equals libprotobuf's; the spans it refuses are exactly those
// the validation policy (docs/validation.md) refuses.  The documented divergences:
//   * a repeated singular sub-message (resource, scope, KeyValue.value, array/kvlist value) is
//     merged by libprotobuf and refused as malformed here ("given twice");
//   * libprotobuf fails the whole request on invalid UTF-8 or (beyond depth 100) deep values;
//     the decoder refuses only the spans concerned.
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "otlp/decoder.h"

namespace ordertrace::otlp {
namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::KeyValue;
using opentelemetry::proto::trace::v1::Span;
namespace pb = google::protobuf;

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  uint64_t U64() { return std::uniform_int_distribution<uint64_t>()(rng_); }
  bool Coin(int percent = 50) { return Int(1, 100) <= percent; }

  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(Int(0, 255));
    return s;
  }
  std::string NonZero(size_t n) {
    std::string s = Bytes(n);
    s[0] = static_cast<char>(Int(1, 255));
    return s;
  }
  // Valid UTF-8: ASCII, 2-, 3- and 4-byte characters.
  std::string Text(int max_len) {
    static const char* kPieces[] = {"a", "Z", "0", " ", ".", "_", "é", "ß", "Ж", "中", "€", "😀"};
    std::string s;
    int n = Int(0, max_len);
    for (int i = 0; i < n; ++i) s += kPieces[Int(0, 11)];
    return s;
  }

  void Value(AnyValue* v, int depth) {
    switch (Int(0, depth < 3 ? 7 : 5)) {
      case 0:
        break;  // empty AnyValue
      case 1:
        v->set_string_value(Text(40));
        break;
      case 2:
        v->set_bool_value(Coin());
        break;
      case 3:
        v->set_int_value(static_cast<int64_t>(U64()));
        break;
      case 4: {
        double d;
        uint64_t bits = U64();
        std::memcpy(&d, &bits, 8);
        v->set_double_value(std::isnan(d) ? 1.5 : d);
        break;
      }
      case 5:
        v->set_bytes_value(Bytes(Int(0, 20)));
        break;
      case 6: {
        auto* a = v->mutable_array_value();
        for (int i = Int(0, 4); i > 0; --i) Value(a->add_values(), depth + 1);
        break;
      }
      case 7: {
        auto* l = v->mutable_kvlist_value();
        for (int i = Int(0, 4); i > 0; --i) Attr(l->add_values(), depth + 1);
        break;
      }
    }
  }
  void Attr(KeyValue* kv, int depth = 1) {
    kv->set_key(Text(12));
    if (Coin(95)) Value(kv->mutable_value(), depth);
  }
  void Attrs(pb::RepeatedPtrField<KeyValue>* attrs, int max) {
    for (int i = Int(0, max); i > 0; --i) Attr(attrs->Add());
  }

  void FillSpan(Span* s) {
    s->set_trace_id(NonZero(16));
    s->set_span_id(NonZero(8));
    if (Coin(70)) s->set_parent_span_id(Coin(90) ? NonZero(8) : std::string(8, '\0'));
    if (Coin(20)) s->set_trace_state(Text(20));
    if (Coin(50)) s->set_flags(static_cast<uint32_t>(U64()));
    s->set_name(Text(30));
    s->set_kind(static_cast<Span::SpanKind>(Int(0, 5)));
    uint64_t start = 1 + U64() % (uint64_t{1} << 62);
    s->set_start_time_unix_nano(start);
    s->set_end_time_unix_nano(start + U64() % 1'000'000'000'000ULL);
    Attrs(s->mutable_attributes(), 14);
    if (Coin(20)) s->set_dropped_attributes_count(Int(0, 1000));
    for (int i = Int(0, 3); i > 0; --i) {
      auto* e = s->add_events();
      e->set_time_unix_nano(U64());
      e->set_name(Text(15));
      Attrs(e->mutable_attributes(), 4);
      if (Coin(10)) e->set_dropped_attributes_count(Int(0, 9));
    }
    if (Coin(20)) s->set_dropped_events_count(Int(0, 9));
    for (int i = Int(0, 2); i > 0; --i) {
      auto* l = s->add_links();
      l->set_trace_id(Coin(90) ? NonZero(16) : std::string());
      l->set_span_id(Coin(90) ? NonZero(8) : std::string());
      if (Coin(30)) l->set_trace_state(Text(10));
      Attrs(l->mutable_attributes(), 3);
      if (Coin(10)) l->set_dropped_attributes_count(Int(0, 9));
      if (Coin(50)) l->set_flags(static_cast<uint32_t>(U64()));
    }
    if (Coin(20)) s->set_dropped_links_count(Int(0, 9));
    if (Coin(60)) {
      s->mutable_status()->set_code(
          static_cast<opentelemetry::proto::trace::v1::Status::StatusCode>(Int(0, 2)));
      if (Coin(50)) s->mutable_status()->set_message(Text(30));
    }
  }

  ExportTraceServiceRequest Request() {
    ExportTraceServiceRequest req;
    for (int r = Int(0, 3); r > 0; --r) {
      auto* rs = req.add_resource_spans();
      if (Coin(90)) {
        auto* kv = rs->mutable_resource()->add_attributes();
        kv->set_key("service.name");
        kv->mutable_value()->set_string_value(Text(10));
        Attrs(rs->mutable_resource()->mutable_attributes(), 5);
        if (Coin(10)) rs->mutable_resource()->set_dropped_attributes_count(Int(0, 5));
      }
      if (Coin(30)) rs->set_schema_url(Text(20));
      for (int sc = Int(0, 3); sc > 0; --sc) {
        auto* ss = rs->add_scope_spans();
        if (Coin(80)) {
          ss->mutable_scope()->set_name(Text(15));
          ss->mutable_scope()->set_version(Text(5));
          Attrs(ss->mutable_scope()->mutable_attributes(), 2);
        }
        if (Coin(20)) ss->set_schema_url(Text(20));
        for (int sp = Int(0, 6); sp > 0; --sp) FillSpan(ss->add_spans());
      }
    }
    return req;
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

Limits Unlimited() {
  Limits l;
  l.max_attributes = UINT32_MAX;
  l.max_attributes_per_event = UINT32_MAX;
  l.max_events_per_span = UINT32_MAX;
  l.max_links_per_span = UINT32_MAX;
  l.max_attribute_value_bytes = UINT32_MAX;
  l.max_value_depth = 8;
  return l;
}

// ---- comparison of one decoded value/attribute list against libprotobuf ----

::testing::AssertionResult SameValue(const AnyValue& want, const AnyValueView& got) {
  using C = AnyValue::ValueCase;
  auto fail = [&](const char* what) {
    return ::testing::AssertionFailure() << what << " differs; want " << want.ShortDebugString();
  };
  switch (want.value_case()) {
    case C::VALUE_NOT_SET:
      return got.type == ValueType::kEmpty ? ::testing::AssertionSuccess() : fail("empty");
    case C::kStringValue:
      return got.type == ValueType::kString && got.str == want.string_value()
                 ? ::testing::AssertionSuccess()
                 : fail("string");
    case C::kBytesValue:
      return got.type == ValueType::kBytes && got.str == want.bytes_value()
                 ? ::testing::AssertionSuccess()
                 : fail("bytes");
    case C::kBoolValue:
      return got.type == ValueType::kBool && got.bool_value == want.bool_value()
                 ? ::testing::AssertionSuccess()
                 : fail("bool");
    case C::kIntValue:
      return got.type == ValueType::kInt && got.int_value == want.int_value()
                 ? ::testing::AssertionSuccess()
                 : fail("int");
    case C::kDoubleValue: {
      const double w = want.double_value();
      return got.type == ValueType::kDouble && std::memcmp(&got.double_value, &w, 8) == 0
                 ? ::testing::AssertionSuccess()
                 : fail("double");
    }
    case C::kArrayValue: {
      if (got.type != ValueType::kArray) return fail("array type");
      int i = 0;
      ::testing::AssertionResult r = ::testing::AssertionSuccess();
      ForEachArrayValue(got, UINT32_MAX, [&](const AnyValueView& e) {
        if (!r) return;
        if (i >= want.array_value().values_size())
          r = fail("array length");
        else
          r = SameValue(want.array_value().values(i), e);
        ++i;
      });
      if (r && i != want.array_value().values_size()) r = fail("array length");
      return r;
    }
    case C::kKvlistValue: {
      if (got.type != ValueType::kKvList) return fail("kvlist type");
      int i = 0;
      ::testing::AssertionResult r = ::testing::AssertionSuccess();
      ForEachKeyValue(got, UINT32_MAX, [&](const KeyValueView& kv) {
        if (!r) return;
        if (i >= want.kvlist_value().values_size()) {
          r = fail("kvlist length");
        } else {
          const auto& w = want.kvlist_value().values(i);
          r = kv.key == w.key() ? SameValue(w.value(), kv.value) : fail("kvlist key");
        }
        ++i;
      });
      if (r && i != want.kvlist_value().values_size()) r = fail("kvlist length");
      return r;
    }
  }
  return fail("unknown case");
}

template <typename Walk>
::testing::AssertionResult SameAttrs(const pb::RepeatedPtrField<KeyValue>& want, Walk walk) {
  int i = 0;
  ::testing::AssertionResult r = ::testing::AssertionSuccess();
  walk([&](const KeyValueView& kv) {
    if (!r) return;
    if (i >= want.size()) {
      r = ::testing::AssertionFailure() << "extra attribute " << kv.key;
    } else if (kv.key != want[i].key()) {
      r = ::testing::AssertionFailure() << "key " << kv.key << " != " << want[i].key();
    } else {
      r = SameValue(want[i].value(), kv.value);
    }
    ++i;
  });
  if (r && i != want.size()) r = ::testing::AssertionFailure() << "attribute count " << i;
  return r;
}

int ValueDepth(const AnyValue& v) {
  int d = 0;
  if (v.has_array_value()) {
    for (const auto& e : v.array_value().values()) d = std::max(d, ValueDepth(e));
    return d + 1;
  }
  if (v.has_kvlist_value()) {
    for (const auto& kv : v.kvlist_value().values()) d = std::max(d, ValueDepth(kv.value()));
    return d + 1;
  }
  return 0;
}

bool TooDeep(const pb::RepeatedPtrField<KeyValue>& attrs, const Limits& limits) {
  for (const auto& kv : attrs) {
    if (1 + ValueDepth(kv.value()) > static_cast<int>(limits.max_value_depth)) return true;
  }
  return false;
}

bool AllZero(const std::string& s) { return s.find_first_not_of('\0') == std::string::npos; }

// The validation policy, applied to libprotobuf's parse: would this span be refused?
bool Refused(const Span& s, const Limits& limits) {
  if (s.trace_id().size() != 16 || AllZero(s.trace_id())) return true;
  if (s.span_id().size() != 8 || AllZero(s.span_id())) return true;
  if (!s.parent_span_id().empty() && s.parent_span_id().size() != 8) return true;
  if (s.start_time_unix_nano() == 0) return true;
  for (const auto& l : s.links()) {
    if (!l.trace_id().empty() && l.trace_id().size() != 16) return true;
    if (!l.span_id().empty() && l.span_id().size() != 8) return true;
    if (TooDeep(l.attributes(), limits)) return true;
  }
  for (const auto& e : s.events()) {
    if (TooDeep(e.attributes(), limits)) return true;
  }
  return TooDeep(s.attributes(), limits);
}

::testing::AssertionResult SameBatch(const ExportTraceServiceRequest& req, const SpanBatch& b,
                                     const Limits& limits) {
  size_t next = 0;
  uint64_t refused = 0;
  size_t scope_index = 0;
  for (int ri = 0; ri < req.resource_spans_size(); ++ri) {
    const auto& rs = req.resource_spans(ri);
    bool resource_refused = TooDeep(rs.resource().attributes(), limits);
    for (const auto& ss : rs.scope_spans()) {
      bool scope_refused = resource_refused || TooDeep(ss.scope().attributes(), limits);
      for (const auto& s : ss.spans()) {
        if (scope_refused || Refused(s, limits)) {
          ++refused;
          continue;
        }
        if (next >= b.spans().size()) return ::testing::AssertionFailure() << "missing span";
        const SpanRef& g = b.spans()[next++];
        auto fail = [&](const char* f) {
          return ::testing::AssertionFailure() << "span " << next - 1 << ": " << f << " differs";
        };
        if (std::string(g.trace_id.begin(), g.trace_id.end()) != s.trace_id())
          return fail("trace_id");
        if (std::string(g.span_id.begin(), g.span_id.end()) != s.span_id()) return fail("span_id");
        std::string parent = s.parent_span_id().empty() ? std::string(8, '\0') : s.parent_span_id();
        if (std::string(g.parent_span_id.begin(), g.parent_span_id.end()) != parent)
          return fail("parent");
        if (g.name != s.name()) return fail("name");
        if (g.trace_state != s.trace_state()) return fail("trace_state");
        if (g.flags != s.flags()) return fail("flags");
        int kind = s.kind() >= 0 && s.kind() <= 5 ? s.kind() : 0;
        if (g.kind != kind) return fail("kind");
        if (g.start_time_unix_nano != s.start_time_unix_nano()) return fail("start");
        uint64_t end = std::max(s.end_time_unix_nano(), s.start_time_unix_nano());
        if (g.end_time_unix_nano != end) return fail("end");
        int code = s.status().code() >= 0 && s.status().code() <= 2 ? s.status().code() : 0;
        if (g.status_code != code) return fail("status code");
        if (g.status_message != s.status().message()) return fail("status message");
        if (g.dropped_attributes != s.dropped_attributes_count()) return fail("dropped attrs");
        if (g.dropped_events != s.dropped_events_count()) return fail("dropped events");
        if (g.dropped_links != s.dropped_links_count()) return fail("dropped links");
        if (g.events != static_cast<uint32_t>(s.events_size())) return fail("events");
        if (g.links != static_cast<uint32_t>(s.links_size())) return fail("links");
        auto r = SameAttrs(s.attributes(), [&](auto fn) { b.ForEachAttribute(g, fn); });
        if (!r) return r << " (span attributes)";
        int ei = 0;
        b.ForEachEvent(g, [&](const EventView& e) {
          const auto& w = s.events(ei++);
          if (!r) return;
          if (e.time_unix_nano != w.time_unix_nano() || e.name != w.name() ||
              e.dropped_attributes != w.dropped_attributes_count()) {
            r = ::testing::AssertionFailure() << "event " << ei - 1;
          } else {
            r = SameAttrs(w.attributes(), [&](auto fn) { b.ForEachAttribute(e, fn); });
          }
        });
        if (!r) return r << " (events)";
        int li = 0;
        b.ForEachLink(g, [&](const LinkView& l) {
          const auto& w = s.links(li++);
          if (!r) return;
          std::string tid = w.trace_id().empty() ? std::string(16, '\0') : w.trace_id();
          std::string sid = w.span_id().empty() ? std::string(8, '\0') : w.span_id();
          if (std::string(l.trace_id.begin(), l.trace_id.end()) != tid ||
              std::string(l.span_id.begin(), l.span_id.end()) != sid ||
              l.trace_state != w.trace_state() || l.flags != w.flags() ||
              l.dropped_attributes != w.dropped_attributes_count()) {
            r = ::testing::AssertionFailure() << "link " << li - 1;
          } else {
            r = SameAttrs(w.attributes(), [&](auto fn) { b.ForEachAttribute(l, fn); });
          }
        });
        if (!r) return r << " (links)";
        // Resource and scope of the span.
        const ResourceRef& res = b.resources()[g.resource];
        const ScopeRef& sc = b.scopes()[g.scope];
        if (g.resource != static_cast<uint32_t>(ri)) return fail("resource index");
        if (res.schema_url != rs.schema_url()) return fail("resource schema_url");
        if (res.dropped_attributes != rs.resource().dropped_attributes_count()) {
          return fail("resource dropped attrs");
        }
        r = SameAttrs(rs.resource().attributes(), [&](auto fn) { b.ForEachAttribute(res, fn); });
        if (!r) return r << " (resource)";
        if (sc.name != ss.scope().name() || sc.version != ss.scope().version() ||
            sc.schema_url != ss.schema_url()) {
          return fail("scope");
        }
        r = SameAttrs(ss.scope().attributes(), [&](auto fn) { b.ForEachAttribute(sc, fn); });
        if (!r) return r << " (scope)";
      }
      ++scope_index;
    }
  }
  if (next != b.spans().size()) return ::testing::AssertionFailure() << "extra spans";
  if (refused != b.refused_spans()) {
    return ::testing::AssertionFailure() << "refused " << b.refused_spans() << ", want " << refused;
  }
  if (scope_index != b.scopes().size()) return ::testing::AssertionFailure() << "scope count";
  return ::testing::AssertionSuccess();
}

bool InvalidUtf8(const AnyValueView& v) {
  bool bad = v.type == ValueType::kString && !simdjson::validate_utf8(v.str.data(), v.str.size());
  ForEachArrayValue(v, UINT32_MAX, [&](const AnyValueView& e) { bad |= InvalidUtf8(e); });
  ForEachKeyValue(v, UINT32_MAX, [&](const KeyValueView& kv) {
    bad |= !simdjson::validate_utf8(kv.key.data(), kv.key.size()) || InvalidUtf8(kv.value);
  });
  return bad;
}

// A resource or scope with a string that is not UTF-8 refuses its spans; when it has none,
// nothing is refused, while libprotobuf rejects the whole request.
bool InvalidUtf8AboveSpans(const SpanBatch& b) {
  bool bad = false;
  auto check_attr = [&](const KeyValueView& kv) {
    bad |= !simdjson::validate_utf8(kv.key.data(), kv.key.size()) || InvalidUtf8(kv.value);
  };
  auto check = [&](std::string_view s) { bad |= !simdjson::validate_utf8(s.data(), s.size()); };
  for (const auto& r : b.resources()) {
    check(r.schema_url);
    b.ForEachAttribute(r, check_attr);
  }
  for (const auto& s : b.scopes()) {
    check(s.name);
    check(s.version);
    check(s.schema_url);
    b.ForEachAttribute(s, check_attr);
  }
  return bad;
}

TEST(DecoderDifferentialTest, GeneratedRequestsDecodeLikeLibprotobuf) {
  Gen gen(20261126);
  const Limits limits = Unlimited();
  size_t spans = 0;
  for (int i = 0; i < 3000; ++i) {
    ExportTraceServiceRequest req = gen.Request();
    std::string wire = req.SerializeAsString();
    ExportTraceServiceRequest parsed;
    ASSERT_TRUE(parsed.ParseFromString(wire));
    auto r = DecodeExportRequest(wire, Protocol::kGrpc, limits);
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.status().ToString();
    ASSERT_TRUE(SameBatch(parsed, *r.value(), limits)) << "request " << i;
    spans += r.value()->spans().size();
  }
  EXPECT_GT(spans, 10000u);  // the generator really produced a varied workload
}

TEST(DecoderDifferentialTest, ValidationRefusalsMatchThePolicy) {
  // Requests whose spans break the rules (ids, times, depth) at random.
  Gen gen(7);
  Limits limits = Unlimited();
  limits.max_value_depth = 2;
  uint64_t refused = 0;
  for (int i = 0; i < 1000; ++i) {
    ExportTraceServiceRequest req = gen.Request();
    for (auto& rs : *req.mutable_resource_spans()) {
      for (auto& ss : *rs.mutable_scope_spans()) {
        for (auto& s : *ss.mutable_spans()) {
          switch (gen.Int(0, 8)) {
            case 0:
              s.set_trace_id(gen.Bytes(gen.Int(0, 20)));
              break;
            case 1:
              s.set_span_id(std::string(8, '\0'));
              break;
            case 2:
              s.set_parent_span_id(gen.Bytes(gen.Int(1, 7)));
              break;
            case 3:
              s.set_start_time_unix_nano(0);
              break;
            case 4:
              s.set_end_time_unix_nano(s.start_time_unix_nano() / 2);
              break;
            case 5:
              s.set_kind(static_cast<Span::SpanKind>(gen.Int(6, 1000)));
              break;
            default:
              break;
          }
        }
      }
    }
    std::string wire = req.SerializeAsString();
    auto r = DecodeExportRequest(wire, Protocol::kGrpc, limits);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(SameBatch(req, *r.value(), limits)) << "request " << i;
    refused += r.value()->refused_spans();
  }
  EXPECT_GT(refused, 1000u);
}

TEST(DecoderDifferentialTest, MalformedBytesAgreeWithLibprotobuf) {
  Gen gen(99);
  const Limits limits = Unlimited();
  pb::SetLogHandler(nullptr);  // libprotobuf logs every invalid UTF-8 string it meets
  int both_ok = 0, both_bad = 0, merge_divergence = 0, validation_divergence = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string wire = gen.Request().SerializeAsString();
    if (wire.empty()) continue;
    // Mutate: overwrite, truncate, insert or duplicate bytes.
    for (int m = gen.Int(1, 3); m > 0; --m) {
      size_t pos = static_cast<size_t>(gen.Int(0, static_cast<int>(wire.size()) - 1));
      switch (gen.Int(0, 4)) {
        case 0:
          wire[pos] = static_cast<char>(gen.Int(0, 255));
          break;
        case 1:
          wire[pos] ^= static_cast<char>(1 << gen.Int(0, 7));
          break;
        case 2:
          wire.resize(pos);
          break;
        case 3:
          wire.insert(pos, gen.Bytes(gen.Int(1, 4)));
          break;
        case 4: {
          size_t len = static_cast<size_t>(gen.Int(1, 16));
          wire.insert(pos, wire.substr(pos, len));
          break;
        }
      }
      if (wire.empty()) break;
    }
    ExportTraceServiceRequest parsed;
    const bool pb_ok = parsed.ParseFromString(wire);
    auto r = DecodeExportRequest(wire, Protocol::kHttpProtobuf, limits);
    if (pb_ok && r.ok()) {
      ++both_ok;
      ASSERT_TRUE(SameBatch(parsed, *r.value(), limits)) << "mutation " << i;
    } else if (!pb_ok && !r.ok()) {
      ++both_bad;
    } else if (pb_ok) {
      // Only the documented merge divergence may make the decoder stricter.
      ASSERT_NE(r.status().message().find("given twice"), std::string::npos)
          << "mutation " << i << ": libprotobuf accepts, decoder says " << r.status().message();
      ++merge_divergence;
    } else {
      // libprotobuf rejects what the decoder accepted: only invalid UTF-8 (or depth), which
      // the decoder turns into refused spans, may explain it.
      const SpanBatch& b = *r.value();
      const bool explained = b.refused(RefuseReason::kInvalidUtf8) > 0 ||
                             b.refused(RefuseReason::kValueTooDeep) > 0 || InvalidUtf8AboveSpans(b);
      ASSERT_TRUE(explained) << "mutation " << i << ": decoder accepted what "
                             << "libprotobuf rejects, with no refusal";
      ++validation_divergence;
    }
  }
  std::printf(
      "malformed differential: both ok %d, both rejected %d, merge divergence %d, "
      "utf8/depth divergence %d\n",
      both_ok, both_bad, merge_divergence, validation_divergence);
  EXPECT_GT(both_ok, 500);
  EXPECT_GT(both_bad, 5000);
}

}  // namespace
}  // namespace ordertrace::otlp
