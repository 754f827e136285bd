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
  auto plan = PlanRetention(**repo, c.name, ctx_.clock->Now(),
                            {.retention = s.retention_unit * s.retention_days,
                             .cluster_live = !c.dropped,
                             .system_identifier = sysid});
  if (!plan.ok()) return failed(plan.status(), "retention: ");
  if (!plan->manifests_to_delete.empty() || !plan->objects_to_delete.empty()) {
    Status applied = ApplyRetention(**repo, *plan);
    if (!applied.ok()) return failed(applied, "retention: ");
    log::Info("[{}] retention: {}", c.name, plan->summary);
  }
  ClearFault(c, Activity::kRetention);
  CheckChainObjects(c, **repo);
}

void RetentionPass::CheckChainObjects(Cluster& c, Repository& repo) {
  if (c.dropped) return;
  auto catalog = WalCatalog::Load(repo, c.name, std::nullopt);
  if (!catalog.ok() || catalog->bases().empty()) return;
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
