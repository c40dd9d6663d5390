// Context propagation: W3C Trace Context (traceparent, tracestate) and W3C Baggage, injected into
// and extracted from HTTP-style header maps and AMQP (RabbitMQ) header tables.
//
// Part of libordertrace's public API (include/ordertrace/).  Every function is noexcept and
// allocates only for the strings/tables it returns.  Malformed input never throws and never
// crashes: it yields an invalid SpanContext (and/or an empty Baggage).  See docs/instrumenting.md
// ("Propagation") for the rules and the choices where the specifications leave room.
#pragma once

// rabbitmq-c 0.12+ installs its headers under rabbitmq-c/ (and warns on the old path).
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#else
#include <amqp.h>
#endif

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ordertrace/context.h"

namespace ordertrace {

// Header names (lower case; HTTP lookups are case-insensitive).
inline constexpr std::string_view kTraceparentHeader = "traceparent";
inline constexpr std::string_view kTracestateHeader = "tracestate";
inline constexpr std::string_view kBaggageHeader = "baggage";

// ---------------------------------------------------------------------------------------------
// traceparent: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>".

// Formats version 00 of ctx (lower-case hex).  Does not check ctx.valid(); Inject() does.
std::string FormatTraceparent(const SpanContext& ctx) noexcept;

// Parses a traceparent header value.  Surrounding spaces/tabs are trimmed (HTTP OWS).  Lower-case
// hex only; version ff is invalid; version 00 must be exactly 55 characters; a higher version is
// accepted when its first 55 characters parse as version 00 and the next one, if any, is '-'.
// All-zero trace-id or parent-id is invalid.  Flags keep the bits this library knows (sampled
// 0x01, random 0x02 of Trace Context level 2); other bits are cleared.
// On success fills trace_id, span_id, trace_flags, sets remote = true, clears trace_state and
// returns true; on failure resets *out to an invalid SpanContext and returns false.
bool ParseTraceparent(std::string_view header, SpanContext* out) noexcept;

// ---------------------------------------------------------------------------------------------
// tracestate: "key1=value1,key2=value2" (W3C Trace Context).

inline constexpr std::size_t kMaxTraceStateMembers = 32;
inline constexpr std::size_t kMaxTraceStateLength = 512;       // propagated length, see below
inline constexpr std::size_t kTraceStateTruncateMember = 128;  // members removed first

// Key: simple-key (lcalpha then up to 255 of lcalpha, digit, _ - * /) or tenant@system
// (tenant: lcalpha/digit then up to 240 more; system: lcalpha then up to 13 more).
bool IsValidTraceStateKey(std::string_view key) noexcept;
// Value: 1..256 characters of 0x20-0x7E except ',' and '='; the last one not a space.
bool IsValidTraceStateValue(std::string_view value) noexcept;

// Validates a tracestate header value and writes it normalized (no OWS, empty members removed)
// to *out.  Invalid (a bad member, a duplicate key, more than 32 members): *out = "" and false.
// A valid list longer than 512 characters is truncated per the specification: members longer
// than 128 characters are removed first (from the end of the list), then members from the end,
// until it fits; truncation still returns true.  An empty or all-empty list: "" and true.
bool ParseTraceState(std::string_view header, std::string* out) noexcept;

// ---------------------------------------------------------------------------------------------
// W3C Baggage: "key1=value1;prop1=x;flag,key2=value2".

inline constexpr std::size_t kMaxBaggageMembers = 180;
inline constexpr std::size_t kMaxBaggageBytes = 8192;        // whole header, as formatted
inline constexpr std::size_t kMaxBaggageMemberBytes = 4096;  // one list-member, as formatted

struct BaggageEntry {
  std::string key;         // an RFC 7230 token
  std::string value;       // decoded (percent-decoding undone; invalid UTF-8 becomes U+FFFD)
  std::string properties;  // ";"-separated properties as received, OWS removed ("" if none)
};

// An ordered list of entries with unique keys (keys compare case-sensitively, as specified).
class Baggage {
 public:
  // The value for key, or nullopt.  The view is valid until the Baggage is modified.
  std::optional<std::string_view> Get(std::string_view key) const noexcept;
  // Adds an entry or replaces the value and properties of an existing one (keeping its place).
  // False (and no change) when key is not a token or properties is not a valid property list.
  bool Set(std::string_view key, std::string_view value, std::string_view properties = {}) noexcept;
  // False when there was no such key.
  bool Remove(std::string_view key) noexcept;
  void Clear() noexcept { entries_.clear(); }

  const std::vector<BaggageEntry>& entries() const noexcept { return entries_; }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }

 private:
  std::vector<BaggageEntry> entries_;
};

bool IsValidBaggageKey(std::string_view key) noexcept;  // RFC 7230 token

// Parses a baggage header value into *out (cleared first).  Invalid list-members are dropped one
// by one (the others are kept); OWS around members, '=', ';' is ignored; a later duplicate key
// replaces the earlier value.  At most 180 members are kept; members beyond 180, a member longer
// than 4096 bytes, and members that would take the header past 8192 bytes are dropped whole
// (never truncated).  Returns true when at least one member was kept.
bool ParseBaggage(std::string_view header, Baggage* out) noexcept;

// Formats baggage (values percent-encoded), applying the same limits: entries that do not fit
// are left out whole.  "" for empty baggage.
std::string FormatBaggage(const Baggage& baggage) noexcept;

// ---------------------------------------------------------------------------------------------
// Carriers.

// A set of headers that propagation reads from (Get) and writes to (Set).
class HeaderCarrier {
 public:
  virtual ~HeaderCarrier() = default;
  // The value of header `name` (names compare case-insensitively for HTTP carriers), or nullopt.
  // The view stays valid until the carrier is modified.
  virtual std::optional<std::string_view> Get(std::string_view name) const noexcept = 0;
  virtual void Set(std::string_view name, std::string_view value) noexcept = 0;
};

// HTTP-style headers in a std::map: case-insensitive Get; Set replaces a header of the same name
// in any case, or inserts the name as given.
class HeaderMapCarrier final : public HeaderCarrier {
 public:
  explicit HeaderMapCarrier(std::map<std::string, std::string>* headers) : headers_(headers) {}
  std::optional<std::string_view> Get(std::string_view name) const noexcept override;
  void Set(std::string_view name, std::string_view value) noexcept override;

 private:
  std::map<std::string, std::string>* headers_;
};

// Read-only view of an AMQP header table (amqp_basic_properties_t.headers) as librabbitmq
// delivers it.  Only long-string values (AMQP_FIELD_KIND_UTF8 'S' and AMQP_FIELD_KIND_BYTES 'x')
// are seen; entries of other kinds are ignored.  Exact key match first, then case-insensitive.
// The table must outlive the carrier.  Set() is a no-op.
class AmqpTableCarrier final : public HeaderCarrier {
 public:
  explicit AmqpTableCarrier(const amqp_table_t& table) : table_(table) {}
  std::optional<std::string_view> Get(std::string_view name) const noexcept override;
  void Set(std::string_view, std::string_view) noexcept override {}

 private:
  const amqp_table_t& table_;
};

// An AMQP header table that owns its memory, for publishing: Set() adds or replaces a long-string
// (AMQP_FIELD_KIND_UTF8) entry; table() is the amqp_table_t to put in
// amqp_basic_properties_t.headers (with AMQP_BASIC_HEADERS_FLAG).  Optionally starts from the
// entries of an existing table (copied shallowly: the memory they point to must outlive this
// object).  table() stays valid until the next Set() or the destruction of this object.
class AmqpHeaders final : public HeaderCarrier {
 public:
  AmqpHeaders() = default;
  explicit AmqpHeaders(const amqp_table_t& base) noexcept;
  AmqpHeaders(const AmqpHeaders&) = delete;
  AmqpHeaders& operator=(const AmqpHeaders&) = delete;

  std::optional<std::string_view> Get(std::string_view name) const noexcept override;
  void Set(std::string_view name, std::string_view value) noexcept override;
  const amqp_table_t& table() noexcept;

 private:
  struct Owned {
    std::string key, value;
  };
  std::vector<amqp_table_entry_t> base_;  // entries of the base table not replaced by Set()
  std::vector<Owned> owned_;
  std::vector<amqp_table_entry_t> entries_;
  amqp_table_t table_{0, nullptr};
};

// Writes traceparent (+ tracestate when not empty) for a valid ctx, and baggage when baggage is
// non-null and not empty.  Nothing is written for an invalid ctx except the baggage.
void Inject(const SpanContext& ctx, const Baggage* baggage, HeaderCarrier& carrier) noexcept;
// Reads them back.  *ctx becomes the remote context (remote = true, trace_state validated, "" if
// invalid) or an invalid SpanContext when traceparent is missing or invalid (tracestate is then
// ignored).  *baggage (when non-null) is replaced by the parsed baggage header, which is
// independent of traceparent.  Returns ctx->valid().
bool Extract(const HeaderCarrier& carrier, SpanContext* ctx, Baggage* baggage) noexcept;

// Convenience overloads.
void Inject(const SpanContext& ctx, const Baggage* baggage,
            std::map<std::string, std::string>* headers) noexcept;
bool Extract(const std::map<std::string, std::string>& headers, SpanContext* ctx,
             Baggage* baggage) noexcept;
bool Extract(const amqp_table_t& headers, SpanContext* ctx, Baggage* baggage) noexcept;

}  // namespace ordertrace
