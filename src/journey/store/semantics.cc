#include "journey/store/semantics.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace ordertrace::journey {

namespace {

void FillEmpty(std::string& into, const std::string& later) {
  if (into.empty()) into = later;
}

// Whether `later`'s processing is the one to keep over `into`'s (both sides non-zero or
// `into` unprocessed).
bool ProcessedEarlier(const Hop& later, const Hop& into) {
  if (later.processed_ns == 0) return false;
  if (into.processed_ns == 0) return true;
  if (later.processed_ns != into.processed_ns) return later.processed_ns < into.processed_ns;
  return later.process_span_id < into.process_span_id;
}

}  // namespace

void MergeHop(Hop& into, const Hop& later) {
  if (ProcessedEarlier(later, into)) {
    into.processed_ns = later.processed_ns;
    if (!later.process_service.empty()) into.process_service = later.process_service;
    if (!later.process_span_id.empty()) into.process_span_id = later.process_span_id;
    if (!later.process_trace_id.empty()) into.process_trace_id = later.process_trace_id;
  }
  if (later.published_ns != 0 &&
      (into.published_ns == 0 || later.published_ns < into.published_ns)) {
    into.published_ns = later.published_ns;
  }
  FillEmpty(into.order_id, later.order_id);
  FillEmpty(into.send_trace_id, later.send_trace_id);
  FillEmpty(into.send_service, later.send_service);
  FillEmpty(into.message_id, later.message_id);
  FillEmpty(into.exchange, later.exchange);
  FillEmpty(into.routing_key, later.routing_key);
  FillEmpty(into.queue, later.queue);
  FillEmpty(into.process_service, later.process_service);
  FillEmpty(into.process_span_id, later.process_span_id);
  FillEmpty(into.process_trace_id, later.process_trace_id);
}

bool PartnerEarlier(std::string_view a, Nanos a_ns, std::string_view b, Nanos b_ns) {
  if (a.empty() || b.empty()) return !a.empty() && b.empty();
  if (a_ns != b_ns) return a_ns < b_ns;
  return a < b;
}

void KeepPartner(OrderRow& row, const OrderRow& stored) {
  if (PartnerEarlier(row.partner, row.partner_ns, stored.partner, stored.partner_ns)) return;
  row.partner = stored.partner;
  row.partner_ns = stored.partner_ns;
}

void ApplyVerdict(OrderRow& row, const OrderVerdict& verdict) {
  row.stuck = verdict.stuck;
  row.stuck_since_ns = verdict.stuck_since_ns;
  row.deadline_ns = verdict.deadline_ns;
  row.expected_service = verdict.expected_service;
  row.summary = verdict.summary;
}

namespace {
template <typename T>
bool AnyOf(const std::vector<T>& any, const T& v) {
  return any.empty() || std::find(any.begin(), any.end(), v) != any.end();
}
}  // namespace

bool OrderMatches(const OrderRow& o, const OrderQuery& q) {
  const bool stuck = o.stuck != StuckKind::kNone;
  if (q.stuck.has_value() && stuck != *q.stuck) return false;
  if ((OrderSortStuckOnly(q.sort) || !q.kinds.empty()) && !stuck) return false;
  if (!AnyOf(q.kinds, o.stuck)) return false;
  if (!AnyOf(q.stages, o.stage)) return false;
  if (!q.services.empty() && !AnyOf(q.services, o.expected_service) &&
      !AnyOf(q.services, o.last_service)) {
    return false;
  }
  if (!q.include_closed && o.closed) return false;
  if (!q.partners.empty() && (o.partner.empty() || !AnyOf(q.partners, o.partner))) return false;
  return true;
}

void PutEpisode(EpisodeMap& episodes, const StuckEpisode& e) {
  if (e.flagged_ns != 0) {
    episodes.try_emplace({e.order_id, e.flagged_ns}, e);
    return;
  }
  for (auto it = episodes.lower_bound({e.order_id, 0});
       it != episodes.end() && it->first.first == e.order_id; ++it) {
    if (it->second.cleared_ns == 0) it->second.cleared_ns = e.cleared_ns;
  }
}

bool EpisodeSince(const StuckEpisode& e, Nanos since) {
  return e.flagged_ns >= since || (e.cleared_ns != 0 && e.cleared_ns >= since) || e.cleared_ns == 0;
}

bool MilestoneEarlier(const Milestone& a, const Milestone& b) {
  if (a.at_ns != b.at_ns) return a.at_ns < b.at_ns;
  return a.span_id < b.span_id;
}

namespace {

void AppendEscaped(std::string& out, std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : name) {
    if (c == '%' || c == '=' || c == ';') {
      out.push_back('%');
      out.push_back(kHex[(static_cast<unsigned char>(c) >> 4) & 0xf]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 0xf]);
    } else {
      out.push_back(c);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool Unescape(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

}  // namespace

std::string FormatServices(const std::vector<std::pair<std::string, Nanos>>& services) {
  std::string out;
  for (const auto& [name, ns] : services) {
    if (!out.empty()) out.push_back(';');
    AppendEscaped(out, name);
    out.push_back('=');
    out += std::to_string(ns);
  }
  return out;
}

bool ParseServices(std::string_view text, std::vector<std::pair<std::string, Nanos>>* out) {
  out->clear();
  while (!text.empty()) {
    const size_t end = text.find(';');
    const std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return false;
    std::string name;
    if (!Unescape(item.substr(0, eq), &name)) return false;
    const std::string_view digits = item.substr(eq + 1);
    Nanos ns = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ns);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
    out->emplace_back(std::move(name), ns);
  }
  return true;
}

std::optional<Nanos> RetentionCutoff(Nanos now, Duration keep) {
  if (keep.count() <= 0) return std::nullopt;
  return now - std::chrono::duration_cast<std::chrono::nanoseconds>(keep).count();
}

}  // namespace ordertrace::journey

namespace ordertrace::journey {

Nanos OrderSortKey(const OrderRow& o, OrderSort sort) {
  switch (sort) {
    case OrderSort::kStuckSince:
    case OrderSort::kStuckSinceDesc:
      return o.stuck_since_ns;
    case OrderSort::kStageSince:
    case OrderSort::kStageSinceDesc:
      return o.stage_ns;
    case OrderSort::kOrderId:
      break;
  }
  return 0;
}

bool OrderSortDescending(OrderSort sort) {
  return sort == OrderSort::kStuckSinceDesc || sort == OrderSort::kStageSinceDesc;
}

bool OrderSortStuckOnly(OrderSort sort) {
  return sort == OrderSort::kStuckSince || sort == OrderSort::kStuckSinceDesc;
}

bool OrderSortBefore(OrderSort sort, Nanos a_key, std::string_view a_id, Nanos b_key,
                     std::string_view b_id) {
  if (OrderSortDescending(sort)) {
    if (a_key != b_key) return a_key > b_key;
    return a_id > b_id;
  }
  if (a_key != b_key) return a_key < b_key;
  return a_id < b_id;
}

const char* OrderSortName(OrderSort sort) {
  switch (sort) {
    case OrderSort::kOrderId:
      return "order_id";
    case OrderSort::kStuckSince:
      return "stuck_since";
    case OrderSort::kStuckSinceDesc:
      return "-stuck_since";
    case OrderSort::kStageSince:
      return "stage_since";
    case OrderSort::kStageSinceDesc:
      return "-stage_since";
  }
  return "order_id";
}

bool ParseOrderSort(std::string_view name, OrderSort* out) {
  for (const OrderSort s : {OrderSort::kOrderId, OrderSort::kStuckSince, OrderSort::kStuckSinceDesc,
                            OrderSort::kStageSince, OrderSort::kStageSinceDesc}) {
    if (name == OrderSortName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace ordertrace::journey
