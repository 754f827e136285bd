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

// Where a full backup is, for progress reports. Names for people: FullBackupPhaseName.
enum class FullBackupPhase {
  kStarting,   // connecting, then the server's checkpoint before the first byte
  kStreaming,  // receiving BASE_BACKUP's archives and storing their chunks
  kUploading,  // every byte received: waiting for the last chunks to be stored
  kManifest,   // checking the stored objects and writing the manifest
};
const char* FullBackupPhaseName(FullBackupPhase phase);

struct FullBackupProgress {
  FullBackupPhase phase = FullBackupPhase::kStarting;
  uint64_t bytes_done = 0;   // raw bytes stored so far
  uint64_t bytes_total = 0;  // the server's estimate of the data (0: not known yet); bytes_done may pass it (WAL)
};

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
  // Optional. Called at each phase change and as chunks are stored, from the calling
  // thread and from upload workers: it must be thread-safe and quick.
  std::function<void(const FullBackupProgress&)> progress;
  // Optional cancel token, checked before the backup starts and at every chunk: once it
  // returns true the backup stops with kCancelled (no manifest; objects removed).
  std::function<bool()> cancelled;
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
