#include "agent/agent_context.h"

#include <fmt/core.h>

#include "common/logging.h"
#include "storage/storage_factory.h"

namespace sb {

void AgentContext::Event(const std::string& cluster, HealthCategory category, const std::string& message) const {
  if (category == HealthCategory::kBackupLoop || category == HealthCategory::kRetentionLoop) {
    log::Debug("{}", message);
  } else {
    log::Warn("{}{}", cluster.empty() ? "" : "[" + cluster + "] ", message);
  }
  const SystemTime at = clock->Now();
  if (stats) stats->NoteEvent(cluster, category, at);
  (void)store->RecordHealthEvent({.at = at, .cluster = cluster, .category = category, .message = message});
}

Result<std::unique_ptr<Repository>> AgentContext::OpenRepo(const std::string& url) const {
  ASSIGN_OR_RETURN(auto storage, OpenStorage(url));
  return Repository::Open(std::move(storage), /*create=*/true, clock);
}

std::string AgentContext::LeaseOwner() const {
  return fmt::format("smartbackup agent (state_dir {})", config.state_dir);
}

PartialSettings AgentContext::InstanceDefaults() const {
  PartialSettings d = config.defaults;
  auto saved = store->LoadInstanceDefaults();
  if (saved.ok() && *saved) {
    for (const auto& [k, v] : **saved) d[k] = v;
  }
  return d;
}

PartialSettings AgentContext::ConfigOverrides(const std::string& cluster) const {
  for (const auto& e : config.clusters) {
    if (e.name == cluster) return e.overrides;
  }
  return {};
}

ClusterSettings AgentContext::Resolve(const std::string& cluster) const {
  PartialSettings overrides = ConfigOverrides(cluster);
  auto saved = store->LoadClusterOverrides();
  if (saved.ok()) {
    auto it = saved->find(cluster);
    if (it != saved->end()) {
      for (const auto& [k, v] : it->second) overrides[k] = v;
    }
  }
  return ResolveSettings(config.defaults, overrides);
}

bool AgentContext::MasterSwitchOn() const { return store->MasterSwitch().value_or(true); }

HealthCategory CategoryOf(const Status& status, HealthCategory otherwise) {
  switch (status.code()) {
    case StatusCode::kPermissionDenied: return HealthCategory::kCredentialError;
    case StatusCode::kCorruption: return HealthCategory::kCorruptedBackup;
    default: break;
  }
  return status.source() == ErrorSource::kStorage ? HealthCategory::kStorageError : otherwise;
}

}  // namespace sb
