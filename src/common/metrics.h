// A small Prometheus metrics registry: counters, gauges and histograms with labels, and the
// text exposition format (version 0.0.4) for GET /metrics.
//
// Why not a library: prometheus-cpp is not packaged in Debian 12, and the gateway needs only
// this much.  Label values must be bounded sets (protocol, reason, stage): never an order id.
//
// Thread-safety: all operations are safe from any thread.  Inc/Set/Observe are lock-free;
// creating a labelled child takes the family's mutex once, callers keep the reference.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ordertrace::metrics {

class Counter {
 public:
  void Inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void Add(double d) noexcept;
  double Value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v) noexcept;
  // Cumulative counts per bound (+Inf last), sum and count, for exposition.
  void Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Default buckets for request durations, in seconds.
std::vector<double> DurationBuckets();

enum class Type { kCounter, kGauge, kHistogram, kCallbackGauge };

// A metric name with a fixed list of label names; children per label-value tuple.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

  // Returns the child for these label values (created on first use).  The reference stays
  // valid for the registry's lifetime.
  T& With(const std::vector<std::string>& label_values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  void ForEach(const std::function<void(const std::vector<std::string>&, const T&)>& fn) const;

 private:
  std::string name_, help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

class Registry {
 public:
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels = {},
                                  std::vector<double> bounds = DurationBuckets());
  // A gauge computed at scrape time (queue depth, uptime ...).
  void AddCallbackGauge(const std::string& name, const std::string& help,
                        std::function<double()> fn);
  // Gauges of one name computed together at scrape time, one label (the allocator's kinds of
  // memory ...): `fn` returns (label value, value) pairs.
  void AddCallbackGauges(const std::string& name, const std::string& help, const std::string& label,
                         std::function<std::vector<std::pair<std::string, double>>()> fn);

  // Text exposition format 0.0.4.
  std::string Serialize() const;

 private:
  mutable std::mutex mu_;
  std::deque<Family<Counter>> counters_;
  std::deque<Family<Gauge>> gauges_;
  std::deque<Family<Histogram>> histograms_;
  struct CallbackGauge {
    std::string name, help;
    std::function<double()> fn;
    std::string label;  // AddCallbackGauges: the label's name, and `many` instead of `fn`
    std::function<std::vector<std::pair<std::string, double>>()> many;
  };
  std::deque<CallbackGauge> callbacks_;
  std::vector<std::pair<Type, const void*>> order_;  // registration order, for stable output
};

template <typename T>
T& Family<T>::With(const std::vector<std::string>& label_values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(label_values);
  if (it == children_.end()) it = children_.emplace(label_values, make_()).first;
  return *it->second;
}

template <typename T>
void Family<T>::ForEach(
    const std::function<void(const std::vector<std::string>&, const T&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [labels, child] : children_) fn(labels, *child);
}

}  // namespace ordertrace::metrics
