// The scheduling rules of spec section 3, one test per rule: a fixed start
// time, a ManualClock advanced step by step, thresholds checked exactly at
// the boundary (fires) and just below it (does not).
#include "agent/scheduler.h"

#include <gtest/gtest.h>

#include "common/text.h"

namespace sb {
namespace {

using namespace std::chrono_literals;
using Action = Decision::Action;

// Monday 2026-01-05 00:00:00 UTC.
const SystemTime kStart = std::chrono::system_clock::from_time_t(1'767'571'200);
constexpr uint64_t kFullStart = 0x3000028;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

SystemTime At(const char* rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  EXPECT_TRUE(t.ok()) << rfc3339;
  return *t;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : clock_(kStart) {
    s_.enabled = true;
    o_.enabled = true;
    o_.now = kStart;
  }

  // A full backup that finished now, starting at kFullStart, and some WAL since.
  void FullFinishedNow() {
    o_.last_full_finish = clock_.Now();
    o_.last_full_start_lsn = Lsn{kFullStart};
    o_.current_lsn = Lsn{kFullStart + 4096};
  }
  void LogFinishedNow(uint64_t end_lsn) {
    o_.last_log_finish = clock_.Now();
    o_.last_log_end_lsn = Lsn{end_lsn};
  }
  void Advance(std::chrono::milliseconds d) { clock_.Advance(d); }
  Decision Full() {
    o_.now = clock_.Now();
    return DecideFull(o_, s_);
  }
  Decision Log() {
    o_.now = clock_.Now();
    return DecideLog(o_, s_);
  }

  ManualClock clock_;
  ClusterSettings s_;
  ClusterObservation o_;
};

FullSchedule Daily(int hour, std::chrono::minutes length = 1h) {
  FullSchedule f;
  f.frequency = FullSchedule::Frequency::kDaily;
  f.window_start = std::chrono::hours(hour);
  f.window_length = length;
  return f;
}

FullSchedule Weekly(int weekday, std::chrono::minutes start, std::chrono::minutes length = 2h) {
  FullSchedule f;
  f.frequency = FullSchedule::Frequency::kWeekly;
  f.weekday = weekday;
  f.window_start = start;
  f.window_length = length;
  return f;
}

// ---- skips, shared by both rules ----

TEST_F(SchedulerTest, MasterSwitchOffSkipsEverything) {
  o_.master_switch_on = false;
  o_.chain_broken = true;  // even a chain break waits for the switch
  for (const Decision& d : {Full(), Log()}) {
    EXPECT_EQ(d.action, Action::kSkip);
    EXPECT_EQ(d.reason, "master switch is off");
  }
}

TEST_F(SchedulerTest, DisabledSkips) {
  o_.enabled = false;
  for (const Decision& d : {Full(), Log()}) {
    EXPECT_EQ(d.action, Action::kSkip);
    EXPECT_EQ(d.reason, "managed backup is disabled");
  }
  o_.enabled = true;
  s_.enabled = false;
  EXPECT_EQ(Full().action, Action::kSkip);
  EXPECT_EQ(Full().reason, "managed backup is disabled");
}

TEST_F(SchedulerTest, UnreachableSkipsWithTheError) {
  o_.reachable = false;
  o_.unreachable_error = "connection refused";
  for (const Decision& d : {Full(), Log()}) {
    EXPECT_EQ(d.action, Action::kSkip);
    EXPECT_EQ(d.reason, "cluster unreachable: connection refused");
  }
  o_.unreachable_error.clear();
  EXPECT_EQ(Full().reason, "cluster unreachable: no connection");
}

TEST_F(SchedulerTest, StandbySkipsWithReason) {
  o_.in_recovery = true;
  for (const Decision& d : {Full(), Log()}) {
    EXPECT_EQ(d.action, Action::kSkip);
    EXPECT_EQ(d.reason, "standby: backups run on the primary only");
  }
}

TEST_F(SchedulerTest, WalLevelMinimalStopsScheduling) {
  o_.wal_level = "minimal";
  for (const Decision& d : {Full(), Log()}) {
    EXPECT_EQ(d.action, Action::kSkip);
    EXPECT_EQ(d.reason, "wal_level is minimal (SIMPLE recovery model): scheduling stopped");
  }
  o_.wal_level = "logical";
  EXPECT_EQ(Full().action, Action::kFull);
}

// ---- full backups ----

TEST_F(SchedulerTest, FirstEnableTakesFull) {
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "managed backup just enabled: first full backup");
  EXPECT_EQ(d.next_due, kStart);
}

TEST_F(SchedulerTest, FullRunningMeansNone) {
  o_.full_running = true;
  o_.chain_broken = true;
  EXPECT_EQ(Full().action, Action::kNone);
  EXPECT_EQ(Full().reason, "a full backup is already running");
}

TEST_F(SchedulerTest, FullAfterSevenDays) {
  FullFinishedNow();
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, kStart + 7 * 24h);
  Advance(6 * 24h + 23h);
  EXPECT_EQ(Full().action, Action::kNone);
  Advance(1h - 1ms);
  EXPECT_EQ(Full().action, Action::kNone) << "7d minus 1ms";
  Advance(1ms);
  d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "≥ 7d since the last full backup");
}

TEST_F(SchedulerTest, FullAfterOneGiBOfWal) {
  FullFinishedNow();
  o_.current_lsn = Lsn{kFullStart + kGiB - 1};
  EXPECT_EQ(Full().action, Action::kNone);
  o_.current_lsn = Lsn{kFullStart + kGiB};
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "≥ 1.0 GiB of WAL since the last full backup");
}

TEST_F(SchedulerTest, ThresholdsAreConfigurable) {
  s_.full_max_age = 10s;
  s_.full_max_wal = kMiB;
  FullFinishedNow();
  Advance(9s);
  EXPECT_EQ(Full().action, Action::kNone);
  Advance(1s);
  EXPECT_EQ(Full().reason, "≥ 10s since the last full backup");
  s_.full_max_age = 24h;
  o_.current_lsn = Lsn{kFullStart + kMiB};
  EXPECT_EQ(Full().reason, "≥ 1.0 MiB of WAL since the last full backup");
}

TEST_F(SchedulerTest, ChainBreakTakesFullAtOnce) {
  FullFinishedNow();
  Advance(1min);
  EXPECT_EQ(Full().action, Action::kNone);
  o_.chain_broken = true;
  o_.chain_break_cause = "WAL gap 0/5000000-0/6000000";
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "log chain broken (WAL gap 0/5000000-0/6000000): full backup at once");
  o_.chain_break_cause.clear();
  EXPECT_EQ(Full().reason, "log chain broken: full backup at once");
}

TEST_F(SchedulerTest, NewContainerTakesFull) {
  // After a failover the new container holds no full yet.
  o_.new_container = true;
  o_.new_container_cause = "failover to timeline 2";
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "new container (failover to timeline 2): full backup");
  o_.new_container_cause.clear();
  EXPECT_EQ(Full().reason, "new container: full backup");
}

// ---- log backups ----

TEST_F(SchedulerTest, LogWaitsForTheFirstFull) {
  o_.current_lsn = Lsn{kFullStart + 100 * kMiB};
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.reason, "waiting for the first full backup");
}

TEST_F(SchedulerTest, LogRunningMeansNone) {
  FullFinishedNow();
  o_.log_running = true;
  EXPECT_EQ(Log().action, Action::kNone);
  EXPECT_EQ(Log().reason, "a log backup is already running");
}

TEST_F(SchedulerTest, LogWhenNoLogSinceTheFull) {
  FullFinishedNow();
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.reason, "no log backup since the full backup");
  // A log that finished before the full did does not count.
  LogFinishedNow(kFullStart + 1024);
  o_.last_full_finish = clock_.Now() + 1s;
  Advance(2s);
  EXPECT_EQ(Log().reason, "no log backup since the full backup");
}

TEST_F(SchedulerTest, LogAfterFiveMiBOfWal) {
  FullFinishedNow();
  Advance(1min);
  LogFinishedNow(kFullStart + 4096);
  o_.current_lsn = Lsn{kFullStart + 4096 + 5 * kMiB - 1};
  EXPECT_EQ(Log().action, Action::kNone);
  o_.current_lsn = Lsn{kFullStart + 4096 + 5 * kMiB};
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.reason, "≥ 5.0 MiB of WAL since the last log backup");
}

TEST_F(SchedulerTest, LogAfterTwoHours) {
  FullFinishedNow();
  Advance(1min);
  LogFinishedNow(kFullStart + 4096);
  const SystemTime log_time = clock_.Now();
  o_.current_lsn = Lsn{kFullStart + 8192};
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, log_time + 2h);
  Advance(2h - 1ms);
  EXPECT_EQ(Log().action, Action::kNone);
  Advance(1ms);
  d = Log();
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.reason, "≥ 2h since the last log backup");
}

TEST_F(SchedulerTest, LogWhenBehindTheLatestFull) {
  // A log chain up to 0/2000000, then a newer full starting at kFullStart.
  FullFinishedNow();
  o_.last_log_finish = kStart - 1h;
  o_.last_log_end_lsn = Lsn{0x2000000};
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.reason, "log backups are behind the latest full backup");
}

TEST_F(SchedulerTest, NoNewWalMeansNoLog) {
  FullFinishedNow();
  LogFinishedNow(kFullStart + 4096);  // caught up with current_lsn
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.reason, "no new WAL since 0/3001028");
  EXPECT_EQ(d.next_due, kStart + 2h);
  Advance(3h);  // even past the age threshold
  d = Log();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_FALSE(d.next_due.has_value());
  o_.current_lsn = Lsn{kFullStart + 4097};
  EXPECT_EQ(Log().action, Action::kLog);
}

TEST_F(SchedulerTest, LogWalIsCountedFromTheFullWhenTheLogIsOlder) {
  FullFinishedNow();
  Advance(1min);
  LogFinishedNow(kFullStart + 4096);
  // Log end behind the full start would be L4; here the log is ahead, so
  // WAL counts from the log end: max(last_log_end, full_start).
  o_.current_lsn = Lsn{kFullStart + 4096 + 5 * kMiB};
  EXPECT_EQ(Log().action, Action::kLog);
  o_.last_log_end_lsn = Lsn{kFullStart + 4097};
  EXPECT_EQ(Log().action, Action::kNone);
}

TEST_F(SchedulerTest, CustomLogFrequency) {
  s_.log_frequency = 15min;
  FullFinishedNow();
  Advance(1min);
  LogFinishedNow(kFullStart + 4096);
  const SystemTime log_time = clock_.Now();
  o_.current_lsn = Lsn{kFullStart + 8192};
  Decision d = Log();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, log_time + 15min);
  Advance(15min - 1ms);
  EXPECT_EQ(Log().action, Action::kNone);
  Advance(1ms);
  d = Log();
  EXPECT_EQ(d.action, Action::kLog);
  EXPECT_EQ(d.reason, "log frequency 15m elapsed since the last log backup");
  // A frequency longer than log_max_age: the 2h rule still applies.
  s_.log_frequency = 4h;
  Advance(2h);
  EXPECT_EQ(Log().reason, "≥ 2h since the last log backup");
}

// ---- windows ----

TEST_F(SchedulerTest, DailyWindowStartAndMembership) {
  const FullSchedule w = Daily(1);
  EXPECT_EQ(DescribeWindow(w), "daily 01:00 window");
  EXPECT_EQ(NextWindowStart(w, At("2026-01-05T00:30:00Z")), At("2026-01-05T01:00:00Z"));
  EXPECT_EQ(NextWindowStart(w, At("2026-01-05T01:00:00Z")), At("2026-01-05T01:00:00Z")) << "at or after";
  EXPECT_EQ(NextWindowStart(w, At("2026-01-05T01:30:00Z")), At("2026-01-06T01:00:00Z"));
  EXPECT_EQ(NextWindowStart(w, At("2026-12-31T23:59:00Z")), At("2027-01-01T01:00:00Z"));
  EXPECT_FALSE(InWindow(w, At("2026-01-05T00:59:59Z")));
  EXPECT_TRUE(InWindow(w, At("2026-01-05T01:00:00Z")));
  EXPECT_TRUE(InWindow(w, At("2026-01-05T01:59:59Z")));
  EXPECT_FALSE(InWindow(w, At("2026-01-05T02:00:00Z"))) << "the end is exclusive";
  EXPECT_EQ(CurrentWindowStart(w, At("2026-01-05T00:30:00Z")), At("2026-01-04T01:00:00Z"));
  // A window crossing midnight.
  const FullSchedule late = Daily(23, 2h);
  EXPECT_TRUE(InWindow(late, At("2026-01-06T00:30:00Z")));
  EXPECT_FALSE(InWindow(late, At("2026-01-06T01:00:00Z")));
}

TEST_F(SchedulerTest, WeeklyWindowOnItsWeekdayOnly) {
  const FullSchedule w = Weekly(3, 22h + 30min);  // Wednesday 22:30, 2h
  EXPECT_EQ(DescribeWindow(w), "weekly wed 22:30 window");
  EXPECT_EQ(DescribeWindow(Weekly(0, 1h)), "weekly sun 01:00 window");
  EXPECT_EQ(NextWindowStart(w, kStart), At("2026-01-07T22:30:00Z"));                  // Monday → Wednesday
  EXPECT_EQ(NextWindowStart(w, At("2026-01-07T22:31:00Z")), At("2026-01-14T22:30:00Z"));
  EXPECT_EQ(NextWindowStart(Weekly(0, 0min), At("2026-01-10T12:00:00Z")), At("2026-01-11T00:00:00Z"));
  EXPECT_TRUE(InWindow(w, At("2026-01-07T22:30:00Z")));
  EXPECT_TRUE(InWindow(w, At("2026-01-08T00:29:59Z")));  // spills into Thursday
  EXPECT_FALSE(InWindow(w, At("2026-01-08T00:30:00Z")));
  EXPECT_FALSE(InWindow(w, At("2026-01-06T22:45:00Z")));  // Tuesday, same time
  EXPECT_FALSE(InWindow(w, At("2026-01-08T22:45:00Z")));  // Thursday, same time
}

TEST_F(SchedulerTest, CustomDailyWindowTakesOneFullPerWindow) {
  s_.full_schedule = Daily(1);
  FullFinishedNow();  // Monday 00:00
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, At("2026-01-05T01:00:00Z"));
  EXPECT_EQ(d.reason, "outside the full backup window (daily 01:00 window); next window at 2026-01-05T01:00:00Z");
  Advance(1h);  // 01:00: inside, and no full since the window started
  d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "scheduled full backup (daily 01:00 window)");
  Advance(10min);
  o_.last_full_finish = clock_.Now();  // the scheduled full finished at 01:10
  Advance(1min);
  d = Full();
  EXPECT_EQ(d.action, Action::kNone) << "once per window";
  EXPECT_EQ(d.next_due, At("2026-01-06T01:00:00Z"));
  Advance(1h);  // 02:11, outside
  EXPECT_EQ(Full().action, Action::kNone);
  clock_.Set(At("2026-01-06T01:00:00Z"));
  EXPECT_EQ(Full().action, Action::kFull) << "next day's window";
}

TEST_F(SchedulerTest, CustomWindowHoldsThresholdsUntilTheWindow) {
  s_.full_schedule = Daily(1);
  s_.full_max_age = 1h;
  FullFinishedNow();
  clock_.Set(At("2026-01-05T02:00:00Z"));
  o_.last_full_finish = At("2026-01-05T01:30:00Z");  // taken in today's window
  o_.current_lsn = Lsn{kFullStart + 2 * kGiB};
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.reason,
            "≥ 1.0 GiB of WAL since the last full backup: waiting for the daily 01:00 window; "
            "next window at 2026-01-06T01:00:00Z");
  EXPECT_EQ(d.next_due, At("2026-01-06T01:00:00Z"));
  clock_.Set(At("2026-01-06T01:00:00Z"));
  EXPECT_EQ(Full().action, Action::kFull);
}

TEST_F(SchedulerTest, CustomWindowThresholdsStillFireInsideTheWindow) {
  s_.full_schedule = Daily(1, 2h);
  s_.full_max_age = 30min;
  clock_.Set(At("2026-01-05T01:05:00Z"));
  FullFinishedNow();  // the scheduled full, 01:05
  Advance(1min);
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, At("2026-01-05T01:35:00Z")) << "the age rule falls due inside this window";
  clock_.Set(At("2026-01-05T01:35:00Z"));
  d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "≥ 30m since the last full backup");
  // Age due after the window closes: the next window is next.
  o_.last_full_finish = At("2026-01-05T02:40:00Z");
  clock_.Set(At("2026-01-05T02:41:00Z"));
  EXPECT_EQ(Full().next_due, At("2026-01-06T01:00:00Z"));
}

TEST_F(SchedulerTest, CustomWindowDoesNotDelayDataSafety) {
  s_.full_schedule = Daily(1);
  clock_.Set(At("2026-01-05T12:00:00Z"));  // outside the window
  EXPECT_EQ(Full().reason, "managed backup just enabled: first full backup");
  FullFinishedNow();
  Advance(1min);
  EXPECT_EQ(Full().action, Action::kNone);
  o_.chain_broken = true;
  EXPECT_EQ(Full().action, Action::kFull);
  o_.chain_broken = false;
  o_.new_container = true;
  EXPECT_EQ(Full().action, Action::kFull);
}

TEST_F(SchedulerTest, CustomWeeklyWindowFiresOnItsWeekdayOnly) {
  s_.full_schedule = Weekly(3, 1h);  // Wednesday 01:00
  FullFinishedNow();
  clock_.Set(At("2026-01-06T01:30:00Z"));  // Tuesday, window time
  Decision d = Full();
  EXPECT_EQ(d.action, Action::kNone);
  EXPECT_EQ(d.next_due, At("2026-01-07T01:00:00Z"));
  clock_.Set(At("2026-01-07T01:30:00Z"));  // Wednesday
  d = Full();
  EXPECT_EQ(d.action, Action::kFull);
  EXPECT_EQ(d.reason, "scheduled full backup (weekly wed 01:00 window)");
  clock_.Set(At("2026-01-08T01:30:00Z"));  // Thursday
  EXPECT_EQ(Full().action, Action::kNone);
}

}  // namespace
}  // namespace sb
