// The client side of agent jobs: start an on-demand backup and wait for its
// job, however long it runs. There is no overall deadline: each request has a
// short one (the agent answers job polls at once), and the wait gives up only
// when the agent stops answering for `unanswered_limit` — then it says so in one
// line, naming the agent, the job and that the backup's fate is unknown.
// `backup-on-demand` is this plus printing; tests drive it with a ManualClock
// and an in-process AgentApi.
// Thread-safety: functions are reentrant; an AgentApi is used by one caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/api.h"
#include "agent/job_manager.h"
#include "common/clock.h"
#include "common/status.h"

namespace sb {

// One request to the agent's API. Non-2xx answers are errors (StatusFromResponse);
// kUnavailable means the agent did not answer (StatusDetail::kNoAnswer: the
// request went out, so its effect is unknown).
class AgentApi {
 public:
  virtual ~AgentApi() = default;
  virtual Result<ApiResponse> Call(const std::string& method, const std::string& path, const std::string& body) = 0;
  // "the agent at /run/smartbackup/agent.sock": how messages name it.
  virtual std::string Describe() const = 0;
};

// Over the agent's unix socket (CallAgent), each request bounded by read_timeout.
std::unique_ptr<AgentApi> SocketAgentApi(std::string socket, std::string token, std::chrono::seconds read_timeout);
// In process: requests go to `handler` (e.g. Agent::HandleApi, or the job routes in tests).
std::unique_ptr<AgentApi> HandlerAgentApi(ApiHandler handler, std::string description = "the agent");

// A job as GET /v1/jobs/ID shows it (JobJson).
struct JobView {
  int64_t id = 0;
  std::string database;
  std::string type;  // "full", "log", …
  JobState state = JobState::kQueued;
  std::string phase;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  nlohmann::json result;  // when succeeded
  std::string error;      // when it ended otherwise
  StatusCode error_code = StatusCode::kInternal;
};
Result<JobView> ParseJobView(const std::string& body);

// "full backup of "main" (job 12): streaming, 1.2 GiB of ~4.0 GiB (30%), 2m10s"
std::string JobProgressLine(const JobView& job, std::chrono::milliseconds elapsed);

struct JobWaitOptions {
  std::chrono::milliseconds poll_interval{1000};
  // The agent may go this long without answering (a restart) before the wait gives up.
  std::chrono::milliseconds unanswered_limit{15000};
  // Appended to the verbs that messages suggest, e.g. " --config /etc/smartbackup/agent.toml".
  std::string config_flag;
};

// Called before each poll with the job as last seen and the time waited so far.
using JobProgressFn = std::function<void(const JobView&, std::chrono::milliseconds elapsed)>;

// Polls GET /v1/jobs/ID (sleeping poll_interval on `clock` between polls)
// until the job ends. Succeeded → the job. Failed or cancelled → its error
// with its code. Interrupted (the agent restarted meanwhile) → kUnavailable
// saying so. Not answered for unanswered_limit, or the agent no longer knows the
// job → kUnavailable (detail kNoAnswer): the backup's fate is unknown.
Result<JobView> WaitForJob(AgentApi& api, Clock* clock, const JobView& started, const JobWaitOptions& options,
                           const JobProgressFn& on_progress = nullptr);

// POST /v1/db/NAME/backup {"type":type}, then WaitForJob: the backup's result
// ({"backup_id","type","path","start_lsn","end_lsn"}).
Result<nlohmann::json> BackupOnDemand(AgentApi& api, Clock* clock, const std::string& database,
                                      const std::string& type, const JobWaitOptions& options,
                                      const JobProgressFn& on_progress = nullptr);

}  // namespace sb
