#include "sim/runtime/report.h"

#include <nlohmann/json.hpp>

namespace ordertrace::sim {

std::string StatsJson(const Stats& s) {
  nlohmann::ordered_json j;  // "role" first
  j["role"] = s.role;
  j["orders_started"] = s.orders_started;
  j["messages_processed"] = s.messages_processed;
  j["published"] = s.published;
  j["publish_failures"] = s.publish_failures;
  j["publish_retries"] = s.publish_retries;
  j["reconnects"] = s.reconnects;
  if (s.role == "crm") j["orders_closed"] = s.orders_closed;
  j["unsent"] = s.unsent;
  j["spans_ended"] = s.spans_ended;
  j["spans_exported"] = s.spans_exported;
  j["spans_dropped"] = s.spans_dropped;
  return j.dump();
}

bool ReportWriter::Open(const std::string& path) {
  MutexLock lock(mu_);
  if (f_ != nullptr) std::fclose(f_);
  f_ = std::fopen(path.c_str(), "w");
  return f_ != nullptr;
}

ReportWriter::~ReportWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

void ReportWriter::Line(const std::string& json) {
  MutexLock lock(mu_);
  if (f_ == nullptr) return;
  std::fputs(json.c_str(), f_);
  std::fputc('\n', f_);
  std::fflush(f_);
}

}  // namespace ordertrace::sim
