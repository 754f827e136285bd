// RepoTarget: where a database's backups are and which keys open them, for the
// standalone verbs (restore, available-backups, verify, drill, check). Either
// given on the command line (--repo URL --db NAME, --key-file/--private-key),
// or by database name through the agent's configuration file (DB --config F):
// then the storage URL and keys are the agent's own settings for that database,
// resolved exactly as the agent resolves them (builtins < [defaults] <
// [[cluster]] < changes made through set-db-backup, kept in the state store),
// so a managed user never restates them. Flags given explicitly win over the
// settings (a key file kept elsewhere on a restore host).
// Thread-safety: plain functions over values; reads files only.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "agent/settings.h"
#include "common/status.h"

namespace sb {

// What a verb's command line said about its target.
struct RepoTargetFlags {
  std::string database;     // DB (positional) or --db
  std::string repo;         // --repo URL
  std::string config;       // --config F: the agent's configuration file
  std::string key_file;     // --key-file
  std::string private_key;  // --private-key (readers) or --public-key (writers)
  bool database_required = true;  // available-backups/verify may cover every database of a --repo
};

struct RepoTarget {
  std::string database;     // may be empty only when !database_required and --repo was given
  std::string storage_url;  // the repository
  std::string key_file;     // symmetric key file, or empty
  std::string private_key;  // from the flags only: the agent's settings hold the public half at most
  std::string public_key;   // the agent's public_key setting (writers), or empty
  std::string conninfo;     // the cluster's connection string when the config names it (check), else empty
  bool from_config = false;
  ClusterSettings settings;  // the agent's effective settings (from_config only)
};

// Usage errors (neither --repo nor --config, both, no database) are
// kInvalidArgument with StatusDetail::kUsage, which the CLI exits 2 for.
// A database the agent does not know, or one with no storage URL, is
// kNotFound / kFailedPrecondition with a hint.
Result<RepoTarget> ResolveRepoTarget(const RepoTargetFlags& flags);

// The agent's effective settings for `database` from its configuration file
// and state store (<state_dir>/state.db, read when it exists). Also the
// cluster's conninfo when the config file names it (empty for a discovered one).
struct AgentDatabaseSettings {
  ClusterSettings settings;
  std::string conninfo;
};
Result<AgentDatabaseSettings> ResolveAgentDatabase(const std::string& config_path, const std::string& database);

// Adds DB (positional), --db, --repo and --config to a verb, into *flags (which must outlive
// parsing). The key flags stay the verb's own (their help differs between readers and writers).
void AddRepoTargetFlags(CLI::App* verb, RepoTargetFlags* flags);

}  // namespace sb
