// The index of format version 2 (doc/repository.md, "Index"): what it lists
// equals what the manifests say, whatever crashes, concurrent writers or
// tampering happen; its cost does not grow with the history; a lost index
// is rebuilt; a version 1 repository keeps working and is upgraded.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "common/clock.h"
#include "repo/backup_index.h"
#include "repo/reindex.h"
#include "repo/repository.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7100000000000000001ull;
const std::string kContainer = fmt::format("{}-00000001", kSysid);

class BackupIndexTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(true); }

  // (Re)opens the repository over the same memory storage, through a
  // FaultStorage that counts requests and injects crashes.
  void Open(bool create) {
    repo_.reset();
    auto fault = std::make_unique<FaultStorage>(&memory_, &clock_);
    fault_ = fault.get();
    auto repo = Repository::Open(std::move(fault), create, &clock_);
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    repo_ = std::move(repo).value();
  }

  BackupManifest Manifest(BackupType type = BackupType::kFull) {
    clock_.Advance(std::chrono::seconds(1));  // ids are unique per second and suffix
    BackupManifest m;
    m.database = "main";
    m.system_identifier = kSysid;
    m.container = kContainer;
    m.type = type;
    m.timeline = 1;
    m.start_lsn = Lsn{0x2000028 + next_ * 0x1000}.ToString();
    m.end_lsn = Lsn{0x2000100 + next_ * 0x1000}.ToString();
    ++next_;
    m.start_time = m.finish_time = clock_.Now();
    m.backup_id = Repository::NewBackupId(m.start_time, type);
    m.wal_segment_size = 16 << 20;
    return m;
  }

  void Write(int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(repo_->WriteManifest(Manifest(), nullptr).ok());
  }

  static std::set<std::string> Ids(const BackupListing& l) {
    std::set<std::string> ids;
    for (const auto& m : l.backups) ids.insert(m.backup_id);
    return ids;
  }
  std::set<std::string> Listed() {
    auto l = repo_->ListBackups("main");
    EXPECT_TRUE(l.ok()) << l.status().message();
    return l.ok() ? Ids(*l) : std::set<std::string>{};
  }
  std::set<std::string> Truth() {
    auto l = repo_->ListBackupsFromStorage("main");
    EXPECT_TRUE(l.ok()) << l.status().message();
    return l.ok() ? Ids(*l) : std::set<std::string>{};
  }
  std::vector<std::string> Keys(const std::string& prefix) {
    auto all = ListAll(memory_, prefix);
    std::vector<std::string> keys;
    for (const auto& o : *all) keys.push_back(o.key);
    return keys;
  }
  std::vector<std::string> IndexObjects() {
    std::vector<std::string> out;
    for (const auto& k : Keys("db/main/index/")) {
      if (backup_index::LevelOfObjectKey("main", k) >= 0) out.push_back(k);
    }
    return out;
  }

  ManualClock clock_{std::chrono::system_clock::from_time_t(1'800'000'000)};
  MemoryStorage memory_{&clock_};
  FaultStorage* fault_ = nullptr;
  std::unique_ptr<Repository> repo_;
  uint64_t next_ = 0;
};

TEST_F(BackupIndexTest, NewRepositoriesAreVersionTwoAndWritersIndexAndMergeLevelWise) {
  EXPECT_EQ(repo_->format_version(), 2);
  Write(20);
  EXPECT_EQ(Listed(), Truth());
  EXPECT_EQ(Truth().size(), 20u);
  // 20 = 2*8 + 4: two level-1 objects and four level-0 ones, no marker left.
  std::map<int, int> levels;
  for (const auto& k : IndexObjects()) ++levels[backup_index::LevelOfObjectKey("main", k)];
  EXPECT_EQ(levels[0], 4);
  EXPECT_EQ(levels[1], 2);
  EXPECT_TRUE(Keys("db/main/index/pending/").empty());
}

// The point of the index: a refresh in which nothing changed costs one
// listing and no read, and a cold read a bounded number of reads, at 10 as
// at 2000 manifests.
TEST_F(BackupIndexTest, RequestsDoNotGrowWithTheHistory) {
  std::map<int, std::pair<int64_t, int64_t>> cold, warm;  // manifests → (gets, lists)
  int written = 0;
  for (int n : {10, 2000}) {
    Write(n - written);
    written = n;
    IndexCache cache;
    fault_->ResetCounts();
    auto first = repo_->ListBackups("main", &cache);
    ASSERT_TRUE(first.ok());
    ASSERT_EQ(first->backups.size(), static_cast<size_t>(n));
    cold[n] = {fault_->CallCount(FaultOp::kGet), fault_->CallCount(FaultOp::kList)};
    fault_->ResetCounts();
    auto again = repo_->ListBackups("main", &cache);
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again->backups.size(), static_cast<size_t>(n));
    warm[n] = {fault_->CallCount(FaultOp::kGet), fault_->CallCount(FaultOp::kList)};
  }
  for (int n : {10, 2000}) {  // for the record (bench/ measures time); counts are asserted below
    std::printf("[index requests] %d manifests: cold ListBackups %lld gets %lld lists; refresh %lld gets %lld lists\n", n,
                static_cast<long long>(cold[n].first), static_cast<long long>(cold[n].second),
                static_cast<long long>(warm[n].first), static_cast<long long>(warm[n].second));
  }
  EXPECT_EQ(warm[10], std::make_pair(int64_t{0}, int64_t{1}));
  EXPECT_EQ(warm[2000], std::make_pair(int64_t{0}, int64_t{1}));
  // Cold: one read per index object, at most kFanIn - 1 per level (2000 < 8^4).
  EXPECT_LE(cold[2000].first, 4 * (backup_index::kFanIn - 1));
  EXPECT_EQ(cold[2000].second, 1);
  // Writing one more backup costs a bounded number of requests too.
  fault_->ResetCounts();
  Write(1);
  EXPECT_LE(fault_->CallCount(FaultOp::kAny), 8 + 3 * backup_index::kFanIn);
}

// A crash before, inside and after every request of a manifest write with
// its index write and merge: the index lists exactly what the manifests say
// (a marker covers the manifest until its entry exists).
TEST_F(BackupIndexTest, CrashAtEveryStepOfIndexWritingAndMergingListsTheSameBackups) {
  Write(7);  // the next write fills level 0 and merges it
  std::map<std::string, std::string> before;
  for (const auto& k : Keys("")) before[k] = *memory_.Get(k);
  int crashes = 0;
  for (bool call_base_first : {false, true}) {
    for (int64_t step = 1;; ++step) {
      // The same repository before every attempt.
      for (const auto& k : Keys("")) ASSERT_TRUE(memory_.Delete(k).ok());
      for (const auto& [k, v] : before) ASSERT_TRUE(memory_.Put(k, v).ok());
      fault_->ResetCounts();
      fault_->AddRule({.op = FaultOp::kAny,
                       .nth = step,
                       .count = 1,
                       .action = call_base_first ? FaultRule::Action::kCrashAfter : FaultRule::Action::kCrash});
      (void)repo_->WriteManifest(Manifest(), nullptr);
      const bool crashed = fault_->crashed();
      fault_->ClearRules();
      fault_->Recover();
      EXPECT_EQ(Listed(), Truth()) << "crash at request " << step << (call_base_first ? " (after it)" : "");
      if (!crashed) break;  // the write finished before the step
      ++crashes;
      // And the next write (and its merge) repairs nothing by hand: still the same.
      ASSERT_TRUE(repo_->WriteManifest(Manifest(), nullptr).ok());
      EXPECT_EQ(Listed(), Truth()) << "write after a crash at request " << step;
      ASSERT_LT(step, 100);
    }
  }
  EXPECT_GE(crashes, 2 * (4 + backup_index::kFanIn));  // marker, manifest, delta, list, reads, merged put, deletes
}

TEST_F(BackupIndexTest, TwoConcurrentWritersLoseNothing) {
  auto other = Repository::Open(std::make_unique<FaultStorage>(&memory_, &clock_), false, &clock_);
  ASSERT_TRUE(other.ok());
  std::vector<BackupManifest> a, b;
  for (int i = 0; i < 40; ++i) {
    a.push_back(Manifest());
    b.push_back(Manifest(BackupType::kLog));
  }
  std::thread t([&] {
    for (const auto& m : b) EXPECT_TRUE((*other)->WriteManifest(m, nullptr).ok());
  });
  for (const auto& m : a) EXPECT_TRUE(repo_->WriteManifest(m, nullptr).ok());
  t.join();
  EXPECT_EQ(Truth().size(), 80u);
  EXPECT_EQ(Listed(), Truth());
  EXPECT_EQ(Ids(*(*other)->ListBackups("main")), Truth());
}

TEST_F(BackupIndexTest, CorruptIndexObjectIsIgnoredAndTheManifestsAreListed) {
  Write(12);
  auto objects = IndexObjects();
  ASSERT_FALSE(objects.empty());
  ASSERT_TRUE(memory_.Put(objects.front(), "not an index object").ok());
  EXPECT_EQ(Listed(), Truth());
  EXPECT_EQ(Truth().size(), 12u);
  // Rebuilt from the manifests alone.
  auto report = Reindex(*repo_, "main");
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->manifests, 12u);
  EXPECT_EQ(IndexObjects().size(), 1u);
  fault_->ResetCounts();
  const auto listed = Listed();
  EXPECT_EQ(fault_->CallCount(FaultOp::kGet), 1) << "one index object, no manifest read";
  EXPECT_EQ(listed, Truth());
}

// An entry is a manifest's text: tampering with it is caught like tampering
// with the manifest, and the real manifest is read instead.
TEST_F(BackupIndexTest, TamperedEntryIsCheckedLikeAManifestAndTheRealOneRead) {
  Write(3);
  auto objects = IndexObjects();
  ASSERT_EQ(objects.size(), 3u);
  auto stored = memory_.Get(objects[0]);
  auto object = backup_index::Decode("main", objects[0], *stored);
  ASSERT_TRUE(object.ok()) << object.status().message();
  auto& [key, text] = *object->entries.begin();
  const std::string real_end = BackupManifest::FromJson(text, key)->end_lsn;
  std::string forged = text;
  forged.replace(forged.find(real_end), real_end.size(), "0/1");
  object->entries[key] = forged;
  ASSERT_TRUE(memory_.Put(objects[0], backup_index::Encode("main", *object)).ok());
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(Ids(*listing), Truth());
  for (const auto& m : listing->backups) EXPECT_NE(m.end_lsn, "0/1");
  // An entry naming another database's key, or a wrong checksum, makes the object bad.
  EXPECT_FALSE(backup_index::Decode("other", objects[0], *stored).ok());
  std::string flipped = *stored;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_FALSE(backup_index::Decode("main", objects[0], flipped).ok());
}

TEST_F(BackupIndexTest, LostIndexIsRebuiltByReindex) {
  Write(30);
  for (const auto& k : Keys("db/main/index/")) ASSERT_TRUE(memory_.Delete(k).ok());
  EXPECT_EQ(Listed(), Truth()) << "no index at all: every manifest is listed";
  auto report = Reindex(*repo_, "main");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->manifests, 30u);
  EXPECT_EQ(report->full, 30u);
  EXPECT_EQ(IndexObjects().size(), 1u);
  EXPECT_EQ(Listed(), Truth());
}

// A repository written before the index (descriptor version 1): read as it
// is by listing, written without index, and upgraded by reindex.
TEST_F(BackupIndexTest, VersionOneRepositoryWorksUnchangedAndIsUpgraded) {
  // SetUp made a version 2 repository holding nothing else: rewrite its descriptor as an old binary wrote it.
  ASSERT_TRUE(memory_.Put("smartbackup-repo.json",
                          R"({"format": "smartbackup-repository", "version": 1, "created": "2026-01-01T00:00:00Z"})")
                  .ok());
  Open(false);
  EXPECT_EQ(repo_->format_version(), 1);
  const std::string id = repo_->id();
  Write(10);
  EXPECT_TRUE(Keys("db/main/index/").empty()) << "a version 1 repository gets no index";
  EXPECT_EQ(Listed(), Truth());
  EXPECT_EQ(Truth().size(), 10u);
  ASSERT_TRUE(Reindex(*repo_, "main").ok());
  ASSERT_TRUE(repo_->UpgradeToVersion2().ok());
  Open(false);
  EXPECT_EQ(repo_->format_version(), 2);
  EXPECT_EQ(repo_->id(), id) << "the upgrade keeps the repository's name";
  fault_->ResetCounts();
  const auto listed = Listed();
  EXPECT_EQ(fault_->CallCount(FaultOp::kGet), 1);
  EXPECT_EQ(listed, Truth());
  Write(5);
  EXPECT_EQ(Listed(), Truth());
}

// An older smartbackup (format version 1) must refuse a version 2 repository
// rather than write manifests the index would not know; this binary refuses
// version 3 the same way.
TEST_F(BackupIndexTest, NewerFormatVersionIsRefused) {
  ASSERT_TRUE(memory_.Put("smartbackup-repo.json",
                          R"({"format": "smartbackup-repository", "version": 3, "created": "2026-01-01T00:00:00Z"})")
                  .ok());
  auto repo = Repository::Open(std::make_unique<FaultStorage>(&memory_, &clock_), false, &clock_);
  ASSERT_FALSE(repo.ok());
  EXPECT_EQ(repo.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sb
