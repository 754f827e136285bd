// JobActions: ClusterActions for real — full and log backups each on a job
// thread of the cluster (BackupRunner does the work), WAL capture through
// WalCapture, containers through the repository.
// Thread-safety: the backup loop's thread; job threads touch the cluster only
// under its lock. Shutdown joins every thread it started.
#pragma once

#include <atomic>

#include "agent/agent_context.h"
#include "agent/backup_runner.h"
#include "agent/cluster_actions.h"
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
  int FullsRunning() const override { return fulls_running_; }

  // Stops capture and waits for the jobs of `c`.
  void Shutdown(Cluster& c);

 private:
  void JobFailed(Cluster& c, Activity activity, const Status& status, const std::string& what);
  const AgentContext& ctx_;
  BackupRunner& runner_;
  WalCapture& capture_;
  std::atomic<int> fulls_running_{0};
};

}  // namespace sb
