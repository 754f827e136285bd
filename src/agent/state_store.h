// StateStore: the agent's durable state in SQLite (state_dir/state.db):
// settings changed through verbs (they survive restarts), the master switch,
// the clusters the agent has seen (so instance defaults apply only to
// clusters that appear later), job history and health events. The
// repository stays the source of truth for which backups exist.
// Thread-safety: all methods are serialised internally; safe from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/settings.h"
#include "common/clock.h"
#include "common/status.h"

struct sqlite3;

namespace sb {

struct KnownCluster {
  std::string name;
  uint64_t system_identifier = 0;
  SystemTime first_seen;
  bool defaults_applied = false;  // instance defaults were enabled when it appeared
  bool dropped = false;           // gone from config/discovery: no more backups
  SystemTime last_seen;
};

struct JobRecord {
  int64_t id = 0;
  std::string cluster;
  std::string kind;    // "full" | "log" | "copy_only" | "retention" | "verify"
  std::string reason;
  SystemTime started;
  std::optional<SystemTime> finished;
  std::string result;  // "queued" | "running" | "ok" | "failed" | "cancelled" | "interrupted"
  std::string detail;  // backup id or the error line
};

// Health categories, as fn_get_health_status counts them.
enum class HealthCategory {
  kStorageError,
  kPostgresError,
  kCredentialError,
  kOtherError,
  kCorruptedBackup,
  kDeletedBackup,
  kBackupLoop,
  kRetentionLoop,
  kChainBreak,
  kWarning,
  kDrill,        // a restore drill passed
  kDrillFailed,  // a restore drill failed: the cause, and a new full backup is scheduled
};
const char* HealthCategoryName(HealthCategory c);

struct HealthEvent {
  SystemTime at;
  std::string cluster;  // may be empty
  HealthCategory category;
  std::string message;
};

// How long the state store keeps history (Prune). Loop heartbeats (one per
// loop, every 10 s) only serve the "stuck" check of the last 30 minutes.
struct StateRetention {
  std::chrono::milliseconds events = std::chrono::hours(24 * 30);     // health events
  std::chrono::milliseconds heartbeats = std::chrono::hours(24 * 2);  // backup_loop / retention_loop events
  std::chrono::milliseconds jobs = std::chrono::hours(24 * 30);       // finished jobs
  int64_t max_events = 200000;                                       // newest kept beyond that
  int64_t max_jobs = 20000;                                          // finished jobs, newest kept
  int64_t prune_every = 500;  // RecordHealthEvent prunes after this many inserts (at the event's time)
};

class StateStore {
 public:
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path);
  ~StateStore();

  Status SaveClusterOverrides(const std::string& cluster, const PartialSettings& overrides);
  Result<std::map<std::string, PartialSettings>> LoadClusterOverrides();
  Status SaveInstanceDefaults(const PartialSettings& defaults);
  Result<std::optional<PartialSettings>> LoadInstanceDefaults();
  Status SetMasterSwitch(bool on);
  Result<bool> MasterSwitch();  // true when never set

  // Inserts or replaces by name; first_seen keeps the earliest value recorded.
  Status UpsertKnownCluster(const KnownCluster& cluster);
  Result<std::vector<KnownCluster>> KnownClusters();

  Result<int64_t> StartJob(const JobRecord& job);
  // A queued job starts: result "running", started = at.
  Status MarkJobRunning(int64_t id, SystemTime at);
  Status FinishJob(int64_t id, const std::string& result, const std::string& detail, SystemTime at);
  // Jobs left "running" or "queued" by a previous agent process become "interrupted".
  Status MarkInterruptedJobs(SystemTime at);
  // One job by id; nullopt when there is none.
  Result<std::optional<JobRecord>> Job(int64_t id);
  // Newest first; cluster "" = every cluster; limit <= 0 = no limit.
  Result<std::vector<JobRecord>> RecentJobs(const std::string& cluster, int limit);

  Status RecordHealthEvent(const HealthEvent& event);
  // Events with since <= at <= until, oldest first.
  Result<std::vector<HealthEvent>> HealthEvents(SystemTime since, SystemTime until);

  // Deletes history past `retention` as of `now`: old health events and
  // heartbeats, old finished jobs, and the oldest rows beyond the caps.
  // Running and queued jobs are never pruned.
  Status Prune(SystemTime now, const StateRetention& retention = {});
  void SetRetention(const StateRetention& retention) { retention_ = retention; }

 private:
  StateStore() = default;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  StateRetention retention_;
  int64_t inserts_ = 0;  // since the last automatic prune
};

}  // namespace sb
