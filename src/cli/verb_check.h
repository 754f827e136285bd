// The `check` verb: proves end to end, now, that a database's backups work —
// the server connects, the role has the grants backups need, pg_hba allows a
// replication connection, the replication slot is there and in use (stream
// mode), the repository takes a write and a delete, the keys load and match
// the newest backup, and capture works: a marker WAL record written now reaches
// the repository within a bound. One line per check; exit 0 when all are ok,
// 1 with a warning, 2 with a critical finding (monitoring plugins' convention).
// Thread-safety: runs on the calling thread.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "cli/repo_target.h"

namespace sb {

struct CheckArgs {
  RepoTargetFlags target;
  std::string pg;                // libpq conninfo (default with --config: the [[cluster]]'s)
  std::string timeout = "2m";    // how long capture may take to make the marker durable
  std::string public_key;        // standalone form: the public key writers use
};

// Adds the verb with its flags (into *args, which must outlive parsing).
CLI::App* AddCheckVerb(CLI::App& app, CheckArgs* args);
// Runs the checks; prints text or JSON (`json`); returns the exit code (0/1/2). Usage errors are
// returned as kInvalidArgument/kUsage for the CLI's usual handling.
Result<int> RunCheckVerb(const CheckArgs& args, bool json);

}  // namespace sb
