// CatalogView: a small summary of one cluster's repository catalog, kept in
// the cluster's typed state for the operator's view (the /metrics gauges and
// the web page's timeline): the backups with their times and sizes, the WAL
// coverage as contiguous runs, the gaps, the restore windows and the bytes
// stored. Made from the catalog the backup loop's Observer loads anyway, so a
// scrape reads no storage.
// Thread-safety: a value; SummarizeCatalog is a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/wal/wal_catalog.h"

namespace sb {

struct BackupMark {
  std::string backup_id;
  BackupType type = BackupType::kFull;
  uint32_t timeline = 0;
  SystemTime start_time{}, finish_time{};
  Lsn start_lsn, end_lsn;
  uint64_t size_bytes = 0;    // data read from PostgreSQL
  uint64_t stored_bytes = 0;  // bytes its objects take in storage
};

// WAL held without a hole on one timeline: [start, end), durable from `first` to `last`.
struct WalRun {
  uint32_t timeline = 0;
  Lsn start, end;
  SystemTime first{}, last{};
  uint64_t stored_bytes = 0;
  size_t parts = 0;
};

struct CatalogView {
  bool loaded = false;
  SystemTime loaded_at{};
  std::vector<BackupMark> bases;  // full and copy-only backups, oldest first
  std::vector<BackupMark> logs;   // log backups, oldest first (at most kMaxLogMarks, the newest)
  size_t log_count = 0;           // every log backup, including those not kept in `logs`
  std::vector<WalRun> wal_runs;
  std::vector<ChainGap> gaps;
  std::vector<RestoreWindow> windows;
  uint64_t full_stored_bytes = 0;  // full and copy-only backups
  uint64_t wal_stored_bytes = 0;   // WAL parts (log backups seal these; not counted twice)
};

inline constexpr size_t kMaxLogMarks = 500;

CatalogView SummarizeCatalog(const WalCatalog& catalog, SystemTime at);

}  // namespace sb
