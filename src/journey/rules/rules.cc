#include "journey/rules/rules.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/text_format.h"
#include "common/values.h"
#include "common/yaml_reader.h"

namespace ordertrace::journey {

const char* HopRoleName(HopRole r) {
  switch (r) {
    case HopRole::kNone:
      return "";
    case HopRole::kSend:
      return "send";
    case HopRole::kProcess:
      return "process";
  }
  return "";
}

const char* StuckKindName(StuckKind k) {
  switch (k) {
    case StuckKind::kNone:
      return "";
    case StuckKind::kNextOverdue:
      return "next_overdue";
    case StuckKind::kNotReceived:
      return "not_received";
    case StuckKind::kNotProcessed:
      return "not_processed";
    case StuckKind::kSilent:
      return "silent";
    case StuckKind::kMessageUnprocessed:
      return "message_unprocessed";
  }
  return "";
}

int Rules::StageIndex(std::string_view name) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string> Rules::WatchedServices() const {
  std::vector<std::string> out;
  auto add = [&out](const std::string& s) {
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  for (const StageRule& st : stages) {
    add(st.received_by);
    add(st.processed_by);
  }
  return out;
}

Rules DefaultRules() {
  using std::chrono::hours;
  using std::chrono::minutes;
  Rules r;
  r.source = "built-in default";
  r.entity_key = std::string(kOrderIdKey);
  auto stage = [&r](const char* name) -> StageRule& {
    r.stages.push_back(StageRule{});
    r.stages.back().name = name;
    return r.stages.back();
  };
  // Indexes in the order below.
  constexpr int kPriceCalculated = 1, kApproved = 2, kManufacturingStarted = 3, kShipped = 4,
                kClosed = 5;
  {
    StageRule& s = stage("SUBMITTED");
    s.next = kPriceCalculated;
    s.within = minutes(30);
    s.next_by = "mes";
    s.heartbeat = minutes(5);
    s.received_by = "mes";
    s.within_receipt = minutes(2);
    s.severity = "critical";
  }
  {
    StageRule& s = stage("PRICE_CALCULATED");
    s.processed_by = "crm";
    s.within_processing = minutes(5);
    s.next = kApproved;
    s.within = hours(24);
    s.next_by = "crm";
  }
  {
    StageRule& s = stage("APPROVED");
    s.next = kManufacturingStarted;
    s.within = hours(4);
    s.next_by = "mes";
    s.received_by = "mes";
    s.within_receipt = minutes(10);
  }
  {
    StageRule& s = stage("MANUFACTURING_STARTED");
    s.next = kShipped;
    s.within = hours(24 * 5);
    s.next_by = "mes";
    s.heartbeat = hours(2);
  }
  {
    StageRule& s = stage("SHIPPED");
    s.next = kClosed;
    s.within = hours(24);
    s.next_by = "crm";
  }
  stage("CLOSED");
  r.message_processed_within = minutes(2);
  r.grace = std::chrono::seconds(30);
  return r;
}

namespace {

// Each active order keeps the latest span time of every watched service in memory (8 bytes
// each, inline): four keep an active order within its 256-byte budget (docs/benchmarks.md).
constexpr size_t kMaxWatchedServices = 4;

int Line(const YAML::Node& n) { return YamlReader::Line(n); }

// A stage name: a letter, then letters, digits, '_', '-' or '.'; at most 64 characters.
bool ValidStageName(std::string_view s) {
  if (s.empty() || s.size() > 64 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

using Entry = YamlEntry;

class Parser {
 public:
  explicit Parser(std::string_view file) : reader_(file), file_(file) {}

  Status Error(int line, const std::string& path, const std::string& message) const {
    return reader_.Error(line, path, message);
  }

  // The entries of `map` (at `path`), refusing non-plain, duplicate and unknown keys.  An
  // empty `known` accepts any key (the stages under `expect`).
  Status Entries(const YAML::Node& map, const std::string& path,
                 const std::vector<std::string>& known, std::vector<Entry>* out) const {
    return reader_.Entries(map, path, known, out);
  }

  // The entry's value as one scalar (trimmed).
  Result<std::string> Scalar(const Entry& e, const std::string& path) const {
    auto text = reader_.Scalar(e, path);
    if (!text.ok()) return text.status();
    return std::string(TrimSpace(*text));
  }

  // A duration; zero only when `allow_zero` (then 0 and "off" both mean off).
  Result<Duration> DurationOf(const Entry& e, const std::string& path, bool allow_zero) const {
    auto text = Scalar(e, path);
    if (!text.ok()) return text.status();
    if (allow_zero && *text == "off") return Duration(0);
    auto d = ParseDuration(*text);
    if (!d.ok()) return Error(e.line, path, d.status().message());
    if (!allow_zero && d->count() <= 0) {
      return Error(e.line, path, "expected a duration above zero, got " + Quote(*text));
    }
    return *d;
  }

  // The message for a name that is not one of the stages.
  std::string UnknownStage(std::string_view name) const {
    std::vector<std::string> names;
    for (const auto& s : rules_.stages) names.push_back(s.name);
    return "unknown stage " + Quote(name) + " (stages are " + Join(names, ", ") + ")";
  }

  Result<Rules> Parse(std::string_view yaml) {
    auto loaded = reader_.Load(yaml);
    if (!loaded.ok()) return loaded.status();
    const YAML::Node& root = *loaded;
    if (root.IsNull() || !root.IsDefined()) {
      return Error(0, "",
                   "the rules file is empty; it needs at least `stages` (see "
                   "config/rules.example.yaml)");
    }
    if (!root.IsMap()) {
      return Error(Line(root), "",
                   "expected a mapping of keys at the top level (entity, stages, expect, "
                   "messages, grace, mappings)");
    }
    rules_ = Rules{};
    rules_.source = file_;
    rules_.stages.clear();
    if (Status s = reader_.Guard([&] { return Top(root); }); !s.ok()) return s;
    return rules_;
  }

 private:
  Status Top(const YAML::Node& root) {
    std::vector<Entry> entries;
    if (Status s = Entries(
            root, "", {"entity", "stages", "expect", "messages", "grace", "mappings"}, &entries);
        !s.ok()) {
      return s;
    }
    auto find = [&entries](const char* key) -> const Entry* {
      for (const auto& e : entries) {
        if (e.key == key) return &e;
      }
      return nullptr;
    };
    // The stages first: everything else refers to them.
    const Entry* stages = find("stages");
    if (stages == nullptr) {
      return Error(Line(root), "stages",
                   "missing: list the lifecycle's stages in order, e.g. [SUBMITTED, ..., CLOSED]");
    }
    if (Status s = Stages(*stages); !s.ok()) return s;
    for (const Entry& e : entries) {
      Status s;
      if (e.key == "entity") s = Entity(e);
      if (e.key == "expect") s = Expect(e);
      if (e.key == "messages") s = Messages(e);
      if (e.key == "grace") {
        auto d = DurationOf(e, "grace", /*allow_zero=*/true);
        if (!d.ok()) return d.status();
        rules_.grace = *d;
      }
      if (e.key == "mappings") s = Mappings(e);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  Status Entity(const Entry& entity) {
    if (entity.value.IsNull()) return Status::Ok();
    if (!entity.value.IsMap()) return Error(entity.line, "entity", "expected a mapping (key)");
    std::vector<Entry> entries;
    if (Status s = Entries(entity.value, "entity", {"key"}, &entries); !s.ok()) return s;
    for (const Entry& e : entries) {
      if (e.value.IsNull() || (e.value.IsScalar() && TrimSpace(e.value.Scalar()).empty())) {
        return Error(e.line, "entity.key",
                     "expected the attribute that holds the order id, like order.id");
      }
      auto key = Scalar(e, "entity.key");
      if (!key.ok()) return key.status();
      rules_.entity_key = *key;
    }
    return Status::Ok();
  }

  Status Stages(const Entry& e) {
    if (!e.value.IsSequence()) {
      return Error(e.line, "stages",
                   "expected a list of stage names in lifecycle order, like [SUBMITTED, ..., "
                   "CLOSED]");
    }
    if (e.value.size() == 0) return Error(e.line, "stages", "expected at least one stage");
    std::map<std::string, size_t> seen;
    for (size_t i = 0; i < e.value.size(); ++i) {
      const YAML::Node item = e.value[i];
      const std::string path = "stages[" + std::to_string(i) + "]";
      const int line = Line(item) > 0 ? Line(item) : e.line;
      if (!item.IsScalar()) return Error(line, path, "expected a stage name");
      const std::string name(TrimSpace(item.Scalar()));
      if (!ValidStageName(name)) {
        return Error(line, path,
                     "invalid stage name " + Quote(name) +
                         " (a letter, then letters, digits, '_', '-' or '.'; at most 64)");
      }
      if (auto [prev, inserted] = seen.emplace(name, i); !inserted) {
        return Error(line, path,
                     "duplicate stage " + Quote(name) + " (first at stages[" +
                         std::to_string(prev->second) + "])");
      }
      StageRule rule;
      rule.name = name;
      rules_.stages.push_back(std::move(rule));
    }
    return Status::Ok();
  }

  Status Expect(const Entry& expect) {
    if (expect.value.IsNull()) return Status::Ok();
    if (!expect.value.IsMap()) {
      return Error(expect.line, "expect", "expected a mapping of stage names to expectations");
    }
    std::vector<Entry> stages;
    if (Status s = Entries(expect.value, "expect", {}, &stages); !s.ok()) return s;
    for (const Entry& st : stages) {
      const std::string path = "expect." + st.key;
      const int index = rules_.StageIndex(st.key);
      if (index < 0) return Error(st.line, path, UnknownStage(st.key));
      if (Status s = StageExpectation(st, path, index); !s.ok()) return s;
    }
    return Status::Ok();
  }

  Status StageExpectation(const Entry& st, const std::string& path, int index) {
    if (st.value.IsNull()) return Status::Ok();  // "CLOSED:": terminal
    if (!st.value.IsMap()) {
      return Error(st.line, path,
                   "expected a mapping (next, within, next_by, heartbeat, received_by, "
                   "within_receipt, processed_by, within_processing, severity)");
    }
    std::vector<Entry> entries;
    if (Status s = Entries(st.value, path,
                           {"next", "within", "next_by", "heartbeat", "received_by",
                            "within_receipt", "processed_by", "within_processing", "severity"},
                           &entries);
        !s.ok()) {
      return s;
    }
    StageRule& rule = rules_.stages[static_cast<size_t>(index)];
    std::map<std::string, const Entry*> by_key;
    for (const Entry& e : entries) by_key[e.key] = &e;
    auto line_of = [&](const char* key) { return by_key.at(key)->line; };
    for (const Entry& e : entries) {
      const std::string key_path = path + "." + e.key;
      if (e.key == "next") {
        auto name = Scalar(e, key_path);
        if (!name.ok()) return name.status();
        const int next = rules_.StageIndex(*name);
        if (next < 0) return Error(e.line, key_path, UnknownStage(*name));
        if (next <= index) {
          return Error(e.line, key_path,
                       Quote(*name) + " is not after " + rule.name +
                           " in stages (next must be a later stage)");
        }
        rule.next = next;
      } else if (e.key == "next_by") {
        auto service = Scalar(e, key_path);
        if (!service.ok()) return service.status();
        if (service->empty()) return Error(e.line, key_path, "expected a service name");
        rule.next_by = *service;
      } else if (e.key == "severity") {
        auto severity = Scalar(e, key_path);
        if (!severity.ok()) return severity.status();
        const bool word =
            !severity->empty() && severity->size() <= 32 &&
            std::all_of(severity->begin(), severity->end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
            });
        if (!word) {
          return Error(e.line, key_path,
                       "expected a lowercase word like critical, warning or info (an "
                       "Alertmanager label value), got " +
                           Quote(*severity));
        }
        rule.severity = *severity;
      } else if (e.key == "received_by" || e.key == "processed_by") {
        auto service = Scalar(e, key_path);
        if (!service.ok()) return service.status();
        if (service->empty()) return Error(e.line, key_path, "expected a service name");
        (e.key == "received_by" ? rule.received_by : rule.processed_by) = *service;
        const auto watched = rules_.WatchedServices();
        if (watched.size() > kMaxWatchedServices) {
          return Error(e.line, key_path,
                       "at most " + std::to_string(kMaxWatchedServices) +
                           " services may be watched by received_by/processed_by; " +
                           Quote(*service) + " would be the " + std::to_string(watched.size()) +
                           "th (" + Join(watched, ", ") + ")");
        }
      } else {
        auto d = DurationOf(e, key_path, /*allow_zero=*/false);
        if (!d.ok()) return d.status();
        if (e.key == "within") rule.within = *d;
        if (e.key == "heartbeat") rule.heartbeat = *d;
        if (e.key == "within_receipt") rule.within_receipt = *d;
        if (e.key == "within_processing") rule.within_processing = *d;
      }
    }
    // Keys that go together.
    struct Pair {
      const char* a;
      const char* b;
      const char* a_needs;  // why `a` needs `b`
      const char* b_needs;
    };
    static const Pair kPairs[] = {
        {"next", "within", "needs within (the deadline for reaching it)",
         "needs next (the stage expected within this time)"},
        {"received_by", "within_receipt",
         "needs within_receipt (how soon the service must pick the order up)",
         "needs received_by (the service that must pick the order up)"},
        {"processed_by", "within_processing",
         "needs within_processing (how soon the service must process the stage)",
         "needs processed_by (the service that must process the stage)"},
    };
    if (by_key.count("next_by") > 0 && by_key.count("next") == 0) {
      return Error(line_of("next_by"), path + ".next_by",
                   "needs next (the stage this service is expected to reach)");
    }
    for (const Pair& p : kPairs) {
      const bool has_a = by_key.count(p.a) > 0, has_b = by_key.count(p.b) > 0;
      if (has_a && !has_b) return Error(line_of(p.a), path + "." + p.a, p.a_needs);
      if (has_b && !has_a) return Error(line_of(p.b), path + "." + p.b, p.b_needs);
    }
    if (rule.heartbeat.count() > 0 && rule.within.count() > 0 && rule.heartbeat >= rule.within) {
      return Error(line_of("heartbeat"), path + ".heartbeat",
                   "must be shorter than within (" + FormatDuration(rule.within) + "), got " +
                       FormatDuration(rule.heartbeat));
    }
    return Status::Ok();
  }

  Status Messages(const Entry& messages) {
    if (messages.value.IsNull()) return Status::Ok();
    if (!messages.value.IsMap()) {
      return Error(messages.line, "messages", "expected a mapping (processed_within)");
    }
    std::vector<Entry> entries;
    if (Status s = Entries(messages.value, "messages", {"processed_within"}, &entries); !s.ok()) {
      return s;
    }
    for (const Entry& e : entries) {
      auto d = DurationOf(e, "messages.processed_within", /*allow_zero=*/true);
      if (!d.ok()) return d.status();
      rules_.message_processed_within = *d;
    }
    return Status::Ok();
  }

  Status Mappings(const Entry& mappings) {
    if (mappings.value.IsNull()) return Status::Ok();
    if (!mappings.value.IsSequence()) {
      return Error(mappings.line, "mappings",
                   "expected a list of mappings, like - {service: mes, span: \"publish *\", "
                   "stage: ...}");
    }
    for (size_t i = 0; i < mappings.value.size(); ++i) {
      const YAML::Node item = mappings.value[i];
      const std::string path = "mappings[" + std::to_string(i) + "]";
      MappingRule rule;
      rule.line = Line(item) > 0 ? Line(item) : mappings.line;
      if (!item.IsMap()) {
        return Error(rule.line, path,
                     "expected a mapping (service, span, attributes, stage, order_id_from, step, "
                     "heartbeat)");
      }
      std::vector<Entry> entries;
      if (Status s = Entries(
              item, path,
              {"service", "span", "attributes", "stage", "order_id_from", "step", "heartbeat"},
              &entries);
          !s.ok()) {
        return s;
      }
      for (const Entry& e : entries) {
        const std::string key_path = path + "." + e.key;
        if (e.key == "attributes") {
          if (Status s = Attributes(e, key_path, &rule); !s.ok()) return s;
          continue;
        }
        auto text = Scalar(e, key_path);
        if (!text.ok()) return text.status();
        if (text->empty()) return Error(e.line, key_path, "expected a value");
        if (e.key == "service") {
          rule.service = *text;
        } else if (e.key == "span") {
          if (text->find('*') != std::string::npos && text->find('*') + 1 != text->size()) {
            return Error(
                e.line, key_path,
                "'*' may only end a span name (a prefix, like \"publish *\"), got " + Quote(*text));
          }
          rule.span = *text;
        } else if (e.key == "stage") {
          if (rules_.StageIndex(*text) < 0) return Error(e.line, key_path, UnknownStage(*text));
          rule.stage = *text;
        } else if (e.key == "order_id_from") {
          rule.order_id_from = *text;
        } else if (e.key == "step") {
          auto step = ParseStepStatus(*text);
          if (!step) {
            return Error(e.line, key_path,
                         "expected OK, FAIL, TIMEOUT or RETRY, got " + Quote(*text));
          }
          rule.step = *step;
        } else if (e.key == "heartbeat") {
          auto b = ParseBool(*text);
          if (!b.ok()) return Error(e.line, key_path, b.status().message());
          rule.heartbeat = *b;
        }
      }
      if (rule.service.empty() && rule.span.empty() && rule.attributes.empty()) {
        return Error(rule.line, path,
                     "needs at least one condition (service, span or attributes): it would "
                     "match every span");
      }
      if (rule.stage.empty() && rule.order_id_from.empty() && !rule.step && !rule.heartbeat) {
        return Error(rule.line, path,
                     "needs at least one effect (stage, order_id_from, step or heartbeat: "
                     "true)");
      }
      rules_.mappings.push_back(std::move(rule));
    }
    return Status::Ok();
  }

  Status Attributes(const Entry& e, const std::string& path, MappingRule* rule) const {
    if (!e.value.IsMap()) {
      return Error(e.line, path,
                   "expected a mapping of attribute names to values, like "
                   "{messaging.system: rabbitmq}");
    }
    std::vector<Entry> attrs;
    if (Status s = Entries(e.value, path, {}, &attrs); !s.ok()) return s;
    if (attrs.empty()) return Error(e.line, path, "expected at least one attribute");
    for (const Entry& a : attrs) {
      const std::string attr_path = path + "." + a.key;
      if (TrimSpace(a.key).empty()) return Error(a.line, path, "attribute names must not be empty");
      if (!a.value.IsScalar()) {
        return Error(a.line, attr_path, "expected a single value (the attribute must equal it)");
      }
      rule->attributes.emplace_back(a.key, a.value.Scalar());
    }
    return Status::Ok();
  }

  YamlReader reader_;
  std::string file_;
  Rules rules_;
};

}  // namespace

Result<Rules> ParseRules(std::string_view yaml, std::string_view file_name) {
  Parser parser(file_name);
  return parser.Parse(yaml);
}

Result<Rules> LoadRules(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument("cannot read rules file '" + path + "': is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument("cannot read rules file '" + path +
                                   "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::InvalidArgument("cannot read rules file '" + path + "'");
  return ParseRules(text.str(), path);
}

}  // namespace ordertrace::journey
