// SlotWatch: smartbackup's replication slot on a primary (coexistence rules 7
// and 8). Watch records what the server shows about the slot: another client
// consuming it (pg_receivewal and the like take WAL away from the chain: named,
// warned once per client, remembered to name the chain break), and wal_level =
// minimal pending a restart (PostgreSQL 15 does not start with it while a
// physical slot exists: capture stops so that the slot can be dropped).
// HandleIdle deals with a slot nothing reads: it keeps WAL on the primary and
// fills its disk, so it is dropped when capture is off for good, and reported
// with its retained bytes and the exact SQL otherwise.
// Thread-safety: the backup loop's thread only.
#pragma once

#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "agent/server_probe.h"

namespace sb {

class SlotWatch {
 public:
  SlotWatch(const AgentContext& ctx, ServerProbe& probe) : ctx_(ctx), probe_(probe) {}

  void Watch(Cluster& c, const ClusterSettings& s, ServerSession& session, const ServerInfo& info);
  // `reading`: WAL capture is meant to run now; `why_stopped`: why not, when it is not.
  void HandleIdle(Cluster& c, const ClusterSettings& s, const ClusterObservation& o, bool reading,
                  const std::string& why_stopped);

 private:
  std::string MinimalNote(const ClusterSettings& s, const SlotView& view, const ServerInfo& info,
                          const std::string& slot, bool* pending);
  const AgentContext& ctx_;
  ServerProbe& probe_;
};

}  // namespace sb
