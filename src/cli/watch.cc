#include "cli/watch.h"

#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/text_format.h"
#include "common/url.h"
#include "journey/diagnosis.h"
#include "net/http_client.h"

namespace ordertrace::cli {
namespace {

using nlohmann::json;

std::atomic<bool> g_stop{false};
extern "C" void OnSignal(int) { g_stop.store(true); }

// "1,234,567" (counts are whole numbers; a fraction is rounded).
std::string Count(double v) {
  if (!std::isfinite(v)) return "-";
  const long long n = std::llround(v);
  const std::string out = WithThousands(static_cast<uint64_t>(n < 0 ? -n : n));
  return n < 0 ? "-" + out : out;
}

std::string Label(const Sample& s, std::string_view key) {
  auto it = s.labels.find(key);
  return it == s.labels.end() ? std::string() : it->second;
}

// Sum of the samples named `name` (0 when none).
double Sum(const std::vector<Sample>& m, std::string_view name, bool* present = nullptr) {
  double total = 0;
  bool any = false;
  for (const Sample& s : m) {
    if (s.name == name) {
      total += s.value;
      any = true;
    }
  }
  if (present != nullptr) *present = any;
  return total;
}

std::string Fit(std::string line, size_t width) {
  if (width == 0) return line;
  // Count UTF-8 code points, not bytes (the summaries hold "–" and "≥").
  size_t cols = 0, i = 0;
  for (; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;
    if (cols == width) break;
    ++cols;
  }
  if (i < line.size()) line.resize(i);
  return line;
}

std::string Format(const char* fmt, auto... args) {
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, fmt, args...);
  return std::string(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) return ws.ws_col;
  return 0;
}

}  // namespace

std::vector<Sample> ParseMetrics(std::string_view text) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = std::string(line.substr(0, i));
    if (s.name.empty()) continue;
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          ok = false;
          break;
        }
        std::string key(line.substr(i, eq - i)), value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) {
          ok = false;
          break;
        }
        s.labels.emplace(std::move(key), std::move(value));
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size()) continue;
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    std::string_view num = line.substr(i);
    num = num.substr(0, num.find(' '));  // an optional timestamp follows
    if (num == "+Inf") {
      s.value = HUGE_VAL;
    } else if (num == "-Inf") {
      s.value = -HUGE_VAL;
    } else if (num == "NaN") {
      s.value = NAN;
    } else {
      auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), s.value);
      if (ec != std::errc() || end != num.data() + num.size()) continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string WithBrokerNotes(std::string_view stuck_json, size_t limit,
                            const std::function<std::string(const std::string&)>& order_json) {
  json page = json::parse(stuck_json, nullptr, /*allow_exceptions=*/false);
  if (!page.is_object() || !page.contains("orders") || !page["orders"].is_array()) {
    return std::string(stuck_json);
  }
  size_t n = 0;
  for (json& o : page["orders"]) {
    if (n++ == limit) break;
    if (!o.is_object() || !o.contains("order_id") || !o["order_id"].is_string()) continue;
    const json order = json::parse(order_json(o["order_id"].get<std::string>()), nullptr, false);
    if (!order.is_object() || !order.contains("diagnosis") || !order["diagnosis"].is_object()) {
      continue;
    }
    const json& d = order["diagnosis"];
    std::vector<std::string> notes;
    if (d.contains("open_hops") && d["open_hops"].is_array()) {
      for (const json& h : d["open_hops"]) {
        if (h.is_object() && h.contains("broker") && h["broker"].is_string()) {
          notes.push_back(h["broker"].get<std::string>());
        }
      }
    }
    if (d.contains("broker") && d["broker"].is_string()) notes.push_back(d["broker"]);
    std::string summary = o.contains("summary") && o["summary"].is_string()
                              ? o["summary"].get<std::string>()
                              : std::string();
    for (const std::string& note : notes) {
      if (!note.empty() && summary.find(note) == std::string::npos) summary += "; " + note;
    }
    o["summary"] = summary;
  }
  return page.dump();
}

std::string RenderWatch(const std::vector<Sample>& m, std::string_view stuck_json,
                        std::string_view header, size_t limit, size_t width) {
  std::vector<std::string> lines;
  lines.emplace_back(header);
  lines.emplace_back();

  // Orders per stage, in the order the gateway lists its stages (the rules' order).
  std::vector<std::string> stages;
  std::map<std::string, double, std::less<>> active, stuck;
  for (const Sample& s : m) {
    if (s.name == "ordertrace_journey_active_orders_by_stage") {
      const std::string st = Label(s, "stage");
      if (!active.contains(st)) stages.push_back(st);
      active[st] += s.value;
    } else if (s.name == "ordertrace_journey_stuck_orders_by_stage") {
      stuck[Label(s, "stage")] += s.value;
    }
  }
  // The rules' order (ordertrace_journey_stage_index); stages without a position last.
  std::map<std::string, double, std::less<>> position;
  for (const Sample& s : m) {
    if (s.name == "ordertrace_journey_stage_index") position[Label(s, "stage")] = s.value;
  }
  auto pos = [&](const std::string& st) {
    auto it = position.find(st);
    return it == position.end() || it->second < 0 ? 1e9 : it->second;
  };
  std::stable_sort(stages.begin(), stages.end(),
                   [&](const std::string& a, const std::string& b) { return pos(a) < pos(b); });
  // Rows worth a line: a stage of the rules, or any stage holding orders now.
  std::erase_if(stages, [&](const std::string& st) {
    return pos(st) == 1e9 && active[st] == 0 && (!stuck.contains(st) || stuck[st] == 0);
  });
  if (stages.empty() && active.empty()) {
    lines.emplace_back("(the gateway reports no journeys: are they enabled?)");
  } else {
    lines.push_back(Format("%-26s %10s %8s", "STAGE", "ACTIVE", "STUCK"));
    for (const std::string& st : stages) {
      const std::string name = st == "none" ? "(no milestone yet)" : st;
      const double k = stuck.contains(st) ? stuck[st] : 0;
      lines.push_back(Format("%-26s %10s %8s%s", name.c_str(), Count(active[st]).c_str(),
                             Count(k).c_str(), k > 0 ? "  <-" : ""));
    }
  }
  bool have_alerts = false;
  const double alerts = Sum(m, "ordertrace_alerts_sent_total", &have_alerts);
  std::string totals = "closed " + Count(Sum(m, "ordertrace_journey_closed_total")) +
                       " · spans accepted " +
                       Count(Sum(m, "ordertrace_receiver_accepted_spans_total")) + " · flagged " +
                       Count(Sum(m, "ordertrace_journey_flagged_total")) + " · cleared " +
                       Count(Sum(m, "ordertrace_journey_cleared_total"));
  if (have_alerts) totals += " · alerts sent " + Count(alerts);
  lines.emplace_back();
  lines.push_back(totals);

  // RabbitMQ, when the gateway polls its management API (docs/broker.md).
  bool have_broker = false;
  const double up = Sum(m, "ordertrace_broker_up", &have_broker);
  if (have_broker) {
    lines.emplace_back();
    lines.push_back(std::string("RabbitMQ: ") + (up > 0 ? "up" : "UNREACHABLE"));
    // Queue gauges: ordertrace_broker_queue_<what>{queue="..."}.
    std::vector<std::string> queues;
    std::map<std::string, std::map<std::string, double>, std::less<>> q;
    constexpr std::string_view kPrefix = "ordertrace_broker_queue_";
    for (const Sample& s : m) {
      if (!s.name.starts_with(kPrefix)) continue;
      const std::string name = Label(s, "queue");
      if (name.empty()) continue;
      if (!q.contains(name)) queues.push_back(name);
      const std::string what = s.name.substr(kPrefix.size());
      std::string col = what.find("ready") != std::string::npos       ? "ready"
                        : what.find("unack") != std::string::npos     ? "unacked"
                        : what.find("consumers") != std::string::npos ? "consumers"
                                                                      : "";
      if (!col.empty()) q[name][col] += s.value;
    }
    if (up > 0 && !queues.empty()) {
      lines.push_back(Format("  %-24s %10s %10s %10s", "QUEUE", "READY", "UNACKED", "CONSUMERS"));
      for (const std::string& name : queues) {
        auto& c = q[name];
        const bool alarm = c["consumers"] == 0 && c["ready"] > 0;
        lines.push_back(Format("  %-24s %10s %10s %10s%s", name.c_str(), Count(c["ready"]).c_str(),
                               Count(c["unacked"]).c_str(), Count(c["consumers"]).c_str(),
                               alarm ? "  <- no consumer" : ""));
      }
    }
  }

  // Stuck orders with their one-line diagnoses.
  lines.emplace_back();
  const json page = json::parse(stuck_json, nullptr, /*allow_exceptions=*/false);
  const double stuck_now = Sum(m, "ordertrace_journey_stuck_orders");
  if (!page.is_object() || !page.contains("orders") || !page["orders"].is_array()) {
    lines.push_back("STUCK ORDERS: " + Count(stuck_now) + " (the list could not be read)");
  } else {
    const json& orders = page["orders"];
    if (orders.empty()) {
      lines.emplace_back("STUCK ORDERS: none");
    } else {
      lines.push_back("STUCK ORDERS: " + Count(std::max<double>(stuck_now, orders.size())) +
                      (orders.size() < stuck_now || orders.size() > limit
                           ? " (the oldest " + std::to_string(std::min(orders.size(), limit)) + ")"
                           : ""));
      lines.push_back(
          Format("%-22s %-22s %-20s %s", "ORDER", "STAGE", "MISSED", "WHERE IT STOPPED"));
      size_t shown = 0;
      for (const json& o : orders) {
        if (shown++ == limit) break;
        auto str = [&](const char* k) {
          auto it = o.find(k);
          return it != o.end() && it->is_string() ? it->get<std::string>() : std::string("-");
        };
        lines.push_back(Format("%-22s %-22s %-20s %s", str("order_id").c_str(),
                               str("stage").c_str(), str("stuck_kind").c_str(),
                               str("summary").c_str()));
      }
    }
  }
  std::string frame;
  for (std::string& l : lines) frame += Fit(std::move(l), width) + "\n";
  return frame;
}

int RunWatch(const WatchOptions& o) {
  auto client = ApiClient::Make(o.api, o.access);
  if (!client.ok()) {
    std::fprintf(stderr, "ordertrace: %s\n", client.status().message().c_str());
    return 2;
  }
  const bool tty = !o.once && isatty(STDOUT_FILENO) == 1;
  g_stop.store(false);
  // main() blocks SIGINT/SIGTERM for the gateway's sigwait; this command takes them itself.
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGINT);
  sigaddset(&term, SIGTERM);
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  pthread_sigmask(SIG_UNBLOCK, &term, &old_mask);
  int code = 0;
  while (!g_stop.load()) {
    const std::string when = Rfc3339(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    const std::string header =
        "ordertrace watch · " + o.api + " · " + when +
        (tty ? " · every " + std::to_string(o.interval.count()) + " ms, Ctrl-C to stop" : "");
    std::string frame;
    auto metrics = client->Get("/metrics", std::chrono::milliseconds(3000));
    if (!metrics.ok() || metrics.value().status != 200) {
      std::string why = metrics.status().message();
      if (metrics.ok()) {
        const std::string refusal = ExplainRefusal(metrics.value().status, client->has_token());
        why = "HTTP " + std::to_string(metrics.value().status) +
              (refusal.empty() ? "" : ": " + refusal);
      }
      frame = header + "\n\nthe gateway cannot be asked: " + why + " (retrying)\n";
      code = 1;
    } else {
      code = 0;
      // Enough rows for the screen; the API returns the oldest stuck orders first.
      auto stuck = client->Get(
          "/api/v1/orders?stuck=true&limit=" + std::to_string(std::max<size_t>(o.limit, 1)),
          std::chrono::milliseconds(3000));
      std::string body = stuck.ok() && stuck.value().status == 200 ? stuck.value().body : "";
      // Where the broker holds them: one order view per listed order (at most --limit).
      body = WithBrokerNotes(body, o.limit, [&](const std::string& id) {
        auto r = client->Get("/api/v1/orders/" + url::PercentEncode(id),
                             std::chrono::milliseconds(3000));
        return r.ok() && r.value().status == 200 ? r.value().body : std::string();
      });
      frame = RenderWatch(ParseMetrics(metrics.value().body), body, header, o.limit,
                          tty ? TerminalWidth() : 0);
    }
    if (tty) {
      std::fputs("\033[H\033[J", stdout);  // home, clear to the end: redraw in place
    } else if (!o.once) {
      std::fputs("\n", stdout);
    }
    std::fputs(frame.c_str(), stdout);
    std::fflush(stdout);
    if (o.once) break;
    const auto until = std::chrono::steady_clock::now() + o.interval;
    while (!g_stop.load() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return o.once ? code : 0;
}

}  // namespace ordertrace::cli
