// WalCatalog and sealing over the index of format version 2: what they find
// equals what a full listing finds, a refresh in which nothing changed costs
// the same few requests at any history size, and retention keeps the index
// true (also when interrupted at any step).
#include <gtest/gtest.h>

#include <fmt/core.h>

#include <set>

#include "common/clock.h"
#include "engine/retention/retention.h"
#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "repo/repository.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7200000000000000001ull;
constexpr uint64_t kMiB = 1 << 20;

class CatalogIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fault = std::make_unique<FaultStorage>(&memory_, &clock_);
    fault_ = fault.get();
    auto repo = Repository::Open(std::move(fault), true, &clock_);
    ASSERT_TRUE(repo.ok());
    repo_ = std::move(repo).value();
    auto c = repo_->EnsureContainer("main", kSysid, 1, "test");
    ASSERT_TRUE(c.ok());
    c1_ = *c;
  }

  void PutFull(uint64_t start, uint64_t end) {
    BackupManifest m;
    m.database = "main";
    m.system_identifier = kSysid;
    m.container = c1_.name;
    m.type = BackupType::kFull;
    m.timeline = 1;
    m.start_lsn = Lsn{start}.ToString();
    m.end_lsn = Lsn{end}.ToString();
    m.start_time = m.finish_time = clock_.Now();
    m.backup_id = Repository::NewBackupId(m.start_time, m.type);
    m.wal_segment_size = 16 * kMiB;
    // One data object, so that the backup is restorable for retention.
    const std::string chunk = Repository::DataPrefix("main", c1_.name, m.backup_id) + "00-000000";
    auto enc = EncodeObject("base", chunk, {});
    ASSERT_TRUE(memory_.Put(chunk, enc->bytes).ok());
    m.archives.push_back({.index = 0, .name = "base.tar", .raw_bytes = 4});
    m.archives[0].chunks.push_back({.key = chunk, .raw_size = 4, .stored_size = enc->bytes.size(), .sha256 = enc->sha256});
    m.size_bytes = 4;
    m.stored_bytes = enc->bytes.size();
    ASSERT_TRUE(repo_->WriteManifest(m, nullptr).ok());
  }

  // `n` log backups of 5 one-MiB parts each, one minute apart, as the streamer and sealing write them.
  void Stream(int n) {
    for (int i = 0; i < n; ++i) {
      for (int p = 0; p < 5; ++p) {
        clock_.Advance(std::chrono::seconds(12));
        const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{wal_}, Lsn{wal_ + kMiB});
        auto enc = EncodeObject(std::string(kMiB, static_cast<char>(p)), key, {});
        ASSERT_TRUE(memory_.Put(key, enc->bytes).ok());
        wal_ += kMiB;
      }
      auto sealed = SealLogBackups(*repo_, "main", c1_, 16 * kMiB, nullptr, {}, /*force=*/false);
      ASSERT_TRUE(sealed.ok()) << sealed.status().message();
      ASSERT_EQ(*sealed, 1);
    }
  }

  ManualClock clock_{std::chrono::system_clock::from_time_t(1'800'000'000)};
  MemoryStorage memory_{&clock_};
  FaultStorage* fault_ = nullptr;
  std::unique_ptr<Repository> repo_;
  ContainerInfo c1_;
  uint64_t wal_ = 16 * kMiB;
};

TEST_F(CatalogIndexTest, RefreshAtRestCostsTheSameFewRequestsAtAnyHistorySize) {
  PutFull(16 * kMiB + 0x28, 16 * kMiB + 0x100);
  std::map<int, std::pair<int64_t, int64_t>> idle, seal;  // log backups → (gets, all requests)
  int written = 0;
  for (int n : {10, 400}) {
    Stream(n - written);
    written = n;
    // An unsealed tail of two parts.
    for (int p = 0; p < 2; ++p) {
      const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{wal_}, Lsn{wal_ + kMiB});
      ASSERT_TRUE(memory_.Put(key, EncodeObject(std::string(kMiB, 'x'), key, {})->bytes).ok());
      wal_ += kMiB;
    }
    CatalogCache cache;
    auto cold = WalCatalog::Load(*repo_, "main", kSysid, &cache);
    ASSERT_TRUE(cold.ok()) << cold.status().message();
    fault_->ResetCounts();
    auto warm = WalCatalog::Load(*repo_, "main", kSysid, &cache);
    ASSERT_TRUE(warm.ok());
    idle[n] = {fault_->CallCount(FaultOp::kGet), fault_->CallCount(FaultOp::kAny)};
    // Nothing changed: the backups are the previous load's, shared, not
    // parsed or copied again (an idle agent's CPU stays flat too).
    EXPECT_EQ(&warm->log_backups(), &cold->log_backups());
    EXPECT_EQ(&warm->bases(), &cold->bases());
    // What it knows equals a full listing's truth.
    size_t logs = 0;
    auto truth = repo_->ListBackupsFromStorage("main");
    ASSERT_TRUE(truth.ok());
    for (const auto& m : truth->backups) logs += m.type == BackupType::kLog;
    EXPECT_EQ(warm->log_backups().size(), logs);
    auto windows = warm->Windows();
    ASSERT_EQ(windows.size(), 1u);
    EXPECT_EQ(windows[0].end_lsn, Lsn{wal_});
    EXPECT_EQ(warm->TimelineEnd(1), Lsn{wal_});
    EXPECT_TRUE(warm->Gaps().empty());
    // Every part it knows is stored (compaction leaves finer parts the
    // manifests no longer name beside the merged ones: a listing has more).
    auto all_parts = repo_->ListWalParts("main", c1_.name);
    ASSERT_TRUE(all_parts.ok());
    std::set<std::string> stored;
    for (const auto& p : *all_parts) stored.insert(p.key);
    for (const auto& p : warm->parts()) EXPECT_TRUE(stored.count(p.key)) << p.key;
    // Sealing the tail costs a bounded number of requests too.
    fault_->ResetCounts();
    ASSERT_EQ(*SealLogBackups(*repo_, "main", c1_, 16 * kMiB, nullptr, {}, /*force=*/true), 1);
    seal[n] = {fault_->CallCount(FaultOp::kGet), fault_->CallCount(FaultOp::kAny)};
    // A new log backup is a new listing: the cached catalog takes it in.
    auto after = WalCatalog::Load(*repo_, "main", kSysid, &cache);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->log_backups().size(), logs + 1);
    EXPECT_EQ(after->Windows().at(0).end_lsn, Lsn{wal_});
  }
  // At rest: the index listing, the containers' listing (descriptors read
  // once) and the tail blocks; no GET at all (timeline 1 has no history file).
  EXPECT_EQ(idle[10], idle[400]);
  EXPECT_EQ(idle[400].first, 0);
  EXPECT_LE(idle[400].second, 6);
  EXPECT_LE(seal[400].second, seal[10].second + 3 * 8) << "merges may add a few";
  EXPECT_LE(seal[400].second, 40);
}

// Retention rewrites the index: it never lists a deleted backup, also when
// interrupted at any request; a second pass makes it equal to the truth.
TEST_F(CatalogIndexTest, RetentionKeepsTheIndexTrueAtEveryCrashPoint) {
  auto ids = [&](bool from_index) {
    auto l = from_index ? repo_->ListBackups("main") : repo_->ListBackupsFromStorage("main");
    EXPECT_TRUE(l.ok()) << l.status().message();
    std::set<std::string> out;
    for (const auto& m : l->backups) out.insert(m.backup_id);
    return out;
  };
  for (int day = 0; day < 6; ++day) {
    PutFull(wal_ + 0x28, wal_ + 0x100);
    Stream(3);
    clock_.Advance(std::chrono::hours(24));
  }
  const RetentionOptions options{.retention = std::chrono::hours(48), .system_identifier = kSysid};
  for (int64_t step = 1;; ++step) {
    auto plan = PlanRetention(*repo_, "main", clock_.Now(), options);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    if (step == 1) {
      ASSERT_FALSE(plan->manifests_to_delete.empty());
    }
    fault_->ResetCounts();
    fault_->AddRule({.op = FaultOp::kAny, .nth = step, .count = 1, .action = FaultRule::Action::kCrash});
    Status s = ApplyRetention(*repo_, *plan);
    const bool crashed = fault_->crashed();
    fault_->ClearRules();
    fault_->Recover();
    const auto listed = ids(true), truth = ids(false);
    EXPECT_TRUE(std::includes(truth.begin(), truth.end(), listed.begin(), listed.end()))
        << "the index lists a deleted backup after a crash at request " << step;
    if (!crashed) break;
    ASSERT_LT(step, 1000);
  }
  // One more pass (nothing left to delete) and the index equals the manifests.
  auto plan = PlanRetention(*repo_, "main", clock_.Now(), options);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(ApplyRetention(*repo_, *plan).ok());
  EXPECT_EQ(ids(true), ids(false));
  auto catalog = WalCatalog::Load(*repo_, "main", kSysid);
  ASSERT_TRUE(catalog.ok());
  EXPECT_FALSE(catalog->Windows().empty());
  EXPECT_EQ(catalog->Windows().back().end_lsn, Lsn{wal_});
}

}  // namespace
}  // namespace sb
