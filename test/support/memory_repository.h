// MemoryRepositoryTest: a fixture for engine unit tests that need a
// repository: MemoryStorage under a ManualClock (at 2027-01-15T08:00:00Z) and
// one container of database "main" on timeline 1 of `system_identifier`.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"

namespace sb::test {

class MemoryRepositoryTest : public ::testing::Test {
 protected:
  explicit MemoryRepositoryTest(uint64_t system_identifier) : system_identifier_(system_identifier) {}

  void SetUp() override {
    clock_ = std::make_unique<ManualClock>(std::chrono::system_clock::from_time_t(1'800'000'000));
    auto repo = Repository::Open(std::make_unique<MemoryStorage>(clock_.get()), true, clock_.get());
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(repo).value();
    auto c = repo_->EnsureContainer("main", system_identifier_, 1, "test");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    c1_ = *c;
  }

  const uint64_t system_identifier_;
  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<Repository> repo_;
  ContainerInfo c1_;
};

}  // namespace sb::test
