// The scratch directory of restore drills: one directory per drill, named by
// its drill id, holding a marker (`drill.pid`: the pid of the process that
// runs the drill), the restored data directory, the server's private socket
// directory and its log. Whatever the outcome the drill removes it; a drill
// whose process died (kill -9 of the agent) leaves it behind with perhaps a
// PostgreSQL still running from it, which CleanOrphanDrills stops and removes
// at the next start.
// Layout of <scratch>/<drill id>/: drill.pid, data/, sock/, conf/, server.log.
// Thread-safety: stateless functions; a drill directory belongs to one drill.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace sb {

struct DrillDir {
  std::string root;  // <scratch>/<drill id>
  std::string data() const { return root + "/data"; }
  std::string socket_dir() const { return root + "/sock"; }
  std::string conf_dir() const { return root + "/conf"; }
  std::string log_file() const { return root + "/server.log"; }
  std::string marker() const { return root + "/drill.pid"; }
};

// Creates <scratch>/<drill id> (mode 0700, and the scratch directory if missing) with its marker
// naming this process, and its sub-directories; owned by the "postgres" user when running as root.
Result<DrillDir> CreateDrillDir(const std::string& scratch_dir, const std::string& drill_id);

// Stops the PostgreSQL running from the drill directory, if any (its postmaster.pid names a live
// process whose working directory is that data directory: immediate shutdown, then SIGKILL), and
// removes the directory. Ok when it is gone.
Status RemoveDrillDir(const DrillDir& dir);

struct OrphanCleanup {
  std::vector<std::string> removed;  // drill directories removed
  int servers_stopped = 0;           // PostgreSQL servers that were still running from them
  std::vector<Status> errors;        // directories that could not be removed
};
// Every drill directory of `scratch_dir` whose owner (the marker's pid) is no longer running, or
// that has no marker: its server stopped, the directory removed. Directories whose names are not
// drill ids are left alone. A missing scratch directory is nothing to clean.
OrphanCleanup CleanOrphanDrills(const std::string& scratch_dir);

// Free bytes for an unprivileged writer in `path` or its nearest existing ancestor.
Result<uint64_t> FreeBytes(const std::string& path);

}  // namespace sb
