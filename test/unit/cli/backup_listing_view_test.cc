// available-backups' model: fulls and per-window WAL coverage by default, every log backup with
// --all, gaps in place (sorted by time), a log backup whose WAL object is gone is not available,
// and one JSON schema for every row.
#include "cli/backup_listing_view.h"

#include <gtest/gtest.h>

#include <set>

#include "engine/wal/wal_archive.h"
#include "support/memory_repository.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000002ull;
constexpr uint64_t kSeg = 16ull << 20;

class BackupListingViewTest : public test::MemoryRepositoryTest {
 protected:
  BackupListingViewTest() : MemoryRepositoryTest(kSysid) {}

  std::string PutPart(uint64_t start, uint64_t end) {
    const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(std::string(end - start, 'w'), key, {});
    EXPECT_TRUE(enc.ok());
    EXPECT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
    return key;
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
    m.start_time = m.finish_time = clock_->Now();
    m.backup_id = Repository::NewBackupId(m.start_time, m.type);
    m.wal_segment_size = kSeg;
    ASSERT_TRUE(repo_->WriteManifest(m, nullptr).ok());
  }
  void Seal() {
    auto n = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, {.max_wal = 1, .max_age = std::chrono::hours(1)},
                            /*force=*/true);
    ASSERT_TRUE(n.ok()) << n.status().message();
  }
  DatabaseListing List(bool all) {
    auto c = WalCatalog::Load(*repo_, "main", std::nullopt, nullptr, WalCatalog::PartSource::kListed);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return BuildListing("main", *c, all);
  }
  void Tick() { clock_->Advance(std::chrono::minutes(1)); }
};

std::vector<std::string> Types(const DatabaseListing& l) {
  std::vector<std::string> out;
  for (const auto& r : l.rows) out.push_back(r.type);
  return out;
}

TEST_F(BackupListingViewTest, DefaultShowsFullsAndCoveragePerWindowAllShowsEveryLogBackup) {
  PutFull(0x1000028, 0x1000100);
  Tick();
  for (uint64_t s = 0x1000000; s < 0x1400000; s += 0x100000) {
    PutPart(s, s + 0x100000);
    Seal();
    Tick();
  }
  PutFull(0x1400028, 0x1400100);
  Tick();
  PutPart(0x1400000, 0x1500000);
  Seal();
  const DatabaseListing def = List(false);
  EXPECT_EQ(def.status, "ok");
  EXPECT_EQ(def.windows.size(), 2u);
  EXPECT_EQ(Types(def), (std::vector<std::string>{"full", "wal", "full", "wal"}));
  EXPECT_EQ(def.rows[1].base_backup_id, def.rows[0].backup_id);
  ASSERT_TRUE(def.wal);
  EXPECT_EQ(def.wal->first, Lsn{0x1000000});
  EXPECT_EQ(def.wal->second, Lsn{0x1500000});
  const DatabaseListing all = List(true);
  size_t logs = 0;
  for (const auto& r : all.rows) logs += r.type == "log";
  EXPECT_EQ(logs, 5u);
  for (size_t i = 1; i < all.rows.size(); ++i) EXPECT_LE(all.rows[i - 1].start_time, all.rows[i].start_time);
}

TEST_F(BackupListingViewTest, LogBackupWithAMissingObjectIsNotAvailableAndGapsSitInPlace) {
  PutFull(0x1000028, 0x1000100);
  Tick();
  PutPart(0x1000000, 0x1100000);
  Seal();
  Tick();
  const std::string lost = PutPart(0x1100000, 0x1200000);
  Seal();
  Tick();
  PutPart(0x1200000, 0x1300000);
  Seal();
  ASSERT_TRUE(repo_->storage().Delete(lost).ok());
  const DatabaseListing l = List(false);
  EXPECT_EQ(l.status, "broken_chain");
  bool missing_row = false, gap_row = false;
  for (const auto& r : l.rows) {
    if (r.type == "log") {
      EXPECT_EQ(r.status, "missing_objects");  // shown even without --all
      missing_row = true;
    }
    gap_row = gap_row || r.type == "broken_chain";
  }
  EXPECT_TRUE(missing_row);
  EXPECT_TRUE(gap_row);
  for (size_t i = 1; i < l.rows.size(); ++i) EXPECT_LE(l.rows[i - 1].start_time, l.rows[i].start_time);
}

TEST_F(BackupListingViewTest, JsonHasOneObjectPerDatabaseAndOneSchemaForEveryRow) {
  PutFull(0x1000028, 0x1000100);
  Tick();
  PutPart(0x1000000, 0x1100000);
  Seal();
  Tick();
  PutPart(0x1200000, 0x1300000);  // after a hole
  Seal();
  const nlohmann::json j = ListingJson(List(true));
  EXPECT_EQ(j["database"], "main");
  EXPECT_EQ(j["system_identifier"], std::to_string(kSysid));
  EXPECT_TRUE(j["windows"].is_array());
  EXPECT_EQ(j["wal"]["start"], "0/1000000");
  std::set<std::string> types;
  std::vector<std::string> keys;
  for (const auto& row : j["backups"]) {
    std::vector<std::string> mine;
    for (auto& [k, v] : row.items()) mine.push_back(k);
    if (keys.empty()) keys = mine;
    EXPECT_EQ(mine, keys) << row.dump();
    EXPECT_TRUE(row.contains("verified_at"));
    EXPECT_TRUE(row["verified_at"].is_null());
    types.insert(row["type"].get<std::string>());
  }
  EXPECT_EQ(types, (std::set<std::string>{"full", "log", "wal", "broken_chain"}));
}

TEST_F(BackupListingViewTest, NoFullIsNoBackups) {
  PutPart(0x1000000, 0x1100000);
  EXPECT_EQ(List(false).status, "no_backups");
}

}  // namespace
}  // namespace sb
