#include "agent/backup_runner.h"

#include <fmt/core.h>

#include "agent/catalog_summary.h"
#include "agent/name_guard.h"
#include "common/logging.h"
#include "engine/backup/full_backup.h"
#include "engine/wal/log_backup.h"
#include "repo/key_store.h"
#include "repo/public_key.h"
#include "storage/held_lease.h"

namespace sb {

std::optional<EncryptionKey> LoadWriteKey(const ClusterSettings& s, Storage& storage, Status* error) {
  if (!s.key_file.empty() && !s.public_key.empty()) {
    *error = Status::InvalidArgument("key_file and public_key exclude each other: set one");
    return std::nullopt;
  }
  if (s.key_file.empty() && s.public_key.empty()) return std::nullopt;
  auto key = s.public_key.empty() ? EncryptionKey::LoadFromFile(s.key_file) : NewWrappedDataKey(storage, s.public_key);
  if (!key.ok()) {
    *error = key.status();
    return std::nullopt;
  }
  return std::move(key).value();
}

Status BackupRunner::BackOff(const std::string& db, const Status& lease) {
  if (lease.code() != StatusCode::kAlreadyExists) return lease;
  return Status::AlreadyExists(fmt::format(
      "backs off: another smartbackup agent is writing the backups of \"{}\" ({}); one writer per cluster", db,
      lease.message()));
}

void BackupRunner::NoteBackOff(Cluster& c, const std::string& message, bool stream) {
  {
    std::lock_guard lock(c.mu);
    std::string& note = stream ? c.stream_note : c.writer_note;
    if (note == message) return;
    note = message;
  }
  ctx_.Event(c.name, HealthCategory::kWarning, message);
}

void BackupRunner::ClearBackOff(Cluster& c, bool stream) {
  std::lock_guard lock(c.mu);
  (stream ? c.stream_note : c.writer_note).clear();
}

Status BackupRunner::OtherAgentFinishedFull(Cluster& c, Repository& repo, const FullRequest& request) {
  uint64_t sysid = 0;
  uint32_t tli = 0;
  {
    std::lock_guard lock(c.mu);
    sysid = c.system_identifier;
    tli = c.timeline;
  }
  auto listing = repo.ListBackups(c.name);
  if (!listing.ok()) return Status::Ok();
  for (const auto& b : listing->backups) {
    if (b.type != BackupType::kFull || b.system_identifier != sysid || b.timeline != tli) continue;
    if (request.seen_last_full && b.finish_time <= *request.seen_last_full) continue;
    return Status::AlreadyExists(
        fmt::format("backs off: another smartbackup agent finished full backup {} of \"{}\" meanwhile; none is "
                    "needed from this one",
                    b.backup_id, c.name));
  }
  return Status::Ok();
}

Result<BackupRunner::Writer> BackupRunner::StartWriting(Cluster& c, const ClusterSettings& s, const char* lock) {
  RETURN_IF_ERROR(NameGuard::Refusal(c));
  Writer w;
  ASSIGN_OR_RETURN(w.repo, ctx_.OpenRepo(s.storage_url));
  // One writer per cluster even if two agents believe they are primary.
  auto lease = HeldLease::Acquire(w.repo->storage(), fmt::format("db/{}/locks/{}", c.name, lock), ctx_.AgentLease());
  if (!lease.ok()) return BackOff(c.name, lease.status());
  w.lease = std::move(lease).value();
  Status key_error;
  w.key = LoadWriteKey(s, w.repo->storage(), &key_error);  // under the lease: no wrapped key per back-off
  RETURN_IF_ERROR(key_error);
  return w;
}

Result<BackupManifest> BackupRunner::RunFull(Cluster& c, const ClusterSettings& s, const FullRequest& request) {
  ASSIGN_OR_RETURN(Writer w, StartWriting(c, s, "full"));
  Repository* repo = w.repo.get();
  const std::optional<EncryptionKey>& key = w.key;
  if (request.recheck) RETURN_IF_ERROR(OtherAgentFinishedFull(c, *repo, request));
  FullBackupOptions options{.conninfo = c.conninfo,
                            .database = c.name,
                            .key = key ? &*key : nullptr,
                            .container_reason = request.reason,
                            .new_container = request.new_container};
  if (JobContext* job = request.job) {
    options.progress = [job](const FullBackupProgress& p) {
      job->SetProgress(FullBackupPhaseName(p.phase), p.bytes_done, p.bytes_total);
    };
    options.cancelled = [job] { return job->cancelled(); };
  }
  auto m = RunFullBackup(*repo, options);
  w.lease.reset();
  if (m.ok()) RefreshCatalog(c, *repo);  // status is fresh at once, not at the next pass
  if (m.ok()) {
    std::lock_guard lock(c.mu);
    c.pending_break.reset();
    c.minimal_seen = false;
    if (c.slot_consumer.empty()) c.wal_taker.clear();
    log::Info("[{}] full backup {} complete ({})", c.name, m->backup_id, request.reason);
  }
  return m;
}

Result<BackupManifest> BackupRunner::RunLog(Cluster& c, const ClusterSettings& s, const std::string& reason) {
  ASSIGN_OR_RETURN(Writer w, StartWriting(c, s, "log"));
  auto m = RunLogBackup(*w.repo, {.conninfo = c.conninfo, .database = c.name, .key = w.key ? &*w.key : nullptr});
  if (m.ok()) log::Info("[{}] log backup {} complete: {} to {} ({})", c.name, m->backup_id, m->start_lsn, m->end_lsn, reason);
  w.lease.reset();
  if (m.ok()) RefreshCatalog(c, *w.repo);  // status is fresh at once, not at the next pass
  return m;
}

}  // namespace sb
