// Full base backup over the replication protocol (PostgreSQL 15 BASE_BACKUP
// syntax with a client target). A temporary physical replication slot holds
// the WAL the backup needs until it ends; that WAL is included in the base
// archive so the backup alone restores. Data is pushed to a sink as it
// arrives: nothing is staged on disk.
// Thread-safety: RunBaseBackup is reentrant; the sink is called from the
// calling thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "pg/lsn.h"

namespace sb {

struct TablespaceInfo {
  uint32_t oid = 0;       // 0 for the main data directory ("base")
  std::string location;   // absolute path on the server; "" for base
  int64_t size_kb = -1;   // estimate from the server, -1 if unknown
};

class BaseBackupSink {
 public:
  virtual ~BaseBackupSink() = default;
  // A new tar archive begins: "base.tar" or "<oid>.tar".
  virtual Status OnArchiveStart(const std::string& archive_name, const TablespaceInfo& tablespace) = 0;
  virtual Status OnArchiveData(std::string_view bytes) = 0;  // tar bytes, in order
  virtual Status OnArchiveEnd() = 0;
  // PostgreSQL's backup_manifest (JSON), possibly in several pieces.
  virtual Status OnManifestData(std::string_view bytes) = 0;
  virtual void OnProgress(uint64_t bytes_done, uint64_t bytes_total_estimate) {}
};

struct BaseBackupOptions {
  std::string label = "smartbackup";
  bool fast_checkpoint = true;
  bool include_wal = true;  // WAL from start to end inside base.tar's pg_wal/
  bool verify_checksums = true;
  // Ask for a tablespace_map file in base.tar instead of pg_tblspc/ symlinks
  // (what tar-format backups need: the symlinks are recreated, possibly
  // relocated, at restore).
  bool tablespace_map = true;
};

struct BaseBackupResult {
  uint64_t system_identifier = 0;
  uint32_t start_timeline = 0;
  Lsn start_lsn;
  uint32_t end_timeline = 0;
  Lsn end_lsn;
  std::vector<TablespaceInfo> tablespaces;
};

Result<BaseBackupResult> RunBaseBackup(const std::string& conninfo, const BaseBackupOptions& options,
                                       BaseBackupSink& sink);

}  // namespace sb
