// StateStore::Prune: the agent's SQLite state stays bounded — health events
// and finished jobs go past their retention, loop heartbeats after two days,
// and the oldest rows beyond the caps — while running jobs and recent history
// stay. Times come from a ManualClock, never from the wall clock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "agent/state_store.h"
#include "common/clock.h"

namespace sb {
namespace {

using namespace std::chrono_literals;

class StateStorePruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sb_state_prune_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    auto s = StateStore::Open((dir_ / "state.db").string());
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  size_t Events() { return store_->HealthEvents(SystemTime{}, clock_.Now() + 1h)->size(); }
  void Event(HealthCategory c) { ASSERT_TRUE(store_->RecordHealthEvent({.at = clock_.Now(), .category = c}).ok()); }

  ManualClock clock_{std::chrono::system_clock::from_time_t(1'800'000'000)};
  std::filesystem::path dir_;
  std::unique_ptr<StateStore> store_;
};

TEST_F(StateStorePruneTest, OldEventsHeartbeatsAndFinishedJobsGoRunningJobsStay) {
  store_->SetRetention({.prune_every = 1'000'000});  // only explicit prunes here
  Event(HealthCategory::kStorageError);
  Event(HealthCategory::kBackupLoop);
  auto old_job = store_->StartJob({.cluster = "main", .kind = "full", .started = clock_.Now(), .result = "running"});
  auto stuck_job = store_->StartJob({.cluster = "main", .kind = "log", .started = clock_.Now(), .result = "running"});
  ASSERT_TRUE(old_job.ok() && stuck_job.ok());
  ASSERT_TRUE(store_->FinishJob(*old_job, "ok", "", clock_.Now()).ok());
  clock_.Advance(std::chrono::hours(24 * 3));
  Event(HealthCategory::kRetentionLoop);
  ASSERT_TRUE(store_->Prune(clock_.Now()).ok());
  EXPECT_EQ(Events(), 2u) << "the 3-day-old heartbeat goes, the error and the new heartbeat stay";
  clock_.Advance(std::chrono::hours(24 * 28));
  ASSERT_TRUE(store_->Prune(clock_.Now()).ok());
  EXPECT_EQ(Events(), 0u) << "31 days: every event goes";
  auto jobs = store_->RecentJobs("", 0);
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id, *stuck_job) << "a running job is never pruned";
}

TEST_F(StateStorePruneTest, CapsKeepTheNewestRowsAndInsertsPruneThemselves) {
  store_->SetRetention({.max_events = 50, .max_jobs = 5, .prune_every = 20});
  for (int i = 0; i < 200; ++i) {
    clock_.Advance(10s);
    Event(HealthCategory::kBackupLoop);
  }
  EXPECT_LE(Events(), 50u + 20u) << "pruned every 20 inserts down to the 50 newest";
  for (int i = 0; i < 12; ++i) {
    auto id = store_->StartJob({.cluster = "main", .kind = "log", .started = clock_.Now(), .result = "running"});
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(store_->FinishJob(*id, "ok", "", clock_.Now()).ok());
  }
  ASSERT_TRUE(store_->Prune(clock_.Now(), {.max_events = 50, .max_jobs = 5}).ok());
  auto jobs = store_->RecentJobs("", 0);
  ASSERT_EQ(jobs->size(), 5u);
  EXPECT_EQ(Events(), 50u);
  // Three days of heartbeats (one per 10 minutes here) keep only the last two days' worth.
  store_->SetRetention({.prune_every = 10});
  for (int i = 0; i < 6 * 24 * 3; ++i) {
    clock_.Advance(10min);
    Event(HealthCategory::kBackupLoop);
  }
  EXPECT_LE(Events(), static_cast<size_t>(6 * 24 * 2 + 10));
}

}  // namespace
}  // namespace sb
