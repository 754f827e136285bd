// AgentContext: what every part of the agent shares — its configuration, the
// injected clock, the durable state store, the health-event sink and the way
// to open a cluster's repository. The Agent owns one; its parts keep a
// reference for their lifetime.
// Thread-safety: the fields are set once in Agent::Create; every method may be
// called from any thread (StateStore serialises itself).
#pragma once

#include <memory>
#include <string>

#include "agent/agent_config.h"
#include "agent/agent_stats.h"
#include "agent/job_manager.h"
#include "agent/settings.h"
#include "agent/state_store.h"
#include "common/clock.h"
#include "repo/repository.h"

namespace sb {

struct AgentContext {
  AgentConfig config;
  Clock* clock = nullptr;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<JobManager> jobs;  // full and log backups (records them in store)
  std::string agent_id;  // <state_dir>/agent.id: the holder of this agent's storage leases
  // What /metrics counts (events, loop heartbeats, finished jobs); never null.
  std::shared_ptr<AgentStats> stats = std::make_shared<AgentStats>();

  // Logs and records one health event (the loops' heartbeats only at debug level).
  void Event(const std::string& cluster, HealthCategory category, const std::string& message) const;
  Result<std::unique_ptr<Repository>> OpenRepo(const std::string& url) const;
  // Who holds a lease, for the "held by" message of an agent that backs off.
  std::string LeaseOwner() const;
  // This agent's leases: its stable id lets it take them back at once after a crash (kill -9).
  LeaseOptions AgentLease() const { return {.owner = LeaseOwner(), .holder_id = agent_id}; }
  // [defaults] with the instance defaults changed through verbs on top.
  PartialSettings InstanceDefaults() const;
  // builtins < [defaults] < [[cluster]] < changes made through verbs.
  ClusterSettings Resolve(const std::string& cluster) const;
  // The [[cluster]] entry's overrides (empty when the cluster is not in the config).
  PartialSettings ConfigOverrides(const std::string& cluster) const;
  bool MasterSwitchOn() const;
};

// The health category of a failure: credentials and corruption by code, storage
// by the error's source, else `otherwise` (what the caller was doing).
HealthCategory CategoryOf(const Status& status, HealthCategory otherwise);

}  // namespace sb
