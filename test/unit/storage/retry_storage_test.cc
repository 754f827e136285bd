#include "storage/retry/retry_storage.h"

#include <gtest/gtest.h>

#include <set>

#include "common/clock.h"
#include "common/logging.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

using std::chrono::milliseconds;

class RetryStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::SetLevel(log::Level::kError);  // the retry warnings are expected here
    ASSERT_TRUE(base_.Put("k", "value").ok());
  }
  void TearDown() override { log::SetLevel(log::Level::kInfo); }

  RetryOptions Options(int max_attempts = 5) {
    RetryOptions o;
    o.max_attempts = max_attempts;
    o.backoff.initial = milliseconds(100);
    o.backoff.max = milliseconds(10'000);
    o.backoff.jitter = 0;
    o.clock = &clock_;
    return o;
  }
  milliseconds Slept() { return std::chrono::duration_cast<milliseconds>(clock_.SteadyNow() - start_); }

  ManualClock clock_{SystemTime(std::chrono::seconds(1'700'000'000))};
  SteadyTime start_ = clock_.SteadyNow();
  MemoryStorage base_;
  FaultStorage fault_{&base_, &clock_};
};

TEST_F(RetryStorageTest, SucceedsAfterTwoUnavailableFailures) {
  fault_.FailNthCall(FaultOp::kGet, 1, Status::Unavailable("503 server busy"), 2);
  RetryStorage retry(&fault_, Options());
  auto got = retry.Get("k");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "value");
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), 3);
  EXPECT_EQ(Slept(), milliseconds(100 + 200)) << "exponential backoff on the injected clock";
}

TEST_F(RetryStorageTest, DoesNotRetryCorruption) {
  fault_.FailNthCall(FaultOp::kGet, 1, Status::Corruption("checksum mismatch"));
  RetryStorage retry(&fault_, Options());
  auto got = retry.Get("k");
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(got.status().message(), "checksum mismatch");
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), 1);
  EXPECT_EQ(Slept(), milliseconds(0));
}

TEST_F(RetryStorageTest, DoesNotRetryOtherPermanentErrors) {
  RetryStorage retry(&fault_, Options());
  EXPECT_TRUE(retry.Get("missing").status().IsNotFound());
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), 1);
  fault_.FailNthCall(FaultOp::kPut, 1, Status::PermissionDenied("bad key"));
  EXPECT_EQ(retry.Put("x", "y").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(fault_.CallCount(FaultOp::kPut), 1);
  EXPECT_EQ(retry.Put("k", "y", PutOptions{.if_absent = true}).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(fault_.CallCount(FaultOp::kPut), 2);
  EXPECT_EQ(Slept(), milliseconds(0));
}

TEST_F(RetryStorageTest, GivesUpAfterMaxAttempts) {
  fault_.FailNthCall(FaultOp::kStat, 1, Status::Unavailable("connection reset"), -1);
  RetryStorage retry(&fault_, Options(3));
  auto info = retry.Stat("k");
  EXPECT_EQ(info.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(info.status().message().find("gave up after 3 attempts"), std::string::npos) << info.status().ToString();
  EXPECT_NE(info.status().message().find("connection reset"), std::string::npos);
  EXPECT_EQ(fault_.CallCount(FaultOp::kStat), 3);
  EXPECT_EQ(Slept(), milliseconds(100 + 200));
}

TEST_F(RetryStorageTest, DefaultIsFiveAttempts) {
  EXPECT_EQ(RetryOptions{}.max_attempts, 5);
  fault_.FailNthCall(FaultOp::kGet, 1, Status::Unavailable("down"), -1);
  RetryOptions o;
  o.clock = &clock_;
  RetryStorage retry(&fault_, o);
  EXPECT_FALSE(retry.Get("k").ok());
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), 5);
}

TEST_F(RetryStorageTest, BackoffGrowsAndIsCapped) {
  RetryOptions o = Options();
  o.backoff.initial = milliseconds(1000);
  o.backoff.max = milliseconds(3000);
  RetryStorage retry(&fault_, o);
  EXPECT_EQ(retry.BackoffFor(1), milliseconds(1000));
  EXPECT_EQ(retry.BackoffFor(2), milliseconds(2000));
  EXPECT_EQ(retry.BackoffFor(3), milliseconds(3000));
  EXPECT_EQ(retry.BackoffFor(10), milliseconds(3000));
}

TEST_F(RetryStorageTest, JitterStaysWithinBoundsAndVaries) {
  RetryOptions o = Options();
  o.backoff.initial = milliseconds(1000);
  o.backoff.jitter = 0.5;
  o.seed = 12345;
  RetryStorage retry(&fault_, o);
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) {
    milliseconds d = retry.BackoffFor(1);
    EXPECT_GE(d, milliseconds(500));
    EXPECT_LE(d, milliseconds(1000));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 10u);
}

TEST_F(RetryStorageTest, RetriesEveryDataOperation) {
  RetryStorage retry(&fault_, Options());
  for (FaultOp op : {FaultOp::kPut, FaultOp::kGetRange, FaultOp::kList, FaultOp::kDelete}) {
    fault_.FailNthCall(op, 1, Status::Unavailable("blip"));
  }
  EXPECT_TRUE(retry.Put("p", "data").ok());
  auto range = retry.GetRange("p", 1, 2);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(*range, "at");
  auto page = retry.List("", "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects.size(), 2u);
  EXPECT_TRUE(retry.Delete("p").ok());
  EXPECT_TRUE(base_.Get("p").status().IsNotFound());
  EXPECT_EQ(fault_.CallCount(FaultOp::kAny), 8);
}

TEST_F(RetryStorageTest, LeaseCallsPassThroughWithoutRetry) {
  fault_.FailNthCall(FaultOp::kAcquireLease, 1, Status::Unavailable("busy"));
  RetryStorage retry(&fault_, Options());
  EXPECT_EQ(retry.AcquireLease("lock", LeaseOptions{.owner = "me"}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fault_.CallCount(FaultOp::kAcquireLease), 1);
  auto lease = retry.AcquireLease("lock", LeaseOptions{.owner = "me"});
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE((*lease)->Release().ok());
  EXPECT_EQ(Slept(), milliseconds(0));
}

TEST_F(RetryStorageTest, OwnsTheBaseAndDescribesIt) {
  RetryStorage retry(std::make_unique<MemoryStorage>(nullptr, "x"), Options());
  EXPECT_EQ(retry.Describe(), "memory://x");
  EXPECT_TRUE(retry.Put("k", "v").ok());
  EXPECT_EQ(*retry.base()->Get("k"), "v");
}

}  // namespace
}  // namespace sb
