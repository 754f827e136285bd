// BackupManifest: the record of one backup, written last. Serialised as the
// JSON documented in doc/repository.md, with a checksum over its own content
// and, when encrypted, a MAC keyed by the data key (format version 2).
// Every field is checked against its grammar when parsed: what a manifest
// says is used to name objects, paths and delete targets.
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/lsn.h"
#include "common/status.h"
#include "repo/object_codec.h"

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

// Format version written; readers accept 1 (no MAC) and 2.
inline constexpr int kManifestFormatVersion = 2;
// Limits a manifest must keep within (doc/repository.md, "Manifest grammar").
inline constexpr size_t kMaxManifestArchives = 65536;
inline constexpr size_t kMaxArchiveChunks = 100'000'000;

// The HMAC-SHA256 of a manifest's canonical form under the key's manifest
// MAC key (HKDF-SHA256 of the data key, info "smartbackup manifest mac v1"),
// as 64 hex digits.
std::string ManifestMac(const EncryptionKey& key, std::string_view canonical);

struct BackupManifest {
  std::string database;
  uint64_t system_identifier = 0;
  std::string container;
  std::string backup_id;
  BackupType type = BackupType::kFull;
  uint32_t timeline = 0;
  std::string start_lsn;  // as PostgreSQL prints it
  std::string end_lsn;
  // The LSNs as values. A manifest read from a repository has valid ones (ParseManifest refuses
  // any other), so these never fail there; an unset or invalid text reads as 0/0.
  Lsn StartLsn() const;
  Lsn EndLsn() const;
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

  // With mac_key (the key whose id is encryption_key_id), adds the "mac"
  // member that authenticates the manifest to readers holding the key.
  std::string ToJson(const EncryptionKey* mac_key = nullptr) const;
  // Checks format, version, checksum and the grammar of every field;
  // kCorruption names `origin` on failure. With keys: a manifest without
  // encryption is kCorruption/kNotEncrypted, a missing or wrong MAC
  // kCorruption/kNotAuthenticated, one under a key the reader cannot get
  // kPermissionDenied.
  static Result<BackupManifest> FromJson(const std::string& json, const std::string& origin,
                                         const KeySource* keys = nullptr);
};

}  // namespace sb
