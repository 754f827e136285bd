#include "cli/verb_check.h"

#include <fmt/core.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/text.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_streamer.h"
#include "pg/connection.h"
#include "repo/key_store.h"
#include "repo/public_key.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

enum class Level { kOk = 0, kWarning = 1, kCritical = 2 };
const char* LevelName(Level l) { return l == Level::kOk ? "ok" : l == Level::kWarning ? "warning" : "critical"; }

struct Finding {
  std::string name;
  Level level;
  std::string detail;
};

class Checker {
 public:
  Checker(const CheckArgs& args, RepoTarget target, std::string conninfo, std::chrono::milliseconds timeout)
      : args_(args), target_(std::move(target)), conninfo_(std::move(conninfo)), timeout_(timeout) {}

  std::vector<Finding> Run() {
    const bool server = Connection();
    if (server) {
      Grants();
      Replication();
      if (archive_mode_) ArchiveCommand();
      else Slot();
    }
    const bool repo = RepositoryWritable();
    Keys();
    if (server && repo) Capture();
    return findings_;
  }

 private:
  void Add(std::string name, Level level, std::string detail) {
    findings_.push_back({std::move(name), level, std::move(detail)});
  }

  bool Connection() {
    auto conn = PgConnection::Connect(conninfo_, false);
    if (!conn.ok()) {
      Add("connection", Level::kCritical, conn.status().message());
      return false;
    }
    conn_ = std::move(conn).value();
    auto info = ReadServerInfo(*conn_);
    if (!info.ok()) {
      Add("connection", Level::kCritical, info.status().message());
      return false;
    }
    info_ = *info;
    archive_mode_ = target_.from_config ? target_.settings.mode == WalMode::kArchive
                                        : info_.archive_command.find("wal-push") != std::string::npos;
    Add("connection", Level::kOk,
        fmt::format("PostgreSQL {}.{} ({}), system identifier {}, timeline {}, wal_level {}",
                    info_.server_version_num / 10000, info_.server_version_num % 100, info_.in_recovery ? "standby" : "primary", info_.system_identifier,
                    info_.timeline, info_.wal_level));
    if (info_.wal_level == "minimal") {
      Add("wal_level", Level::kCritical, "wal_level is minimal: no backup can be taken; hint: set wal_level = replica "
                                          "and restart the server");
    }
    return true;
  }

  void Grants() {
    auto rows = conn_->Query(
        "SELECT r.rolsuper OR r.rolreplication, r.rolsuper OR pg_has_role(current_user, 'pg_read_all_settings', "
        "'USAGE'), r.rolsuper OR pg_has_role(current_user, 'pg_monitor', 'USAGE'), "
        "has_function_privilege('pg_switch_wal()', 'EXECUTE'), current_user "
        "FROM pg_roles r WHERE r.rolname = current_user");
    if (!rows.ok() || rows->empty()) {
      Add("grants", Level::kCritical, rows.ok() ? "the connected role is not in pg_roles" : rows.status().message());
      return;
    }
    const PgRow& r = rows->front();
    auto yes = [&](size_t i) { return r[i] && *r[i] == "t"; };
    const std::string role = r[4].value_or("?");
    std::vector<std::string> missing_critical, missing_warning;
    if (!yes(0)) missing_critical.push_back(fmt::format("ALTER ROLE {} REPLICATION", role));
    if (archive_mode_ && !yes(3)) {
      missing_critical.push_back(fmt::format("GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {}", role));
    }
    if (!yes(1)) missing_warning.push_back(fmt::format("GRANT pg_read_all_settings TO {}", role));
    if (!yes(2)) missing_warning.push_back(fmt::format("GRANT pg_monitor TO {}", role));
    auto join = [](const std::vector<std::string>& v) {
      std::string out;
      for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
      return out;
    };
    if (!missing_critical.empty()) {
      Add("grants", Level::kCritical, fmt::format("role \"{}\" lacks what backups need; hint: as a superuser run: {}",
                                                 role, join(missing_critical) +
                                                           (missing_warning.empty() ? "" : "; " + join(missing_warning))));
    } else if (!missing_warning.empty()) {
      Add("grants", Level::kWarning, fmt::format("role \"{}\" cannot read archive settings or the slot's consumers; "
                                                 "hint: as a superuser run: {}",
                                                 role, join(missing_warning)));
    } else {
      Add("grants", Level::kOk, fmt::format("role \"{}\" has REPLICATION, pg_read_all_settings, pg_monitor{}", role,
                                            archive_mode_ ? ", EXECUTE on pg_switch_wal()" : ""));
    }
  }

  void Replication() {
    auto conn = PgConnection::Connect(conninfo_, true);
    if (!conn.ok()) {
      Add("replication", Level::kCritical, conn.status().message());
      return;
    }
    auto id = IdentifySystem(**conn);
    if (!id.ok()) {
      Add("replication", Level::kCritical, id.status().message());
      return;
    }
    Add("replication", Level::kOk, "a replication connection works (pg_hba allows it)");
  }

  void ArchiveCommand() {
    if (info_.archive_mode != "on" && info_.archive_mode != "always") {
      Add("archiving", Level::kCritical, fmt::format("archive_mode is {}; hint: set archive_mode = on and restart",
                                                     info_.archive_mode.empty() ? "unknown" : info_.archive_mode));
    } else if (info_.archiving_failing) {
      Add("archiving", Level::kCritical,
          fmt::format("archive_command is failing (last failed segment {}); hint: the PostgreSQL log has the error",
                      info_.last_failed_wal));
    } else {
      Add("archiving", Level::kOk, "archive_command: " + info_.archive_command);
    }
  }

  void Slot() {
    const std::string slot = DefaultSlotName(target_.database);
    auto rows = conn_->Query(fmt::format(
        "SELECT active, COALESCE(wal_status, '') FROM pg_replication_slots WHERE slot_name = '{}'", slot));
    if (!rows.ok()) {
      Add("slot", Level::kCritical, rows.status().message());
    } else if (rows->empty()) {
      Add("slot", info_.in_recovery ? Level::kOk : Level::kCritical,
          info_.in_recovery ? "standby: capture runs on the primary"
                            : fmt::format("replication slot {} does not exist: WAL is not being captured; hint: "
                                          "is the agent running with this database enabled (status --config F)?",
                                          slot));
    } else if ((*rows)[0][1].value_or("") == "lost") {
      Add("slot", Level::kCritical, fmt::format("replication slot {} lost WAL (wal_status lost): the chain is "
                                                "broken; hint: the agent takes a full backup",
                                                slot));
    } else if ((*rows)[0][0].value_or("f") != "t") {
      Add("slot", Level::kWarning, fmt::format("replication slot {} exists but nothing streams from it now; hint: "
                                               "status --config F says why",
                                               slot));
    } else {
      Add("slot", Level::kOk, fmt::format("replication slot {} is active", slot));
    }
  }

  bool RepositoryWritable() {
    auto storage = OpenStorage(target_.storage_url);
    if (!storage.ok()) {
      Add("repository", Level::kCritical, storage.status().message());
      return false;
    }
    auto repo = Repository::Open(std::move(storage).value(), /*create=*/false);
    if (!repo.ok()) {
      Add("repository", Level::kCritical, repo.status().message());
      return false;
    }
    repo_ = std::move(repo).value();
    // A probe object at the repository's root (doc/repository.md: check/), written and removed.
    std::random_device rd;
    const std::string key = fmt::format("check/{:08x}{:08x}.probe", rd(), rd());
    Status put = repo_->storage().Put(key, "smartbackup check probe\n");
    if (!put.ok()) {
      Add("repository", Level::kCritical, fmt::format("cannot write to {}: {}", target_.storage_url, put.message()));
      return false;
    }
    Status del = repo_->storage().Delete(key);
    if (!del.ok()) {
      Add("repository", Level::kCritical,
          fmt::format("wrote {} but cannot delete it: {}; hint: retention needs delete rights", key, del.message()));
      return false;
    }
    Add("repository", Level::kOk, fmt::format("{} takes a write and a delete", target_.storage_url));
    return true;
  }

  void Keys() {
    std::string newest_key_id;
    if (repo_) {
      auto catalog = WalCatalog::Load(*repo_, target_.database, info_.system_identifier
                                                                   ? std::optional<uint64_t>(info_.system_identifier)
                                                                   : std::nullopt);
      if (catalog.ok() && !catalog->bases().empty()) newest_key_id = catalog->bases().back().encryption_key_id;
    }
    const std::string public_key = !args_.public_key.empty() ? args_.public_key : target_.public_key;
    if (!target_.key_file.empty()) {
      auto key = EncryptionKey::LoadFromFile(target_.key_file);
      if (!key.ok()) {
        Add("keys", Level::kCritical, key.status().message());
      } else if (!newest_key_id.empty() && key->key_id() != newest_key_id) {
        Add("keys", Level::kCritical,
            fmt::format("key file {} (key id {}) does not open the newest full backup (key id {}); hint: restore "
                        "needs that backup's key: keep it",
                        target_.key_file, key->key_id(), newest_key_id));
      } else {
        Add("keys", Level::kOk, fmt::format("key file {} loads (key id {})", target_.key_file, key->key_id()));
      }
    } else if (!public_key.empty()) {
      auto fp = PublicKeyFingerprint(public_key);
      if (!fp.ok()) Add("keys", Level::kCritical, fp.status().message());
      else Add("keys", Level::kOk, fmt::format("public key {} loads (fingerprint {}); restores need its private key",
                                               public_key, *fp));
    } else if (!newest_key_id.empty()) {
      Add("keys", Level::kWarning, fmt::format("the newest full backup is encrypted (key id {}) but no key is set "
                                               "here; hint: give --key-file to check it",
                                               newest_key_id));
    } else {
      Add("keys", Level::kOk, "no encryption configured");
    }
  }

  // The highest end of stored WAL on the server's timeline in its newest container. Cost: one
  // listing of the containers and one of that container's WAL parts.
  Result<Lsn> DurableEnd() {
    ASSIGN_OR_RETURN(auto containers, repo_->ListContainers(target_.database));
    Lsn end;
    for (const auto& c : containers) {
      if (c.system_identifier != info_.system_identifier) continue;
      ASSIGN_OR_RETURN(auto parts, repo_->ListWalParts(target_.database, c.name));
      for (const auto& p : parts) {
        if (p.timeline == info_.timeline) end = std::max(end, p.end);
      }
    }
    return end;
  }

  void Capture() {
    if (info_.in_recovery) {
      Add("capture", Level::kOk, "standby: capture runs on the primary");
      return;
    }
    // A marker record, so that the WAL grows even on an idle server; then (archive mode) a segment
    // switch so that archive_command ships it.
    auto marker = conn_->Query("SELECT pg_logical_emit_message(false, 'smartbackup', 'check')::text");
    if (!marker.ok()) marker = conn_->Query("SELECT pg_current_wal_insert_lsn()::text");
    if (!marker.ok() || marker->empty() || !(*marker)[0][0]) {
      Add("capture", Level::kCritical, marker.ok() ? "no WAL position from the server" : marker.status().message());
      return;
    }
    auto lsn = Lsn::Parse(*(*marker)[0][0]);
    if (!lsn.ok()) {
      Add("capture", Level::kCritical, lsn.status().message());
      return;
    }
    if (archive_mode_) {
      auto sw = conn_->Query("SELECT pg_switch_wal()::text");
      if (!sw.ok()) {
        Add("capture", Level::kCritical, sw.status().message());
        return;
      }
    }
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + timeout_;
    Lsn durable;
    for (;;) {
      auto end = DurableEnd();
      if (!end.ok()) {
        Add("capture", Level::kCritical, end.status().message());
        return;
      }
      durable = *end;
      if (durable >= *lsn) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        Add("capture", Level::kCritical,
            fmt::format("WAL at {} written now did not reach the repository within {} (durable up to {}); hint: {}",
                        lsn->ToString(), FormatDuration(timeout_), durable.ToString(),
                        archive_mode_ ? "check archive_command and the PostgreSQL log"
                                      : "is the agent streaming (status --config F)? flush_interval bounds the wait"));
        return;
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    Add("capture", Level::kOk, fmt::format("a marker WAL record at {} was durable in the repository after {:.1f}s",
                                           lsn->ToString(), secs));
  }

  const CheckArgs& args_;
  RepoTarget target_;
  std::string conninfo_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<PgConnection> conn_;
  ServerInfo info_;
  bool archive_mode_ = false;
  std::unique_ptr<Repository> repo_;
  std::vector<Finding> findings_;
};

}  // namespace

CLI::App* AddCheckVerb(CLI::App& app, CheckArgs* args) {
  auto* v = app.add_subcommand("check", "prove now that backups work: server, grants, pg_hba, slot, repository, keys, "
                                        "and WAL capture end to end (exit 0 ok, 1 warning, 2 critical)");
  AddRepoTargetFlags(v, &args->target);
  v->add_option("--pg", args->pg, "libpq connection string (default with --config: the [[cluster]]'s conninfo)");
  v->add_option("--key-file", args->target.key_file, "the key backups are encrypted with");
  v->add_option("--public-key", args->public_key, "the RSA public key (PEM) backups are sealed to");
  v->add_option("--timeout", args->timeout, "how long a marker WAL record may take to reach the repository")
      ->check(CLI::Validator(
          [](std::string& s) {
            auto d = ParseDuration(s);
            return d.ok() ? std::string() : fmt::format("\"{}\" is not a duration (e.g. 2m, 90s)", s);
          },
          "DURATION", "duration"));
  return v;
}

Result<int> RunCheckVerb(const CheckArgs& args, bool json) {
  ASSIGN_OR_RETURN(RepoTarget target, ResolveRepoTarget(args.target));
  const std::string conninfo = !args.pg.empty() ? args.pg : target.conninfo;
  if (conninfo.empty()) {
    return Status::InvalidArgument(target.from_config
                                       ? "the config file has no conninfo for this database (a discovered cluster); "
                                         "give --pg CONNINFO"
                                       : "--pg CONNINFO is required with --repo")
        .WithDetail(StatusDetail::kUsage);
  }
  ASSIGN_OR_RETURN(auto timeout, ParseDuration(args.timeout));
  Checker checker(args, target, conninfo, timeout);
  const std::vector<Finding> findings = checker.Run();
  Level worst = Level::kOk;
  for (const auto& f : findings) worst = std::max(worst, f.level);
  if (json) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& f : findings) checks.push_back({{"check", f.name}, {"status", LevelName(f.level)}, {"detail", f.detail}});
    std::cout << nlohmann::json{{"database", target.database}, {"status", LevelName(worst)}, {"checks", checks}}.dump(2)
              << "\n";
  } else {
    for (const auto& f : findings) std::cout << fmt::format("{:<8} {:<12} {}\n", LevelName(f.level), f.name, f.detail);
    std::cout << fmt::format("check of \"{}\": {}\n", target.database, LevelName(worst));
  }
  return static_cast<int>(worst);
}

}  // namespace sb
