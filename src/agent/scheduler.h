// Scheduler: the rules of spec section 3 as pure functions of what the agent
// observed about a cluster and the time now. No I/O and no clock reads: the
// caller passes `now`, so every rule is a fast unit test with a fake clock.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "agent/settings.h"
#include "common/clock.h"
#include "common/lsn.h"

namespace sb {

// Why a new container begins (a new database for the chain).
enum class NewContainerCause { kNone, kNewSystemIdentifier, kFailover, kBackFromMinimal };

struct ClusterObservation {
  SystemTime now;
  bool master_switch_on = true;
  bool enabled = false;
  bool reachable = true;
  std::string unreachable_error;    // (added) why: the connection error, shown in the skip reason
  // The repository cannot be opened or read (PostgreSQL itself is fine): nothing is decided.
  std::optional<std::string> storage_error;
  bool in_recovery = false;         // a standby: skipped, reported as skipped
  std::string wal_level = "replica";
  Lsn current_lsn;                  // server's current WAL position
  // What the repository holds in the current container:
  std::optional<SystemTime> last_full_finish;  // newest full (not copy-only) in the current container
  std::optional<Lsn> last_full_start_lsn;
  std::optional<SystemTime> last_log_finish;   // newest log backup after that full
  std::optional<Lsn> last_log_end_lsn;         // end of the newest log backup
  Lsn durable_wal_end;              // end of WAL durable in the repository (parts, sealed or not)
  bool chain_broken = false;        // a gap after the newest full, a lost slot, …
  std::string chain_break_cause;
  bool new_container = false;       // failover (new timeline), new system identifier, back from minimal
  NewContainerCause new_container_kind = NewContainerCause::kNone;
  std::string new_container_cause;  // (added) e.g. "failover to timeline 2", shown in the reason
  bool full_running = false;
  bool log_running = false;
  // Restore drills (added; filled by DrillRunner::Observe from the drill records and the scratch dir).
  bool drill_running = false;                    // a drill of this agent runs (any cluster: one at a time)
  std::string newest_full_id;                    // the newest full of the current container
  uint64_t newest_full_bytes = 0;                // its size: what a drill restores
  std::optional<SystemTime> last_drill_finish;   // the newest drill of the cluster, any result
  std::string last_drill_backup_id;              // the full it restored
  bool last_drill_failed = false;                // … and the backups were at fault (BackupsAtFault)
  std::string last_drill_error;
  std::optional<uint64_t> drill_free_bytes;      // free space of the scratch directory (unknown: nullopt)
  bool drill_key_unreadable = false;             // backups sealed to a public key: this host cannot read them
};

// Why a due drill does not start (decisions on types: status and health word it).
enum class DrillSkip { kNone, kNoSpace, kUnreadable };

struct Decision {
  enum class Action { kNone, kFull, kLog, kSkip, kDrill } action = Action::kNone;
  std::string reason;                 // one line, shown in status/health: "≥ 7d since the last full backup"
  std::optional<SystemTime> next_due; // when this rule would next fire, if known
  DrillSkip drill_skip = DrillSkip::kNone;  // (DecideDrill) why a due drill is skipped
};

Decision DecideFull(const ClusterObservation& o, const ClusterSettings& s);
Decision DecideLog(const ClusterObservation& o, const ClusterSettings& s);
// (Added.) A restore drill: after each new full backup, at most once per drill_interval, one at a
// time per agent, never while a backup of the cluster runs, and skipped (with the reason) when the
// backup would not fit in the scratch directory beside drill_free_space_reserve.
Decision DecideDrill(const ClusterObservation& o, const ClusterSettings& s);

// Start of the next full-backup window at or after `now` (custom schedule).
SystemTime NextWindowStart(const FullSchedule& schedule, SystemTime now);
bool InWindow(const FullSchedule& schedule, SystemTime now);
// (Added.) Start of the latest window that began at or before `now`, whether
// or not `now` is still inside it.
SystemTime CurrentWindowStart(const FullSchedule& schedule, SystemTime now);
// (Added.) "daily 01:00 window" / "weekly sun 01:00 window", for reasons.
std::string DescribeWindow(const FullSchedule& schedule);

}  // namespace sb
