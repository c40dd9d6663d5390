// BrokerEnvironment: the private RabbitMQ of a whole GoogleTest program (broker.h), as a
// ::testing::Environment.  With `use_fixture`, the broker the ctest fixture rabbitmq.broker_start
// started (its state file in ORDERTRACE_RABBITMQ_STATE) when that is set; otherwise, or without
// it, one of its own in a temporary directory "/tmp/<prefix>-XXXXXX", stopped by pid and removed
// at the end.  `broker().reason` says why it is not available.
//
//   ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(
//       new testing::BrokerEnvironment("ot-rabbitmq", /*use_fixture=*/true));
//   ... testing::BrokerEnvironment::broker().port ...
//
// Thread-safety: SetUp/TearDown on GoogleTest's main thread; broker() from the tests after it.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "rabbitmq/broker.h"

namespace ordertrace::testing {

class BrokerEnvironment : public ::testing::Environment {
 public:
  BrokerEnvironment(std::string prefix, bool use_fixture)
      : prefix_(std::move(prefix)), use_fixture_(use_fixture) {}

  void SetUp() override {
    const char* state = std::getenv("ORDERTRACE_RABBITMQ_STATE");
    if (use_fixture_ && state != nullptr && *state != '\0') {
      if (!LoadBroker(state, &broker_)) {
        broker_.reason = std::string("no broker state in ") + state +
                         " (did the ctest fixture rabbitmq.broker_start fail?)";
      }
      return;
    }
    std::string tmpl = "/tmp/" + prefix_ + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      broker_.reason = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    broker_ = StartBroker(dir_, /*die_with_parent=*/true);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    StopBroker(&broker_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static Broker& broker() { return broker_; }

 private:
  static inline Broker broker_;
  const std::string prefix_;
  const bool use_fixture_;
  std::string dir_;
};

}  // namespace ordertrace::testing
