// NameGuard: one system identifier per database name (see repo/name_claim.h).
// On a primary the agent claims the cluster's name for its system identifier on
// its storage, renewing well inside the claim's live window so that a running
// agent never looks dead to another. Refused, the cluster is refused — no
// capture, no backups, no retention — until the claim is granted; it is asked
// again every loop meanwhile. A storage error keeps the previous verdict (the
// observer reports storage problems).
// Thread-safety: Check on the backup loop's thread; Refusal from any thread.
#pragma once

#include <chrono>

#include "agent/agent_context.h"
#include "agent/cluster.h"

namespace sb {

class NameGuard {
 public:
  explicit NameGuard(const AgentContext& ctx) : ctx_(ctx) {}

  void Check(Cluster& c, const ClusterSettings& s, const ClusterObservation& o);
  // kFailedPrecondition while the cluster's name is refused (for jobs started outside the loop).
  static Status Refusal(Cluster& c);

  // How often a granted claim is renewed: well inside NameClaimOptions::live_window.
  static constexpr std::chrono::minutes kRenewEvery{2};

 private:
  std::optional<KnownCluster> Known(const std::string& name);
  void Remember(Cluster& c, std::optional<KnownCluster> known, uint64_t sysid);
  const AgentContext& ctx_;
};

}  // namespace sb
