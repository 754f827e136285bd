// Cluster: what the agent knows about one managed cluster while it runs, as
// typed state. The parts of the agent (controller, observer, slot watch, name
// guard, peer monitor, WAL capture, jobs) each own a section; the comment on a
// section says which thread writes it and which lock guards it. Status and
// health are rendered from these fields in one place (status_view.h).
// Thread-safety: `mu` guards every field marked "(mu)"; fields marked
// "(loop)" are touched only by the backup loop's thread; `name`, `conninfo`,
// `in_config` and `dropped` change only in ClusterRegistry::Refresh on the
// loop thread and are read elsewhere only for messages.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/catalog_view.h"
#include "agent/scheduler.h"
#include "agent/settings.h"
#include "common/clock.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_streamer.h"
#include "pg/connection.h"
#include "repo/drill_record.h"

namespace sb {

// The part of the system that fails, as status names it.
enum class FailingPart { kServer, kCredentials, kStorage, kCapture };
const char* FailingPartName(FailingPart part);

// Who recorded an outcome. A fault is cleared only by the next success of the same activity, so a
// storage that can be read (observe) but not written (capture) stays reported as failing.
// kArchive: archive mode's capture, PostgreSQL's archive_command as pg_stat_archiver shows it.
enum class Activity { kObserve, kCapture, kArchive, kFullBackup, kLogBackup, kRetention };
const char* ActivityName(Activity activity);

struct Fault {
  FailingPart part = FailingPart::kServer;
  std::string error;   // the last error, one line
  SystemTime since{};  // first failure of this run of failures
  SystemTime last{};   // the latest one
};

// What the cluster's line in status says, in order of precedence when several hold.
enum class Condition { kNotObserved, kDropped, kFailing, kRefused, kSkipped, kQueued, kBackingOff, kOk };
const char* ConditionName(Condition condition);

// Why a cluster is refused (no capture, no backups) although it is reachable and enabled.
enum class Refusal { kNone, kHybrid, kNameClaimed, kForeignArchiver };

struct Cluster {
  explicit Cluster(std::string n) : name(std::move(n)) {}

  // ---- identity (registry) ----
  std::string name;
  std::string conninfo;
  bool in_config = false;
  std::atomic<bool> dropped{false};
  bool found_while_defaults_off = false;  // first seen while instance defaults were disabled (rule 2 tip)

  std::mutex mu;

  // ---- the last pass of the controller (mu) ----
  ClusterSettings settings;
  ClusterObservation observation;
  Decision full_decision, log_decision;
  bool observed = false;      // a pass has published (status shows "not yet observed" before)
  bool full_queued = false;  // a full is due but max_parallel_fulls are running
  Refusal refusal = Refusal::kNone;
  std::string refusal_text;
  std::map<Activity, Fault> faults;  // the failing activities now

  // ---- the server as last observed (mu) ----
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;
  std::string archive_command;
  std::string archive_mode;
  // (Coexistence rule 4.) archive_command when archive_mode is on and it is not smartbackup
  // wal-push: someone else ships WAL; stream mode coexists and says so.
  std::string foreign_archive_command;
  bool minimal_seen = false;
  std::set<uint64_t> earlier_sysids;  // seen under this name before (a re-created cluster is a new database)
  std::optional<ChainBreak> pending_break;  // from the streamer or the object check; cleared by a full
  std::optional<RestoreWindow> window;    // the newest of `windows`
  std::optional<SystemTime> recovery_point;
  CatalogView catalog_view;  // the repository as last observed, for /metrics and the web page
  std::vector<RestoreWindow> windows;     // every restore window, oldest first (catalog_summary.h)
  std::optional<SystemTime> newest_full;  // newest full backup / log backup in the repository
  std::optional<SystemTime> newest_log;

  // ---- smartbackup's replication slot (SlotWatch; mu) — coexistence rules 7 and 8 ----
  std::string slot_consumer;  // another client on smartbackup's slot now ("" when none)
  std::string wal_taker;      // the last tool seen taking this cluster's WAL; forgotten after a full
  std::string slot_note;      // a clause for the state line
  std::string minimal_note;
  bool minimal_pending = false;  // wal_level = minimal pending a restart: capture stops
  bool slot_exists = false, slot_active = false;
  std::optional<uint64_t> slot_retained;
  std::string idle_slot_note, idle_slot_reported, idle_slot_drop_sql;
  bool streamed_here = false;  // this agent streamed through the slot: only then is it surely its own

  // ---- one system identifier per name (NameGuard) ----
  std::string name_refusal;  // (mu) "" when the claim holds or was not made
  uint64_t name_refused_by = 0;       // (mu) the holder named by the refusal last recorded in health
  SteadyTime name_checked_at{};       // (loop)
  uint64_t name_checked_sysid = 0;    // (loop)
  std::string name_checked_url;       // (loop)

  // ---- availability groups and mirroring (PeerMonitor) — coexistence rules 1 and 2 ----
  std::unique_ptr<PgConnection> beacon;  // (loop) idle connection to the primary, named for this agent
  std::string beacon_name;               // (loop)
  SteadyTime beacon_retry_at{};          // (loop)
  std::string repo_id_url, repo_id;      // (loop) the repository id of repo_id_url (cached)
  bool was_standby = false;              // (loop) in recovery when last observed
  std::string ha_note;                   // (mu) a clause for the state line
  std::string ha_reported;               // (mu) the last availability line recorded in health
  bool ha_reported_warning = false;      // (mu) that line was a warning about unmanaged standbys
  std::string hybrid;                    // (mu) non-empty: refused; sticky while storage_url is hybrid_url
  std::string hybrid_url;                // (mu)

  // ---- writers (jobs and capture; mu) ----
  std::string writer_note;  // a full/log lease was held by another agent: this one backed off
  std::string stream_note;  // the stream lease is held by another agent: this one backs off
  bool stream_backoff = false;
  // The unfinished full/log backup job, described ("full backup (on demand)"); set and cleared
  // by StartBackupJob (job_actions.h). The jobs themselves are the JobManager's.
  std::string running_full, running_log;

  // ---- WAL capture thread (WalCapture; loop) ----
  std::thread stream_thread;
  std::atomic<bool> stream_stop{false};
  std::atomic<bool> stream_running{false};
  std::string stream_url;            // the storage the running streamer writes to
  SteadyTime stream_started{};       // (mu) when the streamer last reached the server

  // ---- restore drills (DrillRunner; mu) ----
  Decision drill_decision;
  std::string running_drill;                 // the unfinished drill job, described
  bool drills_loaded = false;                // the repository's drill records were read once
  std::string drills_url;                    // … from this storage
  std::vector<DrillRecord> drills;           // this cluster's drill records, oldest first
};

// The part a failure names: storage by the error's source, credentials by code, else `otherwise`.
FailingPart PartOf(const Status& status, FailingPart otherwise);
// Records (or refreshes) the fault of an activity; `since` stays at the first of a run of failures.
void NoteFault(Cluster& c, Activity activity, FailingPart part, const std::string& error, SystemTime now);
// The activity succeeded: its fault, if any, is over.
void ClearFault(Cluster& c, Activity activity);

}  // namespace sb
