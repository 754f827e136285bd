#include "agent/cluster_registry.h"

#include <fmt/core.h>

#include <algorithm>

#include "agent/discovery.h"
#include "common/logging.h"
#include "repo/name_claim.h"
#include "storage/storage_factory.h"

namespace sb {

void ClusterRegistry::Refresh() {
  auto known = ctx_.store->KnownClusters();
  std::map<std::string, KnownCluster> known_by_name;
  if (known.ok()) {
    for (auto& k : *known) known_by_name[k.name] = k;
  }
  std::map<std::string, std::string> wanted;  // name → conninfo
  for (const auto& e : ctx_.config.clusters) wanted[e.name] = e.conninfo;
  if (ctx_.config.discover) {
    for (const auto& [name, conninfo] : DiscoverClusters(ctx_.config.discover_root)) {
      wanted.emplace(DiscoveredName(name, conninfo, known_by_name), conninfo);
    }
  }
  std::lock_guard lock(mu_);
  for (const auto& [name, conninfo] : wanted) {
    auto& slot = clusters_[name];
    if (!slot) {
      slot = std::make_unique<Cluster>(name);
      if (!known_by_name.count(name)) slot->found_while_defaults_off = !FirstSeen(name);
    }
    slot->conninfo = conninfo;
    slot->dropped = false;
    // An init-capture: clang 14 (the fuzz build) cannot capture a structured binding.
    slot->in_config = std::any_of(ctx_.config.clusters.begin(), ctx_.config.clusters.end(),
                                  [&n = name](const ClusterEntry& e) { return e.name == n; });
  }
  for (auto& [name, c] : clusters_) {
    if (!wanted.count(name) && !c->dropped) {
      c->dropped = true;
      ctx_.Event(name, HealthCategory::kWarning,
                 fmt::format("cluster \"{}\" is gone from the config/discovery: no more backups; its backups stay "
                             "until retention has elapsed",
                             name));
    }
  }
  for (const auto& [name, k] : known_by_name) {
    if (!clusters_.count(name) && !k.dropped) {
      // Known from an earlier run but no longer configured: dropped.
      auto c = std::make_unique<Cluster>(name);
      c->dropped = true;
      clusters_[name] = std::move(c);
    }
  }
}

std::vector<Cluster*> ClusterRegistry::Snapshot() {
  std::lock_guard lock(mu_);
  std::vector<Cluster*> out;
  for (auto& [_, c] : clusters_) out.push_back(c.get());
  return out;
}

Cluster* ClusterRegistry::Find(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

// Instance defaults apply to clusters that appear after they were enabled: the defaults of that
// moment become the cluster's own settings. False when instance defaults exist but are disabled
// (suspended, e.g. while a standby is set up: coexistence rule 2's tip): the new cluster keeps
// managed backup off.
bool ClusterRegistry::FirstSeen(const std::string& name) {
  KnownCluster k{.name = name, .first_seen = ctx_.clock->Now(), .last_seen = ctx_.clock->Now()};
  auto saved = ctx_.store->LoadInstanceDefaults();
  bool suspended = false;
  if (saved.ok() && *saved) {
    auto it = (*saved)->find("enabled");
    suspended = it == (*saved)->end() || it->second != "true";
    if (!suspended) {
      auto overrides = ctx_.store->LoadClusterOverrides();
      PartialSettings mine = **saved;
      if (overrides.ok() && overrides->count(name)) {
        for (const auto& [kk, v] : overrides->at(name)) mine[kk] = v;
      }
      (void)ctx_.store->SaveClusterOverrides(name, mine);
      k.defaults_applied = true;
      log::Info("instance defaults applied to new cluster \"{}\"", name);
    }
  }
  (void)ctx_.store->UpsertKnownCluster(k);
  if (suspended) {
    ctx_.Event(name, HealthCategory::kWarning,
               fmt::format("new cluster \"{}\" found while instance defaults are disabled: they are not applied, "
                           "managed backup stays off for it; hint: set-db-backup {} --enable to manage it",
                           name, name));
  }
  return !suspended;
}

std::string ClusterRegistry::Remember(const std::string& base, const std::string& chosen) {
  return discovered_names_[base] = chosen;
}

// Discovery names every Debian host's cluster "15-main"; hosts sharing one storage must not mix
// two clusters under it. Standbys of one primary share its system identifier and keep one name
// (availability groups); a cluster whose storage already holds another system identifier under
// the name is managed as "<name>-<system identifier>". The choice sticks: a name this agent knows
// (state store) is kept, so a re-created cluster (initdb again) stays a new database under its
// name. Undecidable now (cluster or storage unreachable): the plain name, asked again later.
std::string ClusterRegistry::DiscoveredName(const std::string& base, const std::string& conninfo,
                                            const std::map<std::string, KnownCluster>& known) {
  if (auto it = discovered_names_.find(base); it != discovered_names_.end()) return it->second;
  auto is_known = [&](const std::string& n) {
    auto k = known.find(n);
    return k != known.end() && !k->second.dropped;
  };
  auto conn = PgConnection::Connect(conninfo, false);
  auto info = conn.ok() ? ReadServerInfo(**conn) : Result<ServerInfo>(conn.status());
  if (!info.ok()) return is_known(base) ? Remember(base, base) : base;
  const std::string apart = fmt::format("{}-{}", base, info->system_identifier);
  if (is_known(apart)) return Remember(base, apart);
  if (is_known(base)) return Remember(base, base);
  // A cluster new to this agent: does the storage it would use hold another system identifier?
  PartialSettings overrides;
  if (auto saved = ctx_.store->LoadClusterOverrides(); saved.ok() && saved->count(base)) overrides = saved->at(base);
  const ClusterSettings s = ResolveSettings(ctx_.InstanceDefaults(), overrides);
  auto storage = OpenStorage(s.storage_url);
  if (!storage.ok()) return base;
  auto repo = Repository::Open(std::move(storage).value(), /*create=*/false, ctx_.clock);
  if (!repo.ok()) {
    // No repository there yet: nothing to collide with.
    return repo.status().IsNotFound() ? Remember(base, base) : base;
  }
  auto containers = (*repo)->ListContainers(base);
  auto claimants = NameClaimants((*repo)->storage(), base);
  if (!containers.ok() || !claimants.ok()) return base;
  bool other = std::any_of(claimants->begin(), claimants->end(),
                           [&](uint64_t id) { return id != info->system_identifier; });
  for (const auto& ci : *containers) other = other || ci.system_identifier != info->system_identifier;
  if (other) {
    log::Info("discovered cluster \"{}\" (system identifier {}) is managed as \"{}\": storage {} holds another "
              "cluster under \"{}\"",
              base, info->system_identifier, apart, s.storage_url, base);
  }
  return Remember(base, other ? apart : base);
}

}  // namespace sb
