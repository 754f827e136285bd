// Compaction: a sealed run's parts inside one segment become one object the
// log manifest references; a crash after any storage call leaves WAL that
// reads back exactly (bounded lookup and catalog) and that a later seal and
// retention finish; retention deletes a replaced part only on the word of a
// readable manifest.
#include <gtest/gtest.h>

#include "engine/retention/retention.h"
#include "engine/verify/verify.h"
#include "engine/wal/compaction.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_lookup.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000013ull;
constexpr uint64_t kSeg = 1ull << 20;
constexpr uint64_t kBase = 0x2000000;

class CompactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fault_ = std::make_unique<FaultStorage>(&memory_, clock_.get());
    auto repo = Repository::Open(std::make_unique<FaultStorage>(fault_.get(), clock_.get()), true, clock_.get());
    ASSERT_TRUE(repo.ok());
    repo_ = std::move(repo).value();
    auto c = repo_->EnsureContainer("main", kSysid, 1, "test");
    ASSERT_TRUE(c.ok());
    c1_ = *c;
  }

  // Segment 0: 4 parts; segment 1: 3 parts; segment 2: 1 whole part.
  void PutHistory() {
    const uint64_t cuts[] = {0, kSeg / 4, kSeg / 2, kSeg * 3 / 4, kSeg, kSeg + kSeg / 3, kSeg + kSeg / 2, 2 * kSeg,
                             3 * kSeg};
    for (size_t i = 0; i + 1 < std::size(cuts); ++i) PutPart(kBase + cuts[i], kBase + cuts[i + 1]);
  }

  void PutPart(uint64_t start, uint64_t end) {
    std::string plain(end - start, '\0');
    for (uint64_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>((start + i) * 13 / 1000);
    wal_.resize(std::max<size_t>(wal_.size(), end - kBase));
    wal_.replace(start - kBase, plain.size(), plain);
    const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(plain, key, {});
    ASSERT_TRUE(memory_.Put(key, enc->bytes).ok());
  }

  Result<int> Seal() { return SealLogBackups(*repo_, "main", c1_, kSeg, nullptr, {}, /*force=*/true); }

  // Every segment reads back exactly, through the bounded lookup and the catalog.
  void ExpectWalExact() {
    for (uint64_t s = 0; s < 3; ++s) {
      WalLookup lookup(memory_, {.database = "main", .system_identifier = kSysid, .segment_size = kSeg});
      auto seg = lookup.Segment(1, Lsn{kBase + s * kSeg});
      ASSERT_TRUE(seg.ok() && seg->has_value()) << seg.status().ToString();
      EXPECT_EQ((*seg)->bytes, wal_.substr(s * kSeg, kSeg)) << "segment " << s;
    }
    auto cat = WalCatalog::Load(*repo_, "main", kSysid);
    ASSERT_TRUE(cat.ok());
    auto all = cat->Assemble(memory_, 1, Lsn{kBase}, Lsn{kBase + 3 * kSeg}, nullptr);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_EQ(*all, wal_);
    auto listing = repo_->ListBackups("main");
    ASSERT_TRUE(listing.ok());
    if (listing->backups.empty()) return;  // verify has nothing to check (and says so)
    auto report = RunVerify(*repo_, {.database = "main"});
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    for (const auto& p : report->problems) ADD_FAILURE() << p.kind << " " << p.key << ": " << p.detail;
  }

  std::vector<ObjectInfo> Listed(const std::string& prefix) {
    auto all = ListAll(memory_, prefix);
    EXPECT_TRUE(all.ok());
    return all.ok() ? std::move(all).value() : std::vector<ObjectInfo>();
  }

  std::vector<std::string> WalKeys() {
    std::vector<std::string> keys;
    for (const auto& o : Listed("db/main/wal/")) keys.push_back(o.key);
    return keys;
  }

  // What retention's compaction rule would delete now.
  std::vector<std::string> Replaced() {
    auto listing = repo_->ListBackups("main");
    EXPECT_TRUE(listing.ok());
    return PartsReplacedByCompaction("main", listing->backups, Listed("db/main/"));
  }

  std::unique_ptr<ManualClock> clock_ =
      std::make_unique<ManualClock>(std::chrono::system_clock::from_time_t(1'800'000'000));
  MemoryStorage memory_{clock_.get()};
  std::unique_ptr<FaultStorage> fault_;
  std::unique_ptr<Repository> repo_;
  ContainerInfo c1_;
  std::string wal_;
};

TEST_F(CompactionTest, SealingMergesThePartsOfEachSegment) {
  PutHistory();
  auto n = Seal();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->backups.size(), 1u);
  std::vector<std::string> refs;
  for (const ObjectRef* r : listing->backups[0].AllObjects()) refs.push_back(r->key);
  const auto key = [&](uint64_t a, uint64_t b) {
    return Repository::WalPartKey("main", c1_.name, 1, Lsn{kBase + a}, Lsn{kBase + b});
  };
  EXPECT_EQ(refs, (std::vector<std::string>{key(0, kSeg), key(kSeg, 2 * kSeg), key(2 * kSeg, 3 * kSeg)}));
  ExpectWalExact();
  // Retention may now delete the 7 small parts, and only them.
  auto replaced = Replaced();
  EXPECT_EQ(replaced.size(), 7u);
  for (const auto& k : replaced) ASSERT_TRUE(memory_.Delete(k).ok());
  EXPECT_EQ(WalKeys().size(), 3u);
  ExpectWalExact();
}

// A crash after each storage call of the seal (before or after the call
// reaches the storage): the WAL still reads back exactly, a new seal
// finishes the job, and retention then leaves one object per segment.
TEST_F(CompactionTest, ACrashAtAnyStepLeavesExactWalAndAFinishableSeal) {
  PutHistory();
  // How many storage calls one seal makes.
  int64_t calls = 0;
  {
    MemoryStorage copy;
    for (const auto& o : Listed("")) ASSERT_TRUE(copy.Put(o.key, *memory_.Get(o.key)).ok());
    FaultStorage counting(&copy);
    auto repo = Repository::Open(std::make_unique<FaultStorage>(&counting), false, clock_.get());
    ASSERT_TRUE(repo.ok());
    counting.ResetCounts();
    ASSERT_TRUE(SealLogBackups(**repo, "main", c1_, kSeg, nullptr, {}, true).ok());
    calls = counting.CallCount(FaultOp::kAny);
  }
  ASSERT_GT(calls, 5);
  const auto pristine = Listed("");
  std::map<std::string, std::string> saved;
  for (const auto& o : pristine) saved[o.key] = *memory_.Get(o.key);
  for (int64_t step = 1; step <= calls; ++step) {
    for (bool after : {false, true}) {
      SCOPED_TRACE(testing::Message() << "crash at call " << step << (after ? " (after it)" : " (before it)"));
      for (const auto& o : Listed("")) ASSERT_TRUE(memory_.Delete(o.key).ok());
      for (const auto& [k, v] : saved) ASSERT_TRUE(memory_.Put(k, v).ok());
      fault_->ClearRules();
      fault_->Recover();
      fault_->ResetCounts();
      fault_->CrashAfter(FaultOp::kAny, step, after);
      (void)Seal();
      fault_->ClearRules();
      fault_->Recover();
      ExpectWalExact();
      if (HasFailure()) return;
      // Crash during retention's deletion too: delete half of what it would.
      auto replaced = Replaced();
      for (size_t i = 0; i < replaced.size() / 2; ++i) ASSERT_TRUE(memory_.Delete(replaced[i]).ok());
      ExpectWalExact();
      auto again = Seal();
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      for (const auto& k : Replaced()) ASSERT_TRUE(memory_.Delete(k).ok());
      ExpectWalExact();
      // A crash after the manifest leaves one log backup; before it, the
      // second seal wrote it. Either way every segment is one object.
      auto listing = repo_->ListBackups("main");
      ASSERT_TRUE(listing.ok());
      ASSERT_EQ(listing->backups.size(), 1u);
      EXPECT_EQ(WalKeys().size(), 3u);
      if (HasFailure()) return;
    }
  }
}

// A merged object's key holding other bytes (planted, or damaged) is not
// reused: the manifest references the parts themselves.
TEST_F(CompactionTest, AnExistingMergedObjectWithOtherContentIsNotReused) {
  PutHistory();
  const std::string merged = Repository::WalPartKey("main", c1_.name, 1, Lsn{kBase}, Lsn{kBase + kSeg});
  auto enc = EncodeObject(std::string(kSeg, 'Z'), merged, {});
  ASSERT_TRUE(memory_.Put(merged, enc->bytes).ok());
  ASSERT_TRUE(Seal().ok());
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->backups.size(), 1u);
  std::set<std::string> refs;
  for (const ObjectRef* r : listing->backups[0].AllObjects()) refs.insert(r->key);
  EXPECT_FALSE(refs.count(merged));
  EXPECT_EQ(refs.size(), 4u + 1u + 1u);  // segment 0's parts as they are, then the two merged segments
}

// An unreferenced object covering parts (a storage writer could plant one)
// never gets them deleted; neither does a manifest that does not read back.
TEST_F(CompactionTest, RetentionTrustsOnlyReadableManifests) {
  PutHistory();
  const std::string planted = Repository::WalPartKey("main", c1_.name, 1, Lsn{kBase}, Lsn{kBase + 3 * kSeg});
  auto enc = EncodeObject(wal_, planted, {});
  ASSERT_TRUE(memory_.Put(planted, enc->bytes).ok());
  EXPECT_TRUE(Replaced().empty());
  // A forged manifest referencing it: unreadable (bad checksum) → still nothing.
  ASSERT_TRUE(memory_.Put("db/main/backups/" + c1_.name + "/20270115T080000Z-L-0000.json", "{\"forged\":1}").ok());
  EXPECT_TRUE(Replaced().empty());
  // The retention pass itself plans none of the parts either.
  auto plan = PlanRetention(*repo_, "main", clock_->Now(), {.system_identifier = kSysid});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  for (const auto& k : plan->objects_to_delete) EXPECT_EQ(k.find("/wal/"), std::string::npos) << k;
}

TEST(WithoutContainingParts, KeepsTheFinestOfOverlappingParts) {
  auto part = [](uint64_t a, uint64_t b) {
    return WalPart{.key = "k", .container = "c", .timeline = 1, .start = Lsn{a}, .end = Lsn{b}};
  };
  auto out = WithoutContainingParts({part(0, 40), part(0, 10), part(10, 20), part(20, 40), part(40, 50),
                                     part(40, 45), part(45, 50)});
  std::vector<uint64_t> starts;
  for (const auto& p : out) starts.push_back(p.start.value);
  EXPECT_EQ(starts, (std::vector<uint64_t>{0, 10, 20, 40, 45}));
  EXPECT_EQ(out[3].end, Lsn{45});
}

}  // namespace
}  // namespace sb
