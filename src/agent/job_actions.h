// JobActions: ClusterActions for real — full and log backups as jobs of the
// JobManager (BackupRunner does the work), WAL capture through WalCapture,
// containers through the repository.
// Thread-safety: the backup loop's thread; job threads touch the cluster only
// under its lock. The JobManager's Shutdown waits for the jobs.
#pragma once

#include <functional>
#include <string>

#include "agent/agent_context.h"
#include "agent/backup_runner.h"
#include "agent/cluster_actions.h"
#include "agent/drill_runner.h"
#include "agent/wal_capture.h"

namespace sb {

class JobActions final : public ClusterActions {
 public:
  JobActions(const AgentContext& ctx, BackupRunner& runner, WalCapture& capture)
      : ctx_(ctx), runner_(runner), capture_(capture) {}

  void StartFull(Cluster& c, const ClusterSettings& s, const Decision& d, bool new_container) override;
  void StartLog(Cluster& c, const ClusterSettings& s, const Decision& d) override;
  void EnsureCapture(Cluster& c, const ClusterSettings& s) override { capture_.Ensure(c, s); }
  void StopCapture(Cluster& c) override { capture_.Stop(c); }
  bool CaptureRunning(const Cluster& c) const override { return c.stream_running; }
  bool PrepareNewContainer(Cluster& c, const ClusterSettings& s, const std::string& reason) override;
  int FullsRunning() const override { return ctx_.jobs->Running(JobKind::kFull); }
  void StartDrill(Cluster& c, const ClusterSettings& s, const Decision& d) override;
  int DrillsRunning() const override { return DrillRunner(ctx_).Running(); }

  // Stops capture (the jobs stop with the JobManager).
  void Shutdown(Cluster& c) { capture_.Stop(c); }

 private:
  void JobFailed(Cluster& c, Activity activity, const Status& status, const std::string& what);
  const AgentContext& ctx_;
  BackupRunner& runner_;
  WalCapture& capture_;
};

// Starts `work` as a full or log backup job of `c` and returns its id; while
// the job is unfinished c.running_full/running_log describes it (what the
// observation's "already running" and the status line read). kAlreadyExists
// when a backup of that kind of `c` is unfinished.
using BackupWork = std::function<Result<BackupManifest>(JobContext&)>;
Result<int64_t> StartBackupJob(const AgentContext& ctx, Cluster& c, JobKind kind, const std::string& reason,
                               BackupWork work);

}  // namespace sb
