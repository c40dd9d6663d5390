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
#include <cstdlib>
#include <cstring>
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

// One UTF-8 sequence at text[i]: its code point (U+FFFD when malformed) and length.
char32_t NextCodePoint(std::string_view text, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(text[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > text.size()) {
    *len = 1;
    return 0xFFFD;
  }
  char32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(text[i + k]);
    if ((c & 0xC0) != 0x80) {
      *len = 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *len = n;
  return cp;
}

int CodePointColumns(char32_t c) {
  if ((c >= 0x300 && c <= 0x36F) || (c >= 0x200B && c <= 0x200F) || (c >= 0xFE00 && c <= 0xFE0F)) {
    return 0;  // combining marks, zero-width spaces and joiners, variation selectors
  }
  const bool wide = (c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF) ||
                    (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
                    (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
                    (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
                    (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD);
  return wide ? 2 : 1;
}

std::string Format(const char* fmt, auto... args) {
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, fmt, args...);
  return std::string(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

std::atomic<bool> g_resized{false};
extern "C" void OnResize(int) { g_resized.store(true); }

// A positive count from the environment; 0 when absent or not a number.
size_t EnvCount(const char* v) {
  if (v == nullptr || *v == '\0') return 0;
  size_t n = 0;
  const char* end = v + std::strlen(v);
  auto [p, ec] = std::from_chars(v, end, n);
  return ec == std::errc() && p == end && n < 10000 ? n : 0;
}

}  // namespace

TerminalSize TerminalSizeOf(int fd, const char* columns, const char* lines) {
  TerminalSize size;
  winsize ws{};
  const bool window = isatty(fd) == 1 && ioctl(fd, TIOCGWINSZ, &ws) == 0;
  const size_t env_columns = EnvCount(columns), env_rows = EnvCount(lines);
  if (window && ws.ws_col > 0) {
    size.columns = ws.ws_col;
  } else if (env_columns > 0) {
    size.columns = env_columns;
  }
  if (window && ws.ws_row > 0) {
    size.rows = ws.ws_row;
  } else if (env_rows > 0) {
    size.rows = env_rows;
  }
  return size;
}

size_t DisplayColumns(std::string_view text) {
  size_t cols = 0;
  for (size_t i = 0, len = 0; i < text.size(); i += len) {
    cols += CodePointColumns(NextCodePoint(text, i, &len));
  }
  return cols;
}

std::string FitLine(std::string_view line, size_t width) {
  std::string out;
  size_t cols = 0;
  for (size_t i = 0, len = 0; i < line.size(); i += len) {
    const char32_t c = NextCodePoint(line, i, &len);
    const int w = CodePointColumns(c);
    if (width > 0 && cols + w > width) break;
    cols += w;
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F)) {
      out += '?';  // never an escape sequence from telemetry into the terminal
    } else if (c == 0xFFFD && line.substr(i, len) != "\xEF\xBF\xBD") {
      out += '?';  // a malformed byte
    } else {
      out.append(line.substr(i, len));
    }
  }
  return out;
}

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
                        std::string_view header, size_t limit, size_t width, size_t height) {
  std::vector<std::string> lines;
  for (size_t start = 0; start <= header.size();) {  // a banner line may come first
    size_t end = header.find('\n', start);
    if (end == std::string_view::npos) end = header.size();
    lines.emplace_back(header.substr(start, end - start));
    start = end + 1;
  }
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
                      (height == 0 && (orders.size() < stuck_now || orders.size() > limit)
                           ? " (the oldest " + std::to_string(std::min(orders.size(), limit)) + ")"
                           : ""));
      lines.push_back(
          Format("%-22s %-22s %-20s %s", "ORDER", "STAGE", "MISSED", "WHERE IT STOPPED"));
      // The rows left on the screen (like top): the list gives way, its last row saying how
      // many more there are.
      const size_t total = static_cast<size_t>(std::max<double>(stuck_now, orders.size()));
      size_t rows = std::min(limit, orders.size());
      if (height > 0) {
        const size_t left = height > lines.size() ? height - lines.size() : 0;
        if (rows > left || (rows < total && rows == left)) rows = left > 0 ? left - 1 : 0;
      }
      size_t shown = 0;
      for (const json& o : orders) {
        if (shown == rows) break;
        ++shown;
        auto str = [&](const char* k) {
          auto it = o.find(k);
          return it != o.end() && it->is_string() ? it->get<std::string>() : std::string("-");
        };
        lines.push_back(Format("%-22s %-22s %-20s %s", str("order_id").c_str(),
                               str("stage").c_str(), str("stuck_kind").c_str(),
                               str("summary").c_str()));
      }
      if (height > 0 && shown < total && lines.size() < height) {
        lines.push_back("… " + Count(static_cast<double>(total - shown)) + " more");
      }
    }
  }
  if (height > 0 && lines.size() > height) lines.resize(height);
  std::string frame;
  for (const std::string& l : lines) frame += FitLine(l, width) + "\n";
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
  struct sigaction winch {
  }, old_winch{};
  winch.sa_handler = OnResize;
  sigemptyset(&winch.sa_mask);
  sigaction(SIGWINCH, &winch, &old_winch);
  sigaddset(&term, SIGWINCH);
  pthread_sigmask(SIG_UNBLOCK, &term, &old_mask);
  g_resized.store(false);
  int code = 0;
  while (!g_stop.load()) {
    const std::string when = Rfc3339(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    const std::string header =
        (o.banner.empty() ? "" : o.banner + "\n") + "ordertrace watch · " + o.api + " · " + when +
        (tty ? " · every " + std::to_string(o.interval.count()) + " ms, Ctrl-C to stop" : "");
    std::string frame;
    std::vector<Sample> samples;
    std::string stuck_body;
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
      samples = ParseMetrics(metrics.value().body);
      stuck_body = std::move(body);
    }
    // Drawn again at once, from the same figures, when the window changes size meanwhile.
    const auto until = std::chrono::steady_clock::now() + o.interval;
    for (bool again = true; again && !g_stop.load();) {
      g_resized.store(false);
      const TerminalSize size =
          TerminalSizeOf(STDOUT_FILENO, std::getenv("COLUMNS"), std::getenv("LINES"));
      std::string out = code == 0 ? RenderWatch(samples, stuck_body, header, o.limit, size.columns,
                                                tty ? size.rows : 0)
                                  : frame;
      if (code != 0) {
        std::string fitted;
        for (size_t start = 0; start < out.size();) {
          size_t end = out.find('\n', start);
          if (end == std::string::npos) end = out.size();
          fitted += FitLine(std::string_view(out).substr(start, end - start), size.columns) + "\n";
          start = end + 1;
        }
        out = std::move(fitted);
      }
      if (tty) {
        std::fputs("\033[2J\033[H", stdout);  // clear the screen, home: redraw in place
      } else if (!o.once) {
        std::fputs("\n", stdout);
      }
      std::fputs(out.c_str(), stdout);
      std::fflush(stdout);
      if (o.once) break;
      while (!g_stop.load() && !g_resized.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      again = tty && g_resized.load();
    }
    if (o.once) break;
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGWINCH, &old_winch, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return o.once ? code : 0;
}

}  // namespace ordertrace::cli
