// Full (and copy-only) backup: streams PostgreSQL's BASE_BACKUP through
// chunk → compress → encrypt → upload workers into the repository, with
// memory bounded by (2 × parallelism + 1) chunks and nothing staged on disk.
// The manifest is written only after every object is durable; on failure no
// manifest exists and the objects written so far are removed (best effort).
// Thread-safety: RunFullBackup may run concurrently for different databases.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct FullBackupOptions {
  std::string conninfo;
  std::string database;
  bool copy_only = false;
  const EncryptionKey* key = nullptr;  // null: not encrypted
  int zstd_level = 3;
  int parallelism = 0;  // 0: one worker per core
  uint64_t chunk_size = 8ull << 20;
  bool fast_checkpoint = true;
  std::string container_reason = "first backup";
  bool new_container = false;  // start a new container (failover, back from minimal)
};

Result<BackupManifest> RunFullBackup(Repository& repo, const FullBackupOptions& options);

// The last step of a full or copy-only backup: re-checks with one listing of
// the backup's data prefix that every object it names is still stored there
// with its recorded size (something may have deleted one while the backup ran:
// a purge on a host with a skewed clock, an operator), then writes the
// manifest. A missing object fails with kNotFound, a wrong size with
// kCorruption, and no manifest is written.
// mac_key: the key whose MAC the manifest carries (null: not encrypted).
Status WriteCheckedManifest(Repository& repo, const BackupManifest& m, const EncryptionKey* mac_key);

}  // namespace sb
