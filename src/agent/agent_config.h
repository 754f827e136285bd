// The agent's TOML configuration file (spec section 6): [agent], [defaults]
// and [[cluster]] entries. Unknown keys are errors (a typo must not silently
// disable a backup). Thread-safety: values.
#pragma once

#include <string>
#include <vector>

#include "agent/settings.h"
#include "common/status.h"

namespace sb {

struct ClusterEntry {
  std::string name;
  std::string conninfo;
  PartialSettings overrides;  // every [defaults] key not set here comes from [defaults]
};

struct AgentConfig {
  std::string path;  // the file it was read from
  std::string state_dir = "/var/lib/smartbackup";
  std::string socket = "/run/smartbackup/agent.sock";
  bool discover = true;
  std::string discover_root = "/etc/postgresql";  // Debian layout: <root>/<version>/<name>/
  int max_parallel_fulls = 10;
  std::chrono::milliseconds loop_interval = std::chrono::seconds(10);  // how often the loops run
  // The read-only metrics and web-page listener ("127.0.0.1:9187"); empty = off (http_listener.h).
  std::string http_listen;
  PartialSettings defaults;
  std::vector<ClusterEntry> clusters;
};

Result<AgentConfig> LoadAgentConfig(const std::string& path);
Result<AgentConfig> ParseAgentConfig(const std::string& toml_text, const std::string& origin);

}  // namespace sb
