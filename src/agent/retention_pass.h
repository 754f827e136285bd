// RetentionPass: the retention loop's work for one cluster — purge by
// retention (planned per system identifier, deleting only what the same pass
// listed) and the check that every object the newest full backup and the log
// backups after it need still exists with its recorded size (missing: deleted,
// wrong size: corrupted; either breaks the chain and schedules a full backup at
// once). A dropped cluster's backups are purged once retention has elapsed.
// Thread-safety: the loop's thread; one pass per cluster at a time.
#pragma once

#include "agent/agent_context.h"
#include "agent/cluster.h"

namespace sb {

class RetentionPass {
 public:
  explicit RetentionPass(const AgentContext& ctx) : ctx_(ctx) {}

  void Run(Cluster& c);

 private:
  void CheckChainObjects(Cluster& c, Repository& repo);
  const AgentContext& ctx_;
};

}  // namespace sb
