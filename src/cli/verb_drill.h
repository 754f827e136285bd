// `smartbackup drill`: one restore drill now — through the running agent
// (`drill DB --config F`: the agent runs it as a job, like backup-on-demand)
// or standalone against any repository (`drill --repo URL --db NAME …`, e.g.
// from another machine). Exits 0 only when the drill proved its target;
// prints the figures (text or --output json); leaves nothing behind.
// Thread-safety: called once from RunCli.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace sb {

struct DrillVerbArgs {
  std::string db_positional, config;                 // through the agent
  std::string repo, db, scratch_dir, time, lsn, check_sql, key_file, private_key;  // standalone
  bool latest = false;
  int parallel = 0;
  std::string output = "text";
  bool verbose = false;
};

CLI::App* AddDrillVerb(CLI::App& app, DrillVerbArgs& args);
// The exit status: 0 proven, 1 failed (the cause on stderr), 2 usage.
int RunDrillVerb(const DrillVerbArgs& args);

}  // namespace sb
