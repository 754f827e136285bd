// RetentionPass: the retention loop's work for one cluster — purge by
// retention (planned per system identifier, deleting only what the same pass
// listed) and the check that every object the newest full backup and the log
// backups after it need still exists with its recorded size (missing: deleted,
// wrong size: corrupted; either breaks the chain and schedules a full backup at
// once). A dropped cluster's backups are purged once retention has elapsed.
// A purge runs only when something can be due — on the first pass, when the
// number of backups past the retention period changed, or hourly (leftovers,
// clock) — and the object check when the backups changed or every 15
// minutes: the retention loop runs every 10 s, and at rest it refreshes the
// catalog it keeps per cluster (a handful of listings) and stops there.
// Thread-safety: the loop's thread; one pass per cluster at a time.
#pragma once

#include <map>
#include <string>

#include "agent/agent_context.h"
#include "agent/cluster.h"

#include "engine/wal/wal_catalog.h"

namespace sb {

class RetentionPass {
 public:
  explicit RetentionPass(const AgentContext& ctx) : ctx_(ctx) {}

  void Run(Cluster& c);

 private:
  // What the last passes saw of one cluster.
  struct Memory {
    CatalogCache catalog;
    bool purged = false;       // a purge ran once
    SteadyTime last_purge{};
    size_t past_retention = 0;  // backups past the retention period at the last purge
    std::string seen;           // the backups the last object check covered
    SteadyTime last_check{};
  };
  void CheckChainObjects(Cluster& c, Repository& repo, Memory& memory);
  const AgentContext& ctx_;
  std::map<std::string, Memory> memory_;  // by cluster name and storage URL
};

}  // namespace sb
