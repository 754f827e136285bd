// The agent's stable identity: a random UUID kept in <state_dir>/agent.id,
// created once and read back on every start. Storage leases carry it as
// LeaseOptions::holder_id, so an agent restarted after a crash (kill -9)
// takes back its own leases at once instead of waiting for them to expire
// (issue 11). Two agents must never share a state directory, hence an id.
// Thread-safety: safe to call concurrently, also from several processes: the
// file is written complete under a temporary name and linked into place, so
// every caller ends up with the one id that won.
#pragma once

#include <string>

#include "common/status.h"

namespace sb {

// The id from <state_dir>/agent.id, creating the file (mode 0600) when it is
// missing. A file that does not hold a UUID is kCorruption with a hint; the
// directory must exist.
Result<std::string> LoadOrCreateAgentId(const std::string& state_dir);

}  // namespace sb
