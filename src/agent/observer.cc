#include "agent/observer.h"

#include "agent/catalog_summary.h"

#include <fmt/core.h>

#include <algorithm>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"

namespace sb {

ClusterObservation Observer::Observe(Cluster& c, const ClusterSettings& s, bool master_on) {
  ClusterObservation o{.now = ctx_.clock->Now(), .master_switch_on = master_on, .enabled = s.enabled};
  auto session = probe_.Open(c.conninfo);
  Result<ServerInfo> info = session.ok() ? (*session)->Info() : Result<ServerInfo>(session.status());
  if (!info.ok()) {
    o.reachable = false;
    o.unreachable_error = info.status().message();
    NoteFault(c, Activity::kObserve, PartOf(info.status(), FailingPart::kServer), info.status().message(), o.now);
    return o;
  }
  NoteServer(c, *info, o);
  NoteArchiving(c, s, *info, o.now);
  if (!info->in_recovery) slots_.Watch(c, s, **session, *info);
  if (!s.enabled || info->in_recovery) {
    ClearFault(c, Activity::kObserve);
    return o;
  }
  if (ReadCatalog(c, s, *info, o)) ClearFault(c, Activity::kObserve);
  return o;
}

void Observer::NoteServer(Cluster& c, const ServerInfo& info, ClusterObservation& o) {
  o.in_recovery = info.in_recovery;
  o.wal_level = info.wal_level;
  o.current_lsn = info.current_lsn;
  std::lock_guard lock(c.mu);
  // Coexistence rule 4: remember another WAL archiver, to be named in the state line.
  const bool ours = IsSmartbackupArchiveCommand(info.archive_command);
  c.archive_command = info.archive_command;
  c.archive_mode = info.archive_mode;
  c.foreign_archive_command =
      info.archive_mode != "off" && !info.archive_command.empty() && !ours ? info.archive_command : "";
  if (info.wal_level == "minimal") c.minimal_seen = true;
  if (c.system_identifier != 0 && c.system_identifier != info.system_identifier) {
    o.new_container = true;
    o.new_container_kind = NewContainerCause::kNewSystemIdentifier;
    o.new_container_cause = "new system identifier";
    c.earlier_sysids.insert(c.system_identifier);  // initdb again: its old claim is this agent's own
  }
  c.system_identifier = info.system_identifier;
  c.timeline = info.timeline;
}

// Archive mode captures WAL through PostgreSQL's archive_command (smartbackup wal-push): when its
// last run failed (a full or unwritable repository, an unreachable endpoint), capture is failing
// although the agent itself wrote nothing.
void Observer::NoteArchiving(Cluster& c, const ClusterSettings& s, const ServerInfo& info, SystemTime now) {
  if (!s.enabled || s.mode != WalMode::kArchive || info.in_recovery || !info.archiving_failing) {
    ClearFault(c, Activity::kArchive);
    return;
  }
  NoteFault(c, Activity::kArchive, FailingPart::kCapture,
            fmt::format("archive_command is failing: PostgreSQL could not archive WAL segment {} (pg_stat_archiver); "
                        "hint: the PostgreSQL log has smartbackup wal-push's error",
                        info.last_failed_wal.empty() ? "?" : info.last_failed_wal),
            now);
}

void Observer::StorageFailed(Cluster& c, const Status& status, ClusterObservation& o) {
  const Status tagged = status.WithSource(ErrorSource::kStorage);
  ctx_.Event(c.name, CategoryOf(tagged, HealthCategory::kStorageError), status.message());
  NoteFault(c, Activity::kObserve, PartOf(tagged, FailingPart::kStorage), status.message(), o.now);
  o.storage_error = status.message();
}

bool Observer::ReadCatalog(Cluster& c, const ClusterSettings& s, const ServerInfo& info, ClusterObservation& o) {
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) {
    StorageFailed(c, repo.status(), o);
    return false;
  }
  auto catalog = WalCatalog::Load(**repo, c.name, info.system_identifier, &catalogs_[c.name + "\n" + s.storage_url]);
  if (!catalog.ok()) {
    StorageFailed(c, catalog.status(), o);
    return false;
  }
  const BackupManifest* last_full = nullptr;
  for (const auto& b : catalog->bases()) {
    if (b.type == BackupType::kFull && b.timeline == info.timeline) last_full = &b;
  }
  const bool older_lineage = std::any_of(catalog->bases().begin(), catalog->bases().end(),
                                         [&](const BackupManifest& b) { return b.timeline != info.timeline; });
  if (!last_full && older_lineage) {  // failover: a new timeline needs its own container
    o.new_container = true;
    o.new_container_kind = NewContainerCause::kFailover;
    o.new_container_cause = fmt::format("failover to timeline {}", info.timeline);
  }
  if (last_full) {
    o.last_full_finish = last_full->finish_time;
    o.newest_full_id = last_full->backup_id;  // what a restore drill would restore
    o.newest_full_bytes = last_full->size_bytes;
    o.last_full_start_lsn = last_full->StartLsn();
    for (const auto& l : catalog->log_backups()) {
      if (l.container != last_full->container || l.finish_time < last_full->start_time) continue;
      o.last_log_finish = std::max(o.last_log_finish.value_or(l.finish_time), l.finish_time);
      o.last_log_end_lsn = std::max(o.last_log_end_lsn.value_or(l.EndLsn()), l.EndLsn());
    }
    const Lsn full_end = last_full->EndLsn();
    for (const auto& gap : catalog->Gaps()) {
      if (gap.timeline == info.timeline && gap.end > full_end) {
        o.chain_broken = true;
        o.chain_break_cause = fmt::format("WAL {}..{} missing", gap.start.ToString(), gap.end.ToString());
      }
    }
  }
  o.durable_wal_end = catalog->TimelineEnd(info.timeline);
  CatalogView view = SummarizeCatalog(*catalog, o.now);  // for /metrics and the web page
  std::lock_guard lock(c.mu);
  c.catalog_view = std::move(view);
  if (c.minimal_seen && info.wal_level != "minimal") {
    o.new_container = true;  // back from wal_level=minimal: a new database for the chain
    o.new_container_kind = NewContainerCause::kBackFromMinimal;
    o.new_container_cause = "wal_level is back to " + info.wal_level;
  }
  if (c.pending_break && last_full) {
    o.chain_broken = true;
    o.chain_break_cause = c.pending_break->cause;
  }
  if (o.chain_broken && !c.wal_taker.empty()) {
    o.chain_break_cause += ", taken by " + c.wal_taker;  // coexistence rule 8: the competing tool by name
  }
  o.full_running = !c.running_full.empty();
  o.log_running = !c.running_log.empty();
  PublishCatalogLocked(c, *catalog);
  return true;
}

}  // namespace sb
