// Retention on an in-memory repository: a history of daily full backups with
// WAL parts and log backups between them, then PlanRetention/ApplyRetention at
// chosen times, checked against the rule (spec section 3, rules 6 and 7).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "common/text.h"
#include "engine/backup/full_backup.h"
#include "engine/retention/retention.h"
#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "repo/key_store.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000001ull;
constexpr uint64_t kOtherSysid = 7000000000000000002ull;
constexpr uint64_t kSeg = 16ull << 20;
constexpr int kPartsPerDay = 8;  // one segment an hour, sealed two by two
constexpr auto kDay = std::chrono::hours(24);
const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'800'000'000);

// First LSN of day d's WAL; day d's full backup starts just after it.
uint64_t DayBase(int d, uint64_t offset_segments = 0) { return (1 + offset_segments + d * kPartsPerDay) * kSeg; }

std::string IdOfManifestKey(const std::string& key) {
  auto slash = key.rfind('/');
  return key.substr(slash + 1, key.size() - slash - 1 - 5);  // strip ".json"
}

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_ = std::make_unique<ManualClock>(kT0);
    auto repo = Repository::Open(std::make_unique<MemoryStorage>(clock_.get()), true, clock_.get());
    ASSERT_TRUE(repo.ok());
    repo_ = std::move(repo).value();
    auto c = repo_->EnsureContainer("main", kSysid, 1, "first backup");
    ASSERT_TRUE(c.ok());
    c1_ = *c;
  }

  void PutPart(const ContainerInfo& c, uint32_t tli, uint64_t start, uint64_t end) {
    const std::string key = Repository::WalPartKey("main", c.name, tli, Lsn{start}, Lsn{end});
    std::optional<EncryptionKey> single_use;  // as wal-push --public-key makes them
    if (!public_key_.empty()) {
      auto k = NewWrappedDataKey(repo_->storage(), public_key_, key);
      ASSERT_TRUE(k.ok()) << k.status().message();
      part_keys_[key] = WrappedKeyObject(k->key_id());
      single_use = std::move(*k);
    }
    auto enc = EncodeObject(std::string(end - start, 'w'), key, {.key = single_use ? &*single_use : nullptr});
    ASSERT_TRUE(enc.ok());
    ASSERT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
  }

  // A full (or copy-only) backup with two data chunks; takes 30 minutes.
  BackupManifest PutBase(const ContainerInfo& c, uint32_t tli, uint64_t start, BackupType type = BackupType::kFull) {
    BackupManifest m;
    m.database = "main";
    m.system_identifier = c.system_identifier;
    m.container = c.name;
    m.type = type;
    m.timeline = tli;
    m.start_lsn = Lsn{start}.ToString();
    m.end_lsn = Lsn{start + 0x100}.ToString();
    m.start_time = clock_->Now();
    m.backup_id = Repository::NewBackupId(m.start_time, type);
    m.wal_segment_size = kSeg;
    ArchiveRecord base{.index = 0, .name = "base.tar"};
    for (int i = 0; i < 2; ++i) {
      const std::string key = Repository::DataPrefix("main", c.name, m.backup_id) + fmt::format("00-{:06d}", i);
      EXPECT_TRUE(repo_->storage().Put(key, "chunk").ok());
      base.chunks.push_back({.key = key, .raw_size = 5, .stored_size = 5, .sha256 = Sha256Hex("chunk")});
    }
    m.archives.push_back(base);
    clock_->Advance(std::chrono::minutes(30));
    m.finish_time = clock_->Now();
    EXPECT_TRUE(repo_->WriteManifest(m, nullptr).ok());
    return m;
  }

  // Day d: a full backup at midnight, then one WAL segment an hour, sealed
  // into a log backup every two segments. skip_part: a segment that never
  // reaches the repository (a gap).
  // shift: the day starts that much after midnight (a second cluster).
  void Day(const ContainerInfo& c, uint32_t tli, int d, uint64_t offset = 0, int skip_part = -1,
           std::chrono::hours shift = std::chrono::hours(0)) {
    clock_->Set(kT0 + d * kDay + shift);
    fulls_.push_back(PutBase(c, tli, DayBase(d, offset) + 0x28));
    for (int i = 0; i < kPartsPerDay; ++i) {
      clock_->Set(kT0 + d * kDay + shift + std::chrono::hours(1 + i));
      uint64_t start = DayBase(d, offset) + i * kSeg;
      if (i != skip_part) PutPart(c, tli, start, start + kSeg);
      if (i % 2 == 1) {
        ASSERT_TRUE(SealLogBackups(*repo_, "main", c, kSeg, nullptr, {}, /*force=*/true).ok());
      }
    }
  }

  // Plans at `now` on both clocks: the storage's (the ManualClock the
  // MemoryStorage stamps objects with) and the local one.
  RetentionPlan Plan(SystemTime now, RetentionOptions options = {}) {
    clock_->Set(now);
    auto plan = PlanRetention(*repo_, "main", now, options);
    EXPECT_TRUE(plan.ok()) << plan.status().message();
    return std::move(plan).value();
  }

  std::vector<BackupManifest> Backups() {
    auto listing = repo_->ListBackups("main");
    EXPECT_TRUE(listing.ok());
    return listing->backups;
  }

  std::set<std::string> PurgedIds(const RetentionPlan& plan) {
    std::set<std::string> ids;
    for (const auto& k : plan.manifests_to_delete) ids.insert(IdOfManifestKey(k));
    return ids;
  }

  // What the rule should purge for an anchor on this container's lineage
  // whose first WAL segment starts at `floor`: fulls that started below it,
  // log backups and parts ending at or below it. `whole`: containers lost
  // entirely (an older lineage than the anchor's).
  struct Expected {
    std::set<std::string> ids;
    std::set<std::string> objects;
  };
  Expected ExpectedPurge(const std::string& container, uint64_t floor, const std::set<std::string>& whole = {}) {
    Expected e;
    for (const auto& m : Backups()) {
      bool all = whole.count(m.container) > 0;
      if (!all && m.container != container) continue;
      bool purge = all || (m.type == BackupType::kFull && Lsn::Parse(m.start_lsn)->value < floor) ||
                   (m.type == BackupType::kLog && Lsn::Parse(m.end_lsn)->value <= floor);
      if (!purge) continue;
      e.ids.insert(m.backup_id);
      for (const ObjectRef* ref : m.AllObjects()) e.objects.insert(ref->key);
    }
    auto objects = ListAll(repo_->storage(), "db/main/wal/");
    EXPECT_TRUE(objects.ok());
    for (const auto& o : *objects) {
      auto p = Repository::ParseWalPartKey(o.key);
      if (!p) continue;
      if (whole.count(p->container) || (p->container == container && p->end.value <= floor)) e.objects.insert(o.key);
    }
    return e;
  }

  void ExpectPlanPurges(const RetentionPlan& plan, const Expected& e) {
    EXPECT_EQ(PurgedIds(plan), e.ids);
    std::set<std::string> objects(plan.objects_to_delete.begin(), plan.objects_to_delete.end());
    EXPECT_EQ(objects.size(), plan.objects_to_delete.size()) << "duplicates in objects_to_delete";
    EXPECT_EQ(objects, e.objects);
  }

  WalCatalog Catalog(std::optional<uint64_t> sysid = std::nullopt) {
    auto c = WalCatalog::Load(*repo_, "main", sysid);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::move(c).value();
  }

  // After purging, a restore can still reach every point from the cutoff on.
  void ExpectWindowCovers(SystemTime cutoff, std::optional<uint64_t> sysid = std::nullopt) {
    auto cat = Catalog(sysid);
    auto windows = cat.Windows();
    ASSERT_FALSE(windows.empty());
    EXPECT_LE(windows.front().start_time, cutoff);
    EXPECT_TRUE(cat.Gaps().empty());
    const auto& w = windows.front();
    EXPECT_EQ(w.end_lsn, cat.TimelineEnd(w.end_timeline)) << "the oldest kept window reaches the newest WAL";
  }

  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<Repository> repo_;
  std::string public_key_;                         // set: WAL parts get single-use keys
  std::map<std::string, std::string> part_keys_;  // WAL part → its single-use key object
  ContainerInfo c1_;
  std::vector<BackupManifest> fulls_;  // in the order Day() made them
};

TEST_F(RetentionTest, DailyHistoryPurgesBeforeTheAnchorOnly) {
  for (int d = 0; d < 10; ++d) Day(c1_, 1, d);
  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(12);
  const SystemTime cutoff = now - 7 * kDay;  // day 2, 12:00
  auto plan = Plan(now);
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  auto expected = ExpectedPurge(c1_.name, DayBase(2));
  EXPECT_EQ(expected.ids.size(), 2u + 2 * 4);        // fulls of days 0, 1 and their 8 log backups
  EXPECT_EQ(expected.objects.size(), 2u * 2 + 2 * 8);  // their chunks and 16 WAL parts
  ExpectPlanPurges(plan, expected);
  EXPECT_NE(plan.summary.find("purged 2 full, 8 log, 0 copy-only backups, 20 objects"), std::string::npos)
      << plan.summary;
  EXPECT_NE(plan.summary.find("anchor " + fulls_[2].backup_id), std::string::npos) << plan.summary;
  EXPECT_NE(plan.summary.find("window starts " + FormatRfc3339(cutoff)), std::string::npos) << plan.summary;

  // Expiration: when the next full becomes the anchor; none for the newest full.
  EXPECT_EQ(plan.expiration.at(fulls_[0].backup_id), fulls_[1].finish_time + 7 * kDay);
  EXPECT_EQ(plan.expiration.at(fulls_[8].backup_id), fulls_[9].finish_time + 7 * kDay);
  EXPECT_EQ(plan.expiration.count(fulls_[9].backup_id), 0u);
  for (const auto& m : Backups()) {
    if (m.type != BackupType::kLog) continue;
    int day = static_cast<int>((Lsn::Parse(m.start_lsn)->value - DayBase(0)) / (kPartsPerDay * kSeg));
    if (day == 9) {
      EXPECT_EQ(plan.expiration.count(m.backup_id), 0u) << "after the newest full: no expiration yet";
    } else {
      EXPECT_EQ(plan.expiration.at(m.backup_id), fulls_[day + 1].finish_time + 7 * kDay);
    }
  }

  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  for (const auto& k : plan.objects_to_delete) EXPECT_TRUE(repo_->storage().Stat(k).status().IsNotFound()) << k;
  EXPECT_EQ(Backups().size(), 8u + 8 * 4);
  ExpectWindowCovers(cutoff);
  EXPECT_EQ(Catalog().Windows().front().base_backup_id, fulls_[2].backup_id);

  // Applying is final: planning again finds nothing more.
  auto again = Plan(now);
  EXPECT_TRUE(again.manifests_to_delete.empty());
  EXPECT_TRUE(again.objects_to_delete.empty());
  EXPECT_EQ(again.anchor_backup_id, fulls_[2].backup_id);

  // A day later the anchor moves on by one full.
  auto later = Plan(now + kDay);
  EXPECT_EQ(later.anchor_backup_id, fulls_[3].backup_id);
  ExpectPlanPurges(later, ExpectedPurge(c1_.name, DayBase(3)));
}

// wal-push --public-key makes one data key per segment: retention deletes it
// right after its part, and keeps every key whose part stays and every key a
// longer-lived writer (one per stream session or backup) made.
TEST_F(RetentionTest, SingleUseKeysGoRightAfterTheirWalPartsAndOtherKeysStay) {
  const std::string dir = test::MakeTempDirForPostgres("retention-keys");
  ASSERT_TRUE(test::MakeRsaKeyPair(dir, "k"));
  public_key_ = dir + "/k.pub.pem";
  auto session_key = NewWrappedDataKey(repo_->storage(), public_key_);
  ASSERT_TRUE(session_key.ok()) << session_key.status().message();
  for (int d = 0; d < 10; ++d) Day(c1_, 1, d);
  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(12);
  auto plan = Plan(now);
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < plan.objects_to_delete.size(); ++i) position[plan.objects_to_delete[i]] = i;
  int purged_parts = 0, kept_parts = 0;
  for (const auto& [part, key_object] : part_keys_) {
    if (position.count(part)) {
      ++purged_parts;
      ASSERT_TRUE(position.count(key_object)) << "the key of purged " << part << " stays";
      EXPECT_GT(position[key_object], position[part]) << "a key must go after its part";
    } else {
      ++kept_parts;
      EXPECT_FALSE(position.count(key_object)) << "the key of kept " << part << " is purged";
    }
  }
  EXPECT_EQ(purged_parts, 16);
  EXPECT_EQ(kept_parts, 10 * kPartsPerDay - 16);
  EXPECT_FALSE(position.count(WrappedKeyObject(session_key->key_id())));

  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  EXPECT_TRUE(repo_->storage().Stat(WrappedKeyObject(session_key->key_id())).ok());
  auto keys = repo_->storage().List("keys/", "");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->objects.size(), static_cast<size_t>(kept_parts) + 1);
  ExpectWindowCovers(now - 7 * kDay);
  test::RemoveTree(dir);
}

TEST_F(RetentionTest, NothingOldEnoughKeepsEverything) {
  for (int d = 0; d < 3; ++d) Day(c1_, 1, d);
  auto plan = Plan(kT0 + 5 * kDay);
  EXPECT_TRUE(plan.manifests_to_delete.empty());
  EXPECT_TRUE(plan.objects_to_delete.empty());
  EXPECT_EQ(plan.anchor_backup_id, fulls_[0].backup_id);  // where the window starts
  EXPECT_NE(plan.summary.find("chain kept whole"), std::string::npos) << plan.summary;
  // The expirations are already known.
  EXPECT_EQ(plan.expiration.at(fulls_[0].backup_id), fulls_[1].finish_time + 7 * kDay);
}

TEST_F(RetentionTest, NewestFullOlderThanRetentionIsKeptWithItsWalOnALiveCluster) {
  Day(c1_, 1, 0);
  auto plan = Plan(kT0 + 60 * kDay);
  EXPECT_EQ(plan.anchor_backup_id, fulls_[0].backup_id);
  EXPECT_TRUE(plan.manifests_to_delete.empty());
  EXPECT_TRUE(plan.objects_to_delete.empty());
  EXPECT_EQ(plan.expiration.count(fulls_[0].backup_id), 0u);

  Day(c1_, 1, 1);
  // WAL archived after the last full, still unsealed.
  PutPart(c1_, 1, DayBase(2), DayBase(2) + kSeg);
  auto later = Plan(kT0 + 90 * kDay);
  EXPECT_EQ(later.anchor_backup_id, fulls_[1].backup_id);
  ExpectPlanPurges(later, ExpectedPurge(c1_.name, DayBase(1)));
  ASSERT_TRUE(ApplyRetention(*repo_, later).ok());
  EXPECT_TRUE(repo_->storage().Stat(Repository::WalPartKey("main", c1_.name, 1, Lsn{DayBase(2)},
                                                            Lsn{DayBase(2) + kSeg})).ok());
  EXPECT_EQ(Backups().size(), 1u + 4);
  ExpectWindowCovers(kT0 + 90 * kDay - 7 * kDay);
}

TEST_F(RetentionTest, DroppedClusterKeepsAllUntilRetentionElapsesThenLosesAll) {
  for (int d = 0; d < 4; ++d) Day(c1_, 1, d);
  const SystemTime last = kT0 + 3 * kDay + std::chrono::hours(8);  // the last log backup
  RetentionOptions dropped{.cluster_live = false};

  auto before = Plan(last + 7 * kDay - std::chrono::minutes(1), dropped);
  EXPECT_TRUE(before.manifests_to_delete.empty());
  EXPECT_TRUE(before.objects_to_delete.empty());
  for (const auto& m : Backups()) EXPECT_EQ(before.expiration.at(m.backup_id), last + 7 * kDay);
  // A live cluster at that time would already have purged the old fulls.
  EXPECT_FALSE(Plan(last + 7 * kDay - std::chrono::minutes(1)).manifests_to_delete.empty());

  auto after = Plan(last + 7 * kDay, dropped);
  EXPECT_EQ(after.manifests_to_delete.size(), 4u + 4 * 4);
  ASSERT_TRUE(ApplyRetention(*repo_, after).ok());
  auto left = ListAll(repo_->storage(), "db/");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << left->front().key;
  EXPECT_TRUE(repo_->ListContainers("main")->empty());
  EXPECT_TRUE(repo_->ListDatabases()->empty());
  EXPECT_NE(after.summary.find("dropped cluster"), std::string::npos) << after.summary;
}

TEST_F(RetentionTest, CopyOnlyExpiresOnItsOwnDateAndIsNeverTheAnchor) {
  std::vector<BackupManifest> copies;
  for (int d = 0; d < 10; ++d) {
    Day(c1_, 1, d);
    if (d == 1 || d == 2 || d == 5) {
      clock_->Set(kT0 + d * kDay + std::chrono::hours(10));
      copies.push_back(PutBase(c1_, 1, DayBase(d) + 7 * kSeg + 0x28, BackupType::kCopyOnly));
    }
  }
  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(12);
  auto plan = Plan(now);
  // The day-2 copy-only finished after the day-2 full and before the cutoff:
  // as a full it would be the anchor. It is not.
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  auto expected = ExpectedPurge(c1_.name, DayBase(2));
  for (int i : {0, 1}) {  // days 1 and 2: finish + 7 days is past
    expected.ids.insert(copies[i].backup_id);
    for (const ObjectRef* ref : copies[i].AllObjects()) expected.objects.insert(ref->key);
  }
  ExpectPlanPurges(plan, expected);
  for (const auto& c : copies) EXPECT_EQ(plan.expiration.at(c.backup_id), c.finish_time + 7 * kDay);
  EXPECT_NE(plan.summary.find("2 copy-only"), std::string::npos) << plan.summary;
}

TEST_F(RetentionTest, LeftoversGoOnlyAfterTheGracePeriodWithoutActivity) {
  Day(c1_, 1, 0);
  const SystemTime t = clock_->Now();
  auto put = [&](const std::string& id, int n) {
    const std::string key = Repository::DataPrefix("main", c1_.name, id) + fmt::format("00-{:06d}", n);
    EXPECT_TRUE(repo_->storage().Put(key, "x").ok());
    return key;
  };
  const std::string a0 = put("20270115T000000Z-F-aaaa", 0), a1 = put("20270115T000000Z-F-aaaa", 1);
  const std::string b0 = put("20270115T000000Z-F-bbbb", 0);
  // A backup whose manifest exists but is unreadable is not a leftover.
  const std::string d0 = put("20270115T000000Z-F-dddd", 0);
  ASSERT_TRUE(repo_->storage().Put(Repository::ManifestKey("main", c1_.name, "20270115T000000Z-F-dddd"), "{").ok());
  clock_->Set(t + std::chrono::hours(5));
  const std::string b1 = put("20270115T000000Z-F-bbbb", 1);  // still being written
  const std::string c0 = put("20270115T000000Z-F-cccc", 0);

  auto plan = Plan(t + std::chrono::hours(7));
  EXPECT_TRUE(plan.manifests_to_delete.empty());
  std::set<std::string> objects(plan.objects_to_delete.begin(), plan.objects_to_delete.end());
  EXPECT_EQ(objects, (std::set<std::string>{a0, a1}));
  EXPECT_NE(plan.summary.find("(1 of leftovers)"), std::string::npos) << plan.summary;

  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  EXPECT_TRUE(repo_->storage().Stat(a0).status().IsNotFound());
  for (const auto& k : {b0, b1, c0, d0}) EXPECT_TRUE(repo_->storage().Stat(k).ok()) << k;
  for (const ObjectRef* ref : fulls_[0].AllObjects()) EXPECT_TRUE(repo_->storage().Stat(ref->key).ok());

  // Once b and c are idle for the grace period they go too; d never does.
  auto later = Plan(t + std::chrono::hours(12));
  std::set<std::string> later_objects(later.objects_to_delete.begin(), later.objects_to_delete.end());
  EXPECT_EQ(later_objects, (std::set<std::string>{b0, b1, c0}));
}

TEST_F(RetentionTest, AChainGapDoesNotPurgeAnythingAfterTheAnchor) {
  for (int d = 0; d < 10; ++d) Day(c1_, 1, d, 0, /*skip_part=*/(d == 1 || d == 4) ? 3 : -1);
  ASSERT_EQ(Catalog().Gaps().size(), 2u);
  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(12);
  auto plan = Plan(now);
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  auto expected = ExpectedPurge(c1_.name, DayBase(2));
  ExpectPlanPurges(plan, expected);
  for (const auto& m : Backups()) {
    if (expected.ids.count(m.backup_id)) {
      EXPECT_LE(m.finish_time, fulls_[2].finish_time);
    }
  }
  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  auto cat = Catalog();
  auto gaps = cat.Gaps();
  ASSERT_EQ(gaps.size(), 1u);  // the day-4 gap is still there, and so is everything around it
  EXPECT_EQ(gaps[0].start, Lsn{DayBase(4) + 3 * kSeg});
  auto windows = cat.Windows();
  ASSERT_EQ(windows.size(), 8u);
  EXPECT_EQ(windows.front().base_backup_id, fulls_[2].backup_id);
  EXPECT_EQ(windows.front().end_lsn, Lsn{DayBase(4) + 3 * kSeg});
  EXPECT_EQ(windows.back().end_lsn, Lsn{DayBase(10)});
}

TEST_F(RetentionTest, FailoverPurgesTheOldContainerOnlyOnceTheAnchorIsInTheNewOne) {
  for (int d = 0; d < 3; ++d) Day(c1_, 1, d);
  clock_->Set(kT0 + 3 * kDay);
  auto c2 = repo_->EnsureContainer("main", kSysid, 2, "promotion");
  ASSERT_TRUE(c2.ok());
  const std::string history = fmt::format("1\t{}\tno recovery target specified\n", Lsn{DayBase(3)}.ToString());
  const std::string hkey = Repository::HistoryKey("main", c2->name, 2);
  ASSERT_TRUE(repo_->storage().Put(hkey, EncodeObject(history, hkey, {})->bytes).ok());
  for (int d = 3; d < 10; ++d) Day(*c2, 2, d);

  // Anchor still in the old container: only what precedes it goes.
  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(12);
  auto plan = Plan(now);
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  ExpectPlanPurges(plan, ExpectedPurge(c1_.name, DayBase(2)));

  // A day later the anchor is the first full of the new container: the old
  // container is older and not needed to roll forward from it.
  auto later = Plan(now + kDay);
  EXPECT_EQ(later.anchor_backup_id, fulls_[3].backup_id);
  ExpectPlanPurges(later, ExpectedPurge(c2->name, DayBase(3), {c1_.name}));
  for (const auto& id : PurgedIds(later)) {
    EXPECT_EQ(repo_->storage().Stat(Repository::ManifestKey("main", c1_.name, id)).ok(), true) << id;
  }
  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  ASSERT_TRUE(ApplyRetention(*repo_, later).ok());
  EXPECT_TRUE(repo_->storage().Stat(hkey).ok());
  for (const auto& m : Backups()) EXPECT_EQ(m.container, c2->name);
  ExpectWindowCovers(now + kDay - 7 * kDay);
}

TEST_F(RetentionTest, AnAncestorTimelineKeepsTheWalOfTheAnchorsFirstSegment) {
  for (int d = 0; d < 3; ++d) Day(c1_, 1, d);
  // Promotion in the middle of a segment; the new container's first full
  // starts in that same segment, which wal-get assembles partly from timeline 1.
  clock_->Set(kT0 + 3 * kDay);
  const uint64_t switch_point = DayBase(2) + 7 * kSeg + 0x800000;
  auto c2 = repo_->EnsureContainer("main", kSysid, 2, "promotion");
  ASSERT_TRUE(c2.ok());
  const std::string history = fmt::format("1\t{}\tno recovery target specified\n", Lsn{switch_point}.ToString());
  const std::string hkey = Repository::HistoryKey("main", c2->name, 2);
  ASSERT_TRUE(repo_->storage().Put(hkey, EncodeObject(history, hkey, {})->bytes).ok());
  fulls_.push_back(PutBase(*c2, 2, switch_point + 0x28));
  PutPart(*c2, 2, switch_point, DayBase(3));
  ASSERT_TRUE(SealLogBackups(*repo_, "main", *c2, kSeg, nullptr, {}, true).ok());

  auto plan = Plan(kT0 + 11 * kDay);
  EXPECT_EQ(plan.anchor_backup_id, fulls_[3].backup_id);
  auto expected = ExpectedPurge(c2->name, 0, {c1_.name});
  // Kept from the old container: the WAL of timeline 1 in the segment holding
  // the anchor's start (the last part and the day-2 log backup sealing it).
  const std::string last_part =
      Repository::WalPartKey("main", c1_.name, 1, Lsn{DayBase(2) + 7 * kSeg}, Lsn{DayBase(3)});
  expected.objects.erase(last_part);
  std::string last_log;
  for (const auto& m : Backups()) {
    if (m.type == BackupType::kLog && m.container == c1_.name && m.end_lsn == Lsn{DayBase(3)}.ToString()) {
      last_log = m.backup_id;
      for (const ObjectRef* ref : m.AllObjects()) expected.objects.erase(ref->key);
    }
  }
  ASSERT_FALSE(last_log.empty());
  expected.ids.erase(last_log);
  ExpectPlanPurges(plan, expected);
  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  // The segment the anchor starts in still assembles across the switch.
  auto cat = Catalog();
  auto seg = cat.Assemble(repo_->storage(), 2, Lsn{DayBase(2) + 7 * kSeg}, Lsn{DayBase(3)}, nullptr);
  ASSERT_TRUE(seg.ok()) << seg.status().message();
  EXPECT_EQ(seg->size(), kSeg);
}

// A new system identifier is a new cluster (re-initdb, pg_upgrade): for the
// live one, the old cluster under the same name is not its chain. It is kept
// whole until retention has elapsed since its newest object, then goes
// entirely, descriptor included.
TEST_F(RetentionTest, AnOldSystemIdentifierIsKeptWholeUntilItsRetentionElapses) {
  // The old lineage's LSNs are far above the new one's: the floor of one
  // lineage must not be applied to the other.
  for (int d = 0; d < 3; ++d) Day(c1_, 1, d, /*offset=*/1000);
  clock_->Set(kT0 + 3 * kDay);
  auto c2 = repo_->EnsureContainer("main", kOtherSysid, 1, "new system identifier");
  ASSERT_TRUE(c2.ok());
  for (int d = 3; d < 10; ++d) Day(*c2, 1, d);
  const RetentionOptions live{.system_identifier = kOtherSysid};
  const SystemTime old_last = kT0 + 2 * kDay + std::chrono::hours(kPartsPerDay);  // its last WAL part

  auto plan = Plan(old_last + 7 * kDay - std::chrono::minutes(1), live);
  EXPECT_TRUE(plan.manifests_to_delete.empty());
  EXPECT_TRUE(plan.objects_to_delete.empty());
  EXPECT_EQ(plan.anchor_backup_id, fulls_[3].backup_id);
  EXPECT_EQ(plan.expiration.at(fulls_[0].backup_id), old_last + 7 * kDay);
  EXPECT_NE(plan.summary.find("not this cluster: kept until " + FormatRfc3339(old_last + 7 * kDay)),
            std::string::npos)
      << plan.summary;

  auto later = Plan(kT0 + 10 * kDay + std::chrono::hours(12), live);
  EXPECT_EQ(later.anchor_backup_id, fulls_[3].backup_id);
  auto expected = ExpectedPurge(c2->name, DayBase(3), {c1_.name});
  expected.objects.insert(Repository::ContainerKey("main", c1_.name));
  ExpectPlanPurges(later, expected);
  EXPECT_EQ(later.objects_to_delete.back(), Repository::ContainerKey("main", c1_.name)) << "the descriptor goes last";
  ASSERT_TRUE(ApplyRetention(*repo_, later).ok());
  auto containers = repo_->ListContainers("main");
  ASSERT_TRUE(containers.ok());
  ASSERT_EQ(containers->size(), 1u);
  EXPECT_EQ(containers->front().name, c2->name);
  ExpectWindowCovers(kT0 + 3 * kDay + std::chrono::hours(12), kOtherSysid);
}

// Two hosts whose clusters got one name (Debian's "15-main") share a storage
// target: each host's retention purges its own chain only, and the purge
// verb (no system identifier) plans each on its own, each keeping its newest
// restorable set.
TEST_F(RetentionTest, TwoSystemIdentifiersUnderOneNameNeverPurgeEachOther) {
  auto c2 = repo_->EnsureContainer("main", kOtherSysid, 1, "first backup");
  ASSERT_TRUE(c2.ok());
  std::vector<BackupManifest> other_fulls;
  for (int d = 0; d < 10; ++d) {
    Day(c1_, 1, d);
    // The other host backs up twelve hours later each day: its fulls are the
    // newest before any cutoff, so one chain over both would anchor on them.
    Day(*c2, 1, d, 0, -1, std::chrono::hours(12));
    other_fulls.push_back(fulls_.back());
    fulls_.pop_back();
  }
  auto other_objects = [&] {
    std::set<std::string> keys;
    for (const char* area : {"backups", "data", "wal"}) {
      auto listed = ListAll(repo_->storage(), fmt::format("db/main/{}/{}/", area, c2->name));
      EXPECT_TRUE(listed.ok());
      for (const auto& o : *listed) keys.insert(o.key);
    }
    return keys;
  };
  const std::set<std::string> other_before = other_objects();
  ASSERT_EQ(other_before.size(), 10u * (1 + 2 + 4 + kPartsPerDay));  // full + 2 chunks + 4 log + 8 parts a day

  const SystemTime now = kT0 + 9 * kDay + std::chrono::hours(23);
  auto plan = Plan(now, {.system_identifier = kSysid});
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  ExpectPlanPurges(plan, ExpectedPurge(c1_.name, DayBase(2)));
  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  EXPECT_EQ(other_objects(), other_before) << "the other cluster lost objects";
  ExpectWindowCovers(now - 7 * kDay, kSysid);

  // The purge verb: each cluster its own chain, neither loses its window.
  auto both = Plan(now);
  std::set<std::string> purged(both.objects_to_delete.begin(), both.objects_to_delete.end());
  for (const auto& f : other_fulls) {
    bool gone = both.expiration.count(f.backup_id) && PurgedIds(both).count(f.backup_id);
    EXPECT_EQ(gone, f.backup_id == other_fulls[0].backup_id || f.backup_id == other_fulls[1].backup_id)
        << f.backup_id;
  }
  ASSERT_TRUE(ApplyRetention(*repo_, both).ok());
  ExpectWindowCovers(now - 7 * kDay, kSysid);
  ExpectWindowCovers(now - 7 * kDay, kOtherSysid);
  EXPECT_EQ(Catalog(kOtherSysid).Windows().front().base_backup_id, other_fulls[2].backup_id);
}

// A manifest copied under another name (or edited to match its new name)
// must not make retention delete the backup it describes.
TEST_F(RetentionTest, ACopyOfTheNewestManifestNeverCostsTheNewestBackup) {
  for (int d = 0; d < 10; ++d) Day(c1_, 1, d);
  const BackupManifest& newest = fulls_.back();
  const std::string newest_key = Repository::ManifestKey("main", c1_.name, newest.backup_id);
  auto text = repo_->storage().Get(newest_key);
  ASSERT_TRUE(text.ok());
  // A verbatim copy under an older-looking name.
  const std::string copy_key = Repository::ManifestKey("main", c1_.name, "20260101T000000Z-F-0000");
  ASSERT_TRUE(repo_->storage().Put(copy_key, *text).ok());
  // An edited copy whose content matches its name and claims to be newer,
  // with no data of its own (its objects are the newest backup's).
  BackupManifest forged = newest;
  forged.backup_id = "20270125T000000Z-F-ffff";
  forged.finish_time = newest.finish_time + std::chrono::hours(1);
  ASSERT_TRUE(repo_->WriteManifest(forged, nullptr).ok());

  // Long after the last backup: every full is older than the window start,
  // so only the live guard keeps the newest one.
  auto plan = Plan(kT0 + 60 * kDay);
  EXPECT_EQ(plan.anchor_backup_id, newest.backup_id);
  ASSERT_TRUE(ApplyRetention(*repo_, plan).ok());
  EXPECT_TRUE(repo_->ReadManifest(newest_key).ok());
  for (const ObjectRef* ref : newest.AllObjects()) {
    auto st = repo_->storage().Stat(ref->key);
    ASSERT_TRUE(st.ok()) << ref->key;
    EXPECT_EQ(st->size, ref->stored_size);
  }
  // The newest backup still restores with the WAL after it.
  auto cat = Catalog();
  bool window = false;
  for (const auto& w : cat.Windows()) window = window || w.base_backup_id == newest.backup_id;
  EXPECT_TRUE(window);
  for (const auto& k : plan.objects_to_delete) {
    EXPECT_EQ(k.find(newest.backup_id), std::string::npos) << k;
  }
  for (const auto& k : plan.manifests_to_delete) EXPECT_NE(k, newest_key);
}

// A local clock hours ahead of the storage's would make a running backup's
// first chunks look abandoned: the pass is refused. Ages are the storage's.
TEST_F(RetentionTest, ALocalClockFarAheadRefusesThePurgeAndARunningBackupKeepsItsChunks) {
  Day(c1_, 1, 0);
  const std::string dir = Repository::DataPrefix("main", c1_.name, "20270116T000000Z-F-aaaa");
  const SystemTime t = clock_->Now();
  std::vector<std::string> chunks;
  for (int i = 0; i < 3; ++i) {
    clock_->Set(t + i * std::chrono::minutes(30));
    chunks.push_back(dir + fmt::format("00-{:06d}", i));
    ASSERT_TRUE(repo_->storage().Put(chunks.back(), "chunk").ok());
  }
  const SystemTime storage_now = clock_->Now();  // the backup is still writing
  const RetentionOptions options{.leftover_grace = std::chrono::hours(4)};

  auto skewed = PlanRetention(*repo_, "main", storage_now + std::chrono::hours(5), options);
  if (skewed.ok()) {
    ASSERT_TRUE(ApplyRetention(*repo_, *skewed).ok());
  }
  ASSERT_FALSE(skewed.ok()) << skewed->summary;
  EXPECT_EQ(skewed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(skewed.status().message().find("local clock"), std::string::npos) << skewed.status().message();
  for (const auto& k : chunks) EXPECT_TRUE(repo_->storage().Stat(k).ok()) << k;

  // A few minutes ahead is tolerated; the chunks are young by the storage's clock.
  auto slight = PlanRetention(*repo_, "main", storage_now + std::chrono::minutes(4), options);
  ASSERT_TRUE(slight.ok()) << slight.status().message();
  EXPECT_TRUE(slight->objects_to_delete.empty());
  EXPECT_EQ(slight->storage_now, storage_now);

  // A local clock behind does not delay it: by the storage's clock the
  // backup has been idle past the grace period, so its data is a leftover.
  clock_->Set(storage_now + std::chrono::hours(5));
  auto behind = PlanRetention(*repo_, "main", storage_now, options);
  ASSERT_TRUE(behind.ok()) << behind.status().message();
  EXPECT_EQ(std::set<std::string>(behind->objects_to_delete.begin(), behind->objects_to_delete.end()),
            std::set<std::string>(chunks.begin(), chunks.end()));
}

// Data without a manifest is never a leftover while a full backup holds the
// database's lease (a backup stalled past the grace period).
TEST_F(RetentionTest, ALeasedBackupKeepsItsChunksPastTheGracePeriod) {
  Day(c1_, 1, 0);
  const std::string chunk = Repository::DataPrefix("main", c1_.name, "20270116T000000Z-F-bbbb") + "00-000000";
  ASSERT_TRUE(repo_->storage().Put(chunk, "chunk").ok());
  // A day's ttl stands for a job renewing its lease all along.
  auto lease = repo_->storage().AcquireLease("db/main/locks/full", {.ttl = std::chrono::hours(24), .owner = "job"});
  ASSERT_TRUE(lease.ok());
  auto held = Plan(clock_->Now() + std::chrono::hours(7));
  ASSERT_TRUE(ApplyRetention(*repo_, held).ok());
  EXPECT_TRUE(repo_->storage().Stat(chunk).ok());
  EXPECT_NE(held.summary.find("leftovers kept: a full backup holds the lease"), std::string::npos) << held.summary;

  ASSERT_TRUE((*lease)->Release().ok());
  auto free = Plan(clock_->Now());
  EXPECT_EQ(free.objects_to_delete, std::vector<std::string>{chunk});
  // The lease check took no lease for good: a backup can take it again.
  EXPECT_TRUE(repo_->storage().AcquireLease("db/main/locks/full", {.owner = "next job"}).ok());
}

// Centuries of retention saturate to "never": nothing wraps into the past.
TEST_F(RetentionTest, AHugeRetentionPurgesNothing) {
  for (int d = 0; d < 4; ++d) {
    Day(c1_, 1, d);
    clock_->Set(kT0 + d * kDay + std::chrono::hours(10));
    PutBase(c1_, 1, DayBase(d) + 7 * kSeg + 0x28, BackupType::kCopyOnly);
  }
  const SystemTime now = kT0 + 9 * kDay;
  for (auto retention : {std::chrono::milliseconds(std::chrono::hours(24) * 99999),
                         std::chrono::milliseconds(std::chrono::hours(24) * 999999999LL),
                         std::chrono::milliseconds::max()}) {
    for (bool live : {true, false}) {
      auto plan = Plan(now, {.retention = retention, .cluster_live = live});
      EXPECT_TRUE(plan.manifests_to_delete.empty()) << retention.count() << " live " << live << ": " << plan.summary;
      EXPECT_TRUE(plan.objects_to_delete.empty()) << retention.count() << " live " << live;
      for (const auto& [id, when] : plan.expiration) EXPECT_GT(when, now) << id;
    }
  }
  EXPECT_EQ(Backups().size(), 4u * (2 + 4));
}

// The last step of a full backup re-checks its objects: one deleted (or cut
// short) while the backup ran means no manifest.
TEST_F(RetentionTest, AChunkDeletedBeforeTheManifestMeansNoManifest) {
  BackupManifest m;
  m.database = "main";
  m.system_identifier = kSysid;
  m.container = c1_.name;
  m.type = BackupType::kFull;
  m.timeline = 1;
  m.start_lsn = Lsn{DayBase(0)}.ToString();
  m.end_lsn = Lsn{DayBase(0) + 0x100}.ToString();
  m.start_time = clock_->Now();
  m.backup_id = Repository::NewBackupId(m.start_time, BackupType::kFull);
  m.wal_segment_size = kSeg;
  ArchiveRecord base{.index = 0, .name = "base.tar"};
  for (int i = 0; i < 3; ++i) {
    const std::string key = Repository::DataPrefix("main", c1_.name, m.backup_id) + fmt::format("00-{:06d}", i);
    ASSERT_TRUE(repo_->storage().Put(key, "chunk").ok());
    base.chunks.push_back({.key = key, .raw_size = 5, .stored_size = 5, .sha256 = Sha256Hex("chunk")});
  }
  m.archives.push_back(base);
  m.finish_time = clock_->Now();
  const std::string manifest = Repository::ManifestKey("main", c1_.name, m.backup_id);

  ASSERT_TRUE(repo_->storage().Delete(base.chunks[1].key).ok());
  Status s = WriteCheckedManifest(*repo_, m, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.message();
  EXPECT_NE(s.message().find(base.chunks[1].key), std::string::npos) << s.message();
  EXPECT_TRUE(repo_->storage().Stat(manifest).status().IsNotFound());

  ASSERT_TRUE(repo_->storage().Put(base.chunks[1].key, "chunk, but longer").ok());
  s = WriteCheckedManifest(*repo_, m, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.message();
  EXPECT_TRUE(repo_->storage().Stat(manifest).status().IsNotFound());

  ASSERT_TRUE(repo_->storage().Put(base.chunks[1].key, "chunk").ok());
  ASSERT_TRUE(WriteCheckedManifest(*repo_, m, nullptr).ok());
  EXPECT_TRUE(repo_->ReadManifest(manifest).ok());
}

TEST_F(RetentionTest, ApplyStopsAtTheFirstErrorAndARetryFinishes) {
  for (int d = 0; d < 10; ++d) Day(c1_, 1, d);
  auto plan = Plan(kT0 + 9 * kDay + std::chrono::hours(12));
  ASSERT_GE(plan.manifests_to_delete.size(), 2u);
  auto* fault = new FaultStorage(&repo_->storage(), clock_.get());
  auto faulty = Repository::Open(std::unique_ptr<Storage>(fault), false, clock_.get());
  ASSERT_TRUE(faulty.ok());
  const std::string failing = plan.manifests_to_delete[1];
  fault->FailMatching(failing, Status::IoError("injected"), FaultOp::kDelete);
  Status s = ApplyRetention(**faulty, plan);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(failing), std::string::npos) << s.message();
  EXPECT_TRUE(repo_->storage().Stat(plan.manifests_to_delete[0]).status().IsNotFound());
  EXPECT_TRUE(repo_->storage().Stat(failing).ok());
  for (const auto& k : plan.objects_to_delete) EXPECT_TRUE(repo_->storage().Stat(k).ok()) << "objects after manifests";

  fault->ClearRules();
  ASSERT_TRUE(ApplyRetention(**faulty, plan).ok());
  ASSERT_TRUE(ApplyRetention(**faulty, plan).ok());  // idempotent
  EXPECT_TRUE(Plan(kT0 + 9 * kDay + std::chrono::hours(12)).manifests_to_delete.empty());
}

}  // namespace
}  // namespace sb
