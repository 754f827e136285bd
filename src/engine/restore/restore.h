// Restore of a full backup into a data directory ready for `pg_ctl start`.
// Objects are fetched and decoded ahead by `parallelism` workers and written
// in order; every object's SHA-256 is checked against the manifest before it
// is used. The repository is only read. On failure what the restore wrote is
// removed again, so a half-restored directory is never mistaken for a good one.
// Thread-safety: RunRestore calls may run concurrently for different targets.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/lsn.h"
#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct RecoveryTarget {
  enum class Kind { kLatest, kTime, kLsn } kind = Kind::kLatest;
  SystemTime time;
  Lsn lsn;
  std::string ToString() const;
};

struct RestoreOptions {
  std::string database;
  RecoveryTarget target;
  // What the restored cluster's restore_command needs to reach the repository
  // again: the URL, the key file's path (never the key) and this binary.
  std::string repo_url;
  std::string key_file;
  std::string smartbackup_path;
  std::string target_dir;
  std::string backup_id;  // empty: the newest complete full or copy-only backup
  const KeySource* key = nullptr;  // symmetric key or private-key ring
  std::string private_key_file;    // for the restore_command, like key_file
  int parallelism = 0;    // 0: one per core
  // oid → absolute directory, apart from target_dir: every tablespace of the
  // backup must be mapped (the location a manifest records is never written).
  std::map<uint32_t, std::string> tablespace_map;
  // Segments wal-get prefetches ahead during recovery (wal_prefetch.h); 0: off.
  int prefetch_depth = 8;
  // Set by the restore from the base backup's manifest: written into
  // restore_command (with the system identifier, wal-get then needs no
  // catalog). 0: not written.
  uint64_t wal_segment_size = 0;
  // Optional: raw bytes of the backup restored so far and its size, called from the calling
  // thread after each object is unpacked (for a progress display; must be quick).
  std::function<void(uint64_t done, uint64_t total)> progress;
};

Result<BackupManifest> RunRestore(Repository& repo, const RestoreOptions& options);

struct RestorePlan {
  BackupManifest base;
  bool needs_wal = false;   // false: the base backup alone reaches the target
  // A time target at or after the window's last commit/abort: recovery
  // replays to the end of the window (the same data), because PostgreSQL
  // refuses to end a recovery that never reached a record past its target.
  bool replay_to_end = false;
  std::string target_note;  // "latest: 0/5000060 on timeline 1 (2026-…)"
};

// Chooses the base backup for the target: the newest one whose restorable
// window holds it. A target outside every window is refused with the windows
// in the message. backup_id forces a base. `key` reads encrypted WAL (the
// last transaction times of a time target's window).
Result<RestorePlan> PlanRestore(Repository& repo, const std::string& database, const RecoveryTarget& target,
                                const std::string& backup_id, const KeySource* key = nullptr);

// Fetches an object, checks its SHA-256 against ref and decodes it.
Result<std::string> FetchObject(Storage& storage, const ObjectRef& ref, const KeySource* key);

}  // namespace sb
