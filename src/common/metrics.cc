#include "common/metrics.h"

#include <cmath>
#include <cstdio>

namespace ordertrace::metrics {

void Gauge::Add(double d) noexcept {
  double cur = v_.load(std::memory_order_relaxed);
  while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) noexcept {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  double cur = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const {
  cumulative->assign(bounds_.size() + 1, 0);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    (*cumulative)[i] = acc;
  }
  *sum = sum_.load(std::memory_order_relaxed);
  *count = acc;
}

std::vector<double> DurationBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& f = counters_.emplace_back(name, help, std::move(labels),
                                   [] { return std::make_unique<Counter>(); });
  order_.emplace_back(Type::kCounter, &f);
  return f;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& f =
      gauges_.emplace_back(name, help, std::move(labels), [] { return std::make_unique<Gauge>(); });
  order_.emplace_back(Type::kGauge, &f);
  return f;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels,
                                          std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& f = histograms_.emplace_back(name, help, std::move(labels),
                                     [bounds] { return std::make_unique<Histogram>(bounds); });
  order_.emplace_back(Type::kHistogram, &f);
  return f;
}

void Registry::AddCallbackGauge(const std::string& name, const std::string& help,
                                std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.push_back({name, help, std::move(fn), {}, {}});
  order_.emplace_back(Type::kCallbackGauge, &callbacks_.back());
}

void Registry::AddCallbackGauges(const std::string& name, const std::string& help,
                                 const std::string& label,
                                 std::function<std::vector<std::pair<std::string, double>>()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.push_back({name, help, {}, label, std::move(fn)});
  order_.emplace_back(Type::kCallbackGauge, &callbacks_.back());
}

namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = {}) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += out.empty() ? "" : ",";
    out += names[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

void Header(std::string* out, const std::string& name, const std::string& help, const char* type) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string Registry::Serialize() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [type, ptr] : order_) {
    if (type == Type::kCounter) {
      const auto& f = *static_cast<const Family<Counter>*>(ptr);
      Header(&out, f.name(), f.help(), "counter");
      f.ForEach([&](const std::vector<std::string>& lv, const Counter& c) {
        out += f.name() + Labels(f.label_names(), lv) + " " + std::to_string(c.Value()) + "\n";
      });
    } else if (type == Type::kHistogram) {
      const auto& f = *static_cast<const Family<Histogram>*>(ptr);
      Header(&out, f.name(), f.help(), "histogram");
      f.ForEach([&](const std::vector<std::string>& lv, const Histogram& h) {
        std::vector<uint64_t> cum;
        double sum;
        uint64_t count;
        h.Snapshot(&cum, &sum, &count);
        for (size_t i = 0; i < cum.size(); ++i) {
          std::string le = i < h.bounds().size() ? FormatValue(h.bounds()[i]) : "+Inf";
          out += f.name() + "_bucket" + Labels(f.label_names(), lv, "le=\"" + le + "\"") + " " +
                 std::to_string(cum[i]) + "\n";
        }
        out += f.name() + "_sum" + Labels(f.label_names(), lv) + " " + FormatValue(sum) + "\n";
        out +=
            f.name() + "_count" + Labels(f.label_names(), lv) + " " + std::to_string(count) + "\n";
      });
    } else if (type == Type::kCallbackGauge) {
      const auto& cb = *static_cast<const CallbackGauge*>(ptr);
      Header(&out, cb.name, cb.help, "gauge");
      if (cb.many) {
        for (const auto& [value, v] : cb.many()) {
          out += cb.name + Labels({cb.label}, {value}) + " " + FormatValue(v) + "\n";
        }
      } else {
        out += cb.name + " " + FormatValue(cb.fn()) + "\n";
      }
    } else {
      const auto& f = *static_cast<const Family<Gauge>*>(ptr);
      Header(&out, f.name(), f.help(), "gauge");
      f.ForEach([&](const std::vector<std::string>& lv, const Gauge& g) {
        out += f.name() + Labels(f.label_names(), lv) + " " + FormatValue(g.Value()) + "\n";
      });
    }
  }
  return out;
}

}  // namespace ordertrace::metrics
