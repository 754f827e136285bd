#include "cli/verb_reindex.h"

#include <fmt/core.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "repo/reindex.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"

namespace sb {

CLI::App* AddReindexVerb(CLI::App& app, ReindexArgs& args) {
  auto* ri = app.add_subcommand(
      "reindex", "rebuild the backup index from the manifests (without --db: every database, and upgrade to format 2)");
  ri->add_option("--repo", args.repo, "repository URL")->required();
  ri->add_option("--db", args.db, "only this database");
  return ri;
}

namespace {

Status Run(const ReindexArgs& a, nlohmann::json& out) {
  ASSIGN_OR_RETURN(auto storage, OpenStorage(a.repo));
  ASSIGN_OR_RETURN(auto repo, Repository::Open(std::move(storage), /*create=*/false));
  std::vector<std::string> dbs;
  if (!a.db.empty()) {
    RETURN_IF_ERROR(Repository::ValidateDatabaseName(a.db));
    dbs.push_back(a.db);
  } else {
    ASSIGN_OR_RETURN(dbs, repo->ListDatabases());
  }
  out["format_version"] = repo->format_version();
  out["databases"] = nlohmann::json::array();
  for (const auto& db : dbs) {
    ASSIGN_OR_RETURN(ReindexReport r, Reindex(*repo, db));
    out["databases"].push_back({{"database", r.database},
                                {"manifests", r.manifests},
                                {"full", r.full},
                                {"copy_only", r.copy_only},
                                {"log", r.log},
                                {"wal_parts", r.wal_parts},
                                {"unreadable", r.unreadable},
                                {"replaced_index_objects", r.replaced_objects},
                                {"removed_markers", r.removed_markers},
                                {"index_object", r.index_object}});
  }
  // Only once every database is indexed may readers trust the index.
  out["upgraded"] = false;
  if (a.db.empty() && repo->format_version() < 2) {
    RETURN_IF_ERROR(repo->UpgradeToVersion2());
    out["upgraded"] = true;
  }
  out["format_version"] = repo->format_version();
  return Status::Ok();
}

}  // namespace

int RunReindexVerb(const ReindexArgs& a) {
  nlohmann::json out;
  Status s = Run(a, out);
  if (!s.ok()) {
    std::cerr << "smartbackup: error: " << s.message() << "\n";
    return 1;
  }
  if (a.json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  for (const auto& d : out["databases"]) {
    std::cout << fmt::format(
        "database \"{}\": indexed {} manifests ({} full, {} copy-only, {} log), {} WAL parts, {} unreadable; "
        "replaced {} index objects, removed {} markers\n",
        d["database"].get<std::string>(), d["manifests"].get<size_t>(), d["full"].get<size_t>(),
        d["copy_only"].get<size_t>(), d["log"].get<size_t>(), d["wal_parts"].get<size_t>(), d["unreadable"].size(),
        d["replaced_index_objects"].get<size_t>(), d["removed_markers"].get<size_t>());
    for (const auto& u : d["unreadable"]) std::cout << "  unreadable: " << u.get<std::string>() << "\n";
  }
  if (out["upgraded"].get<bool>()) {
    std::cout << "repository upgraded to format version 2\n";
  } else if (out["format_version"].get<int>() < 2) {
    std::cout << "repository stays at format version 1; run reindex without --db to index every database and "
                 "upgrade it\n";
  }
  return 0;
}

}  // namespace sb
