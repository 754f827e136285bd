// JobManager: states queued → running → succeeded/failed/cancelled, progress,
// the cancel token, one unfinished job per (cluster, kind), per-kind limits
// with a first-come queue, shutdown, and the job table of the state store
// (a job a crash interrupted reads back as interrupted after a restart).
// Time is a ManualClock; jobs block on gates the test opens (no sleeps).
#include "agent/job_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "support/gate.h"

namespace sb {
namespace {

using namespace std::chrono_literals;
using test::Gate;

const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'767'571'200);

// A job that says it started, then waits for its gate.
JobFn Blocked(Gate* started, Gate* release, std::string detail = "done") {
  return [=](JobContext& ctx) -> Result<JobOutput> {
    ctx.SetProgress("streaming", 10, 100);
    started->Open();
    release->Wait();
    RETURN_IF_ERROR(ctx.CheckCancelled());
    return JobOutput{.detail = detail};
  };
}

JobFn Quick(std::string detail) {
  return [=](JobContext&) -> Result<JobOutput> { return JobOutput{.detail = detail}; };
}

JobState StateOf(JobManager& jobs, int64_t id) {
  auto j = jobs.Get(id);
  EXPECT_TRUE(j.ok()) << j.status().message();
  return j.ok() ? j->state : JobState::kFailed;
}

TEST(JobManagerTest, RunsAJobToSuccessWithItsOutputAndTimes) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  auto id = jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "on demand"},
                       [&](JobContext& ctx) -> Result<JobOutput> {
                         clock.Advance(11min);  // a long backup, in manual time
                         ctx.SetProgress("streaming", 5, 10);
                         return JobOutput{.detail = "20260105T000000Z-F"};
                       });
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_LT(*id, 0) << "no store: ids are this process's own";
  jobs.WaitAll();
  auto j = jobs.Get(*id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->state, JobState::kSucceeded);
  ASSERT_TRUE(j->output.has_value());
  EXPECT_EQ(j->output->detail, "20260105T000000Z-F");
  EXPECT_EQ(j->created, kT0);
  ASSERT_TRUE(j->started && j->finished);
  EXPECT_EQ(*j->finished - *j->started, 11min);
  EXPECT_EQ(j->progress.phase, "streaming");
  EXPECT_EQ(j->progress.bytes_done, 5u);
  EXPECT_EQ(j->Describe(), "full backup (on demand)");
  EXPECT_FALSE(jobs.Active("main", JobKind::kFull).has_value());
}

TEST(JobManagerTest, FailureKeepsTheErrorAndAThrowIsAFailureNotACrash) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  auto failed = jobs.Start({.kind = JobKind::kLog, .cluster = "main", .reason = "r"},
                           [](JobContext&) -> Result<JobOutput> { return Status::IoError("disk full"); });
  auto threw = jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "r"},
                          [](JobContext&) -> Result<JobOutput> { throw std::runtime_error("boom"); });
  ASSERT_TRUE(failed.ok() && threw.ok());
  jobs.WaitAll();
  auto f = jobs.Get(*failed);
  EXPECT_EQ(f->state, JobState::kFailed);
  EXPECT_EQ(f->error.code(), StatusCode::kIoError);
  EXPECT_EQ(f->error.message(), "disk full");
  auto t = jobs.Get(*threw);
  EXPECT_EQ(t->state, JobState::kFailed);
  EXPECT_EQ(t->error.code(), StatusCode::kInternal);
}

TEST(JobManagerTest, ProgressIsVisibleWhileRunningAndCancelStopsTheJob) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  Gate started, release;
  auto id = jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "r"}, Blocked(&started, &release));
  ASSERT_TRUE(id.ok());
  started.Wait();
  auto running = jobs.Get(*id);
  EXPECT_EQ(running->state, JobState::kRunning);
  EXPECT_EQ(running->progress.phase, "streaming");
  EXPECT_EQ(running->progress.bytes_total, 100u);
  EXPECT_EQ(jobs.Running(JobKind::kFull), 1);
  ASSERT_TRUE(jobs.Active("main", JobKind::kFull).has_value());

  ASSERT_TRUE(jobs.Cancel(*id).ok());
  EXPECT_TRUE(jobs.Get(*id)->cancel_requested);
  release.Open();
  jobs.WaitAll();
  auto j = jobs.Get(*id);
  EXPECT_EQ(j->state, JobState::kCancelled);
  EXPECT_EQ(j->error.code(), StatusCode::kCancelled);
  EXPECT_EQ(jobs.Running(JobKind::kFull), 0);
  EXPECT_EQ(jobs.Cancel(*id).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs.Cancel(12345).code(), StatusCode::kNotFound);
}

TEST(JobManagerTest, OneUnfinishedJobPerClusterAndKind) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  Gate started, release;
  auto first = jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "7 days since the last full"},
                          Blocked(&started, &release));
  ASSERT_TRUE(first.ok());
  auto second = jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "on demand"}, Quick("x"));
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(second.status().message(),
            "a full backup of \"main\" is already running: job " + std::to_string(*first) +
                " (7 days since the last full)");
  // Another kind, another cluster: fine.
  EXPECT_TRUE(jobs.Start({.kind = JobKind::kLog, .cluster = "main", .reason = "r"}, Quick("l")).ok());
  EXPECT_TRUE(jobs.Start({.kind = JobKind::kFull, .cluster = "reports", .reason = "r"}, Quick("f")).ok());
  release.Open();
  jobs.WaitAll();
  // Finished: the next one may start.
  EXPECT_TRUE(jobs.Start({.kind = JobKind::kFull, .cluster = "main", .reason = "on demand"}, Quick("y")).ok());
  jobs.WaitAll();
}

TEST(JobManagerTest, ALimitQueuesFirstComeFirstServedAndAQueuedJobCancelsAtOnce) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock, {.max_running = {{JobKind::kFull, 1}}});
  Gate a_started, a_release, b_started, b_release, c_started, c_release;
  auto a = jobs.Start({.kind = JobKind::kFull, .cluster = "a", .reason = "r"}, Blocked(&a_started, &a_release));
  auto b = jobs.Start({.kind = JobKind::kFull, .cluster = "b", .reason = "r"}, Blocked(&b_started, &b_release));
  auto c = jobs.Start({.kind = JobKind::kFull, .cluster = "c", .reason = "r"}, Blocked(&c_started, &c_release));
  auto log = jobs.Start({.kind = JobKind::kLog, .cluster = "a", .reason = "r"}, Quick("not limited"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && log.ok());
  a_started.Wait();
  EXPECT_EQ(StateOf(jobs, *b), JobState::kQueued);
  EXPECT_EQ(StateOf(jobs, *c), JobState::kQueued);
  EXPECT_FALSE(jobs.Get(*b)->started.has_value());
  EXPECT_EQ(jobs.Running(JobKind::kFull), 1);

  clock.Advance(1min);
  a_release.Open();
  b_started.Wait();  // b, the older of the queued, runs next
  EXPECT_EQ(StateOf(jobs, *a), JobState::kSucceeded);
  EXPECT_EQ(StateOf(jobs, *c), JobState::kQueued);
  EXPECT_EQ(*jobs.Get(*b)->started, kT0 + 1min);

  ASSERT_TRUE(jobs.Cancel(*c).ok());
  EXPECT_EQ(StateOf(jobs, *c), JobState::kCancelled);
  b_release.Open();
  jobs.WaitAll();
  EXPECT_EQ(StateOf(jobs, *b), JobState::kSucceeded);
  EXPECT_EQ(StateOf(jobs, *log), JobState::kSucceeded);
}

TEST(JobManagerTest, ShutdownCancelsQueuedJobsWaitsForRunningOnesAndRefusesNewOnes) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock, {.max_running = {{JobKind::kFull, 1}}});
  Gate started;
  // Runs until asked to stop (Shutdown cancels the queued job before it asks the running ones).
  auto running = jobs.Start({.kind = JobKind::kFull, .cluster = "a", .reason = "r"},
                            [&](JobContext& ctx) -> Result<JobOutput> {
                              started.Open();
                              while (!ctx.cancelled()) std::this_thread::yield();
                              RETURN_IF_ERROR(ctx.CheckCancelled());
                              return JobOutput{};
                            });
  auto queued = jobs.Start({.kind = JobKind::kFull, .cluster = "b", .reason = "r"}, Quick("never runs"));
  ASSERT_TRUE(running.ok() && queued.ok());
  started.Wait();
  jobs.Shutdown(JobManager::ShutdownMode::kCancel);
  EXPECT_EQ(StateOf(jobs, *running), JobState::kCancelled);
  EXPECT_EQ(StateOf(jobs, *queued), JobState::kCancelled);
  auto late = jobs.Start({.kind = JobKind::kLog, .cluster = "a", .reason = "r"}, Quick("x"));
  EXPECT_EQ(late.status().code(), StatusCode::kUnavailable);
}

TEST(JobManagerTest, ListIsNewestFirstPerCluster) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  for (const char* cluster : {"a", "b", "a"}) {
    ASSERT_TRUE(jobs.Start({.kind = JobKind::kLog, .cluster = cluster, .reason = "r"}, Quick(cluster)).ok());
    jobs.WaitAll();
    clock.Advance(1s);
  }
  auto a = jobs.List("a");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_GT(a[0].created, a[1].created);
  EXPECT_EQ(jobs.List("").size(), 3u);
  EXPECT_EQ(jobs.List("", 1).size(), 1u);
}

class JobManagerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("sb_job_manager_test_" + std::to_string(::getpid()) + "_" + info->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<StateStore> Open() {
    auto s = StateStore::Open((dir_ / "state.db").string());
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::filesystem::path dir_;
};

TEST_F(JobManagerStoreTest, JobsAreRecordedAndAnInterruptedOneReadsBackAfterARestart) {
  ManualClock clock(kT0);
  auto store = Open();
  ASSERT_TRUE(store);
  Gate started, release, never;
  auto jobs = std::make_unique<JobManager>(store.get(), &clock,
                                           JobManagerOptions{.max_running = {{JobKind::kFull, 1}}});
  auto done = jobs->Start({.kind = JobKind::kLog, .cluster = "main", .reason = "5MiB of WAL"}, Quick("L-1"));
  ASSERT_TRUE(done.ok());
  jobs->WaitAll();
  auto running = jobs->Start({.kind = JobKind::kFull, .cluster = "main", .reason = "on demand"},
                             Blocked(&started, &release));
  auto queued = jobs->Start({.kind = JobKind::kFull, .cluster = "other", .reason = "r"}, Blocked(&never, &never));
  ASSERT_TRUE(running.ok() && queued.ok());
  EXPECT_GT(*running, 0) << "ids are the job table's";
  started.Wait();
  auto rows = store->RecentJobs("", 0);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].result, "queued");
  EXPECT_EQ((*rows)[1].result, "running");
  EXPECT_EQ((*rows)[1].kind, "full");
  EXPECT_EQ((*rows)[2].result, "ok");
  EXPECT_EQ((*rows)[2].detail, "L-1");

  // The agent crashes here: a new process opens the same state and marks what was unfinished.
  {
    auto store2 = Open();
    ASSERT_TRUE(store2);
    ASSERT_TRUE(store2->MarkInterruptedJobs(kT0 + 1h).ok());
    JobManager after(store2.get(), &clock);
    auto j = after.Get(*running);
    ASSERT_TRUE(j.ok()) << j.status().message();
    EXPECT_EQ(j->state, JobState::kInterrupted);
    EXPECT_TRUE(j->from_history);
    EXPECT_EQ(j->cluster, "main");
    EXPECT_EQ(j->kind, JobKind::kFull);
    EXPECT_EQ(j->error.message(), "the agent stopped before the job finished");
    EXPECT_EQ(after.Get(*queued)->state, JobState::kInterrupted);
    auto ok = after.Get(*done);
    EXPECT_EQ(ok->state, JobState::kSucceeded);
    EXPECT_EQ(ok->output->detail, "L-1");
    EXPECT_EQ(after.List("main").size(), 2u);
    EXPECT_EQ(after.Get(999999).status().code(), StatusCode::kNotFound);
    // New ids continue after the old ones.
    auto next = after.Start({.kind = JobKind::kLog, .cluster = "main", .reason = "r"}, Quick("L-2"));
    ASSERT_TRUE(next.ok());
    EXPECT_GT(*next, *queued);
    after.WaitAll();
  }
  ASSERT_TRUE(jobs->Cancel(*queued).ok());  // (else it would start, and wait forever, once `running` ends)
  release.Open();
  jobs->Shutdown();
}

TEST_F(JobManagerStoreTest, AQueuedJobThatStartsIsRecordedAsRunningThenFinished) {
  ManualClock clock(kT0);
  auto store = Open();
  ASSERT_TRUE(store);
  JobManager jobs(store.get(), &clock, {.max_running = {{JobKind::kFull, 1}}});
  Gate a_started, a_release, b_started, b_release;
  auto a = jobs.Start({.kind = JobKind::kFull, .cluster = "a", .reason = "r"}, Blocked(&a_started, &a_release));
  auto b = jobs.Start({.kind = JobKind::kFull, .cluster = "b", .reason = "r"}, Blocked(&b_started, &b_release, "F-b"));
  ASSERT_TRUE(a.ok() && b.ok());
  a_started.Wait();
  clock.Advance(5min);
  a_release.Open();
  b_started.Wait();
  auto row = store->Job(*b);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->result, "running");
  EXPECT_EQ((*row)->started, kT0 + 5min);
  b_release.Open();
  jobs.WaitAll();
  row = store->Job(*b);
  EXPECT_EQ((*row)->result, "ok");
  EXPECT_EQ((*row)->detail, "F-b");
}

}  // namespace
}  // namespace sb
