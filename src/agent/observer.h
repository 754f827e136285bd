// Observer: one look at a cluster for the backup loop — its server (role,
// wal_level, position, archive_command, system identifier and timeline) and
// what its repository holds in the current container (last full and log
// backups, chain gaps, the newest restore window). Failures are recorded as
// the observe activity's fault, naming the failing part: the server, the
// credentials or the storage. PostgreSQL up but the repository unusable is a
// storage fault with the cluster reachable, not an unreachable cluster.
// Thread-safety: the backup loop's thread only.
#pragma once

#include <map>
#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"
#include "agent/server_probe.h"
#include "agent/slot_watch.h"

#include "engine/wal/wal_catalog.h"

namespace sb {

class Observer {
 public:
  Observer(const AgentContext& ctx, ServerProbe& probe, SlotWatch& slots) : ctx_(ctx), probe_(probe), slots_(slots) {}

  ClusterObservation Observe(Cluster& c, const ClusterSettings& s, bool master_on);

 private:
  void NoteServer(Cluster& c, const ServerInfo& info, ClusterObservation& o);
  void NoteArchiving(Cluster& c, const ClusterSettings& s, const ServerInfo& info, SystemTime now);
  // Fills o from the repository's catalog; false (with the storage fault noted) when it cannot be read.
  bool ReadCatalog(Cluster& c, const ClusterSettings& s, const ServerInfo& info, ClusterObservation& o);
  void StorageFailed(Cluster& c, const Status& status, ClusterObservation& o);

  const AgentContext& ctx_;
  ServerProbe& probe_;
  SlotWatch& slots_;
  // Per cluster and storage URL: what the last look read, so that a loop in
  // which nothing changed makes a handful of listings and reads no manifest.
  std::map<std::string, CatalogCache> catalogs_;
};

}  // namespace sb
