#include "agent/job_actions.h"

namespace sb {

void JobActions::JobFailed(Cluster& c, Activity activity, const Status& status, const std::string& what) {
  if (status.code() == StatusCode::kAlreadyExists) {
    runner_.NoteBackOff(c, status.message());
    return;
  }
  if (status.code() == StatusCode::kFailedPrecondition && activity == Activity::kLogBackup) return;  // refused
  ctx_.Event(c.name, CategoryOf(status, HealthCategory::kPostgresError), what + " failed: " + status.message());
  NoteFault(c, activity, PartOf(status, FailingPart::kServer), what + " failed: " + status.message(),
            ctx_.clock->Now());
}

void JobActions::StartFull(Cluster& c, const ClusterSettings& s, const Decision& d, bool new_container) {
  if (c.full_thread.joinable()) c.full_thread.join();
  std::optional<SystemTime> seen_last_full;
  {
    std::lock_guard lock(c.mu);
    c.running_full = "full backup (" + d.reason + ")";
    seen_last_full = c.observation.last_full_finish;
  }
  ++fulls_running_;
  c.full_thread = std::thread([this, &c, s, d, new_container, seen_last_full] {
    auto m = runner_.RunFull(c, s,
                             {.reason = d.reason,
                              .new_container = new_container,
                              .recheck = true,
                              .seen_last_full = seen_last_full});
    if (m.ok()) {
      runner_.ClearBackOff(c);
      ClearFault(c, Activity::kFullBackup);
    } else {
      JobFailed(c, Activity::kFullBackup, m.status(), "full backup");
    }
    --fulls_running_;
    std::lock_guard lock(c.mu);
    c.running_full.clear();
  });
}

void JobActions::StartLog(Cluster& c, const ClusterSettings& s, const Decision& d) {
  if (c.log_thread.joinable()) c.log_thread.join();
  {
    std::lock_guard lock(c.mu);
    c.running_log = "log backup (" + d.reason + ")";
  }
  c.log_thread = std::thread([this, &c, s, d] {
    auto m = runner_.RunLog(c, s, d.reason);
    if (m.ok()) {
      ClearFault(c, Activity::kLogBackup);
    } else {
      JobFailed(c, Activity::kLogBackup, m.status(), "log backup");
    }
    std::lock_guard lock(c.mu);
    c.running_log.clear();
  });
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

void JobActions::Shutdown(Cluster& c) {
  capture_.Stop(c);
  if (c.full_thread.joinable()) c.full_thread.join();
  if (c.log_thread.joinable()) c.log_thread.join();
}

}  // namespace sb
