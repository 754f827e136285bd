// WalCapture: stream mode's WAL capture thread per cluster. Runs whenever
// backups may run (the controller says so each loop), under the cluster's
// stream lease (another agent holding it: this one backs off, says so once,
// and asks again each loop). Chain breaks the streamer reports become the
// cluster's pending break (a full backup follows at once), named with the tool
// that took the WAL (rule 8). Its failures are the capture activity's fault,
// naming the storage when the storage failed; the fault ends with the next
// durable write, or once the stream has run for a while without error (an
// idle cluster writes nothing).
// Thread-safety: Ensure/Stop on the backup loop's thread.
#pragma once

#include "agent/agent_context.h"
#include "agent/backup_runner.h"
#include "agent/cluster.h"

namespace sb {

class WalCapture {
 public:
  WalCapture(const AgentContext& ctx, BackupRunner& runner) : ctx_(ctx), runner_(runner) {}

  // Starts capture unless it runs (to this storage); a running stream that has been error-free
  // for three flush intervals ends the capture fault.
  void Ensure(Cluster& c, const ClusterSettings& s);
  void Stop(Cluster& c);

 private:
  void EndFaultIfHealthy(Cluster& c, std::chrono::milliseconds healthy_after);
  Status Capture(Cluster& c, const ClusterSettings& s);
  void OnChainBreak(Cluster& c, const ChainBreak& b);
  void Stopped(Cluster& c, const Status& result);

  const AgentContext& ctx_;
  BackupRunner& runner_;
};

}  // namespace sb
