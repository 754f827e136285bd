// The one backoff policy (common/backoff.h): growth, cap, jitter bounds and
// sleeping on the injected clock.
#include "common/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace sb {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, GrowsExponentiallyAndIsCapped) {
  Backoff b({.initial = milliseconds(100), .max = milliseconds(1000), .multiplier = 2.0, .jitter = 0});
  EXPECT_EQ(b.Delay(1), milliseconds(100));
  EXPECT_EQ(b.Delay(2), milliseconds(200));
  EXPECT_EQ(b.Delay(3), milliseconds(400));
  EXPECT_EQ(b.Delay(4), milliseconds(800));
  EXPECT_EQ(b.Delay(5), milliseconds(1000));
  EXPECT_EQ(b.Delay(1000), milliseconds(1000));  // no overflow for huge retry counts
  EXPECT_EQ(b.Delay(0), milliseconds(100));
}

TEST(BackoffTest, JitterOnlyShortensWithinItsFraction) {
  Backoff b({.initial = milliseconds(1000), .jitter = 0.5}, /*seed=*/42);
  std::set<int64_t> seen;
  for (int i = 0; i < 100; ++i) {
    milliseconds d = b.Delay(1);
    EXPECT_GE(d, milliseconds(500));
    EXPECT_LE(d, milliseconds(1000));
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 20u);
}

TEST(BackoffTest, SameSeedSameDelays) {
  Backoff a({.jitter = 0.5}, 7), b({.jitter = 0.5}, 7);
  for (int i = 1; i < 10; ++i) EXPECT_EQ(a.Delay(i), b.Delay(i));
}

TEST(BackoffTest, OutOfRangePolicyIsClamped) {
  Backoff b({.initial = milliseconds(100), .max = milliseconds(10), .multiplier = 0.1, .jitter = 7});
  EXPECT_EQ(b.policy().max, milliseconds(100));
  EXPECT_EQ(b.policy().multiplier, 1.0);
  EXPECT_EQ(b.policy().jitter, 1.0);
}

TEST(BackoffTest, WaitSleepsOnTheInjectedClock) {
  ManualClock clock(std::chrono::system_clock::now());
  Backoff b({.initial = milliseconds(250), .jitter = 0});
  EXPECT_EQ(b.Wait(1, clock), milliseconds(250));
  EXPECT_EQ(b.Wait(2, clock), milliseconds(500));
  EXPECT_EQ(clock.SteadyNow().time_since_epoch(), milliseconds(750));
}

}  // namespace
}  // namespace sb
