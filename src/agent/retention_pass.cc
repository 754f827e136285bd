#include "agent/retention_pass.h"

#include <fmt/core.h>

#include "common/logging.h"
#include "engine/retention/retention.h"
#include "engine/wal/wal_catalog.h"

namespace sb {

void RetentionPass::Run(Cluster& c) {
  const ClusterSettings s = ctx_.Resolve(c.name);
  if (!s.enabled && !c.dropped) return;
  std::optional<uint64_t> sysid;  // unknown until first connected: then every system identifier keeps its set
  {
    // Refused name: the backups under it are another cluster's; its retention is not ours to run.
    std::lock_guard lock(c.mu);
    if (!c.name_refusal.empty()) return;
    if (c.system_identifier != 0) sysid = c.system_identifier;
  }
  auto failed = [&](const Status& status, const std::string& prefix) {
    const Status tagged = status.WithSource(ErrorSource::kStorage);
    ctx_.Event(c.name, CategoryOf(tagged, HealthCategory::kStorageError), prefix + status.message());
    NoteFault(c, Activity::kRetention, PartOf(tagged, FailingPart::kStorage), prefix + status.message(),
              ctx_.clock->Now());
  };
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) return failed(repo.status(), "");
  Memory& memory = memory_[c.name + "\n" + s.storage_url];
  const auto retention = s.retention_unit * s.retention_days;
  // Whether a purge can be due: the backups past the retention period, from
  // the catalog kept in memory (a refresh reads only what changed).
  auto listing = (*repo)->ListBackupsShared(c.name, &memory.catalog.index);
  if (!listing.ok()) return failed(listing.status(), "retention: ");
  const SystemTime now = ctx_.clock->Now();
  size_t past = 0;
  for (const auto& b : (*listing)->backups) past += b.finish_time + retention <= now;
  const SteadyTime steady = ctx_.clock->SteadyNow();
  const bool due = !memory.purged || past != memory.past_retention || steady - memory.last_purge >= std::chrono::hours(1);
  if (due) {
    auto plan = PlanRetention(**repo, c.name, now,
                              {.retention = retention, .cluster_live = !c.dropped, .system_identifier = sysid});
    if (!plan.ok()) return failed(plan.status(), "retention: ");
    if (!plan->manifests_to_delete.empty() || !plan->objects_to_delete.empty()) {
      Status applied = ApplyRetention(**repo, *plan);
      if (!applied.ok()) return failed(applied, "retention: ");
      log::Info("[{}] retention: {}", c.name, plan->summary);
      past -= std::min(past, plan->manifests_to_delete.size());
    }
    memory.purged = true;
    memory.last_purge = steady;
    memory.past_retention = past;
  }
  ClearFault(c, Activity::kRetention);
  CheckChainObjects(c, **repo, memory);
}

void RetentionPass::CheckChainObjects(Cluster& c, Repository& repo, Memory& memory) {
  if (c.dropped) return;
  auto catalog = WalCatalog::Load(repo, c.name, std::nullopt, &memory.catalog);
  if (!catalog.ok() || catalog->bases().empty()) return;
  // Objects are checked (one request each) when the backups changed, else every 15 minutes.
  std::string seen = fmt::format("{}/{}", catalog->bases().size(), catalog->log_backups().size());
  if (!catalog->bases().empty()) seen += "/" + catalog->bases().back().backup_id;
  if (!catalog->log_backups().empty()) seen += "/" + catalog->log_backups().back().backup_id;
  const SteadyTime steady = ctx_.clock->SteadyNow();
  if (seen == memory.seen && steady - memory.last_check < std::chrono::minutes(15)) return;
  memory.seen = seen;
  memory.last_check = steady;
  const BackupManifest* last_full = nullptr;
  for (const auto& b : catalog->bases()) {
    if (b.type == BackupType::kFull) last_full = &b;
  }
  if (!last_full) return;
  std::vector<const BackupManifest*> needed{last_full};
  for (const auto& l : catalog->log_backups()) {
    if (l.finish_time >= last_full->start_time) needed.push_back(&l);
  }
  for (const BackupManifest* m : needed) {
    for (const ObjectRef* ref : m->AllObjects()) {
      auto st = repo.storage().Stat(ref->key);
      ChainBreak b;
      HealthCategory category = HealthCategory::kDeletedBackup;
      if (!st.ok() && st.status().IsNotFound()) {
        b.kind = ChainBreakKind::kObjectMissing;
        b.cause = fmt::format("object \"{}\" of backup {} is missing (deleted)", ref->key, m->backup_id);
      } else if (st.ok() && st->size != ref->stored_size) {
        b.kind = ChainBreakKind::kObjectCorrupt;
        b.cause = fmt::format("object \"{}\" of backup {} is corrupted (size {} instead of {})", ref->key,
                              m->backup_id, st->size, ref->stored_size);
        category = HealthCategory::kCorruptedBackup;
      } else {
        continue;
      }
      ctx_.Event(c.name, category, b.cause + "; a full backup is scheduled at once");
      std::lock_guard lock(c.mu);
      c.pending_break = b;
      return;
    }
  }
}

}  // namespace sb
