#include "agent/job_manager.h"

#include <fmt/core.h>

#include <algorithm>
#include <exception>

#include "common/logging.h"

namespace sb {
namespace {

// Each kind's and state's words, in one place.
struct KindText {
  JobKind kind;
  const char* name;  // the API's and the state store's
  const char* noun;  // for messages
};
constexpr KindText kKindTexts[] = {
    {JobKind::kFull, "full", "full backup"},          {JobKind::kLog, "log", "log backup"},
    {JobKind::kCopyOnly, "copy_only", "copy-only backup"}, {JobKind::kRetention, "retention", "retention run"},
    {JobKind::kVerify, "verify", "verify run"},       {JobKind::kDrill, "drill", "restore drill"},
};
struct StateText {
  JobState state;
  const char* name;    // the API's
  const char* stored;  // the state store's result column
};
constexpr StateText kStateTexts[] = {
    {JobState::kQueued, "queued", "queued"},          {JobState::kRunning, "running", "running"},
    {JobState::kSucceeded, "succeeded", "ok"},        {JobState::kFailed, "failed", "failed"},
    {JobState::kCancelled, "cancelled", "cancelled"}, {JobState::kInterrupted, "interrupted", "interrupted"},
};

const KindText& TextOf(JobKind kind) {
  for (const auto& t : kKindTexts) {
    if (t.kind == kind) return t;
  }
  return kKindTexts[0];
}
const StateText& TextOf(JobState state) {
  for (const auto& t : kStateTexts) {
    if (t.state == state) return t;
  }
  return kStateTexts[0];
}

const char* KindNoun(JobKind kind) { return TextOf(kind).noun; }
const char* StoreResult(JobState state) { return TextOf(state).stored; }

// A row of an earlier process (or one pruned from memory) as a JobInfo. A row
// still "running" or "queued" that this process does not run was left by a
// process that is gone (MarkInterruptedJobs had not seen it yet).
JobInfo FromRecord(const JobRecord& r) {
  JobInfo j;
  j.id = r.id;
  j.kind = ParseJobKind(r.kind).value_or(JobKind::kFull);
  j.cluster = r.cluster;
  j.reason = r.reason;
  j.created = r.started;
  j.started = r.started;
  j.finished = r.finished;
  j.from_history = true;
  if (r.result == "ok") {
    j.state = JobState::kSucceeded;
    j.output = JobOutput{.detail = r.detail};
  } else if (r.result == "cancelled") {
    j.state = JobState::kCancelled;
    j.error = Status::Cancelled(r.detail);
  } else if (r.result == "failed") {
    j.state = JobState::kFailed;
    j.error = Status::Internal(r.detail);
  } else {
    j.state = JobState::kInterrupted;
    j.error = Status::Unavailable(r.detail.empty() ? "the agent stopped before the job finished" : r.detail);
  }
  return j;
}

bool NewerFirst(const JobInfo& a, const JobInfo& b) {
  if (a.created != b.created) return a.created > b.created;
  return a.id > b.id;
}

}  // namespace

const char* JobKindName(JobKind kind) { return TextOf(kind).name; }

std::optional<JobKind> ParseJobKind(const std::string& name) {
  for (const auto& t : kKindTexts) {
    if (name == t.name) return t.kind;
  }
  return std::nullopt;
}

const char* JobStateName(JobState state) { return TextOf(state).name; }

std::optional<JobState> ParseJobState(const std::string& name) {
  for (const auto& t : kStateTexts) {
    if (name == t.name) return t.state;
  }
  return std::nullopt;
}

bool IsFinished(JobState state) { return state != JobState::kQueued && state != JobState::kRunning; }

std::string JobInfo::Describe() const { return fmt::format("{} ({})", KindNoun(kind), reason); }

// ---- JobContext -----------------------------------------------------------------

void JobContext::SetProgress(const std::string& phase, uint64_t bytes_done, uint64_t bytes_total) {
  manager_->UpdateProgress(id_, &phase, &bytes_done, &bytes_total);
}

void JobContext::SetPhase(const std::string& phase) { manager_->UpdateProgress(id_, &phase, nullptr, nullptr); }

Status JobContext::CheckCancelled() const {
  if (!cancelled()) return Status::Ok();
  return Status::Cancelled(fmt::format("job {} was cancelled", id_));
}

// ---- JobManager -------------------------------------------------------------------

struct JobManager::Entry {
  JobInfo info;
  JobFn fn;
  std::atomic<bool> cancel{false};
  std::thread thread;
  bool persisted = false;  // a row in the store (id > 0)
};

JobManager::JobManager(StateStore* store, Clock* clock, JobManagerOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

JobManager::~JobManager() { Shutdown(ShutdownMode::kWait); }

bool JobManager::HasRoom(JobKind kind) const {
  auto limit = options_.max_running.find(kind);
  if (limit == options_.max_running.end() || limit->second <= 0) return true;
  auto running = running_.find(kind);
  return running == running_.end() || running->second < limit->second;
}

Result<int64_t> JobManager::Start(const JobSpec& spec, JobFn fn) {
  JoinDone();
  std::lock_guard lock(mu_);
  if (shutting_down_) {
    return Status::Unavailable(fmt::format("the agent is stopping: the {} of \"{}\" was not started; hint: ask again "
                                           "once the agent runs",
                                           KindNoun(spec.kind), spec.cluster));
  }
  for (const auto& [id, e] : jobs_) {
    const JobInfo& j = e->info;
    if (!IsFinished(j.state) && j.cluster == spec.cluster && j.kind == spec.kind) {
      return Status::AlreadyExists(fmt::format("a {} of \"{}\" is already {}: job {} ({})", KindNoun(j.kind),
                                               j.cluster, JobStateName(j.state), j.id, j.reason));
    }
  }
  auto e = std::make_shared<Entry>();
  e->info.kind = spec.kind;
  e->info.cluster = spec.cluster;
  e->info.reason = spec.reason;
  e->info.created = clock_->Now();
  e->fn = std::move(fn);
  const bool runs_now = HasRoom(spec.kind);
  int64_t id = 0;
  if (store_ != nullptr) {
    auto stored = store_->StartJob({.cluster = spec.cluster,
                                    .kind = JobKindName(spec.kind),
                                    .reason = spec.reason,
                                    .started = e->info.created,
                                    .result = runs_now ? "running" : "queued"});
    if (stored.ok()) {
      id = *stored;
      e->persisted = true;
    } else {
      log::Warn("[{}] the {} is not recorded in the job history: {}", spec.cluster, KindNoun(spec.kind),
                stored.status().message());
    }
  }
  if (!e->persisted) id = next_local_id_--;
  e->info.id = id;
  jobs_[id] = e;
  ++unfinished_;
  if (runs_now) {
    Launch(e, /*from_queue=*/false);
  } else {
    queue_.push_back(e);
  }
  Prune();
  return id;
}

void JobManager::Launch(const std::shared_ptr<Entry>& e, bool from_queue) {
  e->info.state = JobState::kRunning;
  e->info.started = clock_->Now();
  ++running_[e->info.kind];
  if (from_queue && e->persisted) {
    if (Status s = store_->MarkJobRunning(e->info.id, *e->info.started); !s.ok()) {
      log::Warn("[{}] job {}: {}", e->info.cluster, e->info.id, s.message());
    }
  }
  e->thread = std::thread(&JobManager::Run, this, e);
}

void JobManager::Run(std::shared_ptr<Entry> e) {
  JobContext ctx(this, e->info.id, &e->cancel);
  Result<JobOutput> result = [&]() -> Result<JobOutput> {
    // Work that throws must not take the agent down: the job fails instead.
    try {
      return e->fn(ctx);
    } catch (const std::exception& ex) {
      return Status::Internal(fmt::format("job {} stopped on an unexpected error: {}", e->info.id, ex.what()));
    }
  }();
  std::lock_guard lock(mu_);
  if (result.ok()) {
    e->info.output = std::move(result).value();
    Finish(*e, JobState::kSucceeded);
  } else {
    e->info.error = result.status();
    const bool cancelled = e->cancel && result.status().code() == StatusCode::kCancelled;
    Finish(*e, cancelled ? JobState::kCancelled : JobState::kFailed);
  }
  done_threads_.push_back(std::move(e->thread));
  PromoteQueued();
  Prune();
}

void JobManager::Finish(Entry& e, JobState state) {
  if (e.info.state == JobState::kRunning) --running_[e.info.kind];
  e.info.state = state;
  e.info.finished = clock_->Now();
  e.fn = nullptr;  // releases what the work captured
  --unfinished_;
  if (e.persisted) {
    const std::string detail =
        state == JobState::kSucceeded ? (e.info.output ? e.info.output->detail : "") : e.info.error.message();
    if (Status s = store_->FinishJob(e.info.id, StoreResult(state), detail, *e.info.finished); !s.ok()) {
      log::Warn("[{}] job {}: {}", e.info.cluster, e.info.id, s.message());
    }
  }
  if (finish_observer_) finish_observer_(e.info);
  idle_cv_.notify_all();
}

void JobManager::PromoteQueued() {
  if (shutting_down_) return;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!HasRoom((*it)->info.kind)) {
      ++it;
      continue;
    }
    Launch(*it, /*from_queue=*/true);
    it = queue_.erase(it);
  }
}

void JobManager::Prune() {
  std::vector<const Entry*> finished;
  for (const auto& [id, e] : jobs_) {
    if (IsFinished(e->info.state)) finished.push_back(e.get());
  }
  if (finished.size() <= options_.keep_finished) return;
  std::sort(finished.begin(), finished.end(),
            [](const Entry* a, const Entry* b) { return *a->info.finished < *b->info.finished; });
  for (size_t i = 0; i + options_.keep_finished < finished.size(); ++i) jobs_.erase(finished[i]->info.id);
}

void JobManager::JoinDone() {
  std::vector<std::thread> done;
  {
    std::lock_guard lock(mu_);
    done.swap(done_threads_);
  }
  for (auto& t : done) {
    if (t.joinable()) t.join();
  }
}

void JobManager::UpdateProgress(int64_t id, const std::string* phase, const uint64_t* done, const uint64_t* total) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  JobProgress& p = it->second->info.progress;
  if (phase != nullptr) p.phase = *phase;
  if (done != nullptr) p.bytes_done = *done;
  if (total != nullptr) p.bytes_total = *total;
  p.updated = clock_->Now();
}

JobInfo JobManager::InfoOf(const Entry& e) const {
  JobInfo j = e.info;
  j.cancel_requested = e.cancel;
  return j;
}

Result<JobInfo> JobManager::Get(int64_t id) {
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) return InfoOf(*it->second);
  }
  if (store_ != nullptr && id > 0) {
    ASSIGN_OR_RETURN(auto record, store_->Job(id));
    if (record) return FromRecord(*record);
  }
  return Status::NotFound(fmt::format("no job {} in this agent's history; hint: smartbackup status lists what runs",
                                      id));
}

std::vector<JobInfo> JobManager::List(const std::string& cluster, int limit) {
  if (limit <= 0) limit = 100;
  std::vector<JobInfo> out;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, e] : jobs_) {
      if (cluster.empty() || e->info.cluster == cluster) out.push_back(InfoOf(*e));
    }
  }
  if (store_ != nullptr) {
    auto history = store_->RecentJobs(cluster, limit);
    if (history.ok()) {
      for (const JobRecord& r : *history) {
        bool known = std::any_of(out.begin(), out.end(), [&](const JobInfo& j) { return j.id == r.id; });
        if (!known) out.push_back(FromRecord(r));
      }
    }
  }
  std::sort(out.begin(), out.end(), NewerFirst);
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

std::optional<JobInfo> JobManager::Active(const std::string& cluster, JobKind kind) {
  std::lock_guard lock(mu_);
  for (const auto& [id, e] : jobs_) {
    if (!IsFinished(e->info.state) && e->info.cluster == cluster && e->info.kind == kind) return InfoOf(*e);
  }
  return std::nullopt;
}

int JobManager::Running(JobKind kind) {
  std::lock_guard lock(mu_);
  auto it = running_.find(kind);
  return it == running_.end() ? 0 : it->second;
}

int JobManager::Queued() {
  std::lock_guard lock(mu_);
  return static_cast<int>(queue_.size());
}

Status JobManager::Cancel(int64_t id) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    return Status::NotFound(fmt::format("no job {} runs in this agent", id));
  }
  Entry& e = *it->second;
  switch (e.info.state) {
    case JobState::kQueued:
      queue_.erase(std::find(queue_.begin(), queue_.end(), it->second));
      e.info.error = Status::Cancelled(fmt::format("job {} was cancelled before it started", id));
      e.cancel = true;
      Finish(e, JobState::kCancelled);
      return Status::Ok();
    case JobState::kRunning:
      e.cancel = true;
      return Status::Ok();
    default:
      return Status::FailedPrecondition(
          fmt::format("job {} has already finished ({})", id, JobStateName(e.info.state)));
  }
}

void JobManager::SetLimit(JobKind kind, int max_running) {
  std::lock_guard lock(mu_);
  options_.max_running[kind] = max_running;
  PromoteQueued();
}

void JobManager::WaitAll() {
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] { return unfinished_ == 0; });
  }
  JoinDone();
}

void JobManager::Shutdown(ShutdownMode mode) {
  {
    std::unique_lock lock(mu_);
    shutting_down_ = true;
    for (auto& e : queue_) {
      e->info.error = Status::Cancelled(
          fmt::format("the agent stopped before job {} ({}) started", e->info.id, e->info.Describe()));
      e->cancel = true;
      Finish(*e, JobState::kCancelled);
    }
    queue_.clear();
    if (mode == ShutdownMode::kCancel) {
      for (auto& [id, e] : jobs_) {
        if (e->info.state == JobState::kRunning) e->cancel = true;
      }
    }
    idle_cv_.wait(lock, [&] { return unfinished_ == 0; });
  }
  JoinDone();
}

}  // namespace sb
