// JobManager: the agent's backups (and later retention runs, verifies) as
// first-class jobs. A job has an id, a kind, the cluster it is for, the reason
// it was started, a state (queued → running → succeeded | failed | cancelled),
// progress its work reports, a cancel token its work checks, and a result (the
// backup written) or an error. Each running job has a thread of its own; the
// caller may limit how many jobs of a kind run at once (max_parallel_fulls):
// the others wait queued, first come first served. At most one unfinished job
// per (cluster, kind): a second Start is refused (kAlreadyExists) and names the
// first — "per cluster at most one full and one log backup at a time".
//
// Every job is recorded in the StateStore's job table when it is started and
// when it ends; ids are the table's, so a job is found by id after an agent
// restart too, and one that a crash interrupted shows as "interrupted" (the
// StateStore's MarkInterruptedJobs at start-up). Without a store (tests) or
// when the store cannot record, ids are negative and not kept across restarts.
//
// Time (created/started/finished, progress updates) comes from the Clock.
// Thread-safety: every method may be called from any thread. A job's work runs
// on its own thread without the manager's lock held; JobContext may be used
// from any thread while the work runs (e.g. the engine's upload workers).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/state_store.h"
#include "common/clock.h"
#include "common/status.h"
#include "repo/drill_record.h"
#include "repo/manifest.h"

namespace sb {

enum class JobKind { kFull, kLog, kCopyOnly, kRetention, kVerify, kDrill };
// The state store's kind column: "full", "log", "copy_only", "retention", "verify", "drill".
const char* JobKindName(JobKind kind);
std::optional<JobKind> ParseJobKind(const std::string& name);

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };
// "queued", "running", "succeeded", "failed", "cancelled", "interrupted" (the API's words).
const char* JobStateName(JobState state);
std::optional<JobState> ParseJobState(const std::string& name);
bool IsFinished(JobState state);

// What the work reports as it goes. The phase is for people (shown by the CLI):
// nothing decides on it.
struct JobProgress {
  std::string phase;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // 0: unknown; otherwise an estimate that bytes_done may pass
  std::optional<SystemTime> updated;
};

// What a job produced.
struct JobOutput {
  std::string detail;                    // one line kept in the job history (a backup's id)
  std::optional<BackupManifest> backup;  // the backup a backup job wrote
  std::optional<DrillRecord> drill;      // a restore drill's record
};

struct JobInfo {
  int64_t id = 0;
  JobKind kind = JobKind::kFull;
  std::string cluster;
  std::string reason;
  JobState state = JobState::kQueued;
  SystemTime created;
  std::optional<SystemTime> started, finished;
  JobProgress progress;
  std::optional<JobOutput> output;  // when succeeded
  Status error;                     // when failed, cancelled or interrupted
  bool cancel_requested = false;
  bool from_history = false;  // read back from the state store (an earlier agent process)

  // "full backup (on demand)": what the status line lists as running.
  std::string Describe() const;
};

class JobManager;

// Handed to the job's work: its id, a progress reporter and the cancel token.
class JobContext {
 public:
  int64_t id() const { return id_; }
  // Progress: the phase and the bytes done of bytes_total (0: unknown).
  void SetProgress(const std::string& phase, uint64_t bytes_done, uint64_t bytes_total);
  void SetPhase(const std::string& phase);  // keeps the byte counts
  // True once Cancel (or a cancelling Shutdown) asked the job to stop.
  bool cancelled() const { return cancel_->load(); }
  // kCancelled when asked to stop, else ok: for the work's checkpoints.
  Status CheckCancelled() const;

 private:
  friend class JobManager;
  JobContext(JobManager* manager, int64_t id, const std::atomic<bool>* cancel)
      : manager_(manager), id_(id), cancel_(cancel) {}
  JobManager* manager_;
  int64_t id_;
  const std::atomic<bool>* cancel_;
};

using JobFn = std::function<Result<JobOutput>(JobContext&)>;

struct JobSpec {
  JobKind kind = JobKind::kFull;
  std::string cluster;
  std::string reason;
};

struct JobManagerOptions {
  std::map<JobKind, int> max_running;  // kinds not listed: no limit
  size_t keep_finished = 200;          // finished jobs kept in memory (older ones come from the store)
};

class JobManager {
 public:
  // store may be null (nothing persisted); clock must not be.
  JobManager(StateStore* store, Clock* clock, JobManagerOptions options = {});
  ~JobManager();  // Shutdown(kWait)
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Queues or starts `fn` as a job and returns its id at once. kAlreadyExists
  // when a job of this kind for this cluster is unfinished; kUnavailable after
  // Shutdown began.
  Result<int64_t> Start(const JobSpec& spec, JobFn fn);

  // A job by id: one of this process, else from the store's history.
  // kNotFound when there is none.
  Result<JobInfo> Get(int64_t id);
  // Newest first: this process's jobs, then the store's history, at most
  // `limit` (<= 0: 100). cluster "" = every cluster.
  std::vector<JobInfo> List(const std::string& cluster, int limit = 0);
  // The unfinished (queued or running) job of this kind for this cluster.
  std::optional<JobInfo> Active(const std::string& cluster, JobKind kind);
  int Running(JobKind kind);
  // Jobs waiting for room (max_running), every kind.
  int Queued();

  // Called (under the manager's lock: it must not call back) with each job that ends, for the
  // agent's metrics. Set before the first Start.
  void SetFinishObserver(std::function<void(const JobInfo&)> observer) { finish_observer_ = std::move(observer); }

  // A queued job is cancelled at once; a running one is asked to stop (its
  // work checks the token) and ends cancelled if it stops. kNotFound for an
  // unknown id, kFailedPrecondition for a finished job.
  Status Cancel(int64_t id);

  void SetLimit(JobKind kind, int max_running);  // <= 0: no limit

  // Blocks until no job is queued or running.
  void WaitAll();

  enum class ShutdownMode {
    kWait,    // running jobs finish their work
    kCancel,  // running jobs are asked to stop first
  };
  // Refuses new jobs, cancels the queued ones and waits for the running ones;
  // joins every thread. Idempotent.
  void Shutdown(ShutdownMode mode = ShutdownMode::kWait);

 private:
  friend class JobContext;
  struct Entry;

  bool HasRoom(JobKind kind) const;         // mu_ held
  // mu_ held: running now, its thread started (from_queue: the store hears of the start).
  void Launch(const std::shared_ptr<Entry>& e, bool from_queue);
  void Run(std::shared_ptr<Entry> e);       // the job's thread
  void Finish(Entry& e, JobState state);    // mu_ held: persisted, counted, kept
  void PromoteQueued();                     // mu_ held
  void Prune();                             // mu_ held
  void JoinDone();                          // joins threads of finished jobs
  void UpdateProgress(int64_t id, const std::string* phase, const uint64_t* done, const uint64_t* total);
  JobInfo InfoOf(const Entry& e) const;     // mu_ held

  StateStore* store_;
  Clock* clock_;
  JobManagerOptions options_;

  std::mutex mu_;
  std::condition_variable idle_cv_;  // a job finished
  std::map<int64_t, std::shared_ptr<Entry>> jobs_;  // by id (this process)
  std::vector<std::shared_ptr<Entry>> queue_;       // queued jobs, oldest first
  std::map<JobKind, int> running_;
  int unfinished_ = 0;
  int64_t next_local_id_ = -1;  // ids when the store cannot record
  bool shutting_down_ = false;
  std::vector<std::thread> done_threads_;  // finished jobs' threads, joined outside mu_
  std::function<void(const JobInfo&)> finish_observer_;
};

}  // namespace sb
