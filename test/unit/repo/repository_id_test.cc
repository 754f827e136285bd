// Repository::id(): the identity agents compare across the nodes of an
// availability group (coexistence rule 1). It names the storage, not the URL.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

class RepositoryIdTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* n : {"rid-a", "rid-b"}) MemoryStorage::DropNamed(n);
  }
  // A handle on the process-wide "memory://<name>" storage (each call opens it anew).
  std::unique_ptr<Storage> Open(const std::string& name) {
    auto s = OpenStorage("memory://" + name);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  ManualClock clock_{SystemTime{} + std::chrono::hours(24 * 20000)};
};

TEST_F(RepositoryIdTest, NewRepositoryGetsARandomIdThatReopeningKeeps) {
  auto ra = Repository::Open(Open("rid-a"), true, &clock_);
  auto rb = Repository::Open(Open("rid-b"), true, &clock_);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ((*ra)->id().size(), 32u);
  // Two repositories made at the same instant still differ.
  EXPECT_NE((*ra)->id(), (*rb)->id());
  auto again = Repository::Open(Open("rid-a"), false, &clock_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->id(), (*ra)->id());
  auto descriptor = MemoryStorage::Named("rid-a")->Get("smartbackup-repo.json");
  ASSERT_TRUE(descriptor.ok());
  EXPECT_EQ(nlohmann::json::parse(*descriptor)["repository_id"], (*ra)->id());
}

TEST_F(RepositoryIdTest, RepositoryWithoutIdIsNamedByItsDescriptor) {
  ASSERT_TRUE(MemoryStorage::Named("rid-a")->Put("smartbackup-repo.json",
                    R"({"format": "smartbackup-repository", "version": 1, "created": "2024-01-01T00:00:00Z"})")
                  .ok());
  ASSERT_TRUE(MemoryStorage::Named("rid-b")->Put("smartbackup-repo.json",
                    R"({"format": "smartbackup-repository", "version": 1, "created": "2024-01-02T00:00:00Z"})")
                  .ok());
  auto ra = Repository::Open(Open("rid-a"), false, &clock_);
  auto ra2 = Repository::Open(Open("rid-a"), false, &clock_);
  auto rb = Repository::Open(Open("rid-b"), false, &clock_);
  ASSERT_TRUE(ra.ok() && ra2.ok() && rb.ok());
  EXPECT_EQ((*ra)->id(), (*ra2)->id());
  EXPECT_NE((*ra)->id(), (*rb)->id());
  EXPECT_EQ((*ra)->id().size(), 32u);
  EXPECT_EQ((*ra)->id()[0], 'd');
}

}  // namespace
}  // namespace sb
