// An on-demand (or scheduled) log backup: seals the WAL captured so far into
// log backups. In archive mode PostgreSQL is first asked to switch to a new
// segment, and the archiver is given a bounded time to hand it to wal-push.
// Thread-safety: reentrant.
#pragma once

#include <string>

#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct LogBackupOptions {
  std::string conninfo;
  std::string database;
  const EncryptionKey* key = nullptr;
};

// The newest log backup written; kFailedPrecondition when there was no new WAL.
Result<BackupManifest> RunLogBackup(Repository& repo, const LogBackupOptions& options);

}  // namespace sb
