// Agent: the managed-backup daemon. It owns the clusters it manages (from
// the config file and from discovery), runs two loops — the backup loop
// (observe each cluster, let the scheduler decide, run full and log backups
// and keep WAL capture going) and the retention loop (purge by retention,
// check that what the chain needs still exists) — and serves the local API
// that the managed verbs use. Every decision is logged with its reason and
// counted in health. Time comes from the injected Clock.
// Thread-safety: Run blocks; HandleApi may be called from API threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "agent/agent_config.h"
#include "agent/api.h"
#include "common/clock.h"

namespace sb {

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> Create(AgentConfig config, Clock* clock = Clock::Real());
  ~Agent();

  // Serves the API and runs the loops until *stop; then stops WAL capture
  // (flushing it) and waits for running backups.
  Status Run(const std::atomic<bool>& stop);

  // One pass of each loop (tests drive these directly).
  void BackupLoopOnce();
  void RetentionLoopOnce();
  ApiResponse HandleApi(const ApiRequest& request);

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where the managed verbs find the agent: socket and token file from --config.
struct AgentEndpoint {
  std::string socket;
  std::string token_path;
};
Result<AgentEndpoint> EndpointFromConfig(const std::string& config_path);

}  // namespace sb
