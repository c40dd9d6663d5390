#include "sim/options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/url.h"
#include "common/values.h"

namespace ordertrace::sim {
namespace {

constexpr std::array<std::pair<FaultKind, const char*>, 9> kFaultNames = {{
    {FaultKind::kLostToMes, "lost-to-mes"},
    {FaultKind::kCalcSilent, "calc-silent"},
    {FaultKind::kCalcSlow, "calc-slow"},
    {FaultKind::kCrmIgnoresPrice, "crm-ignores-price"},
    {FaultKind::kCrmStallsApproved, "crm-stalls-approved"},
    {FaultKind::kMesSilent, "mes-silent"},
    {FaultKind::kCrmNoClose, "crm-no-close"},
    {FaultKind::kConsumerGone, "consumer-gone"},
    {FaultKind::kSlowConsumer, "slow-consumer"},
}};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::optional<double> ParseDouble(std::string_view s) {
  if (s.empty()) return std::nullopt;
  // std::from_chars for double is in libstdc++ 11+; Debian 12 has GCC 12.
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

Micros ToMicros(std::chrono::milliseconds d) { return std::chrono::duration_cast<Micros>(d); }

uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

const char* FaultName(FaultKind kind) noexcept {
  for (const auto& [k, name] : kFaultNames)
    if (k == kind) return name;
  return "?";
}

bool IsQueueFault(FaultKind kind) noexcept {
  return kind == FaultKind::kConsumerGone || kind == FaultKind::kSlowConsumer;
}

uint64_t Hash(uint64_t seed, std::string_view a, std::string_view b) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix(seed);
  auto feed = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    h ^= 0xff;  // separator: ("ab","c") differs from ("a","bc")
    h *= 0x100000001b3ULL;
  };
  feed(a);
  feed(b);
  return Mix(h);
}

double Unit(uint64_t seed, std::string_view a, std::string_view b) {
  return static_cast<double>(Hash(seed, a, b) >> 11) * (1.0 / 9007199254740992.0);  // 2^53
}

std::string OrderId(std::string_view prefix, uint64_t seed, uint64_t counter) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04x-%06llu",
                static_cast<unsigned>(Hash(seed, "order-id-tag") & 0xffff),
                static_cast<unsigned long long>(counter));
  return std::string(prefix) + buf;
}

bool FaultSpec::Selects(uint64_t seed, std::string_view order_id) const {
  if (IsQueueFault(kind)) return false;
  if (std::find(orders.begin(), orders.end(), order_id) != orders.end()) return true;
  return rate && *rate > 0 && Unit(seed, order_id, FaultName(kind)) < *rate;
}

Result<FaultSpec> ParseFault(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--fault '" + std::string(text) + "': " + why);
  };
  std::vector<std::string_view> parts = Split(text, ':');
  FaultSpec f;
  f.text = std::string(text);
  bool known = false;
  std::string names;
  for (const auto& [k, name] : kFaultNames) {
    names += names.empty() ? name : std::string(", ") + name;
    if (parts[0] == name) {
      f.kind = k;
      known = true;
    }
  }
  if (!known) return bad("unknown fault '" + std::string(parts[0]) + "' (faults: " + names + ")");
  bool have_per_second = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view kv = parts[i];
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return bad("expected key=value, got '" + std::string(kv) + "'");
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    const std::string k(key);
    if (key == "rate") {
      auto r = ParseDouble(value);
      if (!r || *r < 0 || *r > 1)
        return bad("rate: expected a number from 0 to 1, got '" + std::string(value) + "'");
      f.rate = *r;
    } else if (key == "orders") {
      for (std::string_view id : Split(value, '|')) {
        if (id.empty()) return bad("orders: an empty order id (ids are separated by |)");
        f.orders.emplace_back(id);
      }
    } else if (key == "after" || key == "for") {
      auto d = ParseDuration(value);
      if (!d.ok()) return bad(k + ": " + d.status().message());
      if (key == "after")
        f.after = ToMicros(*d);
      else
        f.lift_after = ToMicros(*d);
    } else if (key == "queue") {
      bool found = false;
      for (const QueueDef& q : kQueues) found = found || value == q.queue;
      if (!found)
        return bad("queue: unknown queue '" + std::string(value) +
                   "' (queues: crm.orders, mes.calculate, crm.prices, mes.manufacturing, "
                   "crm.shipments)");
      f.queue = std::string(value);
    } else if (key == "per_second") {
      auto r = ParseDouble(value);
      if (!r || *r <= 0)
        return bad("per_second: expected a number above 0, got '" + std::string(value) + "'");
      f.per_second = *r;
      have_per_second = true;
    } else {
      return bad("unknown key '" + k + "' (keys: rate, orders, after, for, queue, per_second)");
    }
  }
  if (IsQueueFault(f.kind)) {
    if (f.rate || !f.orders.empty())
      return bad(std::string(FaultName(f.kind)) +
                 " acts on a queue, not on orders: rate= and orders= do not apply");
    if (f.queue.empty()) return bad(std::string(FaultName(f.kind)) + " needs queue=Q");
    if (f.kind == FaultKind::kSlowConsumer && !have_per_second)
      return bad("slow-consumer needs per_second=N");
    if (f.kind == FaultKind::kConsumerGone && have_per_second)
      return bad("per_second= applies to slow-consumer only");
  } else {
    if (!f.queue.empty() || have_per_second)
      return bad(std::string(FaultName(f.kind)) +
                 " acts on orders: queue= and per_second= apply to queue faults only");
    if (f.after.count() != 0)
      return bad("after= applies to queue faults only (consumer-gone, slow-consumer)");
    if (!f.rate && f.orders.empty())
      return bad(std::string(FaultName(f.kind)) + " needs rate=R or orders=ID|ID...");
  }
  return f;
}

Result<Pacing> DerivePacing(const journey::Rules& rules, double pace, double time_scale) {
  if (rules.stages.size() != 6) {
    std::string names;
    for (const auto& s : rules.stages) names += (names.empty() ? "" : ", ") + s.name;
    return Status::InvalidArgument(
        "rules (" + rules.source +
        "): ordertrace-sim needs exactly 6 stages (submitted, price calculated, approved, "
        "manufacturing started, shipped, closed, in that order), got " +
        std::to_string(rules.stages.size()) + (names.empty() ? "" : ": " + names));
  }
  if (!(pace > 0) || !(time_scale > 0))
    return Status::InvalidArgument("pace and time scale must be above 0");
  Pacing p;
  for (size_t i = 0; i < 6; ++i) p.stages[i] = rules.stages[i].name;
  const auto scaled = [&](Duration d, double factor) {
    return Micros(static_cast<int64_t>(
        std::llround(static_cast<double>(ToMicros(d).count()) * factor / time_scale)));
  };
  const journey::StageRule& submitted = rules.stages[0];
  const journey::StageRule& priced = rules.stages[1];
  const journey::StageRule& manufacturing = rules.stages[3];
  const journey::StageRule& shipped = rules.stages[4];
  p.calculate = scaled(submitted.within, pace);
  p.calculate_heartbeat = scaled(submitted.heartbeat, pace);
  p.calculate_deadline = scaled(submitted.within, 1);
  p.approve = scaled(priced.within, pace);
  p.approve_deadline = scaled(priced.within, 1);
  p.manufacture = scaled(manufacturing.within, pace);
  p.manufacture_heartbeat = scaled(manufacturing.heartbeat, pace);
  p.manufacture_deadline = scaled(manufacturing.within, 1);
  p.close = scaled(shipped.within, pace);
  p.close_deadline = scaled(shipped.within, 1);
  return p;
}

Micros Jittered(Micros base, Micros deadline, uint64_t seed, std::string_view order_id,
                std::string_view step) {
  const double factor = 0.8 + 0.4 * Unit(seed, order_id, step);
  int64_t v = static_cast<int64_t>(static_cast<double>(base.count()) * factor);
  if (deadline.count() > 0) v = std::min<int64_t>(v, deadline.count() * 95 / 100);
  return Micros(std::max<int64_t>(v, 0));
}

const char* RoleName(Role role) noexcept {
  switch (role) {
    case Role::kPartner:
      return "partner";
    case Role::kCrm:
      return "crm";
    case Role::kMes:
      return "mes";
    case Role::kAll:
      return "all";
  }
  return "?";
}

Result<AmqpUrl> ParseAmqpUrl(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--amqp '" + std::string(text) + "': " + why +
                                   " (expected amqp://USER:PASSWORD@HOST:PORT/VHOST)");
  };
  AmqpUrl u;
  std::string_view s = text;
  if (s.substr(0, 7) != "amqp://") return bad("only amqp:// is supported");
  s.remove_prefix(7);
  size_t slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view vhost = s.substr(slash + 1);
    if (!vhost.empty()) {
      if (!url::PercentDecode(vhost, &u.vhost)) return bad("malformed %-escape in the vhost");
    }
  }
  size_t at = authority.rfind('@');
  std::string_view hostport = authority;
  std::string shown_user;
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    hostport = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (!url::PercentDecode(userinfo.substr(0, colon), &u.user))
      return bad("malformed %-escape in the user");
    u.password.clear();
    if (colon != std::string_view::npos &&
        !url::PercentDecode(userinfo.substr(colon + 1), &u.password))
      return bad("malformed %-escape in the password");
    shown_user = std::string(userinfo.substr(0, colon)) + "@";
  }
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos) {
    auto port = ParseUint(hostport.substr(colon + 1));
    if (!port || *port == 0 || *port > 65535) return bad("bad port");
    u.port = static_cast<int>(*port);
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return bad("no host");
  u.host = std::string(hostport);
  u.text = "amqp://" + shown_user + u.host + ":" + std::to_string(u.port) + "/" +
           url::PercentEncode(u.vhost);
  return u;
}

Result<Options> ParseArgs(const std::vector<std::string>& args) {
  Options o;
  bool have_role = false;
  std::optional<Micros> duration;
  const auto bad = [](const std::string& m) { return Status::InvalidArgument(m); };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") return Status::NotFound(kUsage);
    if (a.rfind("--", 0) != 0) {
      if (have_role) return bad("unexpected argument '" + a + "' (one role)");
      if (a == "partner")
        o.role = Role::kPartner;
      else if (a == "crm")
        o.role = Role::kCrm;
      else if (a == "mes")
        o.role = Role::kMes;
      else if (a == "all")
        o.role = Role::kAll;
      else
        return bad("unknown role '" + a + "' (roles: partner, crm, mes, all)");
      have_role = true;
      continue;
    }
    std::string flag = a, value;
    bool inline_value = false;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (flag == "--quiet") {
      if (inline_value) return bad("--quiet takes no value");
      o.quiet = true;
      continue;
    }
    static const char* const kValued[] = {
        "--amqp",  "--otlp",   "--rules",    "--pace",  "--time-scale",
        "--rate",  "--orders", "--duration", "--seed",  "--order-prefix",
        "--fault", "--report", "--prefetch", "--drain", "--order-id-spans"};
    bool valued = false;
    for (const char* v : kValued) valued = valued || flag == v;
    if (!valued) return bad("unknown flag '" + flag + "'\n" + kUsage);
    if (!inline_value) {
      if (i + 1 >= args.size()) return bad(flag + " needs a value");
      value = args[++i];
    }
    // A number in (min, max]; `range` says so in the message.
    const auto number = [&](double min, double max, const char* range) -> Result<double> {
      auto v = ParseDouble(value);
      if (!v || *v <= min || *v > max)
        return bad(flag + ": expected a number " + range + ", got '" + value + "'");
      return *v;
    };
    if (flag == "--order-id-spans") {
      if (value != "every" && value != "entry")
        return bad("--order-id-spans: expected every or entry, got '" + value + "'");
      o.order_id_on_every_span = value == "every";
    } else if (flag == "--amqp") {
      auto u = ParseAmqpUrl(value);
      if (!u.ok()) return u.status();
      o.amqp = *u;
    } else if (flag == "--otlp") {
      if (value.rfind("http://", 0) != 0 && value.rfind("https://", 0) != 0)
        return bad(
            "--otlp: expected an http:// or https:// URL like "
            "http://127.0.0.1:4318/v1/traces, got '" +
            value + "'");
      o.otlp = value;
    } else if (flag == "--rules") {
      o.rules_file = value;
    } else if (flag == "--pace") {
      auto v = number(0, 1, "above 0, at most 1");
      if (!v.ok()) return v.status();
      o.pace = *v;
    } else if (flag == "--time-scale") {
      auto v = number(0, 1e12, "above 0");
      if (!v.ok()) return v.status();
      o.time_scale = *v;
    } else if (flag == "--rate") {
      auto v = number(0, 1e6, "above 0, at most 1000000");
      if (!v.ok()) return v.status();
      o.rate = *v;
    } else if (flag == "--orders" || flag == "--seed" || flag == "--prefetch") {
      auto v = ParseUint(value);
      if (!v) return bad(flag + ": expected a whole number, got '" + value + "'");
      if (flag == "--orders") {
        o.orders = *v;
      } else if (flag == "--seed") {
        o.seed = *v;
      } else {
        if (*v < 1 || *v > 65535) return bad("--prefetch: expected 1 to 65535, got " + value);
        o.prefetch = static_cast<int>(*v);
      }
    } else if (flag == "--duration" || flag == "--drain") {
      auto d = ParseDuration(value);
      if (!d.ok()) return bad(flag + ": " + d.status().message());
      if (flag == "--duration")
        duration = ToMicros(*d);
      else
        o.drain = ToMicros(*d);
    } else if (flag == "--order-prefix") {
      o.order_prefix = value;
    } else if (flag == "--fault") {
      auto f = ParseFault(value);
      if (!f.ok()) return f.status();
      o.faults.push_back(std::move(*f));
    } else if (flag == "--report") {
      o.report = value;
    }
  }
  if (!have_role) return bad("no role given\n" + std::string(kUsage));
  o.duration = duration;
  if (o.rules_file.empty()) {
    o.rules = journey::DefaultRules();
  } else {
    auto r = journey::LoadRules(o.rules_file);
    if (!r.ok()) return bad("--rules: " + r.status().message());
    o.rules = std::move(*r);
  }
  auto p = DerivePacing(o.rules, o.pace, o.time_scale);
  if (!p.ok()) return p.status();
  o.pacing = *p;
  return o;
}

}  // namespace ordertrace::sim
