// MonitorRoutes: what the operator's read-only listener (http_listener.h)
// serves — GET /metrics (metrics.h), GET / (the embedded web page,
// monitor_page.h) and GET /overview.json, the page's data: health counts and
// events of the last 24 hours, each cluster's status (StatusView), its
// timeline (the catalog view: fulls, log backups, WAL coverage, gaps, restore
// windows) and its recent jobs (backups, drills). Reads only: typed state
// under the clusters' locks, the job manager and the state store.
// Thread-safety: Handle is called from listener threads concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include "agent/agent_context.h"
#include "agent/cluster_registry.h"
#include "agent/http_listener.h"

namespace sb {

class MonitorRoutes {
 public:
  MonitorRoutes(const AgentContext& ctx, ClusterRegistry& clusters) : ctx_(ctx), clusters_(clusters) {}

  PageResponse Handle(const std::string& path);

 private:
  const AgentContext& ctx_;
  ClusterRegistry& clusters_;
};

// The timeline part of /overview.json for one cluster's catalog view.
nlohmann::json TimelineJson(const CatalogView& view);
// /overview.json from the agent's state (no storage reads).
nlohmann::json OverviewJson(const AgentContext& ctx, const std::vector<Cluster*>& clusters);

}  // namespace sb
