// WalLookup: a segment in a constant number of storage requests, the fewest
// objects, v1 parts crossing a boundary, timeline switches, and every
// failure to read an error rather than "absent". Plus the streamer's cut at
// segment boundaries.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_lookup.h"
#include "engine/wal/wal_streamer.h"
#include "storage/fault/fault_storage.h"
#include "support/memory_repository.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000012ull;
constexpr uint64_t kSeg = 1ull << 20;  // 1 MiB segments keep the test small

class WalLookupTest : public test::MemoryRepositoryTest {
 protected:
  WalLookupTest() : MemoryRepositoryTest(kSysid) {}

  // A part of `fill` bytes (or a pattern derived from its start when fill is 0).
  std::string PutPart(const ContainerInfo& c, uint32_t tli, uint64_t start, uint64_t end, char fill = 0,
                      EncodeOptions enc_options = {}) {
    std::string plain(end - start, fill);
    if (fill == 0) {
      for (uint64_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>((start + i) * 7 / 4096);
    }
    const std::string key = Repository::WalPartKey("main", c.name, tli, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(plain, key, enc_options);
    EXPECT_TRUE(enc.ok());
    EXPECT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
    return plain;
  }

  WalSource Source(const KeySource* keys = nullptr) {
    return {.database = "main", .system_identifier = kSysid, .segment_size = kSeg, .keys = keys};
  }
};

TEST(SegmentBoundedCut, CutsAtEverySegmentBoundary) {
  EXPECT_EQ(BytesToSegmentEnd(Lsn{0x1000000}, 16ull << 20), 16ull << 20);
  EXPECT_EQ(BytesToSegmentEnd(Lsn{0x1000001}, 16ull << 20), (16ull << 20) - 1);
  EXPECT_EQ(BytesToSegmentEnd(Lsn{0x1FFFFFF}, 16ull << 20), 1u);
  EXPECT_EQ(BytesToSegmentEnd(Lsn{0x2300000}, 1ull << 20), 1ull << 20);
  EXPECT_EQ(BytesToSegmentEnd(Lsn{0x2380000}, 1ull << 20), 0x80000u);
}

// Same requests with 10 and 5000 parts of history elsewhere.
TEST_F(WalLookupTest, ConstantRequestsWhateverTheHistory) {
  const uint64_t target = 0x1000000;  // its own 16 MiB listing block
  std::string want;
  for (int i = 0; i < 4; ++i) want += PutPart(c1_, 1, target + i * kSeg / 4, target + (i + 1) * kSeg / 4);
  auto count_for = [&]() {
    FaultStorage counting(&repo_->storage());
    WalLookup lookup(counting, Source());
    auto seg = lookup.Segment(1, Lsn{target});
    EXPECT_TRUE(seg.ok() && seg->has_value());
    if (seg.ok() && seg->has_value()) {
      EXPECT_EQ((*seg)->bytes, want);
    }
    return counting.CallCount(FaultOp::kAny);
  };
  uint64_t at = 0x40000000;
  auto history = [&](int n) {
    for (int i = 0; i < n; ++i, at += 4096) PutPart(c1_, 1, at, at + 4096, 'h');
  };
  history(10);
  const int64_t small = count_for();
  history(4990);
  const int64_t large = count_for();
  EXPECT_EQ(small, large);
  // 1 LIST of containers, 1 LIST of the segment's block (a part starts at its
  // first byte: no format-1 part of the block before can reach into it), 4 GETs.
  EXPECT_EQ(small, 6);
}

TEST_F(WalLookupTest, FewestObjectsWhenMergedAndSmallPartsOverlap) {
  const uint64_t s = 0x3000000;
  std::string want;
  for (int i = 0; i < 8; ++i) want += PutPart(c1_, 1, s + i * kSeg / 8, s + (i + 1) * kSeg / 8);
  PutPart(c1_, 1, s, s + kSeg);  // the merged object (same pattern)
  FaultStorage counting(&repo_->storage());
  WalLookup lookup(counting, Source());
  auto seg = lookup.Segment(1, Lsn{s});
  ASSERT_TRUE(seg.ok() && seg->has_value()) << seg.status().ToString();
  EXPECT_EQ((*seg)->bytes, want);
  EXPECT_EQ(counting.CallCount(FaultOp::kGet), 1);
}

// Format v1: a stream part of at most 16 MiB may start in the segment before.
TEST_F(WalLookupTest, AV1PartCrossingIntoTheSegmentIsUsed) {
  const uint64_t s = 0x5000000;  // first segment of its block: the crossing part lies in the block before
  std::string want = PutPart(c1_, 1, s - kSeg / 2, s + kSeg / 2).substr(kSeg / 2);
  want += PutPart(c1_, 1, s + kSeg / 2, s + kSeg);
  WalLookup lookup(repo_->storage(), Source());
  auto seg = lookup.Segment(1, Lsn{s});
  ASSERT_TRUE(seg.ok() && seg->has_value()) << seg.status().ToString();
  EXPECT_EQ((*seg)->bytes, want);
  EXPECT_EQ((*seg)->covered, kSeg);
}

TEST_F(WalLookupTest, PastTheNewestWalTheSegmentIsZeroFilledAndAfterItAbsent) {
  const uint64_t s = 0x6000000;
  std::string head = PutPart(c1_, 1, s, s + 0x1000);
  WalLookup lookup(repo_->storage(), Source());
  auto seg = lookup.Segment(1, Lsn{s});
  ASSERT_TRUE(seg.ok() && seg->has_value());
  EXPECT_EQ((*seg)->covered, 0x1000u);
  EXPECT_EQ((*seg)->bytes, head + std::string(kSeg - 0x1000, '\0'));
  auto next = lookup.Segment(1, Lsn{s + kSeg});
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
}

// Before the switch point the segment's bytes are the parent timeline's.
TEST_F(WalLookupTest, ATimelineSwitchTakesTheHeadFromTheParent) {
  const uint64_t s = 0x7000000;
  std::string parent = PutPart(c1_, 1, s, s + kSeg, 'a');
  auto c2 = repo_->EnsureContainer("main", kSysid, 2, "promotion");
  ASSERT_TRUE(c2.ok());
  const std::string hkey = Repository::HistoryKey("main", c2->name, 2);
  auto hist = EncodeObject("1\t0/7080000\tno recovery target specified\n", hkey, {});
  ASSERT_TRUE(repo_->storage().Put(hkey, hist->bytes).ok());
  std::string child = PutPart(*c2, 2, s + kSeg / 2, s + kSeg, 'b');
  WalLookup lookup(repo_->storage(), Source());
  auto seg = lookup.Segment(2, Lsn{s});
  ASSERT_TRUE(seg.ok() && seg->has_value()) << seg.status().ToString();
  EXPECT_EQ((*seg)->bytes, parent.substr(0, kSeg / 2) + child);
  auto history = lookup.History(2);
  ASSERT_TRUE(history.ok() && history->has_value());
  EXPECT_NE((*history)->find("0/7080000"), std::string::npos);
  auto none = lookup.History(3);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST_F(WalLookupTest, AListedPartThatCannotBeReadIsAnErrorNotAbsence) {
  const uint64_t s = 0x8000000;
  PutPart(c1_, 1, s, s + kSeg);
  FaultStorage failing(&repo_->storage());
  failing.FailMatching("/0000000008000000-", Status::NotFound("gone"), FaultOp::kGet);
  WalLookup lookup(failing, Source());
  auto seg = lookup.Segment(1, Lsn{s});
  ASSERT_FALSE(seg.ok());
  EXPECT_FALSE(seg.status().IsNotFound());
  failing.ClearRules();
  failing.FailMatching("/wal/", Status::Unavailable("storage down"), FaultOp::kList);
  auto down = WalLookup(failing, Source()).Segment(1, Lsn{s});
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
}

TEST_F(WalLookupTest, APartWithoutChecksumOrAPlainPartUnderAKeyIsRefused) {
  const uint64_t s = 0x9000000;
  PutPart(c1_, 1, s, s + kSeg, 'x', {.zstd_level = 0});  // stored raw: nothing would catch a flipped byte
  auto seg = WalLookup(repo_->storage(), Source()).Segment(1, Lsn{s});
  ASSERT_FALSE(seg.ok());
  EXPECT_EQ(seg.status().code(), StatusCode::kCorruption);

  const uint64_t t = 0xA000000;
  PutPart(c1_, 1, t, t + kSeg, 'y');
  EncryptionKey key = EncryptionKey::Generate();
  auto plain = WalLookup(repo_->storage(), Source(&key)).Segment(1, Lsn{t});
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().code(), StatusCode::kCorruption);

  // Encrypted parts are read with the key; a flipped byte fails the tag.
  const uint64_t u = 0xB000000;
  std::string want = PutPart(c1_, 1, u, u + kSeg, 0, {.key = &key});
  auto ok = WalLookup(repo_->storage(), Source(&key)).Segment(1, Lsn{u});
  ASSERT_TRUE(ok.ok() && ok->has_value()) << ok.status().ToString();
  EXPECT_EQ((*ok)->bytes, want);
  const std::string k = Repository::WalPartKey("main", c1_.name, 1, Lsn{u}, Lsn{u + kSeg});
  std::string stored = *repo_->storage().Get(k);
  stored[stored.size() / 2] ^= 1;
  ASSERT_TRUE(repo_->storage().Put(k, stored).ok());
  auto bad = WalLookup(repo_->storage(), Source(&key)).Segment(1, Lsn{u});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
}

// WalGet takes the bounded path when given the system identifier and segment size.
TEST_F(WalLookupTest, WalGetWithSegmentSizeReadsNoManifest) {
  const uint64_t s = 0xC000000;
  std::string want = PutPart(c1_, 1, s, s + kSeg);
  // A manifest that cannot be read no longer matters: wal-get does not read manifests.
  ASSERT_TRUE(repo_->storage().Put("db/main/backups/" + c1_.name + "/20270115T080000Z-F-0000.json", "{garbage").ok());
  std::string tmpl = (std::filesystem::temp_directory_path() / "sb-lookup-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string name = WalSegmentName(1, Lsn{s}, kSeg);
  WalGetOptions o{.database = "main", .name = name, .dest = tmpl + "/x", .system_identifier = kSysid,
                  .wal_segment_size = kSeg};
  auto r = WalGet(*repo_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, WalGetOutcome::kRestored);
  std::ifstream in(tmpl + "/x", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, want);
  o.name = WalSegmentName(1, Lsn{s + kSeg}, kSeg);
  auto absent = WalGet(*repo_, o);
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(*absent, WalGetOutcome::kAbsent);
  o.wal_segment_size = 12345;
  EXPECT_FALSE(WalGet(*repo_, o).ok()) << "an invalid segment size must not read as absent";
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace sb
