// Child processes of a drill (pg_ctl, pg_amcheck): run with an argument
// vector (no shell), optionally as the "postgres" user when this process is
// root (PostgreSQL refuses to run as root), optionally at idle CPU and I/O
// priority, with stdout+stderr captured (bounded).
// Thread-safety: stateless; any thread.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include "common/status.h"

namespace sb {

struct ProcessOptions {
  bool as_postgres = false;   // setuid to the "postgres" user first (only meaningful as root)
  bool low_priority = false;  // nice 19 and the idle I/O class, inherited by what it starts
};

struct ProcessResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // stdout and stderr, at most 64 KiB (the tail)
};

// Runs argv[0] (looked up in PATH when it has no '/') and waits for it.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options);

// True when this process runs as root: PostgreSQL must then run as "postgres".
bool RunningAsRoot();
// The uid and gid of the "postgres" user; kNotFound when there is none.
Status PostgresUser(uid_t* uid, gid_t* gid);
// Lowers the calling thread's CPU (nice 19) and I/O (idle class) priority; threads it starts inherit it.
void LowerThreadPriority();

}  // namespace sb
