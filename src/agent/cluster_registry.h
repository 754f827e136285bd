// ClusterRegistry: the set of clusters the agent manages — the [[cluster]]
// entries of the config, the clusters discovery finds, and those known from an
// earlier run but gone now (dropped: no more backups, backups kept until
// retention has elapsed). It applies instance defaults to clusters that appear
// after they were enabled and picks the name a discovered cluster is managed
// under.
// Thread-safety: Refresh runs on the backup loop's thread; Snapshot and Find
// from any thread. Clusters are never removed, so their pointers stay valid for
// the registry's lifetime.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/agent_context.h"
#include "agent/cluster.h"

namespace sb {

class ClusterRegistry {
 public:
  explicit ClusterRegistry(const AgentContext& ctx) : ctx_(ctx) {}

  // Clusters from the config and from discovery; the ones gone are marked dropped.
  void Refresh();
  std::vector<Cluster*> Snapshot();
  Cluster* Find(const std::string& name);

 private:
  bool FirstSeen(const std::string& name);
  std::string DiscoveredName(const std::string& base, const std::string& conninfo,
                             const std::map<std::string, KnownCluster>& known);
  std::string Remember(const std::string& base, const std::string& chosen);

  const AgentContext& ctx_;
  std::mutex mu_;  // guards clusters_ (the map; each cluster has its own lock)
  std::map<std::string, std::unique_ptr<Cluster>> clusters_;
  // Discovered name ("15-main") → the name the cluster is managed under. Loop thread only.
  std::map<std::string, std::string> discovered_names_;
};

}  // namespace sb
