#include "agent/peers.h"

#include <fmt/core.h>

#include "common/text.h"

namespace sb {

std::string BeaconName(const std::string& role, const std::string& repo_id, const std::string& db) {
  std::string name = fmt::format("{}{}:{}:{}", kBeaconPrefix, role, repo_id.substr(0, 16), db);
  if (name.size() > 63) name.resize(63);  // NAMEDATALEN - 1: the server would cut it anyway
  return name;
}

std::optional<Beacon> ParseBeacon(const std::string& app_name, const std::string& from) {
  if (!StartsWith(app_name, kBeaconPrefix)) return std::nullopt;
  std::string rest = app_name.substr(kBeaconPrefix.size());
  auto a = rest.find(':');
  auto b = a == std::string::npos ? a : rest.find(':', a + 1);
  if (b == std::string::npos) return std::nullopt;
  Beacon beacon{.role = rest.substr(0, a), .repo_id = rest.substr(a + 1, b - a - 1), .db = rest.substr(b + 1),
                .from = from};
  if (beacon.role != "primary" && beacon.role != "standby") return std::nullopt;
  return beacon;
}

Result<PrimaryView> ReadPrimaryView(PgConnection& conn) {
  ASSIGN_OR_RETURN(
      auto rows,
      conn.Query("SELECT 'a', application_name, coalesce(host(client_addr), 'local') FROM pg_stat_activity "
                 "WHERE application_name LIKE 'smartbackup:%' AND pid <> pg_backend_pid() "
                 "UNION ALL SELECT 's', r.application_name, coalesce(host(r.client_addr), 'local') "
                 "FROM pg_stat_replication r WHERE r.state IN ('streaming', 'catchup') AND r.replay_lsn IS NOT NULL "
                 "AND r.application_name NOT LIKE 'smartbackup%' AND NOT EXISTS (SELECT 1 FROM pg_replication_slots l "
                 "WHERE l.active_pid = r.pid AND l.slot_type = 'logical') "
                 "UNION ALL SELECT 'r', pg_is_in_recovery()::text, ''"));
  PrimaryView view;
  for (const auto& r : rows) {
    if (r.size() != 3 || !r[0]) continue;
    const std::string name = r[1].value_or(""), from = r[2].value_or("");
    if (*r[0] == "r") view.in_recovery = name == "true";
    if (*r[0] == "s") view.standbys.push_back(fmt::format("{} ({})", name.empty() ? "unnamed" : name, from));
    if (*r[0] == "a") {
      if (auto beacon = ParseBeacon(name, from)) view.agents.push_back(*beacon);
    }
  }
  return view;
}

Result<std::string> FindPrimary(const std::string& conninfo, std::string* where) {
  std::string current = conninfo;
  for (int hop = 0; hop < 5; ++hop) {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(current, false));
    *where = conn->HostPort();
    ASSIGN_OR_RETURN(auto rows, conn->Query("SELECT pg_is_in_recovery(), (SELECT sender_host FROM "
                                            "pg_stat_wal_receiver), (SELECT sender_port FROM pg_stat_wal_receiver)"));
    if (rows.size() != 1 || rows[0].size() != 3) {
      return Status::Internal(fmt::format("unexpected answer about WAL senders from PostgreSQL at {}", *where));
    }
    if (rows[0][0].value_or("t") == "f") return current;
    if (!rows[0][1] || !rows[0][2]) {
      return Status::NotFound(fmt::format(
          "standby {} has no WAL receiver (WAL shipped by restore_command, or not connected): its primary is unknown",
          *where));
    }
    ASSIGN_OR_RETURN(current, ConninfoWith(current, {{"host", *rows[0][1]}, {"port", *rows[0][2]}, {"hostaddr", ""}}));
  }
  return Status::NotFound("no primary within 4 cascading standbys");
}

std::optional<std::string> HybridConflict(const PrimaryView& view, const std::string& where,
                                          const std::string& repo_id, const std::string& storage_url) {
  for (const auto& a : view.agents) {
    if (a.role != "primary" || a.repo_id == repo_id.substr(0, 16)) continue;
    return fmt::format(
        "hybrid availability group: the smartbackup agent of the primary at {} backs up this cluster to another "
        "storage (repository {}), this node's agent to {} (repository {}); every node must target the same "
        "storage; hint: set storage_url here to the primary agent's storage",
        where, a.repo_id, storage_url, repo_id.substr(0, 16));
  }
  return std::nullopt;
}

}  // namespace sb
