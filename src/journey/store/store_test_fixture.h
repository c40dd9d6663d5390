// The stores under test, for the contract suites that every JourneyStore implementation must
// pass (store_contract_test.cc, store_scan_contract_test.cc): one factory per implementation,
// and a typed fixture that opens a fresh store in its own temporary directory and removes it.
//
//   template <typename F> class MyContractTest : public StoreFixture<F> { ... };
//   TYPED_TEST_SUITE(MyContractTest, StoreTypes);
//
// Thread-safety: test code; one fixture per test, on the test's thread.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "journey/store/memory/memory_store.h"
#include "journey/store/sqlite/sqlite_store.h"
#include "journey/store/store.h"

namespace ordertrace::journey::testing_stores {

struct MemoryFactory {
  static std::unique_ptr<JourneyStore> Open(const std::filesystem::path& /*dir*/) {
    return NewMemoryStore();
  }
};

struct SqliteFactory {
  static std::unique_ptr<JourneyStore> Open(const std::filesystem::path& dir) {
    SqliteStoreOptions options;
    options.path = (dir / "journeys.db").string();
    auto store = OpenSqliteStore(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
};

using StoreTypes = ::testing::Types<MemoryFactory, SqliteFactory>;

// A temporary directory for a SQLite store outside the contract suites (an engine or API test on
// the real store), removed with this object: close the stores opened in it first.
class TempSqliteDir {
 public:
  TempSqliteDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "ordertrace-store-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) dir_ = tmpl;
    EXPECT_FALSE(dir_.empty()) << "mkdtemp failed";
  }
  ~TempSqliteDir() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  TempSqliteDir(const TempSqliteDir&) = delete;
  TempSqliteDir& operator=(const TempSqliteDir&) = delete;

  // A store on journeys.db in the directory; null (and a test failure) when it does not open.
  std::unique_ptr<JourneyStore> Open() const { return SqliteFactory::Open(dir_); }

 private:
  std::filesystem::path dir_;
};

template <typename Factory>
class StoreFixture : public ::testing::Test {
 public:  // the suites' fill helpers take the fixture
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "ordertrace-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = Factory::Open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void MustWrite(const WriteBatch& b) {
    const Status s = store_->Write(b);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::filesystem::path dir_;
  std::unique_ptr<JourneyStore> store_;
};

}  // namespace ordertrace::journey::testing_stores
