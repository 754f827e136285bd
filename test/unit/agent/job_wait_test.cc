// backup-on-demand's wait, through the job routes and a JobManager in process:
// a backup whose storage is slowed (FaultStorage delays on a ManualClock) runs
// for more than ten minutes and still reports success with its progress; an
// agent that stops answering gives one line naming the agent, the job and the
// unknown fate (never a library's error name); a restarted agent's
// "interrupted" is reported as such. Routes: 202 with the job, 409 naming the
// running one, GET and list.
#include "agent/job_wait.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <nlohmann/json.hpp>

#include "agent/job_routes.h"
#include "repo/repository.h"
#include "storage/fault/fault_storage.h"
#include "storage/memory/memory_storage.h"
#include "support/gate.h"

namespace sb {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'767'571'200);

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// An on-demand "full backup" that writes `chunks` objects to `storage`, reporting progress
// as the engine does (bytes stored of the estimate), and returns its manifest.
// after_chunk(i) runs once chunk i is stored and reported.
JobFn SlowBackup(Storage* storage, int chunks, std::function<void(int)> after_chunk) {
  return [storage, chunks, after_chunk](JobContext& ctx) -> Result<JobOutput> {
    const std::string chunk(64 * 1024, 'x');
    const uint64_t total = chunk.size() * static_cast<uint64_t>(chunks);
    ctx.SetProgress("starting (checkpoint)", 0, 0);
    for (int i = 0; i < chunks; ++i) {
      RETURN_IF_ERROR(ctx.CheckCancelled());
      RETURN_IF_ERROR(storage->Put("db/main/c1/data/F1/00-" + std::to_string(i), chunk));
      ctx.SetProgress("streaming", chunk.size() * (i + 1), total);
      after_chunk(i);
    }
    BackupManifest m;
    m.database = "main";
    m.container = "c1";
    m.backup_id = "20260105T000000Z-F";
    m.type = BackupType::kFull;
    m.start_lsn = "0/2000028";
    m.end_lsn = "0/2000100";
    return JobOutput{.detail = m.backup_id, .backup = m};
  };
}

// The agent's router for one database "main", in the few lines the agent has.
ApiHandler Router(JobManager& jobs, std::function<JobFn(JobKind)> make_work) {
  return [&jobs, make_work](const ApiRequest& r) -> ApiResponse {
    if (auto answer = RouteJobs(jobs, r)) return *answer;
    if (r.method == "POST" && r.path == "/v1/db/main/backup") {
      return PostBackupJob(jobs, r.body, [&jobs, make_work](JobKind kind) {
        return jobs.Start({.kind = kind, .cluster = "main", .reason = "on demand"}, make_work(kind));
      });
    }
    return {.status = 404, .body = json{{"error", "no such route"}}.dump()};
  };
}

TEST(JobWaitTest, ABackupLongerThanTenMinutesOnSlowStorageReportsSuccessWithProgress) {
  ManualClock clock(kT0);
  MemoryStorage base;
  FaultStorage slow(&base, &clock);
  slow.DelayOn(FaultOp::kPut, 1min);  // each chunk takes a minute: 15 chunks, 15 minutes
  JobManager jobs(nullptr, &clock);
  // The backup goes on past its first chunk only once the waiter has shown that chunk's
  // progress: what the waiter sees does not depend on thread scheduling.
  test::Gate progress_seen;
  auto after_chunk = [&](int i) {
    if (i == 0) progress_seen.Wait();
  };
  auto api = HandlerAgentApi(Router(jobs, [&](JobKind) { return SlowBackup(&slow, 15, after_chunk); }),
                             "the agent at /s");

  std::vector<std::string> lines;
  uint64_t most_bytes = 0;
  const SteadyTime wait_began = clock.SteadyNow();
  auto result = BackupOnDemand(*api, &clock, "main", "full", {}, [&](const JobView& job, std::chrono::milliseconds e) {
    lines.push_back(JobProgressLine(job, e));
    EXPECT_GE(job.bytes_done, most_bytes) << "progress only goes forward";
    most_bytes = std::max(most_bytes, job.bytes_done);
    if (job.bytes_done > 0) progress_seen.Open();
  });
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ((*result)["backup_id"], "20260105T000000Z-F");
  EXPECT_EQ((*result)["type"], "full");
  EXPECT_EQ((*result)["path"], Repository::ManifestKey("main", "c1", "20260105T000000Z-F"));
  EXPECT_EQ((*result)["start_lsn"], "0/2000028");
  EXPECT_EQ((*result)["end_lsn"], "0/2000100");
  EXPECT_EQ(base.List("db/main/", "").value().objects.size(), 15u);

  auto job = jobs.List("main");
  ASSERT_EQ(job.size(), 1u);
  EXPECT_EQ(job[0].state, JobState::kSucceeded);
  ASSERT_TRUE(job[0].started && job[0].finished);
  EXPECT_GE(*job[0].finished - *job[0].started, 15min) << "the storage alone took 15 minutes";
  EXPECT_GE(clock.Now() - kT0, 15min);
  // The waiter was polling before chunk 1 (the gate) and until after chunk 14: 14 minutes at least.
  EXPECT_GE(clock.SteadyNow() - wait_began, 14min) << "the waiter kept waiting past ten minutes";
  EXPECT_TRUE(std::any_of(lines.begin(), lines.end(), [](const std::string& l) {
    return Has(l, "full backup of \"main\" (job ") && Has(l, "streaming, 64.0 KiB of ~960.0 KiB (6%)");
  })) << (lines.empty() ? "no progress lines" : lines.back());
}

TEST(JobWaitTest, ProgressLineSaysWhatWhereAndHowLong) {
  JobView v{.id = 12, .database = "main", .type = "full", .state = JobState::kRunning, .phase = "streaming",
            .bytes_done = 3ull << 30, .bytes_total = 4ull << 30};
  EXPECT_EQ(JobProgressLine(v, 130s), "full backup of \"main\" (job 12): streaming, 3.0 GiB of ~4.0 GiB (75%), 2m10s");
  v.bytes_done = 5ull << 30;  // past the server's estimate (the WAL it adds)
  EXPECT_TRUE(Has(JobProgressLine(v, 2h + 5min), "(99%), 2h05m")) << JobProgressLine(v, 2h);
  JobView q{.id = 3, .database = "db", .type = "log", .state = JobState::kQueued};
  EXPECT_EQ(JobProgressLine(q, 5s), "log backup of \"db\" (job 3): queued, 5s");
}

// An API whose answers the test scripts: the POST's, then one per poll.
class ScriptedApi final : public AgentApi {
 public:
  std::deque<Result<ApiResponse>> answers;
  int calls = 0;
  Result<ApiResponse> Call(const std::string&, const std::string&, const std::string&) override {
    ++calls;
    if (answers.empty()) return NoAnswer();
    auto a = answers.front();
    if (answers.size() > 1) answers.pop_front();
    return a;
  }
  std::string Describe() const override { return "the agent at /run/smartbackup/agent.sock"; }
  static Status NoAnswer() {
    return Status::Unavailable("the agent on /run/smartbackup/agent.sock did not answer GET /v1/jobs/7: no answer")
        .WithDetail(StatusDetail::kNoAnswer);
  }
  static ApiResponse Job(const std::string& state, const json& extra = json::object()) {
    json j = {{"job_id", 7}, {"database", "main"}, {"type", "full"}, {"state", state},
              {"progress", {{"phase", "streaming"}, {"bytes_done", 1}, {"bytes_total", 2}}}};
    j.update(extra);
    return {.status = state == "queued" || state == "running" ? 202 : 200, .body = j.dump()};
  }
};

TEST(JobWaitTest, AnAgentThatStopsAnsweringMidWayIsReportedInOneLineWithTheFateUnknown) {
  ManualClock clock(kT0);
  ScriptedApi api;
  api.answers = {ScriptedApi::Job("running"), ScriptedApi::Job("running"), ScriptedApi::NoAnswer()};
  auto r = BackupOnDemand(api, &clock, "main", "full", {.config_flag = " --config /etc/sb.toml"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().detail(), StatusDetail::kNoAnswer);
  const std::string& m = r.status().message();
  EXPECT_EQ(m,
            "the agent at /run/smartbackup/agent.sock stopped answering while job 7 (full backup of \"main\") was "
            "running; the backup's fate is unknown; hint: once the agent is back, smartbackup status --config "
            "/etc/sb.toml shows whether it still runs and smartbackup available-backups --repo URL --db main "
            "whether it was written");
  EXPECT_FALSE(Has(m, "Read"));
  EXPECT_FALSE(Has(m, "\n"));
  // It gave the agent the grace period (a restart), no more.
  EXPECT_GE(clock.Now() - kT0, 15s);
  EXPECT_LE(clock.Now() - kT0, 20s);
}

TEST(JobWaitTest, AnAgentThatRestartsMeanwhileReportsTheJobInterrupted) {
  ManualClock clock(kT0);
  ScriptedApi api;
  api.answers = {ScriptedApi::Job("running"), ScriptedApi::NoAnswer(), ScriptedApi::NoAnswer(),
                 ScriptedApi::Job("interrupted", {{"error", "the agent stopped before the job finished"},
                                                  {"error_code", "unavailable"}})};
  auto r = BackupOnDemand(api, &clock, "main", "full", {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Has(r.status().message(),
                  "job 7 (full backup of \"main\") was interrupted: the agent stopped before the job finished"))
      << r.status().message();
}

TEST(JobWaitTest, AFailedJobGivesItsErrorWithItsCode) {
  ManualClock clock(kT0);
  ScriptedApi api;
  api.answers = {ScriptedApi::Job("queued"),
                 ScriptedApi::Job("failed", {{"error", "backs off: another smartbackup agent is writing"},
                                             {"error_code", StatusCodeName(StatusCode::kAlreadyExists)}})};
  auto r = BackupOnDemand(api, &clock, "main", "full", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(r.status().message(), "backs off: another smartbackup agent is writing");
}

TEST(JobWaitTest, APostThatIsNotAnsweredSaysTheStartIsUnknownAndARefusalPassesThrough) {
  ManualClock clock(kT0);
  ScriptedApi lost;
  auto r = BackupOnDemand(lost, &clock, "main", "log", {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Has(r.status().message(), "whether the backup started is unknown")) << r.status().message();

  ScriptedApi none;
  none.answers = {Status::Unavailable("no agent is running on /s; hint: start it")};
  r = BackupOnDemand(none, &clock, "main", "log", {});
  EXPECT_EQ(r.status().message(), "no agent is running on /s; hint: start it");
}

TEST(JobRoutesTest, PostAnswersAtOnceAndASecondOneNamesTheRunningJob) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  test::Gate release;
  auto work = [&](JobKind) -> JobFn {
    return [&](JobContext& ctx) -> Result<JobOutput> {
      ctx.SetProgress("streaming", 5, 10);
      release.Wait();
      return JobOutput{.detail = "x"};
    };
  };
  ApiHandler api = Router(jobs, work);
  ApiResponse first = api({.method = "POST", .path = "/v1/db/main/backup", .body = R"({"type":"full"})"});
  ASSERT_EQ(first.status, 202) << first.body;
  json j = json::parse(first.body);
  const int64_t id = j["job_id"];
  EXPECT_EQ(j["database"], "main");
  EXPECT_EQ(j["type"], "full");
  EXPECT_EQ(j["poll"], "/v1/jobs/" + std::to_string(id));

  ApiResponse second = api({.method = "POST", .path = "/v1/db/main/backup", .body = R"({"type":"full"})"});
  EXPECT_EQ(second.status, 409);
  EXPECT_TRUE(Has(json::parse(second.body)["error"], "a full backup of \"main\" is already running: job " +
                                                         std::to_string(id) + " (on demand)"))
      << second.body;
  EXPECT_EQ(api({.method = "POST", .path = "/v1/db/main/backup", .body = R"({"type":"diff"})"}).status, 400);

  json listed = json::parse(api({.method = "GET", .path = "/v1/jobs", .query = "database=main"}).body);
  ASSERT_EQ(listed["jobs"].size(), 1u);
  EXPECT_EQ(json::parse(api({.method = "GET", .path = "/v1/jobs", .query = "database=other"}).body)["jobs"].size(),
            0u);
  EXPECT_EQ(api({.method = "GET", .path = "/v1/jobs/abc"}).status, 400);
  EXPECT_EQ(api({.method = "GET", .path = "/v1/jobs/424242"}).status, 404);

  release.Open();
  jobs.WaitAll();
  json done = json::parse(api({.method = "GET", .path = "/v1/jobs/" + std::to_string(id)}).body);
  EXPECT_EQ(done["state"], "succeeded");
  EXPECT_EQ(done["progress"]["bytes_done"], 5);
  EXPECT_EQ(done["result"]["detail"], "x");
  EXPECT_FALSE(done.contains("error"));
}

TEST(JobRoutesTest, CancelOfARunningJobEndsItCancelled) {
  ManualClock clock(kT0);
  JobManager jobs(nullptr, &clock);
  ApiHandler api = Router(jobs, [&](JobKind) -> JobFn {
    return [](JobContext& ctx) -> Result<JobOutput> {
      while (!ctx.cancelled()) std::this_thread::yield();
      RETURN_IF_ERROR(ctx.CheckCancelled());
      return JobOutput{};
    };
  });
  json j = json::parse(api({.method = "POST", .path = "/v1/db/main/backup", .body = R"({"type":"log"})"}).body);
  const std::string path = "/v1/jobs/" + std::to_string(j["job_id"].get<int64_t>());
  ASSERT_EQ(api({.method = "POST", .path = path + "/cancel"}).status, 200);
  jobs.WaitAll();
  json done = json::parse(api({.method = "GET", .path = path}).body);
  EXPECT_EQ(done["state"], "cancelled");
  EXPECT_EQ(done["error_code"], StatusCodeName(StatusCode::kCancelled));
  EXPECT_EQ(api({.method = "POST", .path = path + "/cancel"}).status, 409);
}

}  // namespace
}  // namespace sb
