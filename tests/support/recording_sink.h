// RecordingSink: a BatchSink for tests.  Keeps every batch it accepts, or refuses with the
// status it was told to (to drive throttling and shutdown paths).
//
// Thread-safety: all members are safe from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pipeline/batch_sink.h"

namespace ordertrace::testing_support {

class RecordingSink : public pipeline::BatchSink {
 public:
  Status Accept(std::shared_ptr<const otlp::SpanBatch> batch) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!next_.ok()) return next_;
    batches_.push_back(std::move(batch));
    return Status::Ok();
  }
  // Every later Accept() returns `s` (Status::Ok() to accept again).
  void RefuseWith(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    next_ = std::move(s);
  }
  std::vector<std::shared_ptr<const otlp::SpanBatch>> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  // The names of every span received, in order.
  std::vector<std::string> SpanNames() {
    std::vector<std::string> names;
    for (const auto& b : batches()) {
      for (const auto& s : b->spans()) names.emplace_back(s.name);
    }
    return names;
  }

 private:
  std::mutex mu_;
  Status next_;
  std::vector<std::shared_ptr<const otlp::SpanBatch>> batches_;
};

}  // namespace ordertrace::testing_support
