// What POST /v1/db/NAME/backup answered before on-demand backups became jobs,
// for tests written against that answer: posts through the agent's handler,
// waits for the job the way backup-on-demand does (WaitForJob) and returns the
// synchronous route's status and body — 200 and {"backup_id","type","path",
// "start_lsn","end_lsn"}, or {"error"} with 400, 404, 409 (a backup running,
// or backing off) or 500.
// Header-only: only binaries that link the agent layer include it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "agent/agent.h"
#include "agent/job_wait.h"

namespace sb::test {

inline ApiResponse BackupOnDemandSync(Agent& agent, const std::string& path, const std::string& body) {
  const std::string prefix = "/v1/db/";
  const std::string database = path.substr(prefix.size(), path.rfind('/') - prefix.size());
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  const std::string type = parsed.is_object() ? parsed.value("type", "") : "";
  auto api = HandlerAgentApi([&agent](const ApiRequest& r) { return agent.HandleApi(r); });
  auto result = BackupOnDemand(*api, Clock::Real(), database, type, {.poll_interval = std::chrono::milliseconds(50)});
  if (result.ok()) return {.status = 200, .body = result->dump()};
  int status = 500;
  switch (result.status().code()) {
    case StatusCode::kInvalidArgument: status = 400; break;
    case StatusCode::kNotFound: status = 404; break;
    case StatusCode::kAlreadyExists: status = 409; break;
    default: break;
  }
  return {.status = status, .body = nlohmann::json{{"error", result.status().message()}}.dump()};
}

}  // namespace sb::test
