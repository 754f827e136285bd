// Retention (spec section 3): keep everything needed to restore to any point
// in the last N days — the newest full backup that finished at or before
// now − N days, everything after it, and the WAL that covers them — and purge
// the rest. Never purges the last restorable set of a live cluster. A dropped
// cluster keeps its backups until N days after its last one, then loses all.
// Copy-only backups expire on their own date. Leftovers of interrupted backups
// (data without a manifest) are removed once older than a grace period, and
// single-use data keys (repo/key_store.h) right after the WAL part they encrypt.
// Thread-safety: pure planning; ApplyRetention is reentrant.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "repo/repository.h"

namespace sb {

struct RetentionOptions {
  std::chrono::milliseconds retention = std::chrono::hours(24 * 7);  // N days
  bool cluster_live = true;  // false: dropped / unregistered
  std::chrono::milliseconds leftover_grace = std::chrono::hours(6);
};

struct RetentionPlan {
  std::vector<std::string> manifests_to_delete;  // backup manifest keys (deleted first)
  std::vector<std::string> objects_to_delete;    // data objects and WAL parts (after their manifests)
  std::map<std::string, SystemTime> expiration;  // backup_id → expiration_time the rule gives it
  std::string anchor_backup_id;                  // the full backup the window starts from
  std::string summary;                           // one line for logs and health
};

Result<RetentionPlan> PlanRetention(Repository& repo, const std::string& db, SystemTime now,
                                    const RetentionOptions& options);
// Deletes manifests first (so a backup stops existing before its data goes),
// then the objects.
Status ApplyRetention(Repository& repo, const RetentionPlan& plan);

}  // namespace sb
