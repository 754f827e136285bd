#include "agent/agent_stats.h"

#include <algorithm>

namespace sb {

void AgentStats::SetStarted(SystemTime at) {
  std::lock_guard lock(mu_);
  snap_.started = at;
}

void AgentStats::NoteEvent(const std::string& database, HealthCategory category, SystemTime at) {
  std::lock_guard lock(mu_);
  if (category == HealthCategory::kBackupLoop) {
    snap_.last_backup_loop = at;
    ++snap_.backup_loops;
  } else if (category == HealthCategory::kRetentionLoop) {
    snap_.last_retention_loop = at;
    ++snap_.retention_loops;
  } else {
    ++snap_.events[{database, category}];
  }
}

void AgentStats::NoteJob(const JobInfo& job) {
  if (!IsFinished(job.state)) return;
  std::lock_guard lock(mu_);
  ++snap_.jobs[{job.cluster, job.kind, job.state}];
  if (job.state != JobState::kSucceeded || !job.started || !job.finished) return;
  const double seconds = std::max(0.0, std::chrono::duration<double>(*job.finished - *job.started).count());
  JobDurations& d = snap_.durations[{job.cluster, job.kind}];
  auto it = std::lower_bound(kJobDurationBuckets.begin(), kJobDurationBuckets.end(), seconds);
  ++d.buckets[static_cast<size_t>(it - kJobDurationBuckets.begin())];
  d.sum_seconds += seconds;
  ++d.count;
  d.last_seconds = seconds;
}

void AgentStats::NoteDrill(const DrillFigures& drill) {
  std::lock_guard lock(mu_);
  ++snap_.drills[{drill.database, drill.passed}];
  snap_.last_drill[drill.database] = drill;
}

AgentStatsSnapshot AgentStats::Snapshot() const {
  std::lock_guard lock(mu_);
  return snap_;
}

}  // namespace sb
