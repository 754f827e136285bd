#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>
#include <sys/stat.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/logging.h"
#include "common/text.h"
#include "engine/backup/full_backup.h"
#include "engine/restore/restore.h"
#include "engine/verify/verify.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

using nlohmann::json;

enum class Output { kText, kJson };

struct CommonFlags {
  std::string output = "text";
  bool verbose = false;
  bool quiet = false;
  Output format() const { return output == "json" ? Output::kJson : Output::kText; }
};

// Thrown only inside this file to unwind from a verb with its exit status.
struct VerbFailed {
  Status status;
};

void Check(const Status& s) {
  if (!s.ok()) throw VerbFailed{s};
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) throw VerbFailed{r.status()};
  return std::move(r).value();
}

std::unique_ptr<Repository> OpenRepo(const std::string& url, bool create) {
  auto storage = Check(OpenStorage(url));
  return Check(Repository::Open(std::move(storage), create));
}

std::optional<EncryptionKey> LoadKey(const std::string& path) {
  if (path.empty()) return std::nullopt;
  return Check(EncryptionKey::LoadFromFile(path));
}

json BackupJson(const BackupManifest& m, const std::string& status) {
  return {{"database", m.database},
          {"system_identifier", std::to_string(m.system_identifier)},
          {"container", m.container},
          {"backup_id", m.backup_id},
          {"type", BackupTypeName(m.type)},
          {"timeline", m.timeline},
          {"start_lsn", m.start_lsn},
          {"end_lsn", m.end_lsn},
          {"start_time", FormatRfc3339(m.start_time)},
          {"finish_time", FormatRfc3339(m.finish_time)},
          {"expiration_time", m.expiration_time ? json(FormatRfc3339(*m.expiration_time)) : json(nullptr)},
          {"size_bytes", m.size_bytes},
          {"stored_bytes", m.stored_bytes},
          {"encrypted", !m.encryption_key_id.empty()},
          {"status", status},
          {"path", Repository::ManifestKey(m.database, m.container, m.backup_id)}};
}

void AddCommon(CLI::App* verb, CommonFlags& flags) {
  verb->add_option("--output", flags.output, "output format")->check(CLI::IsMember({"text", "json"}));
  verb->add_flag("-v,--verbose", flags.verbose, "log progress to stderr");
}

// ---- verbs ------------------------------------------------------------------

struct BackupArgs {
  std::string pg, repo, db, type = "full", key_file;
  bool copy_only = false;
  int parallel = 0, compress_level = 3;
  std::string chunk_size = "8MiB";
};

void RunBackupVerb(const BackupArgs& a, const CommonFlags& flags) {
  if (a.type == "log") {
    Check(Status::InvalidArgument("log backups need WAL capture, which this build does not have yet; hint: use --type full"));
  }
  auto key = LoadKey(a.key_file);
  auto repo = OpenRepo(a.repo, /*create=*/true);
  auto started = std::chrono::steady_clock::now();
  auto m = Check(RunFullBackup(*repo, {.conninfo = a.pg,
                                       .database = a.db,
                                       .copy_only = a.copy_only,
                                       .key = key ? &*key : nullptr,
                                       .zstd_level = a.compress_level,
                                       .parallelism = a.parallel,
                                       .chunk_size = Check(ParseByteSize(a.chunk_size))}));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (flags.format() == Output::kJson) {
    json j = BackupJson(m, "available");
    j["seconds"] = secs;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("backup {} complete: {} ({}) of database \"{}\", {} → {} stored in {:.1f}s\n",
                             m.backup_id, BackupTypeName(m.type), m.start_lsn + ".." + m.end_lsn, m.database,
                             FormatByteSize(m.size_bytes), FormatByteSize(m.stored_bytes), secs)
              << Repository::ManifestKey(m.database, m.container, m.backup_id) << "\n";
  }
}

struct RestoreArgs {
  std::string repo, db, target_dir, backup_id, key_file, time, lsn;
  bool latest = false;
  int parallel = 0;
  std::vector<std::string> tablespace_map;
};

void RunRestoreVerb(const RestoreArgs& a, const CommonFlags& flags) {
  if (!a.time.empty() || !a.lsn.empty()) {
    Check(Status::InvalidArgument(
        "point-in-time targets need log backups, which this build does not have yet; hint: use --latest"));
  }
  RestoreOptions options{.database = a.db, .target_dir = a.target_dir, .backup_id = a.backup_id,
                         .parallelism = a.parallel};
  for (const auto& entry : a.tablespace_map) {
    auto eq = entry.find('=');
    if (eq == std::string::npos) Check(Status::InvalidArgument("--tablespace-map takes OID=DIR, got \"" + entry + "\""));
    options.tablespace_map[static_cast<uint32_t>(std::stoul(entry.substr(0, eq)))] = entry.substr(eq + 1);
  }
  auto key = LoadKey(a.key_file);
  options.key = key ? &*key : nullptr;
  auto repo = OpenRepo(a.repo, /*create=*/false);
  auto started = std::chrono::steady_clock::now();
  auto m = Check(RunRestore(*repo, options));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (flags.format() == Output::kJson) {
    json j = BackupJson(m, "available");
    j["target_dir"] = a.target_dir;
    j["seconds"] = secs;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("restored backup {} of database \"{}\" ({}) into {} in {:.1f}s; start it with: pg_ctl -D {} start\n",
                             m.backup_id, m.database, FormatByteSize(m.size_bytes), a.target_dir, secs, a.target_dir);
  }
}

struct ListArgs {
  std::string repo, db;
};

void RunAvailableBackupsVerb(const ListArgs& a, const CommonFlags& flags) {
  auto repo = OpenRepo(a.repo, /*create=*/false);
  std::vector<std::string> dbs;
  if (!a.db.empty()) {
    Check(Repository::ValidateDatabaseName(a.db));
    dbs.push_back(a.db);
  } else {
    dbs = Check(repo->ListDatabases());
  }
  json rows = json::array();
  for (const auto& db : dbs) {
    auto listing = Check(repo->ListBackups(db));
    for (const auto& s : listing.unreadable) log::Warn("{}", s.message());
    for (const auto& m : listing.backups) rows.push_back(BackupJson(m, "available"));
  }
  if (flags.format() == Output::kJson) {
    std::cout << rows.dump(2) << "\n";
    return;
  }
  std::cout << fmt::format("{:<10} {:<26} {:<10} {:>3} {:<12} {:<12} {:<20} {:>10} {:>10} {}\n", "database",
                           "backup_id", "type", "tl", "start_lsn", "end_lsn", "finish_time", "size", "stored",
                           "status");
  for (const auto& r : rows) {
    std::cout << fmt::format("{:<10} {:<26} {:<10} {:>3} {:<12} {:<12} {:<20} {:>10} {:>10} {}\n",
                             r["database"].get<std::string>(), r["backup_id"].get<std::string>(),
                             r["type"].get<std::string>(), r["timeline"].get<int>(),
                             r["start_lsn"].get<std::string>(), r["end_lsn"].get<std::string>(),
                             r["finish_time"].get<std::string>(), FormatByteSize(r["size_bytes"].get<uint64_t>()),
                             FormatByteSize(r["stored_bytes"].get<uint64_t>()), r["status"].get<std::string>());
  }
  if (rows.empty()) std::cout << "(no backups)\n";
}

struct VerifyArgs {
  std::string repo, db, key_file;
  int parallel = 0;
};

// Returns the exit code: 0 when everything checks out, 1 otherwise.
int RunVerifyVerb(const VerifyArgs& a, const CommonFlags& flags) {
  auto key = LoadKey(a.key_file);
  auto repo = OpenRepo(a.repo, /*create=*/false);
  VerifyOptions options{.key = key ? &*key : nullptr, .parallelism = a.parallel};
  if (!a.db.empty()) options.database = a.db;
  auto report = Check(RunVerify(*repo, options));
  if (flags.format() == Output::kJson) {
    json problems = json::array();
    for (const auto& p : report.problems) {
      problems.push_back({{"database", p.database}, {"backup_id", p.backup_id}, {"object", p.key},
                          {"problem", p.kind}, {"detail", p.detail}});
    }
    std::cout << json{{"ok", report.ok()},
                      {"databases", report.databases},
                      {"backups_checked", report.backups_checked},
                      {"objects_checked", report.objects_checked},
                      {"bytes_checked", report.bytes_checked},
                      {"problems", problems}}
                     .dump(2)
              << "\n";
  } else {
    for (const auto& p : report.problems) {
      std::cout << fmt::format("{}: backup {}: {}\n", p.kind, p.backup_id.empty() ? "-" : p.backup_id, p.detail);
    }
    std::cout << fmt::format("verified {} backups, {} objects, {}: {}\n", report.backups_checked,
                             report.objects_checked, FormatByteSize(report.bytes_checked),
                             report.ok() ? "all ok" : fmt::format("{} problems", report.problems.size()));
  }
  if (!report.ok()) {
    std::fprintf(stderr, "smartbackup: error: verify found %zu problems (first: %s); hint: take a new full backup\n",
                 report.problems.size(), report.problems.front().detail.c_str());
    return 1;
  }
  return 0;
}

void RunGenerateKeyVerb(const std::string& out_path) {
  auto key = EncryptionKey::Generate();
  std::string hex = HexEncode(std::string_view(reinterpret_cast<const char*>(key.bytes().data()), key.bytes().size()));
  FILE* f = std::fopen(out_path.c_str(), "wx");  // never overwrite an existing key
  if (!f) Check(Status::IoError(fmt::format("cannot create key file \"{}\" (it must not exist yet)", out_path)));
  ::fchmod(fileno(f), 0600);
  std::fprintf(f, "%s\n", hex.c_str());
  if (std::fclose(f) != 0) Check(Status::IoError(fmt::format("cannot write key file \"{}\"", out_path)));
  std::cout << fmt::format("key written to {} (key id {}); keep a copy: backups encrypted with it cannot be restored without it\n",
                           out_path, key.key_id());
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"smartbackup: managed backup for PostgreSQL"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smartbackup 0.1.0");
  CommonFlags flags;

  BackupArgs backup;
  auto* b = app.add_subcommand("backup", "take one backup now");
  b->add_option("--pg", backup.pg, "libpq connection string of the cluster")->required();
  b->add_option("--repo", backup.repo, "repository URL: file:///path or azure://container[/prefix]")->required();
  b->add_option("--db", backup.db, "database (cluster) name in the repository")->required();
  b->add_option("--type", backup.type, "full or log")->check(CLI::IsMember({"full", "log"}));
  b->add_flag("--copy-only", backup.copy_only, "a backup outside the managed chain");
  b->add_option("--key-file", backup.key_file, "encrypt with this 256-bit key (AES-256-GCM)");
  b->add_option("--parallel", backup.parallel, "compression/upload workers (default: cores)")->check(CLI::Range(1, 64));
  b->add_option("--compress-level", backup.compress_level, "zstd level (0 stores uncompressed)")->check(CLI::Range(0, 19));
  b->add_option("--chunk-size", backup.chunk_size, "plaintext size of one stored object");
  AddCommon(b, flags);

  RestoreArgs restore;
  auto* r = app.add_subcommand("restore", "restore a backup into a data directory ready for pg_ctl start");
  r->add_option("--repo", restore.repo, "repository URL")->required();
  r->add_option("--db", restore.db, "database name in the repository")->required();
  r->add_option("--target-dir", restore.target_dir, "empty or new directory (absolute path)")->required();
  auto* latest = r->add_flag("--latest", restore.latest, "restore to the latest point (default)");
  auto* t = r->add_option("--time", restore.time, "recovery target time (RFC 3339)");
  auto* l = r->add_option("--lsn", restore.lsn, "recovery target LSN");
  latest->excludes(t)->excludes(l);
  t->excludes(l);
  r->add_option("--backup-id", restore.backup_id, "restore this backup instead of the newest");
  r->add_option("--key-file", restore.key_file, "key for encrypted backups");
  r->add_option("--parallel", restore.parallel, "download/decompress workers")->check(CLI::Range(1, 64));
  r->add_option("--tablespace-map", restore.tablespace_map, "OID=DIR: restore a tablespace elsewhere");
  AddCommon(r, flags);

  ListArgs list;
  auto* ab = app.add_subcommand("available-backups", "list the backups in a repository");
  ab->add_option("--repo", list.repo, "repository URL")->required();
  ab->add_option("--db", list.db, "only this database");
  AddCommon(ab, flags);

  VerifyArgs verify;
  auto* v = app.add_subcommand("verify", "re-read every object and check it");
  v->add_option("--repo", verify.repo, "repository URL")->required();
  v->add_option("--db", verify.db, "only this database");
  v->add_option("--key-file", verify.key_file, "also authenticate encrypted objects");
  v->add_option("--parallel", verify.parallel, "reader workers")->check(CLI::Range(1, 64));
  AddCommon(v, flags);

  std::string key_out;
  auto* gk = app.add_subcommand("generate-key", "write a new random 256-bit key file (mode 0600)");
  gk->add_option("--out", key_out, "path of the new key file")->required();
  AddCommon(gk, flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "smartbackup 0.1.0\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string verb = app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
    std::fprintf(stderr, "smartbackup: error: %s; hint: see smartbackup%s --help\n", e.what(), verb.c_str());
    return 2;
  }
  log::SetLevel(flags.verbose ? log::Level::kInfo : log::Level::kWarn);

  try {
    if (b->parsed()) RunBackupVerb(backup, flags);
    else if (r->parsed()) RunRestoreVerb(restore, flags);
    else if (ab->parsed()) RunAvailableBackupsVerb(list, flags);
    else if (v->parsed()) return RunVerifyVerb(verify, flags);
    else if (gk->parsed()) RunGenerateKeyVerb(key_out);
  } catch (const VerbFailed& f) {
    std::fprintf(stderr, "smartbackup: error: %s\n", f.status.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace sb
