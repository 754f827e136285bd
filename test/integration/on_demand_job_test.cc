// An on-demand full backup of a real cluster as a job, on storage slowed by
// injected delays (FaultStorage on a ManualClock, so no real minutes pass):
// a backup that takes more than ten minutes reports success through the job
// API and backup-on-demand's wait, with the engine's progress on the way; a
// job cancelled mid-backup ends cancelled and leaves no backup.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agent/job_routes.h"
#include "agent/job_wait.h"
#include "engine/backup/full_backup.h"
#include "repo/repository.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"
#include "support/gate.h"
#include "support/pg_cluster.h"

namespace sb::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'767'571'200);

class OnDemandJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 1 -q");
    auto slow = std::make_unique<FaultStorage>(&memory_, &clock_);
    slow->DelayOn(FaultOp::kPut, 30s);  // every object takes 30 s of the manual clock
    auto repo = Repository::Open(std::move(slow), /*create=*/true, &clock_);
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    repo_ = std::move(repo).value();
  }
  void TearDown() override {
    gate_.Open();
    jobs_.Shutdown(JobManager::ShutdownMode::kCancel);
  }

  // What the agent's on-demand route runs, with the engine's progress and cancel token.
  JobFn FullBackupWork() {
    return [this](JobContext& job) -> Result<JobOutput> {
      auto m = RunFullBackup(*repo_, {.conninfo = cluster_->conninfo(),
                                      .database = "main",
                                      .parallelism = 1,
                                      .chunk_size = 1 << 20,
                                      .progress =
                                          [this, &job](const FullBackupProgress& p) {
                                            job.SetProgress(FullBackupPhaseName(p.phase), p.bytes_done,
                                                            p.bytes_total);
                                            if (p.bytes_done > 0) gate_.Wait();
                                          },
                                      .cancelled = [&job] { return job.cancelled(); }});
      if (!m.ok()) return m.status();
      return JobOutput{.detail = m->backup_id, .backup = *m};
    };
  }

  ApiHandler Router() {
    return [this](const ApiRequest& r) -> ApiResponse {
      if (auto answer = RouteJobs(jobs_, r)) return *answer;
      if (r.method == "POST" && r.path == "/v1/db/main/backup") {
        return PostBackupJob(jobs_, r.body, [this](JobKind kind) {
          return jobs_.Start({.kind = kind, .cluster = "main", .reason = "on demand"}, FullBackupWork());
        });
      }
      return {.status = 404, .body = R"({"error":"no such route"})"};
    };
  }

  ManualClock clock_{kT0};
  std::unique_ptr<PgCluster> cluster_;
  MemoryStorage memory_;
  Gate gate_;
  std::unique_ptr<Repository> repo_;
  JobManager jobs_{nullptr, &clock_};
};

TEST_F(OnDemandJobTest, AFullBackupLongerThanTenMinutesReportsSuccessWithProgress) {
  auto api = HandlerAgentApi(Router(), "the agent at /test");
  std::vector<std::string> lines;
  const SteadyTime began = clock_.SteadyNow();
  auto result = BackupOnDemand(*api, &clock_, "main", "full", {}, [&](const JobView& job, std::chrono::milliseconds e) {
    lines.push_back(JobProgressLine(job, e));
    if (job.phase == "streaming" && job.bytes_done > 0) gate_.Open();  // seen mid-backup: let it go on
  });
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ((*result)["type"], "full");
  const std::string path = (*result)["path"];
  EXPECT_TRUE(memory_.Stat(path).ok()) << path;
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->backups.size(), 1u);
  EXPECT_EQ(listing->backups[0].backup_id, (*result)["backup_id"]);

  EXPECT_GE(clock_.SteadyNow() - began, 11min) << "the backup took more than ten minutes of the clock";
  auto job = jobs_.List("main");
  ASSERT_EQ(job.size(), 1u);
  EXPECT_EQ(job[0].state, JobState::kSucceeded);
  EXPECT_GE(*job[0].finished - *job[0].started, 11min);
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find("full backup of \"main\" (job ") == 0 && l.find(": streaming, 1.0 MiB") != std::string::npos;
  })) << (lines.empty() ? "no progress shown" : lines.back());
}

TEST_F(OnDemandJobTest, ACancelledJobEndsCancelledAndLeavesNoBackup) {
  ApiHandler api = Router();
  ApiResponse posted = api({.method = "POST", .path = "/v1/db/main/backup", .body = R"({"type":"full"})"});
  ASSERT_EQ(posted.status, 202) << posted.body;
  const std::string job = "/v1/jobs/" + std::to_string(json::parse(posted.body)["job_id"].get<int64_t>());
  // The first chunk is stored; the second waits at the gate: cancel, then let it go on.
  for (;;) {
    json j = json::parse(api({.method = "GET", .path = job}).body);
    if (j["progress"]["bytes_done"].get<uint64_t>() > 0) break;
    ASSERT_EQ(j["state"], "running") << j.dump();
    std::this_thread::yield();
  }
  ASSERT_EQ(api({.method = "POST", .path = job + "/cancel"}).status, 200);
  gate_.Open();
  jobs_.WaitAll();
  json done = json::parse(api({.method = "GET", .path = job}).body);
  EXPECT_EQ(done["state"], "cancelled") << done.dump();
  auto listing = repo_->ListBackups("main");
  ASSERT_TRUE(listing.ok());
  EXPECT_TRUE(listing->backups.empty());
  auto left = ListAll(memory_, "db/main/");
  ASSERT_TRUE(left.ok());
  for (const auto& o : *left) EXPECT_EQ(o.key.find("/data/"), std::string::npos) << o.key << " was left behind";
}

}  // namespace
}  // namespace sb::test
