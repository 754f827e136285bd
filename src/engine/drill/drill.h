// A restore drill: proves that a database's backups restore, as a user's
// restore would — the base backup through RunRestore, the WAL through
// `smartbackup wal-get` as the server's restore_command — into a scratch
// directory, then starts PostgreSQL from it (no TCP listener, a private unix
// socket, no archiving, no replication, trust for local connections only),
// waits for recovery to reach the target, runs pg_amcheck (heap and indexes,
// --heapallindexed) and the operator's SQL check, and measures it. The server
// is stopped and the directory removed on every path. The result is written
// into the repository as a DrillRecord (repo/drill_record.h).
// Thread-safety: RunDrill calls may run concurrently with distinct scratch
// directories or drill ids; the repository is only read, apart from the record.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "engine/restore/restore.h"
#include "repo/drill_record.h"
#include "repo/repository.h"

namespace sb {

struct DrillOptions {
  std::string database;
  RecoveryTarget target;        // latest, a time or an LSN
  std::string scratch_dir;      // absolute; <scratch_dir>/<drill id> is made and removed
  // What the restored server's restore_command needs (absolute paths), as for a restore.
  std::string repo_url;
  std::string key_file;
  std::string private_key_file;
  std::string smartbackup_path;
  const KeySource* key = nullptr;
  std::string check_sql;        // must return one row whose first column is true; empty: none
  bool low_priority = false;    // nice/idle I/O for the restore and the server
  int parallelism = 0;          // restore workers (0: one per core)
  std::string pg_bin_dir;       // empty: /usr/lib/postgresql/<major>/bin of the backup, else PATH
  std::chrono::seconds timeout{std::chrono::hours(12)};  // for recovery to reach the target
  std::function<void(const std::string& phase)> progress;  // optional
  std::function<bool()> cancelled;                         // optional: true stops the drill at the next step
  std::string host;             // recorded; empty: this host's name
  Clock* clock = Clock::Real();
  bool write_record = true;     // the record goes into the repository
};

struct DrillOutcome {
  DrillRecord record;      // result passed or failed, with the figures and the cause
  Status status;           // ok exactly when the drill proved its target
  Status record_status;    // writing the record (ok, or why it could not be written)
  bool record_written = false;
};

DrillOutcome RunDrill(Repository& repo, const DrillOptions& options);

}  // namespace sb
