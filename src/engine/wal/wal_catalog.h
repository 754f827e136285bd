// WalCatalog: what the repository holds for one database and system
// identifier, across its containers — full backups, WAL parts, log backups
// and timeline histories — and what follows from it: the restorable windows,
// the gaps in the log chain, and the bytes of any WAL segment (for wal-get).
// Computed from the repository alone; a snapshot, not kept up to date.
// Thread-safety: immutable after Load; Assemble may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct TimelineSwitch {
  uint32_t parent = 0;
  Lsn switch_point;  // where the child timeline begins
};

struct ChainGap {
  std::string container;
  uint32_t timeline = 0;
  Lsn start, end;  // WAL in [start, end) is missing
  SystemTime detected_after;  // durable time of the WAL before the gap
};

struct RestoreWindow {
  std::string base_backup_id;   // the full backup the window starts from
  uint32_t start_timeline = 0;
  Lsn start_lsn;                // the full backup's consistent point
  SystemTime start_time;
  uint32_t end_timeline = 0;
  Lsn end_lsn;                  // newest durable WAL reachable without a gap
  SystemTime end_time;          // when that WAL became durable
};

// What a long-lived reader (the agent, per cluster) keeps between loads so
// that a load reads only what changed (doc/repository.md, "Index"): index
// objects and parsed manifests, and the timeline history files (immutable).
// Not thread-safe: one per reader.
struct CatalogBackups;

struct CatalogCache {
  IndexCache index;
  std::map<std::string, std::string> histories;  // history key → decoded content
  Repository::ContainerCache containers;          // container descriptors read
  // What the last load derived from the backup listing, reused while the
  // listing is the same object (Repository::ListBackupsShared) for the same
  // system identifier: an idle load copies and parses no manifest.
  std::shared_ptr<const BackupListing> listing;
  uint64_t sysid = 0;
  std::shared_ptr<const CatalogBackups> backups;
};

// What a catalog takes from the backup listing alone: the backups of one
// system identifier and the WAL parts their log backups name. Immutable,
// shared between the catalogs loaded from the same listing.
struct CatalogBackups {
  std::vector<BackupManifest> bases;                // full + copy-only, oldest first
  std::vector<BackupManifest> logs;
  std::map<std::string, std::string> sealed_sha;   // part key → sha256 from a log backup
  std::vector<Status> unreadable;                   // manifests the listing could not read
  // Per container: the parts log backups name, and per timeline the one
  // reaching furthest (where the unsealed tail begins).
  std::map<std::string, std::map<std::string, WalPart>> sealed_parts;
  std::map<std::string, std::map<uint32_t, WalPart>> newest_sealed;
};

class WalCatalog {
 public:
  // sysid unset: the system identifier of the newest backup or container.
  // Version 2 repositories: backups from the index, sealed WAL parts from the
  // log backups' entries, the unsealed tail by listing only the LSN blocks
  // after the newest sealed part (and after each full backup beyond it).
  // With `cache`, a load in which nothing changed reads no manifest and
  // makes a handful of listings. Version 1: lists and reads everything.
  // PartSource::kListed lists every WAL part (names only) instead: the truth
  // about what is stored, for `available-backups` (a sealed part that went
  // missing shows as a gap and its log backup as incomplete).
  enum class PartSource { kIncremental, kListed };
  static Result<WalCatalog> Load(Repository& repo, const std::string& db, std::optional<uint64_t> sysid,
                                 CatalogCache* cache = nullptr, PartSource part_source = PartSource::kIncremental);

  uint64_t system_identifier() const { return sysid_; }
  const std::vector<BackupManifest>& bases() const { return backups_->bases; }  // full + copy-only, oldest first
  const std::vector<BackupManifest>& log_backups() const { return backups_->logs; }
  const std::vector<WalPart>& parts() const { return parts_; }  // all timelines, by (tli, start)
  const std::map<uint32_t, TimelineSwitch>& switches() const { return switches_; }
  std::optional<std::string> HistoryFile(uint32_t timeline) const;
  // What Load could not read and skipped (unreadable manifests, a history file
  // that does not decode). Listings tolerate them; wal-get must not, since a
  // skipped object can make a present segment or timeline look absent.
  const std::vector<Status>& skipped() const { return skipped_; }

  // End of the contiguous WAL on `timeline` that starts at or before `from`
  // (following parts only), and the durable time of the last part used.
  Lsn ContiguousEnd(uint32_t timeline, Lsn from, SystemTime* durable_at = nullptr) const;
  // Highest end of any part on the timeline (or 0).
  Lsn TimelineEnd(uint32_t timeline) const;

  std::vector<RestoreWindow> Windows() const;
  std::vector<ChainGap> Gaps() const;

  // Bytes of WAL [start, end) on `timeline` as far as contiguous from start,
  // taking what precedes the timeline's switch point from its parent.
  // kNotFound only when nothing covers `start`; a listed object that cannot
  // be read (even one gone meanwhile) is another error. Checks each object's checksum
  // where a log backup recorded it.
  Result<std::string> Assemble(Storage& storage, uint32_t timeline, Lsn start, Lsn end, const KeySource* keys) const;

 private:
  uint64_t sysid_ = 0;
  std::shared_ptr<const CatalogBackups> backups_ = std::make_shared<const CatalogBackups>();
  std::vector<WalPart> parts_;
  std::map<uint32_t, TimelineSwitch> switches_;
  std::map<uint32_t, std::string> histories_;
  std::vector<Status> skipped_;
};

// The WAL parts of (container, timeline) found by listing 16 MiB blocks of
// start LSNs, from the block holding `from` on, while the parts found reach
// into the next block, then the two 256 MiB groups from where that run
// stopped (WAL after a hole), again from the furthest part found: a listing
// of what is after `from`, not of the container's whole history.
Result<std::vector<WalPart>> ListWalTail(Repository& repo, const std::string& db, const std::string& container,
                                         uint32_t timeline, Lsn from);

// Parses a PostgreSQL timeline history file's last line for `timeline`.
std::optional<TimelineSwitch> ParseTimelineHistory(const std::string& content);

}  // namespace sb
