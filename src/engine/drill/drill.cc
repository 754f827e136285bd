// RunDrill: plan → scratch directory → restore → start → wait for the target →
// checks → figures → stop and remove → record. Each step's failure names the
// step and, where one is to blame, the repository object (found by re-checking
// the objects the step needed, not by reading messages).
#include "engine/drill/drill.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "common/logging.h"
#include "common/text.h"
#include "engine/drill/drill_process.h"
#include "engine/drill/drill_scratch.h"
#include "engine/restore/recovery_config.h"
#include "engine/wal/wal_catalog.h"
#include "pg/connection.h"

namespace sb {
namespace {

namespace fs = std::filesystem;
using Clock_ = std::chrono::steady_clock;

constexpr int kPort = 5432;  // only a socket file in the drill's private directory
constexpr size_t kMaxSocketPath = 100;

double Since(Clock_::time_point t) { return std::chrono::duration<double>(Clock_::now() - t).count(); }

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// The last lines of the server's log, one line, for an error.
std::string LogTail(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(f, line)) {
    if (!Trim(line).empty()) lines.push_back(Trim(line));
  }
  std::string out;
  for (size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out.size() > 600 ? out.substr(out.size() - 600) : out;
}

std::string OneLine(std::string s, size_t max = 600) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  s = Trim(s);
  return s.size() > max ? s.substr(0, max) + "…" : s;
}

uint64_t TreeSize(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) total += it->file_size(e2);
  }
  return total;
}

Status ChownTree(const std::string& dir) {
  if (!RunningAsRoot()) return Status::Ok();
  uid_t uid = 0;
  gid_t gid = 0;
  RETURN_IF_ERROR(PostgresUser(&uid, &gid));
  std::error_code ec;
  ::lchown(dir.c_str(), uid, gid);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0) {
      return Status::IoError(fmt::format("cannot give \"{}\" to the postgres user", it->path().string()));
    }
  }
  if (ec) return Status::IoError(fmt::format("cannot walk \"{}\": {}", dir, ec.message()));
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) return Status::IoError(fmt::format("cannot write \"{}\"", path));
  ::chmod(path.c_str(), 0600);
  return Status::Ok();
}

std::string BinDir(const DrillOptions& o, int server_version_num) {
  if (!o.pg_bin_dir.empty()) return o.pg_bin_dir;
  const std::string debian = fmt::format("/usr/lib/postgresql/{}/bin", server_version_num / 10000);
  std::error_code ec;
  if (fs::exists(debian + "/pg_ctl", ec)) return debian;
  return "";  // PATH
}

std::string Bin(const std::string& dir, const char* name) { return dir.empty() ? name : dir + "/" + name; }

// The first object of `objects` that is missing, or whose bytes do not match the manifest when
// `read` is set: the object a failed step is to blame on.
std::string FirstBadObject(Storage& storage, const std::vector<const ObjectRef*>& objects, bool read) {
  for (const ObjectRef* ref : objects) {
    if (read) {
      auto bytes = storage.Get(ref->key);
      if (!bytes.ok() || Sha256Hex(*bytes) != ref->sha256) return ref->key;
    } else if (auto st = storage.Stat(ref->key); !st.ok() && st.status().IsNotFound()) {
      return ref->key;
    }
  }
  return "";
}

// The log backups on from the base's timeline and container (the WAL its recovery reads).
std::vector<const BackupManifest*> LogsAfter(const WalCatalog& catalog, const BackupManifest& base) {
  std::vector<const BackupManifest*> out;
  for (const auto& m : catalog.log_backups()) {
    if (m.container == base.container && m.EndLsn() > base.EndLsn()) out.push_back(&m);
  }
  return out;
}

class Drill {
 public:
  Drill(Repository& repo, const DrillOptions& o) : repo_(repo), o_(o) {}

  DrillOutcome Run();

 private:
  Status Step(const std::string& phase) {
    if (o_.progress) o_.progress(phase);
    log::Info("drill {} of \"{}\": {}", rec_.drill_id, o_.database, phase);
    if (o_.cancelled && o_.cancelled()) return Status::Cancelled("the drill was cancelled");
    return Status::Ok();
  }
  Status Plan();
  Status Restore();
  Status Configure();
  Status StartServer();
  Status WaitForTarget();
  Status Check();
  Status Fail(Status s, std::string object = "") {
    if (rec_.failed_object.empty()) rec_.failed_object = std::move(object);
    return s;
  }
  Result<std::unique_ptr<PgConnection>> Connect() {
    return PgConnection::Connect(
        fmt::format("host='{}' port={} user=postgres dbname=postgres connect_timeout=5", dir_.socket_dir(), kPort),
        false);
  }
  void StopServer();
  // The first WAL object recovery needed that is missing or does not match its log backup.
  std::string BadWalObject() {
    if (!catalog_) return "";
    std::vector<const ObjectRef*> needed;
    for (const BackupManifest* m : LogsAfter(*catalog_, plan_.base)) {
      for (const ObjectRef* ref : m->AllObjects()) needed.push_back(ref);
    }
    return FirstBadObject(repo_.storage(), needed, /*read=*/true);
  }

  Repository& repo_;
  const DrillOptions& o_;
  DrillRecord rec_;
  RestorePlan plan_;
  std::optional<WalCatalog> catalog_;
  DrillDir dir_;
  bool dir_made_ = false;
  std::string bin_;
};

Status Drill::Plan() {
  RETURN_IF_ERROR(Step("choosing the base backup"));
  auto plan = PlanRestore(repo_, o_.database, o_.target, "", o_.key);
  if (!plan.ok()) return plan.status();
  plan_ = std::move(*plan);
  rec_.backup_id = plan_.base.backup_id;
  rec_.container = plan_.base.container;
  rec_.system_identifier = plan_.base.system_identifier;
  bin_ = BinDir(o_, plan_.base.server_version_num);
  auto catalog = WalCatalog::Load(repo_, o_.database, plan_.base.system_identifier);
  if (catalog.ok()) catalog_ = std::move(*catalog);
  return Status::Ok();
}

Status Drill::Restore() {
  RETURN_IF_ERROR(Step(fmt::format("restoring backup {} ({})", plan_.base.backup_id, FormatByteSize(plan_.base.size_bytes))));
  if (Status s = ValidateRecoveryCommandInputs({.database = o_.database, .repo_url = o_.repo_url, .key_file = o_.key_file,
                                                .smartbackup_path = o_.smartbackup_path,
                                                .private_key_file = o_.private_key_file});
      !s.ok()) {
    return s;
  }
  auto dir = CreateDrillDir(o_.scratch_dir, rec_.drill_id);
  if (!dir.ok()) return dir.status();
  dir_ = *dir;
  dir_made_ = true;
  if (dir_.socket_dir().size() + 20 > kMaxSocketPath) {
    return Status::InvalidArgument(fmt::format(
        "the drill scratch directory \"{}\" is too long for a unix socket path; hint: use a shorter drill_scratch_dir",
        o_.scratch_dir));
  }
  RestoreOptions r{.database = o_.database, .target = o_.target, .repo_url = o_.repo_url, .key_file = o_.key_file,
                   .smartbackup_path = o_.smartbackup_path, .target_dir = dir_.data(),
                   .backup_id = plan_.base.backup_id, .key = o_.key, .private_key_file = o_.private_key_file,
                   .parallelism = o_.parallelism};
  for (const auto& a : plan_.base.archives) {
    if (a.tablespace_oid == 0) continue;
    const std::string ts = fmt::format("{}/ts-{}", dir_.root, a.tablespace_oid);
    r.tablespace_map[a.tablespace_oid] = ts;
  }
  const auto t0 = Clock_::now();
  auto m = RunRestore(repo_, r);
  rec_.restore_seconds = Since(t0);
  if (!m.ok()) {
    // Which object: re-read the base's objects against the manifest.
    return Fail(m.status(), FirstBadObject(repo_.storage(), plan_.base.AllObjects(), /*read=*/true));
  }
  return ChownTree(dir_.root);
}

// Only the scratch copy is touched: a trust-only pg_hba of its own, no TCP, a private socket, no
// archiving or replication, small memory, and nothing the source loads or serves.
Status Drill::Configure() {
  RETURN_IF_ERROR(WriteFile(dir_.conf_dir() + "/pg_hba.conf", "local all all trust\n"));
  RETURN_IF_ERROR(WriteFile(dir_.conf_dir() + "/pg_ident.conf", ""));
  std::error_code ec;
  if (!fs::exists(dir_.data() + "/postgresql.conf", ec)) {
    RETURN_IF_ERROR(WriteFile(dir_.data() + "/postgresql.conf", "# written by a smartbackup drill\n"));
  }
  // A standby.signal of the source would make the copy a standby that never ends recovery.
  fs::remove(dir_.data() + "/standby.signal", ec);
  return ChownTree(dir_.root);
}

Status Drill::StartServer() {
  RETURN_IF_ERROR(Step("starting PostgreSQL on the restored copy"));
  const std::vector<std::pair<std::string, std::string>> settings = {
      {"listen_addresses", ""},
      {"port", std::to_string(kPort)},
      {"unix_socket_directories", dir_.socket_dir()},
      {"unix_socket_permissions", "0700"},
      {"hba_file", dir_.conf_dir() + "/pg_hba.conf"},
      {"ident_file", dir_.conf_dir() + "/pg_ident.conf"},
      {"archive_mode", "off"},
      {"archive_command", ""},
      {"primary_conninfo", ""},
      {"primary_slot_name", ""},
      {"synchronous_standby_names", ""},
      {"hot_standby", "off"},
      {"ssl", "off"},
      {"shared_preload_libraries", ""},
      {"shared_buffers", "128MB"},
      {"max_wal_senders", "0"},
      {"autovacuum", "off"},
      {"logging_collector", "off"},
      {"log_destination", "stderr"},
      {"cluster_name", "smartbackup-drill"},
  };
  std::string opts;
  for (const auto& [k, v] : settings) opts += " -c " + QuoteShellArgument(k + "=" + v);
  auto r = RunProcess({Bin(bin_, "pg_ctl"), "start", "-W", "-D", dir_.data(), "-l", dir_.log_file(), "-o", opts},
                      {.as_postgres = true, .low_priority = o_.low_priority});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return Status::FailedPrecondition(fmt::format("pg_ctl start failed: {}", OneLine(r->output + " " + LogTail(dir_.log_file()))));
  }
  return Status::Ok();
}

Status Drill::WaitForTarget() {
  RETURN_IF_ERROR(Step(fmt::format("replaying WAL to {}", o_.target.ToString())));
  const auto t0 = Clock_::now();
  const auto deadline = t0 + o_.timeout;
  bool seen = false;
  for (;;) {
    if (o_.cancelled && o_.cancelled()) return Status::Cancelled("the drill was cancelled");
    std::ifstream pidfile(dir_.data() + "/postmaster.pid");
    if (pidfile) seen = true;
    // The postmaster writes its pid file at once: without one it has stopped (recovery failed).
    if (!pidfile && (seen || Since(t0) > 5)) {
      return Fail(Status::FailedPrecondition(fmt::format("PostgreSQL stopped before reaching the target {}: {}",
                                                         o_.target.ToString(), LogTail(dir_.log_file()))),
                  BadWalObject());
    }
    if (auto c = Connect(); c.ok()) {
      auto rows = (*c)->Query(
          "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
          "(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint::text");
      if (rows.ok() && rows->size() == 1 && (*rows)[0].size() == 3 && (*rows)[0][0] == "f") {
        rec_.replay_seconds = Since(t0);
        const PgRow& row = (*rows)[0];
        if (row[1]) {
          if (auto lsn = Lsn::Parse(*row[1]); lsn.ok()) rec_.reached_lsn = *lsn;
        }
        if (row[2]) {
          try {
            rec_.reached_time = SystemTime(std::chrono::duration_cast<SystemTime::duration>(
                std::chrono::microseconds(std::stoll(*row[2]))));
          } catch (...) {
          }
        }
        break;
      }
    }
    if (Clock_::now() > deadline) {
      return Status::Unavailable(fmt::format("recovery did not reach {} within {}; hint: raise the drill timeout",
                                             o_.target.ToString(), FormatDuration(o_.timeout)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!rec_.reached_lsn) return Status::Internal("the restored server did not say where recovery ended");
  // The newest point: recovery must reach the end of what the repository holds for this base (a
  // missing WAL part ends recovery early and quietly, so it is looked for here).
  if (o_.target.kind == RecoveryTarget::Kind::kLatest && catalog_) {
    Lsn expected = plan_.base.EndLsn();
    for (const auto& w : catalog_->Windows()) {
      if (w.base_backup_id == plan_.base.backup_id) expected = std::max(expected, w.end_lsn);
    }
    std::vector<const ObjectRef*> needed;
    for (const BackupManifest* m : LogsAfter(*catalog_, plan_.base)) {
      expected = std::max(expected, m->EndLsn());
      if (m->EndLsn() > *rec_.reached_lsn) {
        for (const ObjectRef* ref : m->AllObjects()) needed.push_back(ref);
      }
    }
    const uint64_t slack = plan_.base.wal_segment_size ? plan_.base.wal_segment_size : 16 << 20;
    if (rec_.reached_lsn->value + slack < expected.value) {
      const std::string missing = FirstBadObject(repo_.storage(), needed, /*read=*/false);
      return Fail(Status::Corruption(fmt::format(
                      "recovery stopped at {}, before the end of the backed-up WAL {}{}; hint: run verify",
                      rec_.reached_lsn->ToString(), expected.ToString(),
                      missing.empty() ? "" : fmt::format(": WAL object \"{}\" is missing", missing))),
                  missing);
    }
  }
  return Status::Ok();
}

Status Drill::Check() {
  RETURN_IF_ERROR(Step("checking heap and indexes (pg_amcheck --heapallindexed)"));
  const auto t0 = Clock_::now();
  auto r = RunProcess({Bin(bin_, "pg_amcheck"), "-h", dir_.socket_dir(), "-p", std::to_string(kPort), "-U", "postgres",
                       "--all", "--heapallindexed", "--install-missing"},
                      {.as_postgres = true, .low_priority = o_.low_priority});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    rec_.check_seconds = Since(t0);
    return Status::Corruption(fmt::format("pg_amcheck found corruption in the restored copy: {}", OneLine(r->output)));
  }
  if (!o_.check_sql.empty()) {
    RETURN_IF_ERROR(Step("running the check SQL"));
    ASSIGN_OR_RETURN(auto conn, Connect());
    auto rows = conn->Query(o_.check_sql);
    if (!rows.ok()) return rows.status().WithContext("the drill's check SQL failed");
    if (rows->size() != 1 || (*rows)[0].empty() || (*rows)[0][0] != "t") {
      return Status::FailedPrecondition("the drill's check SQL did not return true (it must return one row whose "
                                        "first column is true)");
    }
  }
  rec_.check_seconds = Since(t0);
  return Status::Ok();
}

void Drill::StopServer() {
  if (!dir_made_) return;
  std::error_code ec;
  if (fs::exists(dir_.data() + "/postmaster.pid", ec)) {
    auto r = RunProcess({Bin(bin_, "pg_ctl"), "stop", "-D", dir_.data(), "-m", "fast", "-w", "-t", "60"},
                        {.as_postgres = true});
    (void)r;
  }
  Status s = RemoveDrillDir(dir_);
  if (!s.ok()) log::Warn("{}", s.message());
}

DrillOutcome Drill::Run() {
  const auto started = o_.clock->Now();
  rec_.database = o_.database;
  rec_.drill_id = NewDrillId(started);
  rec_.started = started;
  rec_.target = o_.target.ToString();
  rec_.host = o_.host.empty() ? HostName() : o_.host;
  DrillStage stage = DrillStage::kPlan;
  Status s = Plan();
  if (s.ok()) {
    stage = DrillStage::kRestore;
    s = Restore();
  }
  if (s.ok()) {
    stage = DrillStage::kPrepare;
    s = Configure();
  }
  if (s.ok()) s = StartServer();
  if (s.ok()) {
    stage = DrillStage::kRecovery;
    s = WaitForTarget();
  }
  if (s.ok()) {
    stage = DrillStage::kCheck;
    s = Check();
  }
  if (s.ok()) rec_.bytes = TreeSize(dir_.root);
  if (dir_made_ && rec_.bytes == 0) rec_.bytes = TreeSize(dir_.data());
  StopServer();
  rec_.finished = std::max(o_.clock->Now(), rec_.started);
  rec_.result = s.ok() ? DrillResult::kPassed : DrillResult::kFailed;
  if (!s.ok()) rec_.error = OneLine(s.message(), 1500);
  // Setting up the scratch copy (its directory, the restore's own inputs) is the environment's part.
  if (!s.ok()) rec_.stage = stage == DrillStage::kRestore && !dir_made_ ? DrillStage::kPrepare : stage;
  if (rec_.error.empty() && !s.ok()) rec_.error = "failed";
  DrillOutcome out{.record = rec_, .status = s};
  // A cancelled drill (the agent stopping) proved nothing either way: no record.
  if (!o_.write_record || s.code() == StatusCode::kCancelled) return out;
  if (rec_.container.empty()) {
    // No base could be chosen: the record goes with the newest container, if there is one.
    auto containers = repo_.ListContainers(o_.database);
    if (containers.ok() && !containers->empty()) {
      out.record.container = containers->back().name;
      out.record.system_identifier = containers->back().system_identifier;
    }
  }
  if (out.record.container.empty()) {
    out.record_status = Status::NotFound("no container to record the drill in (the database has no backups)");
    return out;
  }
  out.record_status = WriteDrillRecord(repo_, out.record);
  out.record_written = out.record_status.ok();
  return out;
}

}  // namespace

DrillOutcome RunDrill(Repository& repo, const DrillOptions& options) { return Drill(repo, options).Run(); }

}  // namespace sb
