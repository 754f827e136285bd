// ApiRoutes: the agent's local API (routes listed in api.h) — parsing and
// validating requests, applying configuration changes through the state
// store, on-demand backups as jobs (job_routes.h), and rendering answers through StatusView.
// Thread-safety: Handle is called from API server threads concurrently; it
// touches clusters only under their locks and the state store (serialised).
#pragma once

#include "agent/agent_context.h"
#include "agent/api.h"
#include "agent/backup_runner.h"
#include "agent/cluster_registry.h"
#include "agent/peer_monitor.h"

namespace sb {

class ApiRoutes {
 public:
  ApiRoutes(const AgentContext& ctx, ClusterRegistry& clusters, BackupRunner& runner, PeerMonitor& peers)
      : ctx_(ctx), clusters_(clusters), runner_(runner), peers_(peers) {}

  ApiResponse Handle(const ApiRequest& r);

 private:
  ApiResponse Status_();
  ApiResponse Health(const ApiRequest& r);
  ApiResponse MasterSwitch(const ApiRequest& r);
  ApiResponse InstanceConfig(const ApiRequest& r);
  ApiResponse DatabaseRoute(const ApiRequest& r);
  ApiResponse DatabaseConfig(const ApiRequest& r, Cluster& c);
  ApiResponse BackupOnDemand(Cluster& c, const std::string& body);
  // Refuses settings that cannot work now: unreachable storage, bad keys, a foreign archive_command.
  Status CheckUsable(const ClusterSettings& s, const std::string& conninfo);

  const AgentContext& ctx_;
  ClusterRegistry& clusters_;
  BackupRunner& runner_;
  PeerMonitor& peers_;
};

// Applies {"enable":…, "settings":{…}} on top of `current`; validation first, so a bad value
// leaves the previous configuration in force.
Result<PartialSettings> MergeSettingsRequest(const PartialSettings& current, const std::string& body);

}  // namespace sb
