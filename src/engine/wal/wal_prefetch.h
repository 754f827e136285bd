// Prefetch during recovery (pgBackRest's asynchronous archive-get is the
// model): while PostgreSQL replays segment N, a worker process fetches and
// decodes N+1..N+depth in parallel into a spool directory, and wal-get N+1
// takes its file from there by rename.
//
// The spool: a directory (default pg_wal/smartbackup-prefetch under the data
// directory, which is restore_command's working directory; BASE_BACKUP never
// copies pg_wal's contents) created 0700 by us, refused when it is a symlink,
// not ours or open to others. Entries, all opened beneath the directory
// without following symlinks, with names checked against their grammar:
//   lock                 held (flock) by the one live worker
//   position             the segment recovery asked for last (wal-get writes it)
//   <segment>.<sha256>   a fetched complete segment; the name carries the
//                        first 16 hex digits of its SHA-256
//   <segment>.tmp        being written (renamed when complete)
// wal-get uses a spool file only when its size, WAL header (system
// identifier, address, segment size) and SHA-256 match; otherwise it deletes
// it and fetches directly. The spool only ever answers "here it is": absent
// is decided by the direct lookup, so a worker that stopped, was killed or
// fell behind costs time, never a wrong end of recovery. The worker spools
// only complete segments (the last, partly filled one is fetched directly,
// as it may still grow), holds at most `depth` of them, and exits at the end
// of WAL (after recovery consumed the spool) or when recovery has not moved
// for idle_exit, removing what it spooled.
// Thread-safety: the functions are for one process each (wal-get, worker);
// the worker's fetch threads share only its queue.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_lookup.h"

namespace sb {

struct PrefetchOptions {
  std::string spool_dir = "pg_wal/smartbackup-prefetch";
  int depth = 8;    // segments spooled ahead at most (disk: depth × segment size)
  int threads = 4;  // parallel fetches
  std::chrono::milliseconds idle_exit{std::chrono::seconds(30)};
  std::chrono::milliseconds poll{std::chrono::milliseconds(50)};
};

// wal-get's side. Opens (creating) the spool; an unusable spool is an error
// the caller logs before fetching directly.
class Spool {
 public:
  static Result<Spool> Open(const std::string& dir, bool create);
  Spool(Spool&& other) noexcept;
  Spool& operator=(Spool&&) = delete;
  ~Spool();

  // Moves segment `name` from the spool to `dest` when a valid copy is
  // there: true. false: not there (or invalid, then removed).
  Result<bool> Take(const std::string& name, const std::string& dest, uint64_t system_identifier,
                    uint64_t segment_size);
  // Records that recovery asked for `name` (for the worker).
  Status SetPosition(const std::string& name);
  std::optional<std::string> Position() const;
  // True when a worker holds the lock.
  bool WorkerAlive() const;
  // Names of the spooled segment files (complete ones), sorted.
  std::vector<std::string> Files() const;

  int fd() const { return dirfd_; }

 private:
  explicit Spool(int dirfd) : dirfd_(dirfd) {}
  int dirfd_ = -1;
};

// Starts `argv` (argv[0] an absolute path) as a detached process (new
// session, stdio on /dev/null) and does not wait for it.
Status SpawnDetached(const std::vector<std::string>& argv);

// The worker: runs until the end of WAL or idle (see above). Returns OK when
// another worker holds the lock already.
Status RunPrefetchWorker(Storage& storage, const WalSource& source, const PrefetchOptions& options);

// wal-get with the spool: takes `options.name` from it when a valid copy is
// there, else fetches directly (WalGet); records recovery's position and
// starts a worker (worker_argv; empty: none is started) when none runs.
// Without a system identifier and segment size, or for a history file, this
// is WalGet. A spool that cannot be used is logged and bypassed.
// The spool part of WalGetPrefetched, which needs no repository: true when
// `options.name` was moved to `options.dest` from the spool (wal-get then
// opens no storage at all).
bool TakePrefetched(const WalGetOptions& options, const PrefetchOptions& prefetch,
                    const std::vector<std::string>& worker_argv);

Result<WalGetOutcome> WalGetPrefetched(Repository& repo, const WalGetOptions& options,
                                       const PrefetchOptions& prefetch, const std::vector<std::string>& worker_argv);

// The file name a spooled segment gets: "<segment>.<16 hex of its SHA-256>".
std::string SpoolFileName(const std::string& segment, std::string_view bytes);

}  // namespace sb
