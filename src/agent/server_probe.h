// ServerProbe: what the agent reads from a cluster's PostgreSQL on each loop —
// its settings and WAL position, smartbackup's replication slot — and the one
// thing it changes there (dropping smartbackup's idle slot), behind an
// interface so that each controller rule is a unit test against a scripted
// server. ServerProbe::Real() talks to PostgreSQL through libpq.
// Thread-safety: Real() is stateless; a session belongs to one thread.
#pragma once

#include <memory>
#include <string>

#include "agent/competing_tools.h"
#include "common/status.h"
#include "pg/connection.h"

namespace sb {

// One connection's worth of questions to a server.
class ServerSession {
 public:
  virtual ~ServerSession() = default;
  virtual Result<ServerInfo> Info() = 0;
  virtual Result<SlotView> Slot(const std::string& slot) = 0;
};

class ServerProbe {
 public:
  virtual ~ServerProbe() = default;
  virtual Result<std::unique_ptr<ServerSession>> Open(const std::string& conninfo) = 0;
  // Drops an inactive physical slot (needs REPLICATION or superuser, as creating it did).
  // PostgreSQL refuses an active slot, so a slot taken meanwhile survives.
  virtual Status DropSlot(const std::string& conninfo, const std::string& slot) = 0;

  static ServerProbe* Real();
};

}  // namespace sb
