// Restore of a full backup into a data directory ready for `pg_ctl start`.
// Objects are fetched and decoded ahead by `parallelism` workers and written
// in order; every object's SHA-256 is checked against the manifest before it
// is used. The repository is only read. On failure what the restore wrote is
// removed again, so a half-restored directory is never mistaken for a good one.
// Thread-safety: RunRestore calls may run concurrently for different targets.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct RestoreOptions {
  std::string database;
  std::string target_dir;
  std::string backup_id;  // empty: the newest complete full or copy-only backup
  const EncryptionKey* key = nullptr;
  int parallelism = 0;    // 0: one per core
  std::map<uint32_t, std::string> tablespace_map;  // oid → new directory
};

Result<BackupManifest> RunRestore(Repository& repo, const RestoreOptions& options);

// Choose the backup a restore would use; kNotFound with a hint when none.
Result<BackupManifest> ChooseBackup(Repository& repo, const std::string& database, const std::string& backup_id);

// Fetches an object, checks its SHA-256 against ref and decodes it.
Result<std::string> FetchObject(Storage& storage, const ObjectRef& ref, const EncryptionKey* key);

}  // namespace sb
