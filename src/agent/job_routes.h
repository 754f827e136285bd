// The agent API's job routes, as functions of a JobManager (the router calls them):
//   POST /v1/db/NAME/backup      {"type":"full"|"log"} → 202 {"job_id":N,"state":…,…} at once;
//                                409 when a backup of that type of NAME is unfinished (names it)
//   GET  /v1/jobs/ID             the job: state, progress, result or error (see JobJson)
//   GET  /v1/jobs?database=NAME  jobs, newest first (this agent's and the history's); limit=N
//   POST /v1/jobs/ID/cancel      asks a job to stop (a queued one is cancelled at once)
// Jobs are rendered to JSON here and nowhere else.
// Thread-safety: as the JobManager's (any thread).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent/api.h"
#include "agent/job_manager.h"

namespace sb {

// {"job_id","database","type","reason","state","created","started","finished",
//  "progress":{"phase","bytes_done","bytes_total","updated"},"result":{…}|null,
//  "error":"one line","error_code":StatusCodeName} (error keys only when it ended without success).
// A backup job's result: {"backup_id","type","path","start_lsn","end_lsn"}.
nlohmann::json JobJson(const JobInfo& job);
// What backup-on-demand prints (and what the synchronous route answered before jobs).
nlohmann::json BackupResultJson(const BackupManifest& m);

// POST /v1/db/NAME/backup for a known database: `start` starts the job of the
// kind asked (the agent knows how to back NAME up) and returns its id.
ApiResponse PostBackupJob(JobManager& jobs, const std::string& body,
                          const std::function<Result<int64_t>(JobKind)>& start);

// The /v1/jobs routes; nullopt when the request is not one of them.
std::optional<ApiResponse> RouteJobs(JobManager& jobs, const ApiRequest& request);

}  // namespace sb
