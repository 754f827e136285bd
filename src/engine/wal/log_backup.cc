#include "engine/wal/log_backup.h"

#include <fmt/core.h>

#include <thread>

#include "engine/wal/wal_archive.h"
#include "pg/connection.h"

namespace sb {

Result<BackupManifest> RunLogBackup(Repository& repo, const LogBackupOptions& o) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(o.database));
  ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(o.conninfo, false));
  ASSIGN_OR_RETURN(ServerInfo info, ReadServerInfo(*conn));
  if (IsSmartbackupArchiveCommand(info.archive_command) && !info.in_recovery) {
    auto rows = conn->Query("SELECT pg_walfile_name(pg_switch_wal())");
    if (rows.ok() && !rows->empty() && (*rows)[0][0]) {
      const std::string wanted = *(*rows)[0][0];
      // Bounded wait (15 s) for the archiver to hand that segment to wal-push; what is not
      // archived by then is sealed by the next log backup. Kept short: an agent shutting
      // down waits for a running log backup.
      for (int i = 0; i < 150; ++i) {
        auto st = conn->Query("SELECT coalesce(last_archived_wal, '') >= '" + wanted + "' FROM pg_stat_archiver");
        if (st.ok() && !st->empty() && (*st)[0][0] == std::optional<std::string>("t")) break;
        repo.clock()->SleepFor(std::chrono::milliseconds(100));
      }
    }
  }
  int sealed = 0;
  std::vector<BackupManifest> written;
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(o.database));
  for (const auto& c : containers) {
    if (c.system_identifier != info.system_identifier) continue;
    ASSIGN_OR_RETURN(int n, SealLogBackups(repo, o.database, c, info.wal_segment_size, o.key,
                                           {}, /*force=*/true, {}, &written));
    sealed += n;
  }
  if (sealed == 0) {
    return Status::FailedPrecondition(fmt::format(
        "no new WAL of database \"{}\" to back up since the last log backup; hint: check that WAL capture runs "
        "(smartbackup stream, or archive_command = smartbackup wal-push)",
        o.database));
  }
  // The manifests just written: no listing of the repository.
  const BackupManifest* newest = nullptr;
  for (const auto& m : written) {
    if (!newest || m.finish_time >= newest->finish_time) newest = &m;
  }
  if (!newest) return Status::Internal("log backup written but not returned");
  return *newest;
}

}  // namespace sb
