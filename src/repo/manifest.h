// BackupManifest: the record of one backup, written last. Serialised as the
// JSON documented in doc/repository.md, with a checksum over its own content.
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace sb {

enum class BackupType { kFull, kCopyOnly, kLog };
const char* BackupTypeName(BackupType type);  // "full" | "copy_only" | "log"
Result<BackupType> ParseBackupType(const std::string& name);

struct ObjectRef {
  std::string key;
  uint64_t raw_size = 0;
  uint64_t stored_size = 0;
  std::string sha256;  // hex, of the stored bytes
};

struct ArchiveRecord {
  int index = 0;
  std::string name;  // "base.tar", "16384.tar"
  uint32_t tablespace_oid = 0;
  std::string location;
  uint64_t raw_bytes = 0;
  std::vector<ObjectRef> chunks;
};

struct BackupManifest {
  std::string database;
  uint64_t system_identifier = 0;
  std::string container;
  std::string backup_id;
  BackupType type = BackupType::kFull;
  uint32_t timeline = 0;
  std::string start_lsn;  // as PostgreSQL prints it
  std::string end_lsn;
  SystemTime start_time;
  SystemTime finish_time;
  std::optional<SystemTime> expiration_time;
  int server_version_num = 0;
  uint64_t wal_segment_size = 0;
  std::string compression = "zstd";
  std::string encryption_key_id;  // empty: not encrypted
  uint64_t size_bytes = 0;
  uint64_t stored_bytes = 0;
  std::vector<ArchiveRecord> archives;
  std::optional<ObjectRef> pg_manifest;

  // Every object the backup consists of, in restore order.
  std::vector<const ObjectRef*> AllObjects() const;

  std::string ToJson() const;
  // Checks format, version and checksum; kCorruption names `origin` on failure.
  static Result<BackupManifest> FromJson(const std::string& json, const std::string& origin);
};

}  // namespace sb
