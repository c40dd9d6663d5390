// The strict YAML map reader under every human-written YAML file of the gateway (the config
// file, the journey rules): keys must be plain names and appear once, unknown keys are errors
// with a suggestion, and every error names the file, the line and the key path:
//
//   gateway.yaml:7: receiver.max_body_bytes: expected a size like 16MiB, got 'abc'
//
// It reads yaml-cpp nodes; what a key means stays with the caller (a schema, a parser).
//
// Thread-safety: a YamlReader is immutable after construction; its methods are const and may be
// called from any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ordertrace {

// One key of a mapping, with its location.
struct YamlEntry {
  std::string key;
  YAML::Node value;
  int line = 0;  // of the key, 1-based; 0 unknown
};

class YamlReader {
 public:
  // `file` is used in messages only.
  explicit YamlReader(std::string_view file) : file_(file) {}

  const std::string& file() const { return file_; }

  // InvalidArgument "{file}:{line}: {path}: {message}"; the line is left out when 0, the path
  // when empty.
  Status Error(int line, std::string_view path, std::string_view message) const;

  // The node's line, 1-based; 0 when yaml-cpp does not know it.
  static int Line(const YAML::Node& node);

  // "a.b" from "a" and "b"; just "b" when `path` is empty.
  static std::string Join(std::string_view path, std::string_view key);

  // Parses a document.  A syntax error is "invalid YAML: ..." at its line.  An empty document
  // is a null node.
  Result<YAML::Node> Load(std::string_view text) const;

  // Runs `body`, turning a yaml-cpp exception (not expected for a parsed document, but never a
  // crash) into an error at its line.
  Status Guard(const std::function<Status()>& body) const;

  // Calls `visit` for each entry of `map` (at `path`), in document order, after refusing a key
  // that is not a plain scalar ("keys must be plain names") or that was seen before
  // ("duplicate key (first at line N)").  Stops at the first error, of either kind.
  Status ForEach(const YAML::Node& map, std::string_view path,
                 const std::function<Status(const YamlEntry&)>& visit) const;

  // The entries of `map` (at `path`), as ForEach checks them, and refusing a key not in `known`
  // (UnknownKeyMessage, in document order with the other errors).  An empty `known` accepts
  // any key.
  Status Entries(const YAML::Node& map, std::string_view path,
                 const std::vector<std::string>& known, std::vector<YamlEntry>* out) const;

  // The entry's value as one scalar, as written (not trimmed): "expected a value" when null,
  // "expected a single value, got a mapping" (or "a list") otherwise.
  Result<std::string> Scalar(const YamlEntry& entry, std::string_view path) const;

 private:
  std::string file_;
};

}  // namespace ordertrace
