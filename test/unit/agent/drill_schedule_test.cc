// The restore-drill rules (DecideDrill, and the full a failed drill triggers):
// after each new full backup, at most once per drill_interval, one at a time,
// yielding to backups, skipped with a typed reason when it would not fit.
// ManualClock time; no I/O.
#include <gtest/gtest.h>

#include "agent/scheduler.h"
#include "common/text.h"

namespace sb {
namespace {

using namespace std::chrono_literals;
using Action = Decision::Action;

const SystemTime kStart = std::chrono::system_clock::from_time_t(1'767'571'200);
constexpr uint64_t kGiB = 1ull << 30;

class DrillScheduleTest : public ::testing::Test {
 protected:
  DrillScheduleTest() : clock_(kStart) {
    s_.enabled = true;
    o_.enabled = true;
    o_.last_full_finish = kStart - 1h;
    o_.last_full_start_lsn = Lsn{0x3000028};
    o_.current_lsn = Lsn{0x3001000};
    o_.newest_full_id = "20260104T230000Z-F-0001";
    o_.newest_full_bytes = 2 * kGiB;
    o_.drill_free_bytes = 10 * kGiB;
  }
  Decision Drill() {
    o_.now = clock_.Now();
    return DecideDrill(o_, s_);
  }
  Decision Full() {
    o_.now = clock_.Now();
    return DecideFull(o_, s_);
  }
  ManualClock clock_;
  ClusterSettings s_;
  ClusterObservation o_;
};

TEST_F(DrillScheduleTest, OnByDefaultAfterANewFullOncePerInterval) {
  EXPECT_TRUE(s_.drill_enabled);
  EXPECT_EQ(s_.drill_interval, std::chrono::milliseconds(24h));
  Decision d = Drill();
  EXPECT_EQ(d.action, Action::kDrill) << d.reason;
  // Drilled: nothing until the next full.
  o_.last_drill_finish = clock_.Now();
  o_.last_drill_backup_id = o_.newest_full_id;
  EXPECT_EQ(Drill().action, Action::kNone);
  // A new full an hour later: still inside the interval.
  clock_.Advance(1h);
  o_.newest_full_id = "20260105T010000Z-F-0002";
  d = Drill();
  EXPECT_EQ(d.action, Action::kNone);
  ASSERT_TRUE(d.next_due);
  EXPECT_EQ(*d.next_due, kStart + 24h);
  clock_.Advance(23h - 1s);
  EXPECT_EQ(Drill().action, Action::kNone) << "one second before the interval";
  clock_.Advance(1s);
  EXPECT_EQ(Drill().action, Action::kDrill);
}

TEST_F(DrillScheduleTest, YieldsToBackupsAndRunsOneAtATime) {
  o_.full_running = true;
  EXPECT_EQ(Drill().action, Action::kNone);
  o_.full_running = false;
  o_.log_running = true;
  EXPECT_EQ(Drill().action, Action::kNone);
  o_.log_running = false;
  o_.drill_running = true;
  EXPECT_EQ(Drill().action, Action::kNone);
  o_.drill_running = false;
  EXPECT_EQ(Drill().action, Action::kDrill);
}

TEST_F(DrillScheduleTest, SkippedWithATypedReasonWhenItWouldNotFit) {
  s_.drill_free_space_reserve = kGiB;
  o_.drill_free_bytes = 3 * kGiB - 1;  // 2 GiB backup + 1 GiB reserve
  Decision d = Drill();
  EXPECT_EQ(d.action, Action::kSkip);
  EXPECT_EQ(d.drill_skip, DrillSkip::kNoSpace);
  o_.drill_free_bytes = 3 * kGiB;
  EXPECT_EQ(Drill().action, Action::kDrill);
  s_.public_key = "/etc/smartbackup/pub.pem";
  o_.drill_key_unreadable = true;
  d = Drill();
  EXPECT_EQ(d.action, Action::kSkip);
  EXPECT_EQ(d.drill_skip, DrillSkip::kUnreadable);
}

TEST_F(DrillScheduleTest, OffNoFullOrManagedBackupDisabledMeansNoDrill) {
  s_.drill_enabled = false;
  EXPECT_EQ(Drill().action, Action::kNone);
  s_.drill_enabled = true;
  o_.newest_full_id.clear();
  EXPECT_EQ(Drill().action, Action::kNone);
  o_.newest_full_id = "x";
  s_.enabled = false;
  EXPECT_EQ(Drill().action, Action::kSkip);
}

TEST_F(DrillScheduleTest, AFailedDrillOfTheBackupsTriggersAFullUntilOneIsTaken) {
  EXPECT_EQ(Full().action, Action::kNone);
  o_.last_drill_finish = kStart - 10min;
  o_.last_drill_failed = true;
  o_.last_drill_error = "object \"db/main/wal/x\" is missing";
  Decision f = Full();
  EXPECT_EQ(f.action, Action::kFull);
  EXPECT_NE(f.reason.find("restore drill failed"), std::string::npos) << f.reason;
  // The full taken after it ends the rule.
  o_.last_full_finish = kStart - 5min;
  EXPECT_EQ(Full().action, Action::kNone);
}

}  // namespace
}  // namespace sb
