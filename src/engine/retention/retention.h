// Retention (spec section 3): keep everything needed to restore to any point
// in the last N days — the newest full backup that finished at or before
// now − N days, everything after it, and the WAL that covers them — and purge
// the rest. Never purges the last restorable set of a live cluster. A dropped
// cluster keeps its backups until N days after its last one, then loses all.
// Copy-only backups expire on their own date. Leftovers of interrupted backups
// (data without a manifest) are removed once older than a grace period, and
// single-use data keys (repo/key_store.h) right after the WAL part they encrypt.
//
// Safety against a shared or tampered repository and a wrong clock:
// - Every key a plan deletes was listed by this pass (single-use keys aside:
//   each names in its own content the one listed WAL part it encrypts). A
//   backup's data is found under the prefix derived from its manifest's
//   listed key; a manifest whose content names another key (a copy) plans
//   nothing and is kept like an unreadable one.
// - Each system identifier is a separate cluster, even under one name: the
//   live rule covers only the live cluster's own containers; the containers
//   of any other system identifier are kept whole until retention has elapsed
//   since their newest backup or object (the dropped-cluster rule).
// - Ages are measured against the storage's clock (the modification time of a
//   probe object written at the start of each pass); a local clock more than
//   max_clock_ahead ahead of it refuses the pass. Leftovers are never removed
//   while the full-backup lease of the database is held.
// Thread-safety: PlanRetention writes only its clock probe; ApplyRetention is
// reentrant.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "repo/repository.h"

namespace sb {

struct RetentionOptions {
  std::chrono::milliseconds retention = std::chrono::hours(24 * 7);  // N days
  bool cluster_live = true;  // false: dropped / unregistered
  std::chrono::milliseconds leftover_grace = std::chrono::hours(6);
  // The live cluster's system identifier: the live rule covers its containers
  // only. nullopt (the purge verb, which knows no cluster): every system
  // identifier is planned on its own as a live cluster, each keeping its
  // newest restorable set.
  std::optional<uint64_t> system_identifier;
  // The pass is refused (kFailedPrecondition) when the local clock is further
  // ahead of the storage's than this.
  std::chrono::milliseconds max_clock_ahead = std::chrono::minutes(5);
};

// Format version 2: what ApplyRetention rewrites the index from once it has
// deleted manifests (doc/repository.md, "Index"): every index object and
// marker this pass listed, and the text of every readable manifest it listed.
struct IndexRewrite {
  bool enabled = false;  // a version 2 repository whose index read well
  std::string db;
  int level = 0;
  std::vector<std::string> objects;             // index objects read (replaced by the rewrite)
  std::vector<ObjectInfo> markers;              // pending markers listed
  std::map<std::string, std::string> live;      // manifest key → text, as listed and checked
};

struct RetentionPlan {
  std::vector<std::string> manifests_to_delete;  // backup manifest keys (deleted first)
  std::vector<std::string> objects_to_delete;    // data objects and WAL parts (after their manifests)
  std::map<std::string, SystemTime> expiration;  // backup_id → expiration_time the rule gives it
  std::string anchor_backup_id;                  // the full backup the window starts from
  std::string summary;                           // one line for logs and health
  SystemTime storage_now{};                      // the storage's time the ages were measured against
  IndexRewrite index;
};

// `local_now` is the local clock's time: it is only compared with the
// storage's (a far-ahead local clock fails with kFailedPrecondition); every
// age is taken from the storage's time (plan.storage_now).
Result<RetentionPlan> PlanRetention(Repository& repo, const std::string& db, SystemTime local_now,
                                    const RetentionOptions& options);
// The storage's current time: writes the small object ClockProbeKey(db) and
// returns its modification time as the storage reports it.
Result<SystemTime> StorageNow(Repository& repo, const std::string& db);
// "locks/retention-clock/<db>": outside db/<db>/, so no listing of the
// database (retention, verify, available-backups) ever sees it.
std::string ClockProbeKey(const std::string& db);
// Deletes manifests first (so a backup stops existing before its data goes),
// then the objects.
Status ApplyRetention(Repository& repo, const RetentionPlan& plan);
// The first step of ApplyRetention (version 2): one index object with every
// remaining manifest and tombstones for the deleted ones replaces the index
// objects the pass read; markers whose manifest it holds (or older than 6
// hours without one) go.
Status RewriteIndex(Repository& repo, const RetentionPlan& plan);

}  // namespace sb
