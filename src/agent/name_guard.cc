#include "agent/name_guard.h"

#include <fmt/core.h>

#include "repo/name_claim.h"

namespace sb {

std::optional<KnownCluster> NameGuard::Known(const std::string& name) {
  std::optional<KnownCluster> known;
  if (auto all = ctx_.store->KnownClusters(); all.ok()) {
    for (auto& k : *all) {
      if (k.name == name) known = k;
    }
  }
  return known;
}

// The system identifier this agent last claimed the name for, kept in the state store: after a
// restart too, a cluster re-created under the name is this agent's own new database.
void NameGuard::Remember(Cluster& c, std::optional<KnownCluster> known, uint64_t sysid) {
  if (known && known->system_identifier == sysid) return;
  KnownCluster k = known.value_or(KnownCluster{.name = c.name, .first_seen = ctx_.clock->Now()});
  k.system_identifier = sysid;
  k.last_seen = ctx_.clock->Now();
  (void)ctx_.store->UpsertKnownCluster(k);
}

void NameGuard::Check(Cluster& c, const ClusterSettings& s, const ClusterObservation& o) {
  if (!s.enabled || !o.reachable || o.in_recovery) {
    std::lock_guard lock(c.mu);
    c.name_refusal.clear();
    c.name_refused_by = 0;
    c.name_checked_sysid = 0;
    return;
  }
  uint64_t sysid = 0;
  NameClaimOptions options;
  bool refused = false;
  {
    std::lock_guard lock(c.mu);
    sysid = c.system_identifier;
    options.earlier_systems = c.earlier_sysids;
    refused = !c.name_refusal.empty();
  }
  if (sysid == 0) return;
  const std::optional<KnownCluster> known = Known(c.name);
  if (known && known->system_identifier != 0 && known->system_identifier != sysid) {
    options.earlier_systems.insert(known->system_identifier);
  }
  const bool due = refused || sysid != c.name_checked_sysid || s.storage_url != c.name_checked_url ||
                   ctx_.clock->SteadyNow() >= c.name_checked_at + kRenewEvery;
  if (!due) return;
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) return;
  auto claim = ClaimDatabaseName((*repo)->storage(), c.name, sysid, options);
  if (!claim.ok()) {
    ctx_.Event(c.name, CategoryOf(claim.status(), HealthCategory::kStorageError),
               "cannot claim the database name: " + claim.status().message());
    return;
  }
  if (claim->granted) {
    if (known && known->system_identifier != 0 && known->system_identifier != sysid) {
      // Coexistence rule 8: the cluster was re-created (initdb again), after a restart of the agent too.
      ctx_.Event(c.name, HealthCategory::kChainBreak,
                 fmt::format("log chain break: new system identifier {} (was {}): the cluster was re-created; a "
                             "new container and a full backup begin",
                             sysid, known->system_identifier));
    }
    Remember(c, known, sysid);
  }
  c.name_checked_at = ctx_.clock->SteadyNow();
  c.name_checked_sysid = sysid;
  c.name_checked_url = s.storage_url;
  const std::string refusal = claim->granted ? "" : NameClaimRefusal(c.name, sysid, *claim);
  bool report = false;
  {
    std::lock_guard lock(c.mu);
    // Once per holder, not per "last seen" age.
    report = !claim->granted && claim->holder != c.name_refused_by;
    c.name_refused_by = claim->granted ? 0 : claim->holder;
    c.name_refusal = refusal;
  }
  if (report) ctx_.Event(c.name, HealthCategory::kOtherError, "refused: " + refusal);
}

Status NameGuard::Refusal(Cluster& c) {
  std::lock_guard lock(c.mu);
  if (c.name_refusal.empty()) return Status::Ok();
  return Status::FailedPrecondition("refused: " + c.name_refusal);
}

}  // namespace sb
