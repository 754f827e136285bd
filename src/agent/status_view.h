// StatusView: the one place where the agent's typed state becomes words and
// JSON — the state line of each cluster, `status` and `health`. The CLI reads
// the same keys (see the README's status section).
// Thread-safety: Headline needs the cluster's lock held; the JSON functions
// take it themselves.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_context.h"
#include "agent/cluster.h"

namespace sb {

struct ClusterHeadline {
  Condition condition = Condition::kOk;
  std::string text;  // "ok", "skipped: …", "refused: …", "error: storage failing since …: …"
};

// What the cluster's line says now: the last pass's decisions with the faults as they are (a
// capture failure shows at once, not at the next pass). Precondition: c.mu held.
ClusterHeadline Headline(const Cluster& c);

nlohmann::json StatusJson(Cluster& c, Clock& clock);
// `since` parsed by the caller (a bad one is refused before this).
nlohmann::json HealthJson(const AgentContext& ctx, SystemTime since, const std::vector<Cluster*>& clusters);
nlohmann::json SettingsJson(const ClusterSettings& s);

}  // namespace sb
