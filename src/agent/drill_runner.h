// DrillRunner: the agent's restore drills — what the scheduler needs to
// decide one (the cluster's drill records, read from the repository once and
// kept up to date by the drills this agent runs; the scratch directory's free
// space), running one as a job of the JobManager (kind "drill", at most one
// per agent, at idle CPU and I/O priority), recording its outcome (cluster
// state, health: "drill" or "drill_failed" with the cause), and cleaning the
// directories of drills a killed agent left behind.
// Thread-safety: Observe on the backup loop's thread; Start from the loop or
// an API thread; the job's work touches the cluster only under its lock.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "engine/restore/restore.h"

namespace sb {

class DrillRunner {
 public:
  explicit DrillRunner(const AgentContext& ctx) : ctx_(ctx) {}

  // Fills the observation's drill fields (the newest full's id and size come from the Observer).
  void Observe(Cluster& c, const ClusterSettings& s, ClusterObservation& o);
  // Starts a drill job of `c`: kAlreadyExists while any drill of this agent is unfinished.
  // target unset: the cluster's drill_target setting.
  Result<int64_t> Start(Cluster& c, const ClusterSettings& s, const std::string& reason,
                        std::optional<RecoveryTarget> target = std::nullopt);
  int Running() const { return ctx_.jobs ? ctx_.jobs->Running(JobKind::kDrill) : 0; }
  // At agent start: every drill directory of a killed agent is removed, its server stopped.
  void CleanOrphans(const std::vector<std::string>& scratch_dirs) const;

  // drill_scratch_dir, or <state_dir>/drills.
  static std::string ScratchDir(const AgentContext& ctx, const ClusterSettings& s);

 private:
  Result<DrillRecord> Run(Cluster& c, const ClusterSettings& s, std::optional<RecoveryTarget> target,
                          JobContext& job) const;
  void Recorded(Cluster& c, const DrillRecord& record, const Status& status) const;
  const AgentContext& ctx_;
};

// A drill record as status, jobs and the drill verb show it: the record's fields and rto_seconds.
nlohmann::json DrillRecordJson(const DrillRecord& record);

}  // namespace sb
