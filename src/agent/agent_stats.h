// AgentStats: what the agent counts while it runs, for /metrics — health
// events by database and category, the loops' heartbeats, and finished jobs
// (by database, kind and result, with their durations). The parts note into it
// (AgentContext::Event, the JobManager's finish observer); the metrics
// endpoint copies it at scrape time. Counters start at zero with the process,
// as Prometheus counters do.
// Thread-safety: every method may be called from any thread (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "agent/job_manager.h"
#include "agent/state_store.h"
#include "common/clock.h"

namespace sb {

// Upper bounds (seconds) of the job-duration histogram's buckets; +Inf is implicit.
inline constexpr std::array<double, 12> kJobDurationBuckets = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600};

struct JobDurations {
  // Non-cumulative: buckets[i] counts durations in (bound[i-1], bound[i]]; the last one is +Inf.
  std::array<uint64_t, kJobDurationBuckets.size() + 1> buckets{};
  double sum_seconds = 0;
  uint64_t count = 0;
  std::optional<double> last_seconds;  // the latest job's duration
};

// One restore drill's figures, as the agent's drill job reports them (AgentStats::NoteDrill).
struct DrillFigures {
  std::string database;
  bool passed = false;
  SystemTime at{};               // when the drill ended
  double restore_seconds = 0;    // base backup restored into the scratch directory
  double replay_seconds = 0;     // WAL replayed up to the proven point
  uint64_t bytes = 0;            // bytes restored
};

struct AgentStatsSnapshot {
  SystemTime started{};
  std::map<std::pair<std::string, HealthCategory>, uint64_t> events;  // (database, category) → count
  std::optional<SystemTime> last_backup_loop, last_retention_loop;
  uint64_t backup_loops = 0, retention_loops = 0;
  std::map<std::tuple<std::string, JobKind, JobState>, uint64_t> jobs;  // (database, kind, final state)
  std::map<std::pair<std::string, JobKind>, JobDurations> durations;    // succeeded jobs
  std::map<std::pair<std::string, bool>, uint64_t> drills;               // (database, passed) → count
  std::map<std::string, DrillFigures> last_drill;                        // by database
};

class AgentStats {
 public:
  explicit AgentStats(SystemTime started = {}) { snap_.started = started; }

  void SetStarted(SystemTime at);
  // A health event; the loop categories are heartbeats (counted as loops, not as events).
  void NoteEvent(const std::string& database, HealthCategory category, SystemTime at);
  // A job that ended (succeeded, failed, cancelled); its duration counts when it succeeded.
  void NoteJob(const JobInfo& job);
  // A restore drill ended (the hook the agent's drill job calls with its figures).
  void NoteDrill(const DrillFigures& drill);
  AgentStatsSnapshot Snapshot() const;

 private:
  mutable std::mutex mu_;
  AgentStatsSnapshot snap_;
};

}  // namespace sb
