// The recovery settings a restore leaves in the restored data directory:
// recovery.signal plus lines appended to postgresql.auto.conf that make
// `pg_ctl start` fetch WAL through `smartbackup wal-get`, recover to the
// target and promote.
//
// These lines become a shell command run by the server, so every value is
// quoted twice: for /bin/sh (each argument in single quotes, ' as '\'') and
// then for PostgreSQL's config lexer (inside '...' a backslash escapes and
// ' is doubled). Values holding a control character cannot be quoted for
// both and are refused. Of what the repository says, only the numeric system
// identifier (and a backup id matching a strict grammar, in a comment) is
// written.
// Thread-safety: stateless.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "engine/restore/restore.h"

namespace sb {

// Refuses options whose restore_command values (binary path, repository URL,
// database name, key file paths) hold a control character; the error names
// the option. Call before anything is written.
Status ValidateRecoveryCommandInputs(const RestoreOptions& options);

// The restore_command's value (before config-file quoting), with %f and %p
// left for PostgreSQL to substitute.
std::string RestoreCommand(const RestoreOptions& options, uint64_t system_identifier);

// A value as a PostgreSQL configuration-file string literal.
std::string QuoteConfigValue(const std::string& value);

// An argument for /bin/sh, taken verbatim.
std::string QuoteShellArgument(const std::string& value);

// Appends the settings to `dir`/postgresql.auto.conf and creates
// `dir`/recovery.signal, both opened beneath dir without following a
// symlink. `backup_id` is named in a comment only when it matches
// [A-Za-z0-9._-]{1,64}.
Status WriteRecoveryConfig(const std::string& dir, uint64_t system_identifier, const std::string& backup_id,
                           const RestoreOptions& options);

}  // namespace sb
