// Storage failures in the middle of a full backup of a real cluster: the
// failed backup is never listed, leaves no manifest, and a later backup to
// the same repository succeeds and restores.
#include <gtest/gtest.h>

#include "engine/backup/full_backup.h"
#include "engine/restore/restore.h"
#include "engine/verify/verify.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"

namespace sb::test {
namespace {

class FaultBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 1 -q");
    memory_ = std::make_unique<MemoryStorage>();
    auto fault = std::make_unique<FaultStorage>(memory_.get());
    fault_ = fault.get();
    auto repo = Repository::Open(std::move(fault), /*create=*/true);
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    repo_ = std::move(repo).value();
  }

  FullBackupOptions Options() {
    return {.conninfo = cluster_->conninfo(), .database = "main", .parallelism = 2, .chunk_size = 256 * 1024};
  }

  size_t ListedBackups() {
    auto listing = repo_->ListBackups("main");
    EXPECT_TRUE(listing.ok()) << listing.status().message();
    return listing.ok() ? listing->backups.size() : 0;
  }

  // Keys of objects that belong to no complete backup.
  size_t DataObjects() {
    auto all = ListAll(*memory_, "db/main/data/");
    EXPECT_TRUE(all.ok());
    return all.ok() ? all->size() : 0;
  }

  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<MemoryStorage> memory_;
  FaultStorage* fault_ = nullptr;
  std::unique_ptr<Repository> repo_;
};

TEST_F(FaultBackupTest, PutErrorMidBackupLeavesNoListedBackup) {
  fault_->FailNthCall(FaultOp::kPut, 5, Status::IoError("injected: disk full"));
  auto failed = RunFullBackup(*repo_, Options());
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("injected: disk full"), std::string::npos) << failed.status().message();
  EXPECT_EQ(ListedBackups(), 0u);
  EXPECT_EQ(DataObjects(), 0u) << "objects of the failed backup should be cleaned up";

  fault_->ClearRules();
  auto ok = RunFullBackup(*repo_, Options());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ListedBackups(), 1u);
  auto report = RunVerify(*repo_, {});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

TEST_F(FaultBackupTest, TornManifestWriteLeavesNoListedBackup) {
  // The manifest is the last write; a torn one must not make a backup appear.
  fault_->TornWriteOn("/backups/");
  auto failed = RunFullBackup(*repo_, Options());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(ListedBackups(), 0u);

  fault_->ClearRules();
  auto ok = RunFullBackup(*repo_, Options());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ListedBackups(), 1u);
}

TEST_F(FaultBackupTest, StorageCrashMidBackupThenRecovery) {
  fault_->CrashAfter(FaultOp::kPut, 3);
  auto failed = RunFullBackup(*repo_, Options());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().message();
  fault_->ClearRules();
  // ClearRules may leave crash mode on; a fresh decorator models the storage coming back.
  auto repo = Repository::Open(std::make_unique<FaultStorage>(memory_.get()), false);
  ASSERT_TRUE(repo.ok());
  repo_ = std::move(repo).value();
  EXPECT_EQ(ListedBackups(), 0u);
  auto ok = RunFullBackup(*repo_, Options());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ListedBackups(), 1u);
}

}  // namespace
}  // namespace sb::test
