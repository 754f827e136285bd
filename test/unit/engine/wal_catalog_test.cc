// The chain arithmetic of WalCatalog on an in-memory repository: windows,
// gaps, sealing, timeline crossing and segment assembly.
#include <gtest/gtest.h>

#include <thread>

#include <fmt/core.h>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "storage/memory/memory_storage.h"
#include "support/memory_repository.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000001ull;
constexpr uint64_t kSeg = 16ull << 20;

class WalCatalogTest : public test::MemoryRepositoryTest {
 protected:
  WalCatalogTest() : MemoryRepositoryTest(kSysid) {}

  // WAL bytes are a function of their LSN so assembled ranges can be checked.
  static std::string WalBytes(uint64_t start, uint64_t end, char tag = 0) {
    std::string s(end - start, '\0');
    for (uint64_t i = start; i < end; ++i) s[i - start] = static_cast<char>((i * 131 + tag) & 0xff);
    return s;
  }

  void PutPart(const ContainerInfo& c, uint32_t tli, uint64_t start, uint64_t end, char tag = 0) {
    const std::string key = Repository::WalPartKey("main", c.name, tli, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(WalBytes(start, end, tag), key, {});
    ASSERT_TRUE(enc.ok());
    ASSERT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
  }

  void PutFull(uint32_t tli, uint64_t start, uint64_t end, const std::string& container) {
    BackupManifest m;
    m.database = "main";
    m.system_identifier = kSysid;
    m.container = container;
    m.type = BackupType::kFull;
    m.timeline = tli;
    m.start_lsn = Lsn{start}.ToString();
    m.end_lsn = Lsn{end}.ToString();
    m.start_time = m.finish_time = clock_->Now();
    m.backup_id = Repository::NewBackupId(m.start_time, m.type);
    m.wal_segment_size = kSeg;
    ASSERT_TRUE(repo_->WriteManifest(m, nullptr).ok());
  }

  WalCatalog Load() {
    auto c = WalCatalog::Load(*repo_, "main", std::nullopt);
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::move(c).value();
  }

};

TEST_F(WalCatalogTest, WindowFollowsContiguousPartsFromTheFullBackup) {
  PutFull(1, 0x2000028, 0x2000100, c1_.name);
  PutPart(c1_, 1, 0x1500000, 0x2500000);
  PutPart(c1_, 1, 0x2500000, 0x3000000);
  auto cat = Load();
  auto windows = cat.Windows();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].start_lsn, Lsn{0x2000100});
  EXPECT_EQ(windows[0].end_lsn, Lsn{0x3000000});
  EXPECT_TRUE(cat.Gaps().empty());
}

// A window ends when its newest WAL became durable, to the storage's
// precision: a time target a few hundred milliseconds before that is inside.
TEST_F(WalCatalogTest, WindowEndsAtTheSubSecondDurableTimeOfItsNewestPart) {
  using std::chrono::milliseconds;
  clock_->Advance(milliseconds(100));
  const SystemTime full_at = clock_->Now();
  PutFull(1, 0x2000028, 0x2000100, c1_.name);
  clock_->Advance(milliseconds(300));
  PutPart(c1_, 1, 0x2000000, 0x2400000);
  clock_->Advance(milliseconds(300));
  PutPart(c1_, 1, 0x2400000, 0x2800000);
  auto windows = Load().Windows();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].start_time, full_at);
  EXPECT_EQ(windows[0].end_time, full_at + milliseconds(600));
  EXPECT_EQ(windows[0].end_lsn, Lsn{0x2800000});
}

TEST_F(WalCatalogTest, HoleIsAGapAndEndsTheWindow) {
  PutFull(1, 0x2000028, 0x2000100, c1_.name);
  PutPart(c1_, 1, 0x2000000, 0x2400000);
  PutPart(c1_, 1, 0x2800000, 0x3000000);  // 0x2400000..0x2800000 is missing
  auto cat = Load();
  auto gaps = cat.Gaps();
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].start, Lsn{0x2400000});
  EXPECT_EQ(gaps[0].end, Lsn{0x2800000});
  auto windows = cat.Windows();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].end_lsn, Lsn{0x2400000});

  // A new full backup after the gap opens a second window (a later one: ids sort by time).
  clock_->Advance(std::chrono::minutes(1));
  PutFull(1, 0x2900000, 0x2900100, c1_.name);
  windows = Load().Windows();
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[1].start_lsn, Lsn{0x2900100});
  EXPECT_EQ(windows[1].end_lsn, Lsn{0x3000000});
}

TEST_F(WalCatalogTest, MissingWalRightAfterTheFullBackupIsAGap) {
  PutFull(1, 0x2000028, 0x2000100, c1_.name);
  PutPart(c1_, 1, 0x2200000, 0x2300000);
  auto gaps = Load().Gaps();
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0].start, Lsn{0x2000100});
  EXPECT_EQ(gaps[0].end, Lsn{0x2200000});
}

TEST_F(WalCatalogTest, AssembleJoinsPartsAndStopsAtTheEnd) {
  PutPart(c1_, 1, 0x1000000, 0x1000100);
  PutPart(c1_, 1, 0x1000100, 0x1000400);
  auto cat = Load();
  auto bytes = cat.Assemble(repo_->storage(), 1, Lsn{0x1000000}, Lsn{0x1000000 + kSeg}, nullptr);
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  EXPECT_EQ(*bytes, WalBytes(0x1000000, 0x1000400));
  auto missing = cat.Assemble(repo_->storage(), 1, Lsn{0x5000000}, Lsn{0x5000000 + kSeg}, nullptr);
  EXPECT_TRUE(missing.status().IsNotFound());
}

TEST_F(WalCatalogTest, ChildTimelineTakesItsHeadFromTheParent) {
  PutFull(1, 0x1000028, 0x1000100, c1_.name);
  PutPart(c1_, 1, 0x1000000, 0x1800000, /*tag=*/1);
  auto c2 = repo_->EnsureContainer("main", kSysid, 2, "promotion");
  ASSERT_TRUE(c2.ok());
  const std::string history = "1\t0/1600000\tno recovery target specified\n";
  const std::string hkey = Repository::HistoryKey("main", c2->name, 2);
  ASSERT_TRUE(repo_->storage().Put(hkey, EncodeObject(history, hkey, {})->bytes).ok());
  PutPart(*c2, 2, 0x1600000, 0x1900000, /*tag=*/2);

  auto cat = Load();
  auto windows = cat.Windows();
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].end_timeline, 2u);
  EXPECT_EQ(windows[0].end_lsn, Lsn{0x1900000});
  // Segment 1 on timeline 2: timeline 1's bytes before the switch, timeline 2's after.
  auto seg = cat.Assemble(repo_->storage(), 2, Lsn{0x1000000}, Lsn{0x2000000}, nullptr);
  ASSERT_TRUE(seg.ok()) << seg.status().message();
  EXPECT_EQ(*seg, WalBytes(0x1000000, 0x1600000, 1) + WalBytes(0x1600000, 0x1900000, 2));
  ASSERT_TRUE(cat.HistoryFile(2).has_value());
  EXPECT_EQ(*cat.HistoryFile(2), history);
}

TEST_F(WalCatalogTest, SealingWritesLogBackupsOverRunsWithoutCopying) {
  PutPart(c1_, 1, 0x1000000, 0x1100000);
  PutPart(c1_, 1, 0x1100000, 0x1200000);
  PutPart(c1_, 1, 0x1400000, 0x1500000);  // after a hole: a run of its own
  LogThresholds small{.max_wal = 64ull << 20, .max_age = std::chrono::hours(2)};
  // Below the thresholds only the run closed by the hole is sealed.
  auto n = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, small, /*force=*/false);
  ASSERT_TRUE(n.ok()) << n.status().message();
  EXPECT_EQ(*n, 1);
  clock_->Advance(std::chrono::hours(3));
  n = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, small, false);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);  // the open run is old enough now
  n = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, small, true);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);  // nothing left unsealed
  auto cat = Load();
  ASSERT_EQ(cat.log_backups().size(), 2u);
  EXPECT_EQ(cat.log_backups()[0].start_lsn, "0/1000000");
  EXPECT_EQ(cat.log_backups()[0].end_lsn, "0/1200000");
  // Both parts lie in one segment: compaction merged them into one object.
  ASSERT_EQ(cat.log_backups()[0].archives[0].chunks.size(), 1u);
  EXPECT_EQ(cat.log_backups()[0].archives[0].chunks[0].key,
            Repository::WalPartKey("main", c1_.name, 1, Lsn{0x1000000}, Lsn{0x1200000}));
}

// Sealing reads only the newest log backups (how far each timeline is sealed),
// yet after many seals every part belongs to exactly one log backup.
TEST_F(WalCatalogTest, ManySealsCoverEveryPartOnce) {
  const uint64_t part = 0x100000;
  uint64_t at = 0x2000000;
  int seals = 0;
  for (int i = 0; i < 30; ++i) {
    clock_->Advance(std::chrono::seconds(2));  // distinct, time-ordered backup ids
    PutPart(c1_, 1, at, at + part);
    at += part;
    auto n = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, {}, /*force=*/true);
    ASSERT_TRUE(n.ok()) << n.status().message();
    EXPECT_EQ(*n, 1) << "push " << i;
    seals += *n;
  }
  // A part arriving after its successors were sealed would sit below the mark;
  // nothing writes that way (parts come in LSN order), so a repeat seal adds nothing.
  auto again = SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, {}, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  std::map<std::string, int> cover;
  for (const auto& m : listing->backups) {
    if (m.type != BackupType::kLog) continue;
    for (const ObjectRef* ref : m.AllObjects()) ++cover[ref->key];
  }
  EXPECT_EQ(seals, 30);
  EXPECT_EQ(cover.size(), 30u);
  for (const auto& [key, n] : cover) EXPECT_EQ(n, 1) << key;
}

TEST_F(WalCatalogTest, SealedPartWithChangedBytesIsCorrupt) {
  PutPart(c1_, 1, 0x1000000, 0x1100000);
  ASSERT_TRUE(SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, {}, true).ok());
  // Replace the sealed part with a differently encoded copy of other bytes.
  const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{0x1000000}, Lsn{0x1100000});
  ASSERT_TRUE(repo_->storage().Put(key, EncodeObject(WalBytes(0x1000000, 0x1100000, 9), key, {})->bytes).ok());
  auto bytes = Load().Assemble(repo_->storage(), 1, Lsn{0x1000000}, Lsn{0x2000000}, nullptr);
  EXPECT_EQ(bytes.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bytes.status().message().find(key), std::string::npos);
}

TEST_F(WalCatalogTest, ConcurrentWritersShareOneNewContainer) {
  // The streamer and the first full backup both ask for the timeline-2 container at once.
  for (int round = 0; round < 20; ++round) {
    uint32_t tli = 10 + round;
    std::string a, b;
    std::thread t1([&] { a = repo_->EnsureContainer("main", kSysid, tli, "stream")->name; });
    std::thread t2([&] { b = repo_->EnsureContainer("main", kSysid, tli, "full")->name; });
    t1.join();
    t2.join();
    EXPECT_EQ(a, b) << "round " << round;
  }
  auto forced = repo_->EnsureContainer("main", kSysid, 10, "back from minimal", /*force_new=*/true);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ(forced->name, fmt::format("{}-{:08X}-2", kSysid, 10));
}

TEST(TimelineHistoryTest, ParsesTheLastLine) {
  auto sw = ParseTimelineHistory("1\t0/3000000\tno recovery target specified\n\n2\t0/5000100\tbefore x\n");
  ASSERT_TRUE(sw.has_value());
  EXPECT_EQ(sw->parent, 2u);
  EXPECT_EQ(sw->switch_point, Lsn{0x5000100});
  EXPECT_FALSE(ParseTimelineHistory("").has_value());
}

}  // namespace
}  // namespace sb
