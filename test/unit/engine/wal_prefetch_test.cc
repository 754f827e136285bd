// The prefetch spool: the worker keeps at most `depth` complete segments
// ahead of recovery; wal-get takes only valid files; a dead worker or a bad
// spool costs a direct fetch, never a wrong "absent".
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/wal/wal_prefetch.h"
#include "support/memory_repository.h"
#include "support/wait.h"

namespace sb {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kSysid = 7000000000000000014ull;
constexpr uint64_t kSeg = 1ull << 20;
constexpr uint64_t kFirst = 0x3000000;
constexpr int kSegments = 12;

class WalPrefetchTest : public test::MemoryRepositoryTest {
 protected:
  WalPrefetchTest() : MemoryRepositoryTest(kSysid) {}
  void SetUp() override {
    MemoryRepositoryTest::SetUp();
    if (HasFatalFailure()) return;
    std::string tmpl = (fs::temp_directory_path() / "sb-prefetch-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    spool_dir_ = dir_ + "/spool";
    // kSegments complete segments, then half of one (the newest WAL).
    for (int i = 0; i <= kSegments; ++i) {
      const uint64_t start = kFirst + i * kSeg;
      std::string seg = Segment(start);
      if (i == kSegments) seg.resize(kSeg / 2);
      const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{start}, Lsn{start + seg.size()});
      auto enc = EncodeObject(seg, key, {});
      ASSERT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A segment with a valid long page header (what wal-get checks in a spool file).
  static std::string Segment(uint64_t start) {
    std::string s(kSeg, '\0');
    for (uint64_t i = 40; i < kSeg; ++i) s[i] = static_cast<char>((start + i) % 251);
    auto put = [&](size_t off, uint64_t v, int n) {
      for (int b = 0; b < n; ++b) s[off + b] = static_cast<char>((v >> (8 * b)) & 0xFF);
    };
    put(0, 0xD110, 2);
    put(2, 0x0002, 2);  // XLP_LONG_HEADER
    put(4, 1, 4);
    put(8, start, 8);
    put(24, kSysid, 8);
    put(32, kSeg, 4);
    put(36, 8192, 4);
    return s;
  }
  static std::string Name(int i) { return WalSegmentName(1, Lsn{kFirst + i * kSeg}, kSeg); }
  WalSource Source() { return {.database = "main", .system_identifier = kSysid, .segment_size = kSeg}; }
  PrefetchOptions Options(int depth) {
    return {.spool_dir = spool_dir_, .depth = depth, .threads = 2, .idle_exit = std::chrono::milliseconds(300),
            .poll = std::chrono::milliseconds(5)};
  }
  std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  WalGetOptions GetOptions(int i) {
    return {.database = "main", .name = Name(i), .dest = dir_ + "/" + Name(i), .system_identifier = kSysid,
            .wal_segment_size = kSeg};
  }

  std::string dir_, spool_dir_;
};

// Recovery walks the segments; the worker stays within depth, ahead of it.
TEST_F(WalPrefetchTest, TheWorkerSpoolsAheadWithinDepthAndRecoveryTakesFromIt) {
  auto spool = Spool::Open(spool_dir_, true);
  ASSERT_TRUE(spool.ok()) << spool.status().ToString();
  struct stat st;
  ASSERT_EQ(::lstat(spool_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(spool->SetPosition(Name(0)).ok());
  const PrefetchOptions options = Options(3);
  Status worker_status;
  std::thread worker([&] { worker_status = RunPrefetchWorker(repo_->storage(), Source(), options); });
  ASSERT_TRUE(test::WaitFor([&] { return spool->Files().size() == 3; }, std::chrono::seconds(20),
                            std::chrono::milliseconds(5)));
  EXPECT_TRUE(spool->WorkerAlive());
  size_t most = 0;
  for (int i = 1; i <= kSegments; ++i) {
    most = std::max(most, spool->Files().size());
    // What recovery would do: wal-get i (no worker started from here: this one runs).
    test::WaitFor([&] { return !spool->Files().empty() || i > kSegments - 1; }, std::chrono::seconds(5),
                  std::chrono::milliseconds(5));
    auto r = WalGetPrefetched(*repo_, GetOptions(i), options, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, WalGetOutcome::kRestored);
    std::string got = ReadFile(dir_ + "/" + Name(i));
    std::string want = Segment(kFirst + i * kSeg);
    if (i == kSegments) want = want.substr(0, kSeg / 2) + std::string(kSeg / 2, '\0');
    ASSERT_EQ(got, want) << "segment " << i;
  }
  // Past the end: absent, decided by the direct lookup.
  auto end = WalGetPrefetched(*repo_, GetOptions(kSegments + 1), options, {});
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, WalGetOutcome::kAbsent);
  worker.join();  // exits at the end of WAL once the spool is consumed
  EXPECT_TRUE(worker_status.ok()) << worker_status.ToString();
  EXPECT_LE(most, 3u);
  EXPECT_TRUE(spool->Files().empty()) << "the partly filled newest segment is never spooled";
  EXPECT_FALSE(spool->WorkerAlive());
}

// A spool file whose bytes do not match its name or its header is refused
// and removed; wal-get then fetches directly.
TEST_F(WalPrefetchTest, ACorruptSpoolFileIsRefused) {
  auto spool = Spool::Open(spool_dir_, true);
  ASSERT_TRUE(spool.ok());
  std::string good = Segment(kFirst + 2 * kSeg);
  std::string flipped = good;
  flipped[kSeg / 2] ^= 1;
  const std::string file = spool_dir_ + "/" + SpoolFileName(Name(2), good);
  { std::ofstream(file, std::ios::binary) << flipped; }
  auto r = WalGetPrefetched(*repo_, GetOptions(2), Options(2), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadFile(dir_ + "/" + Name(2)), good);
  EXPECT_FALSE(fs::exists(file));
  // Correct hash, but the segment of another position: refused too.
  std::string other = Segment(kFirst + 5 * kSeg);
  const std::string misplaced = spool_dir_ + "/" + SpoolFileName(Name(3), other);
  { std::ofstream(misplaced, std::ios::binary) << other; }
  auto taken = spool->Take(Name(3), dir_ + "/x", kSysid, kSeg);
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  EXPECT_FALSE(fs::exists(misplaced));
}

// A killed worker leaves a lock nobody holds, a position and temp files:
// wal-get fetches directly and answers exactly, absent included.
TEST_F(WalPrefetchTest, AKilledWorkerNeverMakesWalGetAnswerAbsentWrongly) {
  auto spool = Spool::Open(spool_dir_, true);
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE(spool->SetPosition(Name(4)).ok());
  { std::ofstream(spool_dir_ + "/lock") << ""; }
  { std::ofstream(spool_dir_ + "/" + Name(5) + ".tmp", std::ios::binary) << "half a segm"; }
  EXPECT_FALSE(spool->WorkerAlive());
  auto r = WalGetPrefetched(*repo_, GetOptions(5), Options(4), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, WalGetOutcome::kRestored);
  EXPECT_EQ(ReadFile(dir_ + "/" + Name(5)), Segment(kFirst + 5 * kSeg));
  auto absent = WalGetPrefetched(*repo_, GetOptions(kSegments + 3), Options(4), {});
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ(*absent, WalGetOutcome::kAbsent);
  // A worker that idles (recovery stopped asking) exits and clears what it spooled.
  ASSERT_TRUE(spool->SetPosition(Name(0)).ok());
  ASSERT_TRUE(RunPrefetchWorker(repo_->storage(), Source(), Options(2)).ok());
  EXPECT_TRUE(spool->Files().empty());
}

// A spool that is a symlink, or open to others, is not used; wal-get still works.
TEST_F(WalPrefetchTest, AnUnsafeSpoolIsBypassed) {
  fs::create_directory(dir_ + "/elsewhere");
  fs::create_directory_symlink(dir_ + "/elsewhere", spool_dir_);
  EXPECT_FALSE(Spool::Open(spool_dir_, true).ok());
  auto r = WalGetPrefetched(*repo_, GetOptions(1), Options(2), {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ReadFile(dir_ + "/" + Name(1)), Segment(kFirst + kSeg));
  EXPECT_TRUE(fs::is_empty(dir_ + "/elsewhere"));
  fs::remove(spool_dir_);
  fs::create_directory(spool_dir_);
  fs::permissions(spool_dir_, fs::perms::all);
  EXPECT_FALSE(Spool::Open(spool_dir_, true).ok());
}

}  // namespace
}  // namespace sb
