// Repository: the format of doc/repository.md on top of a Storage — object
// naming, the repository and container descriptors, and backup manifests.
// It never caches: the storage is the source of truth, so several processes
// (cron, agent, restore) may use one repository at once.
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/lsn.h"
#include "repo/backup_index.h"
#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "storage/storage.h"

namespace sb {

struct ContainerInfo {
  std::string name;
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;
  SystemTime created;
  std::string reason;  // why it began: "first backup", "promotion", …
};

// One immutable object of raw WAL [start, end) on one timeline: what wal-push
// and stream write. Log backups are manifests over consecutive parts.
struct WalPart {
  std::string key;
  std::string container;
  uint32_t timeline = 0;
  Lsn start, end;
  uint64_t stored_size = 0;
  SystemTime mtime{};  // when it became durable
};

struct BackupListing {
  std::vector<BackupManifest> backups;  // complete backups, oldest first
  std::vector<Status> unreadable;       // manifests that exist but fail their checks
};

class Repository {
 public:
  // 2: the index of doc/repository.md ("Index"). Version 1 repositories are
  // read by listing every manifest until `reindex` upgrades them.
  static constexpr int kFormatVersion = 2;

  // Opens the repository at `storage`. With create, writes the descriptor if
  // it is missing; without, a missing descriptor is kNotFound.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<Storage> storage, bool create,
                                                  Clock* clock = Clock::Real());

  Storage& storage() { return *storage_; }
  Clock* clock() { return clock_; }
  // The repository's identity (the descriptor's random "repository_id"): two
  // URLs name the same storage exactly when their ids match, whatever their
  // text (a file:// path on two hosts is two repositories unless it is one
  // shared mount). Agents compare it across nodes (availability groups).
  const std::string& id() const { return id_; }
  // The descriptor's format version: 1 (no index) or 2.
  int format_version() const { return format_version_; }
  // Rewrites a version 1 descriptor as version 2 (same id and creation
  // time): the index must be complete first (reindex does both).
  Status UpgradeToVersion2();

  static Status ValidateDatabaseName(const std::string& db);
  // The grammar of names read back from storage (doc/repository.md,
  // "Names"): each is kCorruption-free text the rest of the program may put
  // into a key, a path component or a message. kInvalidArgument otherwise.
  // "<sysid>-<tli:08X>" or "<sysid>-<tli:08X>-<n>", n >= 2.
  static Status ValidateContainerName(std::string_view container);
  // The NewBackupId format.
  static Status ValidateBackupId(std::string_view backup_id);
  // 1-20 decimal digits, no leading zero, fitting 64 bits.
  static std::optional<uint64_t> ParseSystemIdentifier(std::string_view digits);
  static std::string ManifestKey(const std::string& db, const std::string& container, const std::string& backup_id);
  static std::string DataPrefix(const std::string& db, const std::string& container, const std::string& backup_id);
  static std::string ContainerKey(const std::string& db, const std::string& container);
  // "<YYYYMMDDTHHMMSSZ>-<F|C|L>-<4 hex>"
  static std::string NewBackupId(SystemTime start, BackupType type);

  // db/<db>/wal/<container>/<tli:08X>/<start:016X>-<end:016X>
  static std::string WalPartKey(const std::string& db, const std::string& container, uint32_t timeline, Lsn start,
                                Lsn end);
  // db/<db>/wal/<container>/history/<tli:08X>.history
  // The part a key names, or nullopt if the key is not a WAL part.
  static std::optional<WalPart> ParseWalPartKey(std::string_view key);
  static std::string HistoryKey(const std::string& db, const std::string& container, uint32_t timeline);

  Result<std::vector<std::string>> ListDatabases();
  // Every WAL part of the container, ordered by (timeline, start).
  Result<std::vector<WalPart>> ListWalParts(const std::string& db, const std::string& container);
  // `cache` (may be null): descriptors read by earlier calls of one reader,
  // by key, size and time; a call reads only descriptors it has not seen.
  using ContainerCache = std::map<std::string, ContainerInfo>;
  Result<std::vector<ContainerInfo>> ListContainers(const std::string& db, ContainerCache* cache = nullptr);
  // The newest container of db for this system identifier and timeline, or
  // a new one (named "<sysid>-<tli:08X>", then "-2", "-3", …) when there is
  // none or force_new is set.
  Result<ContainerInfo> EnsureContainer(const std::string& db, uint64_t system_identifier, uint32_t timeline,
                                        const std::string& reason, bool force_new = false);

  // Every manifest of db. Those that fail their checks (corrupt, a copy
  // under another name, plain or unauthenticated while keys are set, made
  // under another key) go to `unreadable`; if none is readable and one
  // failed for want of its key, that error is returned instead, so a wrong
  // key is reported as such rather than as "no backups".
  // Version 2: from the index (doc/repository.md, "Index"), falling back to
  // ListBackupsFromStorage when an index object is bad; `cache` (may be null)
  // keeps index objects and parsed manifests between calls of one reader.
  Result<BackupListing> ListBackups(const std::string& db, IndexCache* cache = nullptr);
  // The same, shared: with `cache`, a call in which the index did not
  // change returns the previous listing itself (no manifest parsed, hashed
  // or copied), which is what keeps an idle reader's cost flat in history.
  Result<std::shared_ptr<const BackupListing>> ListBackupsShared(const std::string& db, IndexCache* cache);
  // Lists and reads every manifest from its own key (version 1; verify, reindex).
  Result<BackupListing> ListBackupsFromStorage(const std::string& db);
  // The manifest keys of one container whose backup id has type letter
  // `type_letter` ('F', 'C', 'L'; 0 = all), oldest id first. Keys only: no
  // manifest is read (cheap however many backups the container holds).
  Result<std::vector<std::string>> ListManifestKeys(const std::string& db, const std::string& container,
                                                    char type_letter = 0);
  // Reads and checks one manifest: grammar, checksum, that it names the key
  // it was read from (a copy under another name is kCorruption), and with
  // keys set, that it is encrypted and its MAC holds.
  Result<BackupManifest> ReadManifest(const std::string& key);
  // The checks of ReadManifest on a text already read (an index entry).
  Result<BackupManifest> ParseManifest(const std::string& text, const std::string& key);
  // Put-if-absent: a backup's manifest is written exactly once, last. An
  // encrypted manifest (encryption_key_id set) needs mac_key, the key with
  // that id, to authenticate it; kInternal without.
  Status WriteManifest(const BackupManifest& manifest, const EncryptionKey* mac_key);

  // The keys readers hold (--key-file, or the private-key ring), set once
  // after Open and before any reading; not owned, must outlive the
  // repository's use. With keys, every manifest read must be encrypted and
  // authenticated by its MAC. Not thread-safe against concurrent reads.
  void SetReadKeys(const KeySource* keys) { read_keys_ = keys; }
  const KeySource* read_keys() const { return read_keys_; }

 private:
  Repository(std::unique_ptr<Storage> storage, Clock* clock) : storage_(std::move(storage)), clock_(clock) {}
  std::unique_ptr<Storage> storage_;
  Clock* clock_;
  std::string id_;
  std::string descriptor_;
  int format_version_ = 1;
  const KeySource* read_keys_ = nullptr;
};

}  // namespace sb
