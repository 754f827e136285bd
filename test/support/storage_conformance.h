// The Storage conformance suite: value-parameterised tests (defined in
// test/unit/storage/conformance_test.cc) that check every point of the
// contract in storage/storage.h against any driver. A driver's test file
// instantiates it with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(Azure, StorageConformanceTest,
//       ::testing::Values(NamedStorageFactory{"azurite", [] { return MakeAzurite(); }}),
//       StorageConformanceName());
//
// Factory contract: every call to make() during one test returns a new handle
// onto the SAME underlying store (two instances on one directory, container,
// or named memory store), so tests can check that leases and data are shared
// between handles. The store may hold other data: each test works only under
// its own fresh key prefix (Key()) and deletes what it wrote in TearDown.
//
// List semantics checked here (as in Azure): the prefix is a plain string
// prefix of the key, so List("a/b") returns "a/b/x" and "a/bc/y" too;
// List("a/b/") only the first.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "storage/storage.h"

namespace sb::test {

using StorageFactory = std::function<std::unique_ptr<sb::Storage>()>;

struct NamedStorageFactory {
  std::string name;  // test-name suffix: letters, digits and '_' only
  StorageFactory make;
  // Whether "lease … is held by X" names the owner (Azure does not know it).
  bool names_lease_holder = true;
  // Whether a lease dies with its holder's process (file://: flock), so a
  // crash is simulated by dropping the Lease; otherwise (Azure, memory) the
  // lease outlives the holder and the test leaves it in place.
  bool lease_dies_with_process = false;
};

inline void PrintTo(const NamedStorageFactory& f, std::ostream* os) { *os << f.name; }

// For INSTANTIATE_TEST_SUITE_P's last argument: names tests after the factory.
struct StorageConformanceName {
  std::string operator()(const ::testing::TestParamInfo<NamedStorageFactory>& info) const {
    return info.param.name;
  }
};

class StorageConformanceTest : public ::testing::TestWithParam<NamedStorageFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A fresh handle onto the store under test.
  std::unique_ptr<sb::Storage> Open() const { return GetParam().make(); }
  // key inside this test's private prefix ("conformance/<test>-<random>/" + key).
  std::string Key(std::string_view key) const { return base_ + std::string(key); }
  const std::string& base() const { return base_; }
  // Every key under Key(prefix), in List order (fails the test on error).
  std::vector<std::string> ListKeys(std::string_view prefix = "");

  std::unique_ptr<sb::Storage> storage_;
  std::string base_;
};

}  // namespace sb::test

// Also reachable unqualified, as the brief's names were.
using sb::test::NamedStorageFactory;
using sb::test::StorageConformanceName;
using sb::test::StorageConformanceTest;
using sb::test::StorageFactory;
