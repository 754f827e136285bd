// ClusterController: one backup-loop pass over one cluster — observe (server
// and repository), check the coexistence rules (availability group peers, the
// name claim, WAL consumers on the slot, a foreign archiver), decide with the
// scheduler's pure rules, act through ClusterActions, and publish the typed
// result (condition, headline, faults, decisions) that status renders.
// Every rule applied here is a unit test with a scripted ServerProbe, a memory
// storage, a manual clock and recording ClusterActions.
// Thread-safety: Step on the backup loop's thread.
#pragma once

#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "agent/cluster_actions.h"
#include "agent/name_guard.h"
#include "agent/observer.h"
#include "agent/peer_monitor.h"
#include "agent/slot_watch.h"

namespace sb {

class ClusterController {
 public:
  // `peers` may be null (no availability-group checks: unit tests of single clusters).
  ClusterController(const AgentContext& ctx, ServerProbe& probe, ClusterActions& actions, PeerMonitor* peers);

  void Step(Cluster& c, bool master_on);

 private:
  // What this pass decided, before acting.
  struct Plan {
    ClusterSettings settings;
    ClusterObservation observation;
    Decision full, log, drill;
    bool capture = false;  // WAL capture is meant to run (stream mode)
    bool force_new_container = false;
    Refusal refusal = Refusal::kNone;
    std::string refusal_text;
    std::string capture_stopped_why;  // why capture does not run, for the idle-slot warning
  };
  Plan Decide(Cluster& c, bool master_on);
  void ApplyRefusals(Cluster& c, Plan& p);
  void Act(Cluster& c, Plan& p);
  void Publish(Cluster& c, const Plan& p, bool queued);
  void Stepped(Cluster& c, const Plan& p);

  const AgentContext& ctx_;
  ClusterActions& actions_;
  PeerMonitor* peers_;
  SlotWatch slots_;
  Observer observer_;
  NameGuard names_;
};

}  // namespace sb
