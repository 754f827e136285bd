// The `reindex` verb: rebuilds the index of one database, or of every
// database (and then upgrades a format version 1 repository to version 2),
// from the repository's objects alone, and prints what it found.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace sb {

struct ReindexArgs {
  std::string repo, db;
  bool json = false;
};

// Adds the verb to app; the caller adds its common flags.
CLI::App* AddReindexVerb(CLI::App& app, ReindexArgs& args);
// Runs it; returns the exit code (0 ok, 1 failure).
int RunReindexVerb(const ReindexArgs& args);

}  // namespace sb
