// PeerMonitor: availability groups and mirroring (coexistence rules 1 and 2;
// see peers.h for the beacon protocol). Keeps each enabled cluster's beacon
// connected to its primary and reads what the primary shows: on a standby, the
// primary's agent (same storage: fine; another storage: refused as "hybrid");
// on the primary, standbys that no agent manages on this storage (warned: no
// backups would follow a failover to them). Records each change of the
// resulting line in health once, and says when a standby was promoted.
// Thread-safety: Check on the backup loop's thread; CheckSameStorageAsPrimary
// from API threads (it uses its own connections).
#pragma once

#include <optional>
#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "agent/peers.h"

namespace sb {

class PeerMonitor {
 public:
  explicit PeerMonitor(const AgentContext& ctx) : ctx_(ctx) {}

  void Check(Cluster& c, const ClusterSettings& s, const ClusterObservation& o);
  // Refuses enabling a standby whose primary's agent writes to another storage (the "hybrid"
  // case). A check that cannot be made (primary unreachable, no agent there) does not refuse.
  Status CheckSameStorageAsPrimary(const ClusterSettings& s, const std::string& conninfo);

 private:
  struct Line {
    std::string note;  // the state line's clause
    std::string line;  // what health records (once per change)
    bool unmanaged_standbys = false;  // the primary's warning about standbys without an agent
  };
  std::string RepoIdOf(Cluster& c, const ClusterSettings& s);
  void SayPromoted(Cluster& c, const ClusterSettings& s, const ClusterObservation& o);
  // The primary's view through the beacon, reconnecting it when due; *where: the primary's
  // host:port, *problem: why there is no view.
  std::optional<PrimaryView> ReadThroughBeacon(Cluster& c, const ClusterObservation& o, const std::string& name,
                                               std::string* where, std::string* problem);
  Line StandbyLine(Cluster& c, const ClusterSettings& s, const std::optional<PrimaryView>& view,
                   const std::string& where, const std::string& problem, const std::string& repo_id,
                   const std::string& my_db);
  Line PrimaryLine(Cluster& c, const ClusterSettings& s, const PrimaryView& view, const std::string& repo_id,
                   const std::string& my_db);
  void Record(Cluster& c, const ClusterSettings& s, const Line& line);

  const AgentContext& ctx_;
};

}  // namespace sb
