// Availability groups and mirroring (coexistence rules 1 and 2). Every agent that manages an
// enabled cluster holds one idle connection to that cluster's primary (its own server on the
// primary; on a standby, the server its WAL receiver streams from) with the application_name
// "smartbackup:<role>:<repository id, 16 hex>:<cluster name>". The primary's pg_stat_activity is
// then the one place that lists every agent of the cluster and the storage each one writes to:
// nothing is shared between the nodes but PostgreSQL itself, and nothing is written into it. A
// standby's agent refuses when the primary's agent writes to another repository (the "hybrid"
// case); the primary's agent warns about standbys that no agent manages on its storage (no backups
// would follow a failover to them).
// Thread-safety: stateless functions; each call uses its own connections.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "pg/connection.h"

namespace sb {

inline constexpr std::string_view kBeaconPrefix = "smartbackup:";

struct Beacon {
  std::string role;     // "primary" | "standby"
  std::string repo_id;  // first 16 characters of the repository id
  std::string db;
  std::string from;     // client address, for messages
};

struct PrimaryView {
  bool in_recovery = false;
  std::vector<Beacon> agents;
  std::vector<std::string> standbys;  // "<application_name> (<client address>)"
};

// The beacon connection's application_name (cut to PostgreSQL's 63 bytes).
std::string BeaconName(const std::string& role, const std::string& repo_id, const std::string& db);
// nullopt when app_name is not a beacon.
std::optional<Beacon> ParseBeacon(const std::string& app_name, const std::string& from);
// Needs pg_monitor (pg_read_all_stats) to see other roles' client addresses and replay positions.
Result<PrimaryView> ReadPrimaryView(PgConnection& conn);
// The conninfo of the cluster's primary, from a node's conninfo: itself, or up the WAL senders of
// standbys (cascading ones too, at most 4 hops), with the same credentials. *where: its host:port.
Result<std::string> FindPrimary(const std::string& conninfo, std::string* where);
// The refusal line when the primary's agent writes to another repository than `repo_id`.
std::optional<std::string> HybridConflict(const PrimaryView& view, const std::string& where,
                                          const std::string& repo_id, const std::string& storage_url);

}  // namespace sb
