#include "agent/catalog_view.h"

#include <algorithm>

namespace sb {
namespace {

BackupMark MarkOf(const BackupManifest& m) {
  return {.backup_id = m.backup_id,
          .type = m.type,
          .timeline = m.timeline,
          .start_time = m.start_time,
          .finish_time = m.finish_time,
          .start_lsn = m.StartLsn(),
          .end_lsn = m.EndLsn(),
          .size_bytes = m.size_bytes,
          .stored_bytes = m.stored_bytes};
}

}  // namespace

CatalogView SummarizeCatalog(const WalCatalog& catalog, SystemTime at) {
  CatalogView v;
  v.loaded = true;
  v.loaded_at = at;
  for (const auto& b : catalog.bases()) {
    v.bases.push_back(MarkOf(b));
    v.full_stored_bytes += b.stored_bytes;
  }
  const auto& logs = catalog.log_backups();
  v.log_count = logs.size();
  const size_t first = logs.size() > kMaxLogMarks ? logs.size() - kMaxLogMarks : 0;
  for (size_t i = first; i < logs.size(); ++i) v.logs.push_back(MarkOf(logs[i]));
  // Parts come ordered by (timeline, start): a run continues while the next part starts within it.
  for (const auto& p : catalog.parts()) {
    v.wal_stored_bytes += p.stored_size;
    if (!v.wal_runs.empty() && v.wal_runs.back().timeline == p.timeline && p.start <= v.wal_runs.back().end) {
      WalRun& r = v.wal_runs.back();
      r.end = std::max(r.end, p.end);
      r.first = std::min(r.first, p.mtime);
      r.last = std::max(r.last, p.mtime);
      r.stored_bytes += p.stored_size;
      ++r.parts;
      continue;
    }
    v.wal_runs.push_back({.timeline = p.timeline, .start = p.start, .end = p.end, .first = p.mtime, .last = p.mtime,
                          .stored_bytes = p.stored_size, .parts = 1});
  }
  v.gaps = catalog.Gaps();
  v.windows = catalog.Windows();
  return v;
}

}  // namespace sb
