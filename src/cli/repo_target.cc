#include "cli/repo_target.h"

#include <fmt/core.h>

#include <filesystem>

#include "agent/agent_config.h"
#include "agent/agent_context.h"
#include "agent/state_store.h"
#include "repo/repository.h"

namespace sb {
namespace {

Status Usage(std::string message) { return Status::InvalidArgument(std::move(message)).WithDetail(StatusDetail::kUsage); }

}  // namespace

Result<AgentDatabaseSettings> ResolveAgentDatabase(const std::string& config_path, const std::string& database) {
  ASSIGN_OR_RETURN(AgentConfig config, LoadAgentConfig(config_path));
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(database));
  AgentDatabaseSettings out;
  bool known = false;
  for (const auto& e : config.clusters) {
    if (e.name == database) {
      known = true;
      out.conninfo = e.conninfo;
    }
  }
  // The agent's own resolution (AgentContext::Resolve) over its state store: settings changed through
  // set-db-backup, and the instance defaults a discovered cluster was given, live there. No store
  // yet (the agent never ran): the config file is all there is.
  AgentContext ctx;
  ctx.config = config;
  const std::string state = config.state_dir + "/state.db";
  std::error_code ec;
  if (std::filesystem::exists(state, ec)) {
    auto store = StateStore::Open(state);
    if (!store.ok()) {
      return store.status().WithContext(
          fmt::format("cannot read the agent's settings for \"{}\" (hint: run as the agent's user, or give --repo)",
                      database));
    }
    ctx.store = std::move(store).value();
    auto seen = ctx.store->KnownClusters();
    if (seen.ok()) {
      for (const auto& k : *seen) known = known || (k.name == database && !k.dropped);
    }
    out.settings = ctx.Resolve(database);
  } else {
    out.settings = ResolveSettings(config.defaults, ctx.ConfigOverrides(database));
  }
  if (!known) {
    return Status::NotFound(fmt::format(
        "database \"{}\" is not known to the agent of {} (not a [[cluster]] there, nor discovered); hint: "
        "smartbackup status --config {} lists its databases, or give --repo URL --db NAME",
        database, config_path, config_path));
  }
  return out;
}

Result<RepoTarget> ResolveRepoTarget(const RepoTargetFlags& flags) {
  if (!flags.repo.empty() && !flags.config.empty()) {
    return Usage("--repo and --config exclude each other: --repo URL names a repository, --config F takes it from "
                 "the agent's settings for the database");
  }
  if (flags.repo.empty() && flags.config.empty()) {
    return Usage("give --repo URL (a repository) or DB --config F (a database the agent manages)");
  }
  RepoTarget t{.database = flags.database,
               .storage_url = flags.repo,
               .key_file = flags.key_file,
               .private_key = flags.private_key};
  if (flags.database.empty() && (flags.database_required || !flags.config.empty())) {
    return Usage(flags.config.empty() ? "a database is required: --db NAME"
                                      : "a database is required with --config: DB --config F");
  }
  if (flags.config.empty()) return t;
  ASSIGN_OR_RETURN(AgentDatabaseSettings a, ResolveAgentDatabase(flags.config, flags.database));
  if (a.settings.storage_url.empty()) {
    return Status::FailedPrecondition(fmt::format(
        "database \"{}\" has no storage_url in the agent's settings; hint: smartbackup set-db-backup {} "
        "--storage-url URL --config {}, or give --repo URL",
        flags.database, flags.database, flags.config));
  }
  t.storage_url = a.settings.storage_url;
  if (t.key_file.empty() && t.private_key.empty()) t.key_file = a.settings.key_file;
  t.public_key = a.settings.public_key;
  t.conninfo = a.conninfo;
  t.from_config = true;
  t.settings = std::move(a.settings);
  return t;
}

void AddRepoTargetFlags(CLI::App* verb, RepoTargetFlags* flags) {
  verb->add_option("db", flags->database, "database name (with --config: as the agent names it)");
  verb->add_option("--db", flags->database, "database name in the repository");
  verb->add_option("--repo", flags->repo, "repository URL: file:///path or azure://container[/prefix]");
  verb->add_option("--config", flags->config,
                   "the agent's configuration file: storage URL and keys from its settings for DB");
}

}  // namespace sb
