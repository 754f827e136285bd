// One system identifier per database name: a second live cluster is refused
// (with what to do), a dead one is not, a re-created cluster known to the
// writer is not, and two writers starting at once leave exactly one holder.
// Times are the storage's (a memory storage on a manual clock).
#include "repo/name_claim.h"

#include <gtest/gtest.h>

#include "common/clock.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kA = 7000000000000000001ull;
constexpr uint64_t kB = 7000000000000000002ull;

class NameClaimTest : public ::testing::Test {
 protected:
  ManualClock clock_{SystemTime{} + std::chrono::hours(24 * 365 * 50)};
  MemoryStorage storage_{&clock_};

  bool Granted(uint64_t sysid, const NameClaimOptions& o = {}) {
    auto r = ClaimDatabaseName(storage_, "15-main", sysid, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() && r->granted;
  }
};

TEST_F(NameClaimTest, SecondLiveSystemIdentifierIsRefusedWithAHint) {
  EXPECT_TRUE(Granted(kA));
  clock_.Advance(30s);
  auto r = ClaimDatabaseName(storage_, "15-main", kB);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->granted);
  EXPECT_EQ(r->holder, kA);
  EXPECT_EQ(r->holder_age, 30s);
  Status s = CheckDatabaseName(storage_, "15-main", kB);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "database name \"15-main\" is used on this storage by another live cluster (system identifier "
            "7000000000000000001, last seen 30s ago); this cluster's system identifier is 7000000000000000002: its "
            "backups would mix with the other's; hint: give this cluster another name (the [[cluster]] name or --db)");
  // The refused one left no claim that makes it look live to the holder.
  EXPECT_TRUE(Granted(kA));
  // Another name is free.
  EXPECT_TRUE(ClaimDatabaseName(storage_, "15-main-b", kB)->granted);
  // The same system identifier (a standby of A, or A again) keeps the name.
  EXPECT_TRUE(Granted(kA));
}

TEST_F(NameClaimTest, DeadClaimDoesNotBlockAndReturningHolderIsRefused) {
  EXPECT_TRUE(Granted(kA));
  clock_.Advance(11min);  // A stopped writing here more than live_window ago
  EXPECT_TRUE(Granted(kB));
  clock_.Advance(1min);
  EXPECT_FALSE(Granted(kA));  // B holds the name now, A was not live
  EXPECT_TRUE(Granted(kB));
}

TEST_F(NameClaimTest, RecreatedClusterKnownToTheWriterIsANewDatabase) {
  EXPECT_TRUE(Granted(kA));
  clock_.Advance(5s);
  EXPECT_TRUE(Granted(kB, {.earlier_systems = {kA}}));
}

TEST_F(NameClaimTest, TwoWritersStartingAtOnceLeaveOneHolder) {
  EXPECT_TRUE(Granted(kA));
  clock_.Advance(1s);
  // B's first check did not see A yet (a race): both got a claim.
  EXPECT_TRUE(storage_.Put("names/15-main/" + std::to_string(kB) + ".since", "since").ok());
  EXPECT_TRUE(storage_.Put("names/15-main/" + std::to_string(kB) + ".alive", "alive").ok());
  clock_.Advance(1s);
  EXPECT_TRUE(Granted(kA));  // A's claim is older
  EXPECT_FALSE(Granted(kB));
}

}  // namespace
}  // namespace sb
