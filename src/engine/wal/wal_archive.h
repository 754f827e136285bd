// WAL in archive mode and the pieces shared with stream mode:
// - WalPush: what archive_command runs for each finished segment (and
//   timeline history file). Safe to run twice for the same segment.
// - WalGet: what restore_command runs; assembles a segment from the parts in
//   the repository (zero-padded past the newest WAL, which recovery reads as
//   the end of WAL) or serves a history file.
// - SealLogBackups: turns consecutive unsealed WAL parts into log backups
//   (manifests over the parts; no data is copied) once a threshold is reached.
// Thread-safety: reentrant; concurrent pushes are safe (put-if-absent).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct LogThresholds {
  uint64_t max_wal = 5ull << 20;                            // seal at this much unsealed WAL
  std::chrono::milliseconds max_age = std::chrono::hours(2);  // or when the oldest unsealed part is this old
};

struct WalPushOptions {
  std::string database;
  std::string path;  // the file PostgreSQL passes as %p
  const EncryptionKey* key = nullptr;
  // Instead of `key`: an RSA public key (PEM). Each segment gets a single-use
  // data key sealed to it (repo/key_store.h), deleted with the segment by
  // retention. A segment archived before cannot be read back without the
  // private key, so a repeated push is compared by size alone.
  std::string public_key;
  int zstd_level = 3;
  LogThresholds thresholds;
};

struct WalPushResult {
  std::string key;           // the part's object key ("" for ignored files)
  bool already_archived = false;
  std::string note;          // what happened, for the log
};

Result<WalPushResult> WalPush(Repository& repo, const WalPushOptions& options);

struct WalGetOptions {
  std::string database;
  std::string name;  // %f: "000000010000000000000003" or "00000002.history"
  std::string dest;  // %p
  const KeySource* key = nullptr;
  std::optional<uint64_t> system_identifier;
  // With system_identifier: the cluster's WAL segment size (restore writes
  // it into restore_command). Both known: the segment is found in a constant
  // number of storage requests (wal_lookup.h); otherwise through the whole
  // catalog (restore_commands written before).
  uint64_t wal_segment_size = 0;
};

// What restore_command reports. kAbsent only when the repository was opened
// and read completely and does not hold the file: PostgreSQL then ends
// recovery. Every failure to read (storage, permission, key, corruption, an
// unreadable manifest) is an error status instead, whatever its code, so that
// recovery stops rather than promoting without the newest WAL.
enum class WalGetOutcome { kRestored, kAbsent };
Result<WalGetOutcome> WalGet(Repository& repo, const WalGetOptions& options);

// Known SHA-256 of parts this process wrote (saves reading them back).
using KnownPartHashes = std::map<std::string, std::string>;

// Seals every run of consecutive unsealed parts on (container, timeline)
// into log backups when `force` or the thresholds say so. Returns how many
// log backups it wrote. key: the writer's key (null: not encrypted); it
// names and authenticates (MAC) the log manifests.
Result<int> SealLogBackups(Repository& repo, const std::string& db, const ContainerInfo& container,
                           uint64_t wal_segment_size, const EncryptionKey* key, const LogThresholds& thresholds,
                           bool force, const KnownPartHashes& known = {},
                           std::vector<BackupManifest>* sealed = nullptr);  // appended: the manifests written

// True when an archive_command is smartbackup's own wal-push (archive mode);
// anything else means log shipping or another tool owns the WAL.
bool IsSmartbackupArchiveCommand(const std::string& archive_command);

// Reads the system identifier and segment size from a WAL segment's first
// (long) page header.
struct WalSegmentHeader {
  uint64_t system_identifier = 0;
  uint32_t segment_size = 0;
  uint32_t timeline = 0;
  Lsn page_address;
};
Result<WalSegmentHeader> ParseWalSegmentHeader(std::string_view segment, const std::string& origin);

}  // namespace sb
