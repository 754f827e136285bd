// InstrumentedStorage counts each request by operation and outcome (by status
// code), its latency into the right bucket (ManualClock: DelayOn sleeps on it),
// the bytes read and written, and the retries a RetryStorage below makes.
#include "storage/instrumented/instrumented_storage.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"
#include "storage/retry/retry_storage.h"

namespace sb {
namespace {

using namespace std::chrono_literals;

uint64_t Requests(const StorageOpCounts& c, StorageOutcome o) { return c.requests[static_cast<size_t>(o)]; }

TEST(InstrumentedStorageTest, CountsOperationsOutcomesBytesAndLatency) {
  ManualClock clock(SystemTime{} + 1000h);
  MemoryStorage memory(&clock);
  auto fault = std::make_unique<FaultStorage>(&memory, &clock);
  fault->DelayOn(FaultOp::kPut, 30ms);  // one put takes 30 ms of the manual clock
  StorageStats stats;
  InstrumentedStorage storage(std::move(fault), &stats, &clock);

  ASSERT_TRUE(storage.Put("a/b", "hello").ok());
  EXPECT_EQ(storage.Put("a/b", "x", {.if_absent = true}).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(storage.Get("a/b").ok());
  EXPECT_TRUE(storage.Get("missing").status().IsNotFound());
  ASSERT_TRUE(storage.GetRange("a/b", 1, 2).ok());

  const StorageOpCounts put = stats.Counts(StorageOp::kPut);
  EXPECT_EQ(Requests(put, StorageOutcome::kOk), 1u);
  EXPECT_EQ(Requests(put, StorageOutcome::kAlreadyExists), 1u);
  EXPECT_EQ(put.bytes_written, 5u);  // only what a successful put wrote
  // Both puts took 30 ms: the (0.025, 0.05] bucket.
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kStorageLatencyBuckets.begin(), kStorageLatencyBuckets.end(), 0.05) - kStorageLatencyBuckets.begin());
  EXPECT_EQ(put.buckets[bucket], 2u);
  EXPECT_NEAR(put.latency_sum_seconds, 0.06, 1e-6);

  const StorageOpCounts get = stats.Counts(StorageOp::kGet);
  EXPECT_EQ(Requests(get, StorageOutcome::kOk), 1u);
  EXPECT_EQ(Requests(get, StorageOutcome::kNotFound), 1u);
  EXPECT_EQ(get.bytes_read, 5u);
  EXPECT_EQ(get.buckets[0], 2u);  // instant on the manual clock
  EXPECT_EQ(stats.Counts(StorageOp::kGetRange).bytes_read, 2u);
  EXPECT_EQ(Requests(stats.Counts(StorageOp::kStat), StorageOutcome::kOk), 0u);
}

TEST(InstrumentedStorageTest, CountsRetriesOfTheLayerBelowUnderTheOperation) {
  ManualClock clock(SystemTime{} + 1000h);
  MemoryStorage memory(&clock);
  FaultStorage fault(&memory, &clock);
  fault.FailNthCall(FaultOp::kStat, 1, Status::Unavailable("flaky"), 2);  // two failures, then the real answer
  StorageStats stats;
  // The process-wide stats receive the retries (the retrying layer does not know the instance),
  // so the test compares the global counter before and after.
  InstrumentedStorage storage(std::make_unique<RetryStorage>(&fault, RetryOptions{.max_attempts = 5, .clock = &clock}),
                              &StorageStats::Global(), &clock);
  const uint64_t before = StorageStats::Global().Counts(StorageOp::kStat).retries;
  const uint64_t not_found_before = Requests(StorageStats::Global().Counts(StorageOp::kStat), StorageOutcome::kNotFound);
  EXPECT_TRUE(storage.Stat("nothing").status().IsNotFound());
  const StorageOpCounts after = StorageStats::Global().Counts(StorageOp::kStat);
  EXPECT_EQ(after.retries - before, 2u);
  EXPECT_EQ(Requests(after, StorageOutcome::kNotFound) - not_found_before, 1u);  // one request, retried inside
  EXPECT_FALSE(CurrentStorageOp().has_value());  // the scope ended with the call
}

TEST(InstrumentedStorageTest, LeasesAreInstrumentedToo) {
  ManualClock clock(SystemTime{} + 1000h);
  StorageStats stats;
  InstrumentedStorage storage(std::make_unique<MemoryStorage>(&clock), &stats, &clock);
  auto lease = storage.AcquireLease("locks/full", {.owner = "test"});
  ASSERT_TRUE(lease.ok()) << lease.status().message();
  ASSERT_TRUE((*lease)->Renew().ok());
  ASSERT_TRUE((*lease)->Release().ok());
  EXPECT_EQ(Requests(stats.Counts(StorageOp::kAcquireLease), StorageOutcome::kOk), 1u);
  EXPECT_EQ(Requests(stats.Counts(StorageOp::kRenewLease), StorageOutcome::kOk), 1u);
  EXPECT_EQ(Requests(stats.Counts(StorageOp::kReleaseLease), StorageOutcome::kOk), 1u);
  auto again = storage.AcquireLease("locks/full", {.owner = "a"});
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Requests(stats.Counts(StorageOp::kAcquireLease), StorageOutcome::kOk), 2u);
}

TEST(InstrumentedStorageTest, OutcomeNamesFollowTheStatusCode) {
  EXPECT_STREQ(StorageOutcomeName(OutcomeOf(Status::Ok())), "ok");
  EXPECT_STREQ(StorageOutcomeName(OutcomeOf(Status::NotFound("x"))), "not_found");
  EXPECT_STREQ(StorageOutcomeName(OutcomeOf(Status::Unavailable("x"))), "unavailable");
  EXPECT_STREQ(StorageOutcomeName(OutcomeOf(Status::PermissionDenied("x"))), "permission_denied");
  EXPECT_STREQ(StorageOutcomeName(OutcomeOf(Status::IoError("x"))), "error");
  EXPECT_STREQ(StorageOpName(StorageOp::kGetRange), "get_range");
}

}  // namespace
}  // namespace sb
