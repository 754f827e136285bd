#include "agent/job_actions.h"

#include <fmt/core.h>

#include "common/logging.h"

namespace sb {

void JobActions::JobFailed(Cluster& c, Activity activity, const Status& status, const std::string& what) {
  if (status.code() == StatusCode::kAlreadyExists) {
    runner_.NoteBackOff(c, status.message());
    return;
  }
  if (status.code() == StatusCode::kFailedPrecondition && activity == Activity::kLogBackup &&
      status.source() != ErrorSource::kStorage) {
    // Nothing new to seal (the repository was read) or the cluster is refused (said elsewhere): the
    // log backup itself is not failing, so an earlier failure of it is over.
    ClearFault(c, activity);
    return;
  }
  ctx_.Event(c.name, CategoryOf(status, HealthCategory::kPostgresError), what + " failed: " + status.message());
  NoteFault(c, activity, PartOf(status, FailingPart::kServer), what + " failed: " + status.message(),
            ctx_.clock->Now());
}

Result<int64_t> StartBackupJob(const AgentContext& ctx, Cluster& c, JobKind kind, const std::string& reason,
                               BackupWork work) {
  auto running = [&c, kind]() -> std::string& { return kind == JobKind::kFull ? c.running_full : c.running_log; };
  bool described_here = false;
  {
    std::lock_guard lock(c.mu);
    if (running().empty()) {
      running() = fmt::format("{} backup ({})", JobKindName(kind), reason);
      described_here = true;
    }
  }
  auto id = ctx.jobs->Start({.kind = kind, .cluster = c.name, .reason = reason},
                            [&c, running, work = std::move(work)](JobContext& job) -> Result<JobOutput> {
                              auto m = work(job);
                              {
                                std::lock_guard lock(c.mu);
                                running().clear();
                              }
                              if (!m.ok()) return m.status();
                              return JobOutput{.detail = m->backup_id, .backup = *m};
                            });
  if (!id.ok() && described_here) {
    std::lock_guard lock(c.mu);
    running().clear();
  }
  return id;
}

void JobActions::StartFull(Cluster& c, const ClusterSettings& s, const Decision& d, bool new_container) {
  std::optional<SystemTime> seen_last_full;
  {
    std::lock_guard lock(c.mu);
    seen_last_full = c.observation.last_full_finish;
  }
  auto started = StartBackupJob(ctx_, c, JobKind::kFull, d.reason, [this, &c, s, d, new_container, seen_last_full](JobContext& job) {
    auto m = runner_.RunFull(c, s,
                             {.reason = d.reason,
                              .new_container = new_container,
                              .recheck = true,
                              .seen_last_full = seen_last_full,
                              .job = &job});
    if (m.ok()) {
      runner_.ClearBackOff(c);
      ClearFault(c, Activity::kFullBackup);
    } else {
      JobFailed(c, Activity::kFullBackup, m.status(), "full backup");
    }
    return m;
  });
  if (!started.ok()) log::Debug("[{}] {}", c.name, started.status().message());
}

void JobActions::StartLog(Cluster& c, const ClusterSettings& s, const Decision& d) {
  auto started = StartBackupJob(ctx_, c, JobKind::kLog, d.reason, [this, &c, s, d](JobContext& job) {
    job.SetPhase("sealing captured WAL");
    auto m = runner_.RunLog(c, s, d.reason);
    if (m.ok()) {
      ClearFault(c, Activity::kLogBackup);
    } else {
      JobFailed(c, Activity::kLogBackup, m.status(), "log backup");
    }
    return m;
  });
  if (!started.ok()) log::Debug("[{}] {}", c.name, started.status().message());
}

void JobActions::StartDrill(Cluster& c, const ClusterSettings& s, const Decision& d) {
  auto started = DrillRunner(ctx_).Start(c, s, d.reason);
  if (!started.ok()) log::Debug("[{}] {}", c.name, started.status().message());
}

bool JobActions::PrepareNewContainer(Cluster& c, const ClusterSettings& s, const std::string& reason) {
  uint64_t sysid = 0;
  uint32_t tli = 0;
  {
    std::lock_guard lock(c.mu);
    sysid = c.system_identifier;
    tli = c.timeline;
  }
  if (sysid == 0 || tli == 0) return false;
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) return false;
  return (*repo)->EnsureContainer(c.name, sysid, tli, reason, /*force_new=*/true).ok();
}

}  // namespace sb
