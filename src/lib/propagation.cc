// W3C Trace Context and W3C Baggage propagation; see include/ordertrace/propagation.h.
#include "ordertrace/propagation.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "lib/internal.h"

namespace ordertrace {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Lower-case hex digit value, or -1 (upper case is invalid in traceparent).
int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes 2*N lower-case hex characters into out[N].
template <std::size_t N>
bool DecodeHex(std::string_view s, std::array<uint8_t, N>* out) {
  if (s.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    int hi = LowerHexValue(s[2 * i]), lo = LowerHexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

bool AllZero(const uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  return true;
}

// tracestate key characters after the first.
bool IsTraceStateKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/';
}
bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 7230 tchar.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// W3C Baggage baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
bool IsBaggageOctet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
         (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

bool IsBaggageValue(std::string_view v) {
  for (char c : v)
    if (!IsBaggageOctet(static_cast<unsigned char>(c))) return false;
  return true;
}

// Appends s to out, replacing invalid UTF-8 sequences with U+FFFD (one per maximal bad prefix).
void AppendUtf8Sanitized(std::string* out, std::string_view s) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    uint32_t min = 0, cp = 0;
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    }
    bool ok = len != 0 && i + len <= s.size();
    std::size_t j = 1;
    for (; ok && j < len; ++j) {
      unsigned char d = static_cast<unsigned char>(s[i + j]);
      if ((d & 0xC0) != 0x80) {
        ok = false;
        break;
      }
      cp = cp << 6 | (d & 0x3F);
    }
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out->append(s.substr(i, len));
      i += len;
    } else {
      out->append(kReplacement, 3);
      i += std::max<std::size_t>(j, 1);
    }
  }
}

// Percent-decodes a baggage value (internal::PercentDecode, then invalid UTF-8 replaced);
// false on a '%' not followed by two hex digits.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  // Fast path: nothing encoded.
  if (in.find('%') == std::string_view::npos) {
    out->assign(in);
    return true;
  }
  std::string raw;
  if (!internal::PercentDecode(in, &raw)) return false;
  AppendUtf8Sanitized(out, raw);
  return true;
}

void AppendPercentEncoded(std::string* out, std::string_view v) {
  static constexpr char kUpperHex[] = "0123456789ABCDEF";
  for (char ch : v) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (IsBaggageOctet(c) && c != '%') {
      out->push_back(ch);
    } else {
      out->push_back('%');
      out->push_back(kUpperHex[c >> 4]);
      out->push_back(kUpperHex[c & 0xf]);
    }
  }
}

std::size_t PercentEncodedSize(std::string_view v) {
  std::size_t n = 0;
  for (char ch : v) {
    unsigned char c = static_cast<unsigned char>(ch);
    n += IsBaggageOctet(c) && c != '%' ? 1 : 3;
  }
  return n;
}

// Validates a property list "p1=v1;p2" (each part OWS-trimmed) and writes it normalized.
bool NormalizeProperties(std::string_view props, std::string* out) {
  out->clear();
  while (!props.empty()) {
    std::size_t semi = props.find(';');
    std::string_view p = props.substr(0, semi);
    props = semi == std::string_view::npos ? std::string_view{} : props.substr(semi + 1);
    if (semi != std::string_view::npos && props.empty()) return false;  // trailing ';'
    p = TrimOws(p);
    std::size_t eq = p.find('=');
    std::string_view key = TrimOws(p.substr(0, eq));
    if (!IsValidBaggageKey(key)) return false;
    if (!out->empty()) out->push_back(';');
    out->append(key);
    if (eq != std::string_view::npos) {
      std::string_view value = TrimOws(p.substr(eq + 1));
      if (!IsBaggageValue(value)) return false;
      out->push_back('=');
      out->append(value);
    }
  }
  return true;
}

std::size_t FormattedMemberSize(const BaggageEntry& e) {
  return e.key.size() + 1 + PercentEncodedSize(e.value) +
         (e.properties.empty() ? 0 : 1 + e.properties.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// traceparent

std::string FormatTraceparent(const SpanContext& ctx) noexcept {
  char buf[55];
  char* p = buf;
  auto hex = [&p](const uint8_t* b, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      *p++ = kHexDigits[b[i] >> 4];
      *p++ = kHexDigits[b[i] & 0xf];
    }
  };
  *p++ = '0', *p++ = '0', *p++ = '-';
  hex(ctx.trace_id.data(), ctx.trace_id.size());
  *p++ = '-';
  hex(ctx.span_id.data(), ctx.span_id.size());
  *p++ = '-';
  hex(&ctx.trace_flags, 1);
  return std::string(buf, sizeof buf);
}

bool ParseTraceparent(std::string_view header, SpanContext* out) noexcept {
  *out = SpanContext{};
  std::string_view s = TrimOws(header);
  if (s.size() < 55) return false;
  int v_hi = LowerHexValue(s[0]), v_lo = LowerHexValue(s[1]);
  if (v_hi < 0 || v_lo < 0) return false;
  int version = v_hi << 4 | v_lo;
  if (version == 0xff) return false;
  if (version == 0 && s.size() != 55) return false;
  if (s.size() > 55 && s[55] != '-') return false;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return false;
  SpanContext ctx;
  std::array<uint8_t, 1> flags{};
  if (!DecodeHex(s.substr(3, 32), &ctx.trace_id) || !DecodeHex(s.substr(36, 16), &ctx.span_id) ||
      !DecodeHex(s.substr(53, 2), &flags))
    return false;
  if (AllZero(ctx.trace_id.data(), ctx.trace_id.size()) ||
      AllZero(ctx.span_id.data(), ctx.span_id.size()))
    return false;
  ctx.trace_flags = flags[0] & (kTraceFlagSampled | 0x02);
  ctx.remote = true;
  *out = std::move(ctx);
  return true;
}

// ---------------------------------------------------------------------------------------------
// tracestate

bool IsValidTraceStateKey(std::string_view key) noexcept {
  if (key.empty()) return false;
  std::size_t at = key.find('@');
  if (at == std::string_view::npos) {
    if (key.size() > 256 || !IsLcAlpha(key[0])) return false;
    return std::all_of(key.begin() + 1, key.end(), IsTraceStateKeyChar);
  }
  std::string_view tenant = key.substr(0, at), system = key.substr(at + 1);
  if (tenant.empty() || tenant.size() > 241 || !(IsLcAlpha(tenant[0]) || IsDigit(tenant[0])))
    return false;
  if (system.empty() || system.size() > 14 || !IsLcAlpha(system[0])) return false;
  return std::all_of(tenant.begin() + 1, tenant.end(), IsTraceStateKeyChar) &&
         std::all_of(system.begin() + 1, system.end(), IsTraceStateKeyChar);
}

bool IsValidTraceStateValue(std::string_view value) noexcept {
  if (value.empty() || value.size() > 256 || value.back() == ' ') return false;
  for (char c : value)
    if (c < 0x20 || c > 0x7E || c == ',' || c == '=') return false;
  return true;
}

bool ParseTraceState(std::string_view header, std::string* out) noexcept {
  out->clear();
  std::array<std::string_view, kMaxTraceStateMembers> members;
  std::array<std::size_t, kMaxTraceStateMembers> key_len{};
  std::size_t n = 0;
  std::string_view rest = header;
  for (;;) {
    std::size_t comma = rest.find(',');
    std::string_view m = TrimOws(rest.substr(0, comma));
    if (!m.empty()) {
      if (n == kMaxTraceStateMembers) return false;
      std::size_t eq = m.find('=');
      if (eq == std::string_view::npos) return false;
      std::string_view key = m.substr(0, eq);
      if (!IsValidTraceStateKey(key) || !IsValidTraceStateValue(m.substr(eq + 1))) return false;
      for (std::size_t i = 0; i < n; ++i)
        if (members[i].substr(0, key_len[i]) == key) return false;  // duplicate key
      members[n] = m;
      key_len[n] = eq;
      ++n;
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  // Truncation beyond 512 characters: long members first (from the end), then from the end.
  std::array<bool, kMaxTraceStateMembers> keep{};
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    keep[i] = true;
    total += members[i].size() + (i ? 1 : 0);
  }
  auto drop = [&](std::size_t i) {
    keep[i] = false;
    std::size_t size = members[i].size() + 1;  // the member and one comma (none for the last)
    total = total > size ? total - size : 0;
  };
  for (std::size_t i = n; i-- > 0 && total > kMaxTraceStateLength;)
    if (members[i].size() > kTraceStateTruncateMember) drop(i);
  for (std::size_t i = n; i-- > 0 && total > kMaxTraceStateLength;)
    if (keep[i]) drop(i);
  for (std::size_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    if (!out->empty()) out->push_back(',');
    out->append(members[i]);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Baggage

bool IsValidBaggageKey(std::string_view key) noexcept {
  return !key.empty() && std::all_of(key.begin(), key.end(), IsTokenChar);
}

std::optional<std::string_view> Baggage::Get(std::string_view key) const noexcept {
  for (const BaggageEntry& e : entries_)
    if (e.key == key) return std::string_view(e.value);
  return std::nullopt;
}

bool Baggage::Set(std::string_view key, std::string_view value,
                  std::string_view properties) noexcept {
  if (!IsValidBaggageKey(key)) return false;
  std::string props;
  if (!NormalizeProperties(properties, &props)) return false;
  for (BaggageEntry& e : entries_) {
    if (e.key == key) {
      e.value.assign(value);
      e.properties = std::move(props);
      return true;
    }
  }
  entries_.push_back(BaggageEntry{std::string(key), std::string(value), std::move(props)});
  return true;
}

bool Baggage::Remove(std::string_view key) noexcept {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const BaggageEntry& e) { return e.key == key; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

bool ParseBaggage(std::string_view header, Baggage* out) noexcept {
  out->Clear();
  std::size_t total = 0;  // bytes of the kept members as formatted, with separators
  std::string_view rest = header;
  BaggageEntry e;
  for (;;) {
    std::size_t comma = rest.find(',');
    std::string_view m = TrimOws(rest.substr(0, comma));
    if (comma == std::string_view::npos)
      rest = {};
    else
      rest.remove_prefix(comma + 1);
    if (!m.empty() && out->size() < kMaxBaggageMembers) {
      std::size_t semi = m.find(';');
      std::string_view kv = m.substr(0, semi);
      std::string_view props =
          semi == std::string_view::npos ? std::string_view{} : m.substr(semi + 1);
      std::size_t eq = kv.find('=');
      bool ok = eq != std::string_view::npos;
      std::string_view key, raw_value;
      if (ok) {
        key = TrimOws(kv.substr(0, eq));
        raw_value = TrimOws(kv.substr(eq + 1));
        ok = IsValidBaggageKey(key) && IsBaggageValue(raw_value) &&
             (semi == std::string_view::npos ||
              (!TrimOws(props).empty() && NormalizeProperties(props, &e.properties))) &&
             PercentDecode(raw_value, &e.value);
      }
      if (ok) {
        if (semi == std::string_view::npos) e.properties.clear();
        e.key.assign(key);
        std::size_t size = FormattedMemberSize(e);
        const std::vector<BaggageEntry>& entries = out->entries();
        auto dup = std::find_if(entries.begin(), entries.end(),
                                [&](const BaggageEntry& x) { return x.key == e.key; });
        // A duplicate replaces the earlier value in place; otherwise a new member (and a comma).
        std::size_t removed = dup != entries.end() ? FormattedMemberSize(*dup) : 0;
        std::size_t added = size + (dup == entries.end() && !entries.empty() ? 1 : 0);
        if (size <= kMaxBaggageMemberBytes && total - removed + added <= kMaxBaggageBytes) {
          out->Set(e.key, e.value, e.properties);
          total = total - removed + added;
        }
      }
    }
    if (comma == std::string_view::npos) break;
  }
  return !out->empty();
}

std::string FormatBaggage(const Baggage& baggage) noexcept {
  std::string out;
  std::size_t count = 0;
  for (const BaggageEntry& e : baggage.entries()) {
    if (count == kMaxBaggageMembers) break;
    std::size_t size = FormattedMemberSize(e);
    if (size > kMaxBaggageMemberBytes) continue;
    if (out.size() + size + (out.empty() ? 0 : 1) > kMaxBaggageBytes) continue;
    if (!out.empty()) out.push_back(',');
    out.append(e.key);
    out.push_back('=');
    AppendPercentEncoded(&out, e.value);
    if (!e.properties.empty()) {
      out.push_back(';');
      out.append(e.properties);
    }
    ++count;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Carriers

std::optional<std::string_view> HeaderMapCarrier::Get(std::string_view name) const noexcept {
  const std::string* folded = nullptr;
  for (const auto& [k, v] : *headers_) {
    if (k == name) return std::string_view(v);
    if (folded == nullptr && EqualsIgnoreCase(k, name)) folded = &v;
  }
  if (folded == nullptr) return std::nullopt;
  return std::string_view(*folded);
}

void HeaderMapCarrier::Set(std::string_view name, std::string_view value) noexcept {
  for (auto& [k, v] : *headers_) {
    if (EqualsIgnoreCase(k, name)) {
      v.assign(value);
      return;
    }
  }
  headers_->emplace(std::string(name), std::string(value));
}

namespace {

std::string_view KeyOf(const amqp_table_entry_t& e) {
  return {static_cast<const char*>(e.key.bytes), e.key.bytes ? e.key.len : 0};
}

bool IsLongString(const amqp_field_value_t& v) {
  return v.kind == AMQP_FIELD_KIND_UTF8 || v.kind == AMQP_FIELD_KIND_BYTES;
}

std::optional<std::string_view> FindInTable(const amqp_table_entry_t* entries, std::size_t n,
                                            std::string_view name) {
  const amqp_table_entry_t* folded = nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    const amqp_table_entry_t& e = entries[i];
    if (!IsLongString(e.value)) continue;
    std::string_view key = KeyOf(e);
    if (key == name) {
      folded = &e;
      break;
    }
    if (folded == nullptr && EqualsIgnoreCase(key, name)) folded = &e;
  }
  if (folded == nullptr) return std::nullopt;
  const amqp_bytes_t& b = folded->value.value.bytes;
  if (b.bytes == nullptr) return std::string_view{};
  return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

}  // namespace

std::optional<std::string_view> AmqpTableCarrier::Get(std::string_view name) const noexcept {
  if (table_.entries == nullptr || table_.num_entries <= 0) return std::nullopt;
  return FindInTable(table_.entries, static_cast<std::size_t>(table_.num_entries), name);
}

AmqpHeaders::AmqpHeaders(const amqp_table_t& base) noexcept {
  if (base.entries != nullptr && base.num_entries > 0)
    base_.assign(base.entries, base.entries + base.num_entries);
}

std::optional<std::string_view> AmqpHeaders::Get(std::string_view name) const noexcept {
  for (const Owned& o : owned_)
    if (o.key == name) return std::string_view(o.value);
  return FindInTable(base_.data(), base_.size(), name);
}

void AmqpHeaders::Set(std::string_view name, std::string_view value) noexcept {
  // AMQP keys are case-sensitive; an entry of the base table with the same name is replaced.
  base_.erase(std::remove_if(base_.begin(), base_.end(),
                             [&](const amqp_table_entry_t& e) { return KeyOf(e) == name; }),
              base_.end());
  for (Owned& o : owned_) {
    if (o.key == name) {
      o.value.assign(value);
      return;
    }
  }
  owned_.push_back(Owned{std::string(name), std::string(value)});
}

const amqp_table_t& AmqpHeaders::table() noexcept {
  entries_.clear();
  entries_.reserve(base_.size() + owned_.size());
  entries_.insert(entries_.end(), base_.begin(), base_.end());
  for (Owned& o : owned_) {
    amqp_table_entry_t e{};
    e.key.bytes = o.key.data();
    e.key.len = o.key.size();
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes.bytes = o.value.data();
    e.value.value.bytes.len = o.value.size();
    entries_.push_back(e);
  }
  table_.num_entries = static_cast<int>(entries_.size());
  table_.entries = entries_.empty() ? nullptr : entries_.data();
  return table_;
}

// ---------------------------------------------------------------------------------------------
// Inject / Extract

void Inject(const SpanContext& ctx, const Baggage* baggage, HeaderCarrier& carrier) noexcept {
  if (ctx.valid()) {
    carrier.Set(kTraceparentHeader, FormatTraceparent(ctx));
    if (!ctx.trace_state.empty()) carrier.Set(kTracestateHeader, ctx.trace_state);
  }
  if (baggage != nullptr && !baggage->empty()) {
    std::string b = FormatBaggage(*baggage);
    if (!b.empty()) carrier.Set(kBaggageHeader, b);
  }
}

bool Extract(const HeaderCarrier& carrier, SpanContext* ctx, Baggage* baggage) noexcept {
  std::optional<std::string_view> tp = carrier.Get(kTraceparentHeader);
  if (tp && ParseTraceparent(*tp, ctx)) {
    if (std::optional<std::string_view> ts = carrier.Get(kTracestateHeader))
      ParseTraceState(*ts, &ctx->trace_state);
  } else {
    *ctx = SpanContext{};
  }
  if (baggage != nullptr) {
    baggage->Clear();
    if (std::optional<std::string_view> b = carrier.Get(kBaggageHeader)) ParseBaggage(*b, baggage);
  }
  return ctx->valid();
}

void Inject(const SpanContext& ctx, const Baggage* baggage,
            std::map<std::string, std::string>* headers) noexcept {
  HeaderMapCarrier carrier(headers);
  Inject(ctx, baggage, carrier);
}

bool Extract(const std::map<std::string, std::string>& headers, SpanContext* ctx,
             Baggage* baggage) noexcept {
  // HeaderMapCarrier::Get does not modify the map.
  const HeaderMapCarrier carrier(const_cast<std::map<std::string, std::string>*>(&headers));
  return Extract(carrier, ctx, baggage);
}

bool Extract(const amqp_table_t& headers, SpanContext* ctx, Baggage* baggage) noexcept {
  const AmqpTableCarrier carrier(headers);
  return Extract(carrier, ctx, baggage);
}

}  // namespace ordertrace
