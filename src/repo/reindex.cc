#include "repo/reindex.h"

#include <fmt/core.h>

#include <algorithm>

#include "common/text.h"
#include "repo/backup_index.h"

namespace sb {

Result<ReindexReport> Reindex(Repository& repo, const std::string& db) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(db));
  ReindexReport report{.database = db};
  Storage& storage = repo.storage();
  // What the index holds now is only listed: its content is not trusted here.
  ASSIGN_OR_RETURN(auto index_listed, ListAll(storage, backup_index::Prefix(db)));
  ASSIGN_OR_RETURN(auto manifests, ListAll(storage, fmt::format("db/{}/backups/", db)));
  IndexObject rebuilt{.level = 1};
  for (const auto& o : index_listed) rebuilt.level = std::max(rebuilt.level, backup_index::LevelOfObjectKey(db, o.key));
  for (const auto& o : manifests) {
    if (!EndsWith(o.key, ".json")) continue;
    auto text = storage.Get(o.key);
    if (!text.ok()) {
      if (text.status().IsNotFound()) continue;  // deleted since the listing
      return text.status();
    }
    auto m = repo.ParseManifest(*text, o.key);
    if (!m.ok()) {
      if (m.status().code() == StatusCode::kCorruption || m.status().code() == StatusCode::kFailedPrecondition ||
          m.status().code() == StatusCode::kPermissionDenied) {
        report.unreadable.push_back(m.status().message());
        continue;
      }
      return m.status();
    }
    ++report.manifests;
    report.full += m->type == BackupType::kFull;
    report.copy_only += m->type == BackupType::kCopyOnly;
    report.log += m->type == BackupType::kLog;
    rebuilt.entries[o.key] = std::move(text).value();
  }
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(db));
  for (const auto& c : containers) {
    ASSIGN_OR_RETURN(auto parts, repo.ListWalParts(db, c.name));
    report.wal_parts += parts.size();
  }
  ASSIGN_OR_RETURN(report.index_object, backup_index::Put(storage, db, rebuilt, repo.clock()));
  const SystemTime now = repo.clock()->Now();
  for (const auto& o : index_listed) {
    if (o.key == report.index_object) continue;
    const std::string marker_of = backup_index::ManifestKeyOfMarker(db, o.key);
    if (!marker_of.empty()) {
      // A marker younger than 6 hours without a manifest may be a write in flight.
      if (!rebuilt.entries.count(marker_of) && now - o.mtime < std::chrono::hours(6)) continue;
      RETURN_IF_ERROR(storage.Delete(o.key));
      ++report.removed_markers;
    } else if (backup_index::LevelOfObjectKey(db, o.key) >= 0) {
      RETURN_IF_ERROR(storage.Delete(o.key));
      ++report.replaced_objects;
    }
  }
  return report;
}

}  // namespace sb
