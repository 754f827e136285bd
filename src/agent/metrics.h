// Metrics: the agent's state in the Prometheus text exposition format, for
// GET /metrics on the operator's listener (http_listener.h). Everything is
// derived at scrape time: per cluster from its typed state (cluster.h: the
// last observation, the catalog view, faults, capture), plus the agent's
// counters (agent_stats.h), the job queue and the process-wide storage
// counters (storage/instrumented/storage_stats.h). A fresh prometheus-cpp
// Registry is filled per scrape and serialised with its TextSerializer. Names
// are prefixed smartbackup_, in base units (seconds, bytes), counters end in
// _total; labels: database, operation, category, type, …; the README's
// Monitoring section lists them.
// Thread-safety: GatherMetricsSources takes each cluster's lock; RenderMetrics is pure.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "agent/agent_context.h"
#include "agent/agent_stats.h"
#include "agent/cluster.h"
#include "storage/instrumented/storage_stats.h"

namespace sb {

// One cluster's figures, copied under its lock.
struct ClusterFigures {
  std::string database;
  bool enabled = false;
  Condition condition = Condition::kNotObserved;
  std::map<Activity, bool> failing;  // every activity: failing now?
  bool capture_running = false;
  std::optional<SystemTime> last_full, last_log, recovery_point;
  std::optional<RestoreWindow> window;  // the newest
  bool chain_broken = false;
  CatalogView catalog;
};

struct MetricsSources {
  SystemTime now{};
  bool master_switch = true;
  std::vector<ClusterFigures> clusters;
  AgentStatsSnapshot agent;
  std::array<StorageOpCounts, kStorageOpCount> storage{};
  int jobs_queued = 0;
  std::map<JobKind, int> jobs_running;
};

ClusterFigures FiguresOf(Cluster& c);  // takes c.mu
MetricsSources GatherMetricsSources(const AgentContext& ctx, const std::vector<Cluster*>& clusters);
// The exposition text (text/plain; version=0.0.4).
std::string RenderMetrics(const MetricsSources& sources);

}  // namespace sb
