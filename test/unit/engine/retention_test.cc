// Retention on an in-memory repository: a history of daily full backups with
// WAL parts and log backups between them, then PlanRetention/ApplyRetention at
// chosen times, checked against the rule (spec section 3, rules 6 and 7).
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "common/text.h"
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
  void Day(const ContainerInfo& c, uint32_t tli, int d, uint64_t offset = 0, int skip_part = -1) {
    clock_->Set(kT0 + d * kDay);
    fulls_.push_back(PutBase(c, tli, DayBase(d, offset) + 0x28));
    for (int i = 0; i < kPartsPerDay; ++i) {
      clock_->Set(kT0 + d * kDay + std::chrono::hours(1 + i));
      uint64_t start = DayBase(d, offset) + i * kSeg;
      if (i != skip_part) PutPart(c, tli, start, start + kSeg);
      if (i % 2 == 1) {
        ASSERT_TRUE(SealLogBackups(*repo_, "main", c, kSeg, nullptr, {}, /*force=*/true).ok());
      }
    }
  }

  RetentionPlan Plan(SystemTime now, RetentionOptions options = {}) {
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

TEST_F(RetentionTest, ANewSystemIdentifierMakesTheOldLineagePurgeable) {
  // The old lineage's LSNs are far above the new one's: the floor of one
  // lineage must not be applied to the other.
  for (int d = 0; d < 3; ++d) Day(c1_, 1, d, /*offset=*/1000);
  clock_->Set(kT0 + 3 * kDay);
  auto c2 = repo_->EnsureContainer("main", kOtherSysid, 1, "new system identifier");
  ASSERT_TRUE(c2.ok());
  for (int d = 3; d < 10; ++d) Day(*c2, 1, d);

  auto plan = Plan(kT0 + 9 * kDay + std::chrono::hours(12));
  EXPECT_EQ(plan.anchor_backup_id, fulls_[2].backup_id);
  ExpectPlanPurges(plan, ExpectedPurge(c1_.name, DayBase(2, 1000)));

  auto later = Plan(kT0 + 10 * kDay + std::chrono::hours(12));
  EXPECT_EQ(later.anchor_backup_id, fulls_[3].backup_id);
  ExpectPlanPurges(later, ExpectedPurge(c2->name, DayBase(3), {c1_.name}));
  ASSERT_TRUE(ApplyRetention(*repo_, later).ok());
  ExpectWindowCovers(kT0 + 3 * kDay + std::chrono::hours(12), kOtherSysid);
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
