#include "agent/drill_runner.h"

#include <unistd.h>

#include <fmt/core.h>

#include <random>

#include "common/logging.h"
#include "common/text.h"
#include "engine/drill/drill.h"
#include "engine/drill/drill_process.h"
#include "engine/drill/drill_scratch.h"

namespace sb {
namespace {

using nlohmann::json;

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n <= 0 ? std::string("smartbackup") : std::string(buf, static_cast<size_t>(n));
}

// A uniformly random point of the window, whole seconds.
SystemTime RandomPoint(SystemTime from, SystemTime to) {
  using std::chrono::seconds;
  const auto span = std::chrono::duration_cast<seconds>(to - from).count();
  if (span <= 1) return to;
  std::random_device rd;
  std::uniform_int_distribution<int64_t> pick(1, span);
  return from + seconds(pick(rd));
}

}  // namespace

json DrillRecordJson(const DrillRecord& r) {
  json j = json::parse(r.ToJson());
  j.erase("format");
  j.erase("version");
  j.erase("checksum");
  j["rto_seconds"] = r.restore_seconds + r.replay_seconds;
  return j;
}

std::string DrillRunner::ScratchDir(const AgentContext& ctx, const ClusterSettings& s) {
  return s.drill_scratch_dir.empty() ? ctx.config.state_dir + "/drills" : s.drill_scratch_dir;
}

void DrillRunner::Observe(Cluster& c, const ClusterSettings& s, ClusterObservation& o) {
  // A disabled cluster's repository is not touched. With drills off, an on-demand drill's
  // failure still counts (it schedules a full), so records are observed either way.
  if (!s.enabled) return;
  bool load = false;
  {
    std::lock_guard lock(c.mu);
    load = !c.drills_loaded || c.drills_url != s.storage_url;
  }
  if (load && !o.storage_error) {
    // Once per storage: later records are this agent's own (a standalone drill elsewhere shows at
    // the next agent start, and always in available-backups).
    if (auto repo = ctx_.OpenRepo(s.storage_url); repo.ok()) {
      if (auto listing = ListDrillRecords(**repo, c.name); listing.ok()) {
        std::lock_guard lock(c.mu);
        c.drills = std::move(listing->records);
        c.drills_loaded = true;
        c.drills_url = s.storage_url;
      }
    }
  }
  {
    std::lock_guard lock(c.mu);
    if (!c.drills.empty()) {
      const DrillRecord& last = c.drills.back();
      o.last_drill_finish = last.finished;
      o.last_drill_backup_id = last.backup_id;
      o.last_drill_failed = last.result == DrillResult::kFailed && BackupsAtFault(last.stage);
      o.last_drill_error = last.error;
    }
  }
  o.drill_running = Running() > 0;
  o.drill_key_unreadable = !s.public_key.empty();
  if (auto free = FreeBytes(ScratchDir(ctx_, s)); free.ok()) o.drill_free_bytes = *free;
}

Result<int64_t> DrillRunner::Start(Cluster& c, const ClusterSettings& s, const std::string& reason,
                                   std::optional<RecoveryTarget> target) {
  if (Running() > 0) return Status::AlreadyExists("a restore drill is already running (one at a time per agent)");
  {
    std::lock_guard lock(c.mu);
    c.running_drill = fmt::format("restore drill ({})", reason);
  }
  auto id = ctx_.jobs->Start({.kind = JobKind::kDrill, .cluster = c.name, .reason = reason},
                             // The context, not this runner: callers make DrillRunners on the fly and
                             // the job outlives them.
                             [ctx = &ctx_, &c, s, target](JobContext& job) -> Result<JobOutput> {
                               auto r = DrillRunner(*ctx).Run(c, s, target, job);
                               {
                                 std::lock_guard lock(c.mu);
                                 c.running_drill.clear();
                               }
                               if (!r.ok()) return r.status();
                               return JobOutput{.detail = r->drill_id, .drill = *r};
                             });
  if (!id.ok()) {
    std::lock_guard lock(c.mu);
    c.running_drill.clear();
  }
  return id;
}

Result<DrillRecord> DrillRunner::Run(Cluster& c, const ClusterSettings& s, std::optional<RecoveryTarget> target,
                                     JobContext& job) const {
  LowerThreadPriority();  // the restore's workers inherit it; the server runs under nice/idle I/O too
  ASSIGN_OR_RETURN(auto repo, ctx_.OpenRepo(s.storage_url));
  std::optional<EncryptionKey> key;
  if (!s.key_file.empty()) {
    ASSIGN_OR_RETURN(key, EncryptionKey::LoadFromFile(s.key_file));
    repo->SetReadKeys(&*key);
  }
  DrillOptions o{.database = c.name, .scratch_dir = ScratchDir(ctx_, s), .repo_url = s.storage_url,
                 .key_file = s.key_file, .smartbackup_path = SelfPath(), .key = key ? &*key : nullptr,
                 .check_sql = s.drill_check_sql, .low_priority = true, .parallelism = 1};
  o.clock = ctx_.clock;
  o.progress = [&job](const std::string& phase) { job.SetPhase(phase); };
  o.cancelled = [&job] { return job.cancelled(); };
  if (target) {
    o.target = *target;
  } else if (s.drill_target == "random") {
    std::lock_guard lock(c.mu);
    if (c.window && c.window->end_time > c.window->start_time) {
      o.target = {.kind = RecoveryTarget::Kind::kTime, .time = RandomPoint(c.window->start_time, c.window->end_time)};
    }
  }
  DrillOutcome out = RunDrill(*repo, o);
  if (!out.record_status.ok()) {
    ctx_.Event(c.name, HealthCategory::kWarning,
               "the restore drill's record was not written to the repository: " + out.record_status.message());
  }
  Recorded(c, out.record, out.status);
  if (!out.status.ok()) return out.status;
  return out.record;
}

void DrillRunner::Recorded(Cluster& c, const DrillRecord& r, const Status& status) const {
  if (status.code() == StatusCode::kCancelled) return;  // proved nothing either way
  {
    std::lock_guard lock(c.mu);
    c.drills.push_back(r);
  }
  ctx_.stats->NoteDrill({.database = c.name, .passed = status.ok(), .at = r.finished,
                         .restore_seconds = r.restore_seconds, .replay_seconds = r.replay_seconds, .bytes = r.bytes});
  if (status.ok()) {
    ctx_.Event(c.name, HealthCategory::kDrill,
               fmt::format("restore drill {} passed: backup {} restored to {} in {:.1f}s (restore {:.1f}s, replay "
                           "{:.1f}s), pg_amcheck clean",
                           r.drill_id, r.backup_id, r.reached_lsn ? r.reached_lsn->ToString() : "?",
                           r.restore_seconds + r.replay_seconds, r.restore_seconds, r.replay_seconds));
  } else {
    ctx_.Event(c.name, HealthCategory::kDrillFailed,
               fmt::format("restore drill {} failed in {}: {}{}{}", r.drill_id, DrillStageName(r.stage), r.error,
                           r.failed_object.empty() ? "" : " (object " + r.failed_object + ")",
                           BackupsAtFault(r.stage) ? "; a new full backup is scheduled" : ""));
  }
}

void DrillRunner::CleanOrphans(const std::vector<std::string>& scratch_dirs) const {
  for (const auto& dir : scratch_dirs) {
    OrphanCleanup done = CleanOrphanDrills(dir);
    for (const auto& d : done.removed) {
      ctx_.Event("", HealthCategory::kWarning,
                 fmt::format("removed the directory of an interrupted restore drill: {}", d));
    }
    if (done.servers_stopped > 0) {
      log::Warn("stopped {} PostgreSQL server(s) left running by an interrupted restore drill", done.servers_stopped);
    }
    for (const auto& e : done.errors) ctx_.Event("", HealthCategory::kWarning, e.message());
  }
}

}  // namespace sb
