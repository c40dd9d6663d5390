#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace ordertrace::log {
namespace {

Format g_format = Format::kLogfmt;

std::shared_ptr<spdlog::logger> Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_logger_mt("ordertrace");
    l->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
    return l;
  }();
  return logger;
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendLogfmtValue(std::string* out, std::string_view v, bool quoted) {
  bool needs_quotes = v.empty() && quoted;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') needs_quotes = true;
  }
  if (needs_quotes) {
    AppendJsonString(out, v);
  } else {
    out->append(v);
  }
}

std::string Render(std::string_view msg, std::initializer_list<Field> fields) {
  std::string out;
  if (g_format == Format::kJson) {
    out += "\"msg\":";
    AppendJsonString(&out, msg);
    for (const auto& f : fields) {
      out += ",";
      AppendJsonString(&out, f.key);
      out += ":";
      if (f.quoted)
        AppendJsonString(&out, f.value);
      else
        out += f.value;
    }
    out += "}";
  } else {
    out += "msg=";
    AppendLogfmtValue(&out, msg, true);
    for (const auto& f : fields) {
      out += " ";
      out.append(f.key);
      out += "=";
      AppendLogfmtValue(&out, f.value, f.quoted);
    }
  }
  return out;
}

void Emit(spdlog::level::level_enum lvl, std::string_view msg, std::initializer_list<Field> f) {
  auto logger = Logger();
  if (!logger->should_log(lvl)) return;
  logger->log(lvl, "{}", Render(msg, f));
}

}  // namespace

Field::Field(std::string_view k, double v) : key(k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  value = buf;
}

bool Init(std::string_view level, Format format) {
  spdlog::level::level_enum lvl;
  if (level == "debug")
    lvl = spdlog::level::debug;
  else if (level == "info")
    lvl = spdlog::level::info;
  else if (level == "warn")
    lvl = spdlog::level::warn;
  else if (level == "error")
    lvl = spdlog::level::err;
  else
    return false;
  g_format = format;
  auto logger = Logger();
  logger->set_level(lvl);
  if (format == Format::kJson) {
    logger->set_pattern("{\"ts\":\"%Y-%m-%dT%H:%M:%S.%fZ\",\"level\":\"%l\",%v",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
  }
  logger->flush_on(spdlog::level::info);
  return true;
}

bool Enabled(Level level) {
  static constexpr spdlog::level::level_enum kMap[] = {spdlog::level::debug, spdlog::level::info,
                                                       spdlog::level::warn, spdlog::level::err};
  return Logger()->should_log(kMap[static_cast<int>(level)]);
}

void Debug(std::string_view msg, std::initializer_list<Field> f) {
  Emit(spdlog::level::debug, msg, f);
}
void Info(std::string_view msg, std::initializer_list<Field> f) {
  Emit(spdlog::level::info, msg, f);
}
void Warn(std::string_view msg, std::initializer_list<Field> f) {
  Emit(spdlog::level::warn, msg, f);
}
void Error(std::string_view msg, std::initializer_list<Field> f) {
  Emit(spdlog::level::err, msg, f);
}

}  // namespace ordertrace::log
