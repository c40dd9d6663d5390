// Structured logging: one line per event, logfmt (`ts=… level=info msg="…" key=value`) or
// JSON lines, over spdlog.  Keys are fixed strings; values are quoted as needed.
//
// Thread-safety: safe from any thread after Init (spdlog's mutexed stderr sink).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace ordertrace::log {

enum class Format { kLogfmt, kJson };

// Returns false (and logs nothing) if `level` is not one of debug, info, warn, error.
bool Init(std::string_view level, Format format);

enum class Level { kDebug, kInfo, kWarn, kError };
// Whether a line at `level` would be written: lets callers skip building costly lines.
bool Enabled(Level level);

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const char* v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, int64_t v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, unsigned v) : key(k), value(std::to_string(v)) {}
  Field(std::string_view k, double v);
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  std::string_view key;
  std::string value;
  bool quoted = false;  // a string: quoted in logfmt when needed, always in JSON
};

void Debug(std::string_view msg, std::initializer_list<Field> fields = {});
void Info(std::string_view msg, std::initializer_list<Field> fields = {});
void Warn(std::string_view msg, std::initializer_list<Field> fields = {});
void Error(std::string_view msg, std::initializer_list<Field> fields = {});

}  // namespace ordertrace::log
