#include "storage/fault/fault_storage.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

class FaultStorageTest : public ::testing::Test {
 protected:
  ManualClock clock_{SystemTime(std::chrono::seconds(1'700'000'000))};
  MemoryStorage base_{&clock_};
  FaultStorage fault_{&base_, &clock_};
};

TEST_F(FaultStorageTest, PassesThroughWithoutRules) {
  ASSERT_TRUE(fault_.Put("k", "v").ok());
  auto got = fault_.Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "v");
  EXPECT_EQ(fault_.Describe(), "fault(memory://)");
  EXPECT_EQ(fault_.base(), &base_);
}

TEST_F(FaultStorageTest, FailsTheNthCallOfAnOp) {
  fault_.FailNthCall(FaultOp::kPut, 3, Status::IoError("injected put failure"));
  EXPECT_TRUE(fault_.Put("a", "1").ok());
  EXPECT_TRUE(fault_.Get("a").ok());  // other ops do not count towards the Put rule
  EXPECT_TRUE(fault_.Put("b", "2").ok());
  Status third = fault_.Put("c", "3");
  EXPECT_EQ(third.code(), StatusCode::kIoError);
  EXPECT_EQ(third.message(), "injected put failure");
  EXPECT_TRUE(base_.Get("c").status().IsNotFound()) << "a failed call must not reach the base";
  EXPECT_TRUE(fault_.Put("d", "4").ok());
  EXPECT_EQ(fault_.CallCount(FaultOp::kPut), 4);
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), 1);
  EXPECT_EQ(fault_.CallCount(FaultOp::kAny), 5);
}

TEST_F(FaultStorageTest, CountAndOpenEndedRules) {
  fault_.FailNthCall(FaultOp::kGet, 2, Status::Unavailable("x"), 2);  // calls 2 and 3
  ASSERT_TRUE(base_.Put("k", "v").ok());
  std::vector<bool> ok;
  for (int i = 0; i < 5; ++i) ok.push_back(fault_.Get("k").ok());
  EXPECT_EQ(ok, (std::vector<bool>{true, false, false, true, true}));

  fault_.ClearRules();
  fault_.FailNthCall(FaultOp::kStat, 2, Status::Unavailable("x"), -1);  // every call from the 2nd on
  EXPECT_TRUE(fault_.Stat("k").ok());
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(fault_.Stat("k").ok());
}

TEST_F(FaultStorageTest, FailsEveryOpWhoseKeyContainsAPattern) {
  ASSERT_TRUE(base_.Put("wal/000001", "w").ok());
  ASSERT_TRUE(base_.Put("data/x", "d").ok());
  int id = fault_.FailMatching("wal/", Status::IoError("injected"));
  EXPECT_EQ(fault_.Get("wal/000001").status().code(), StatusCode::kIoError);
  EXPECT_EQ(fault_.Put("wal/000002", "w").code(), StatusCode::kIoError);
  EXPECT_EQ(fault_.Stat("wal/000001").status().code(), StatusCode::kIoError);
  EXPECT_EQ(fault_.Delete("wal/000001").code(), StatusCode::kIoError);
  EXPECT_EQ(fault_.List("wal/", "").status().code(), StatusCode::kIoError);  // prefix is matched for List
  EXPECT_EQ(fault_.GetRange("wal/000001", 0, 1).status().code(), StatusCode::kIoError);
  EXPECT_TRUE(fault_.Get("data/x").ok());
  EXPECT_TRUE(fault_.List("data/", "").ok());
  fault_.RemoveRule(id);
  EXPECT_TRUE(fault_.Get("wal/000001").ok());
}

TEST_F(FaultStorageTest, PatternRuleLimitedToOneOp) {
  ASSERT_TRUE(base_.Put("wal/1", "w").ok());
  fault_.FailMatching("wal/", Status::PermissionDenied("no"), FaultOp::kDelete);
  EXPECT_TRUE(fault_.Get("wal/1").ok());
  EXPECT_EQ(fault_.Delete("wal/1").code(), StatusCode::kPermissionDenied);
}

TEST_F(FaultStorageTest, TornWriteLeavesHalfTheDataInTheBase) {
  fault_.TornWriteOn("manifest");
  Status s = fault_.Put("backup/1/manifest.json", "0123456789");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("torn"), std::string::npos) << s.ToString();
  auto partial = base_.Get("backup/1/manifest.json");
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(*partial, "01234");
  // Only the first matching Put is torn by default; other keys are untouched.
  ASSERT_TRUE(fault_.Put("backup/1/data", "abcdef").ok());
  EXPECT_EQ(*base_.Get("backup/1/data"), "abcdef");
  ASSERT_TRUE(fault_.Put("backup/1/manifest.json", "0123456789").ok());
  EXPECT_EQ(*base_.Get("backup/1/manifest.json"), "0123456789");
}

TEST_F(FaultStorageTest, DelaySleepsOnTheClock) {
  ASSERT_TRUE(base_.Put("k", "v").ok());
  fault_.DelayOn(FaultOp::kGet, std::chrono::milliseconds(250));
  SteadyTime before = clock_.SteadyNow();
  ASSERT_TRUE(fault_.Get("k").ok());
  ASSERT_TRUE(fault_.Get("k").ok());
  EXPECT_EQ(clock_.SteadyNow() - before, std::chrono::milliseconds(500));
  ASSERT_TRUE(fault_.Stat("k").ok());
  EXPECT_EQ(clock_.SteadyNow() - before, std::chrono::milliseconds(500));
}

TEST_F(FaultStorageTest, DelayCombinesWithAFailure) {
  fault_.DelayOn(FaultOp::kAny, std::chrono::milliseconds(100));
  fault_.FailNthCall(FaultOp::kPut, 1, Status::Unavailable("slow and broken"));
  SteadyTime before = clock_.SteadyNow();
  EXPECT_FALSE(fault_.Put("k", "v").ok());
  EXPECT_EQ(clock_.SteadyNow() - before, std::chrono::milliseconds(100));
}

TEST_F(FaultStorageTest, CrashModeFailsEveryCallUntilRecovered) {
  fault_.CrashAfter(FaultOp::kPut, 2);
  ASSERT_TRUE(fault_.Put("a", "1").ok());
  EXPECT_FALSE(fault_.crashed());
  Status s = fault_.Put("b", "2");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(fault_.crashed());
  EXPECT_TRUE(base_.Get("b").status().IsNotFound()) << "the crashing Put never reached the base";
  EXPECT_EQ(fault_.Get("a").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fault_.List("", "").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(fault_.Delete("a").code(), StatusCode::kUnavailable);
  EXPECT_EQ(fault_.AcquireLease("l", {}).status().code(), StatusCode::kUnavailable);
  fault_.Recover();
  EXPECT_TRUE(fault_.Get("a").ok());
  EXPECT_TRUE(fault_.Put("b", "2").ok());
}

TEST_F(FaultStorageTest, CrashAfterTheBaseCallKeepsTheWrite) {
  fault_.CrashAfter(FaultOp::kPut, 1, /*call_base_first=*/true);
  EXPECT_EQ(fault_.Put("k", "durable").code(), StatusCode::kUnavailable);
  EXPECT_TRUE(fault_.crashed());
  auto got = base_.Get("k");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "durable");
}

TEST_F(FaultStorageTest, LeasesAreSubjectToRulesAndCrashes) {
  auto lease = fault_.AcquireLease("lock", LeaseOptions{.owner = "me"});
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(fault_.AcquireLease("lock", LeaseOptions{.owner = "you"}).status().code(), StatusCode::kAlreadyExists);
  fault_.FailNthCall(FaultOp::kRenewLease, 1, Status::Unavailable("renew hiccup"));
  EXPECT_EQ((*lease)->Renew().code(), StatusCode::kUnavailable);
  EXPECT_TRUE((*lease)->Renew().ok());
  fault_.Crash();
  EXPECT_EQ((*lease)->Release().code(), StatusCode::kUnavailable);
  fault_.Recover();
  EXPECT_TRUE((*lease)->Release().ok());
  EXPECT_TRUE(fault_.AcquireLease("lock", LeaseOptions{.owner = "you"}).ok());
  EXPECT_EQ(fault_.CallCount(FaultOp::kRenewLease), 2);
  EXPECT_EQ(fault_.CallCount(FaultOp::kReleaseLease), 2);
  EXPECT_EQ(fault_.CallCount(FaultOp::kAcquireLease), 3);
}

TEST_F(FaultStorageTest, CustomRuleStruct) {
  FaultRule rule;
  rule.op = FaultOp::kList;
  rule.key_contains = "x/";
  rule.nth = 1;
  rule.count = 1;
  rule.status = Status::Corruption("bad page");
  fault_.AddRule(rule);
  EXPECT_EQ(fault_.List("x/", "").status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(fault_.List("x/", "").ok());
  fault_.ResetCounts();
  EXPECT_EQ(fault_.CallCount(FaultOp::kAny), 0);
}

TEST_F(FaultStorageTest, OwnsTheBaseWhenGivenAUniquePtr) {
  FaultStorage owning(std::make_unique<MemoryStorage>());
  ASSERT_TRUE(owning.Put("k", "v").ok());
  EXPECT_EQ(*owning.base()->Get("k"), "v");
}

TEST_F(FaultStorageTest, RulesAndCountersAreThreadSafe) {
  ASSERT_TRUE(base_.Put("k", "v").ok());
  fault_.FailNthCall(FaultOp::kGet, 1, Status::Unavailable("x"), 25);
  constexpr int kThreads = 8, kCalls = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        if (!fault_.Get("k").ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 25);
  EXPECT_EQ(fault_.CallCount(FaultOp::kGet), kThreads * kCalls);
}

TEST(FaultOpNameTest, Names) {
  EXPECT_STREQ(FaultOpName(FaultOp::kPut), "put");
  EXPECT_STREQ(FaultOpName(FaultOp::kAcquireLease), "acquire_lease");
}

}  // namespace
}  // namespace sb
