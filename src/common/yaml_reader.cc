#include "common/yaml_reader.h"

#include <algorithm>
#include <map>

#include "common/values.h"

namespace ordertrace {

Status YamlReader::Error(int line, std::string_view path, std::string_view message) const {
  std::string out = file_;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!path.empty()) out += std::string(path) + ": ";
  out += message;
  return Status::InvalidArgument(std::move(out));
}

int YamlReader::Line(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

std::string YamlReader::Join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

Result<YAML::Node> YamlReader::Load(std::string_view text) const {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return Error(e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg);
  }
}

Status YamlReader::Guard(const std::function<Status()>& body) const {
  try {
    return body();
  } catch (const YAML::Exception& e) {
    return Error(e.mark.is_null() ? 0 : e.mark.line + 1, "", e.msg);
  }
}

Status YamlReader::ForEach(const YAML::Node& map, std::string_view path,
                           const std::function<Status(const YamlEntry&)>& visit) const {
  std::map<std::string, int> seen;  // key -> line, for duplicates
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: the iterator's pair is a temporary proxy, references into it would dangle.
    YamlEntry entry;
    const YAML::Node key_node = it->first;
    entry.value = it->second;
    entry.line = Line(key_node);
    if (!key_node.IsScalar()) return Error(entry.line, path, "keys must be plain names");
    entry.key = key_node.Scalar();
    if (auto [prev, inserted] = seen.emplace(entry.key, entry.line); !inserted) {
      return Error(entry.line, Join(path, entry.key),
                   "duplicate key (first at line " + std::to_string(prev->second) + ")");
    }
    if (Status s = visit(entry); !s.ok()) return s;
  }
  return Status::Ok();
}

Status YamlReader::Entries(const YAML::Node& map, std::string_view path,
                           const std::vector<std::string>& known,
                           std::vector<YamlEntry>* out) const {
  return ForEach(map, path, [&](const YamlEntry& e) {
    if (!known.empty() && std::find(known.begin(), known.end(), e.key) == known.end()) {
      return Error(e.line, Join(path, e.key), UnknownKeyMessage(e.key, known));
    }
    out->push_back(e);
    return Status::Ok();
  });
}

Result<std::string> YamlReader::Scalar(const YamlEntry& entry, std::string_view path) const {
  if (entry.value.IsNull() || !entry.value.IsDefined()) {
    return Error(entry.line, path, "expected a value");
  }
  if (!entry.value.IsScalar()) {
    return Error(entry.line, path,
                 std::string("expected a single value, got a ") +
                     (entry.value.IsMap() ? "mapping" : "list"));
  }
  return entry.value.Scalar();
}

}  // namespace ordertrace
