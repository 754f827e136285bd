// BackupListingView: what `available-backups` shows for one database, built
// from a WalCatalog (the repository alone) and rendered as text or JSON.
//
// The default view is the fulls (and copy-only backups) and, per restore
// window, one `wal` row for the log coverage that follows its full; `--all`
// adds every log backup. Chain gaps (`broken_chain`) sit in place: rows are
// sorted by time. A log backup one of whose WAL objects is gone from the
// repository is `missing_objects`, not `available`: checked against the WAL
// parts the catalogue listed (no extra request, bounded by what the manifest
// names). Every row has the same keys (null where a field does not apply).
//
// JSON: one object per database
//   {database, system_identifier, status, windows:[{base_backup_id, start_time,
//    start_lsn, end_time, end_lsn, start_timeline, end_timeline}], wal:{start, end} | null,
//    backups:[row…]}
// status: ok (the newest WAL is reachable from the newest full), broken_chain (a
// gap after the newest full), missing_objects (a log backup lacks objects),
// no_backups (no full).
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "engine/wal/wal_catalog.h"

namespace sb {

struct ListingRow {
  std::string type;  // full | copy_only | log | wal | broken_chain
  std::optional<std::string> backup_id;  // null for wal and broken_chain rows
  std::string container;
  uint32_t timeline = 0;
  std::string start_lsn, end_lsn;
  SystemTime start_time{}, finish_time{};
  std::optional<SystemTime> expiration_time;
  std::optional<uint64_t> size_bytes, stored_bytes;  // null for broken_chain
  std::optional<bool> encrypted;                     // null for wal and broken_chain
  std::string status;  // available | missing_objects | broken_chain
  std::optional<std::string> path;           // the manifest, for backups
  std::optional<std::string> base_backup_id;  // wal rows: the full the coverage follows
  std::optional<SystemTime> verified_at;      // the last restore drill that proved it (null until known)
};

struct DatabaseListing {
  std::string database;
  uint64_t system_identifier = 0;
  std::string status;  // ok | broken_chain | missing_objects | no_backups
  std::vector<RestoreWindow> windows;
  std::optional<std::pair<Lsn, Lsn>> wal;  // lowest start and highest end of the stored WAL
  std::vector<ListingRow> rows;            // sorted by time
};

// `all`: one row per log backup as well as the per-window coverage.
DatabaseListing BuildListing(const std::string& database, const WalCatalog& catalog, bool all);

nlohmann::json ListingJson(const DatabaseListing& listing);
// A header line per database (status, windows, WAL range), then a table.
std::string ListingText(const DatabaseListing& listing);

}  // namespace sb
