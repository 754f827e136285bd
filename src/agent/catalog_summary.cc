#include "agent/catalog_summary.h"

#include <mutex>
#include <tuple>

namespace sb {

void PublishCatalogLocked(Cluster& c, const WalCatalog& catalog) {
  c.windows = catalog.Windows();
  std::optional<RestoreWindow> newest;
  for (const auto& w : c.windows) {
    if (!newest || std::tie(w.end_timeline, w.end_lsn) >= std::tie(newest->end_timeline, newest->end_lsn)) newest = w;
  }
  c.window = newest;
  if (newest) c.recovery_point = newest->end_time;
  c.newest_full.reset();
  c.newest_log.reset();
  for (const auto& b : catalog.bases()) {
    if (b.type == BackupType::kFull) c.newest_full = std::max(c.newest_full.value_or(b.finish_time), b.finish_time);
  }
  for (const auto& l : catalog.log_backups()) {
    c.newest_log = std::max(c.newest_log.value_or(l.finish_time), l.finish_time);
  }
}

void RefreshCatalog(Cluster& c, Repository& repo) {
  uint64_t sysid = 0;
  {
    std::lock_guard lock(c.mu);
    sysid = c.system_identifier;
  }
  auto catalog = WalCatalog::Load(repo, c.name, sysid ? std::optional<uint64_t>(sysid) : std::nullopt);
  if (!catalog.ok()) return;
  std::lock_guard lock(c.mu);
  PublishCatalogLocked(c, *catalog);
}

}  // namespace sb
