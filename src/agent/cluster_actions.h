// ClusterActions: what the controller does to a cluster once it has decided —
// start a full or log backup job, keep WAL capture running or stop it, make a
// new container before a full. Behind an interface so that every scheduling and
// coexistence rule is a unit test with a recording fake; JobActions does it for
// real (job threads, WalCapture).
// Thread-safety: called from the backup loop's thread.
#pragma once

#include <string>

#include "agent/cluster.h"

namespace sb {

class ClusterActions {
 public:
  virtual ~ClusterActions() = default;
  virtual void StartFull(Cluster& c, const ClusterSettings& s, const Decision& d, bool new_container) = 0;
  virtual void StartLog(Cluster& c, const ClusterSettings& s, const Decision& d) = 0;
  virtual void EnsureCapture(Cluster& c, const ClusterSettings& s) = 0;
  virtual void StopCapture(Cluster& c) = 0;
  virtual bool CaptureRunning(const Cluster& c) const = 0;
  // Makes a new container for the cluster's current (system identifier, timeline); false when it
  // could not (the full backup then makes it).
  virtual bool PrepareNewContainer(Cluster& c, const ClusterSettings& s, const std::string& reason) = 0;
  virtual int FullsRunning() const = 0;
  // (Added.) A restore drill as a job; at most one runs per agent (DrillsRunning).
  virtual void StartDrill(Cluster& c, const ClusterSettings& s, const Decision& d) = 0;
  virtual int DrillsRunning() const = 0;
};

}  // namespace sb
