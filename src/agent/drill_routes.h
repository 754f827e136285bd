// The agent API's drill route:
//   POST /v1/db/NAME/drill  {} | {"time":"RFC 3339"} | {"lsn":"X/Y"} → 202 with the drill's job
//   (GET /v1/jobs/ID follows it; a passed drill's result is its record, DrillRecordJson);
//   409 while a drill runs (one at a time per agent); 400 for a bad target.
// `smartbackup drill DB --config F` calls it and waits for the job.
// Thread-safety: API threads.
#pragma once

#include <string>

#include "agent/agent_context.h"
#include "agent/api.h"
#include "agent/cluster.h"

namespace sb {

ApiResponse PostDrillJob(const AgentContext& ctx, Cluster& c, const std::string& body);

}  // namespace sb
