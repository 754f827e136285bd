// NameClaim: one system identifier per database name in a repository. Two
// clusters with different system identifiers backed up under one name would
// share a retention plan and a set of leases: the second one's retention
// deletes the first one's backups and its WAL capture waits forever on the
// first one's lease. Every writer (agent, backup, stream, wal-push) claims the
// name for its system identifier first; a second *live* claim is refused.
//
// Layout (beside db/, so that retention and purge never see it):
//   names/<db>/<sysid>.since  written once when the claim is first granted (its mtime orders claims)
//   names/<db>/<sysid>.alive  replaced at each granted claim: the claim's heartbeat
//   names/<db>/<sysid>.probe  replaced when another system identifier is present: reads the storage's now
// Live: a system identifier whose .alive was written within `live_window` of
// the storage's now (storage time on both sides, so a skewed local clock does
// not matter). Of two live claims the older .since keeps the name (ties: the
// lower system identifier), so two writers starting at once do not both lose.
// A system identifier that this writer itself had under the name before (the
// cluster was re-created with initdb) is not a conflict: it is a new database
// under the same name (new container and full), as the spec says.
// Cost: one listing of names/<db>/ and one or two writes; with another system
// identifier present, one more write and one stat.
// Thread-safety: stateless; concurrent calls are safe (the storage orders them).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>

#include "common/status.h"
#include "storage/storage.h"

namespace sb {

struct NameClaimOptions {
  // A claim not renewed for this long is dead: its cluster stopped writing here.
  std::chrono::seconds live_window{std::chrono::minutes(10)};
  // System identifiers this writer had under the name before (initdb again): never a conflict.
  std::set<uint64_t> earlier_systems;
};

struct NameClaimResult {
  bool granted = false;
  // When refused: the live system identifier that keeps the name, and how long ago (storage
  // time) it last claimed it.
  uint64_t holder = 0;
  std::chrono::seconds holder_age{0};
};

// Claims `db` for `system_identifier` in `storage` (a repository's storage). Errors are storage
// errors; a refusal is a granted == false result (render it with NameClaimRefusal).
Result<NameClaimResult> ClaimDatabaseName(Storage& storage, const std::string& db, uint64_t system_identifier,
                                          const NameClaimOptions& options = {});

// The system identifiers that ever claimed `db` (read only: one listing of names/<db>/).
Result<std::set<uint64_t>> NameClaimants(Storage& storage, const std::string& db);

// The one-line refusal, with what to do: "database name \"main\" is used by another live cluster …".
std::string NameClaimRefusal(const std::string& db, uint64_t system_identifier, const NameClaimResult& result);

// ClaimDatabaseName as a Status: kFailedPrecondition with NameClaimRefusal's text when refused
// (for the standalone verbs, which stop on it).
Status CheckDatabaseName(Storage& storage, const std::string& db, uint64_t system_identifier,
                         const NameClaimOptions& options = {});

}  // namespace sb
