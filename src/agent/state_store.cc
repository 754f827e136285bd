#include "agent/state_store.h"

#include <fmt/core.h>
#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace sb {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cluster_overrides (
  cluster  TEXT PRIMARY KEY,
  settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_clusters (
  name              TEXT PRIMARY KEY,
  system_identifier INTEGER NOT NULL,
  first_seen_ms     INTEGER NOT NULL,
  defaults_applied  INTEGER NOT NULL,
  dropped           INTEGER NOT NULL,
  last_seen_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  cluster     TEXT NOT NULL,
  kind        TEXT NOT NULL,
  reason      TEXT NOT NULL,
  started_ms  INTEGER NOT NULL,
  finished_ms INTEGER,
  result      TEXT NOT NULL,
  detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_cluster ON jobs (cluster, id);
CREATE INDEX IF NOT EXISTS jobs_by_result ON jobs (result);
CREATE TABLE IF NOT EXISTS health_events (
  id       INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms    INTEGER NOT NULL,
  cluster  TEXT NOT NULL,
  category TEXT NOT NULL,
  message  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS health_events_by_time ON health_events (at_ms);
)sql";

constexpr HealthCategory kAllCategories[] = {
    HealthCategory::kStorageError,   HealthCategory::kPostgresError,  HealthCategory::kCredentialError,
    HealthCategory::kOtherError,     HealthCategory::kCorruptedBackup, HealthCategory::kDeletedBackup,
    HealthCategory::kBackupLoop,     HealthCategory::kRetentionLoop,  HealthCategory::kChainBreak,
    HealthCategory::kWarning,        HealthCategory::kDrill,          HealthCategory::kDrillFailed,
};

int64_t ToMs(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SystemTime FromMs(int64_t ms) {
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(std::chrono::milliseconds(ms)));
}

std::string DbName(sqlite3* db) {
  const char* f = db ? sqlite3_db_filename(db, "main") : nullptr;
  return f ? f : "";
}

Status SqlError(sqlite3* db, const std::string& what) {
  const int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  const std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
  const std::string text = fmt::format("state database \"{}\": {}: {}", DbName(db), what, msg);
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(text + "; hint: is another agent using the same state_dir?");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(text + "; hint: move the file away and restart the agent (settings changed "
                                       "through verbs are then lost; backups in the repository are not)");
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      return Status::PermissionDenied(text);
    case SQLITE_FULL:
    case SQLITE_IOERR:
      return Status::IoError(text);
    default:
      return Status::Internal(text);
  }
}

// One prepared statement, finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status Prepared(const char* what) const { return rc_ == SQLITE_OK ? Status::Ok() : SqlError(db_, what); }
  void Bind(int i, const std::string& v) { sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(stmt_, i); }
  // SQLITE_ROW → true, SQLITE_DONE → false, else error.
  Result<bool> Step(const char* what) {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, what);
  }
  Status Run(const char* what) { return Step(what).status(); }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

Status Exec(sqlite3* db, const char* sql, const char* what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = SqlError(db, what);
    sqlite3_free(err);
    return s;
  }
  return Status::Ok();
}

std::string EncodeSettings(const PartialSettings& s) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : s) j[k] = v;
  return j.dump();
}

Result<PartialSettings> DecodeSettings(sqlite3* db, const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption(fmt::format("state database \"{}\": stored settings are not a JSON object", DbName(db)));
  }
  PartialSettings out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) {
      return Status::Corruption(
          fmt::format("state database \"{}\": stored setting \"{}\" is not a string", DbName(db), it.key()));
    }
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

Result<std::optional<std::string>> GetKv(sqlite3* db, const std::string& key) {
  Stmt st(db, "SELECT value FROM kv WHERE key = ?1");
  RETURN_IF_ERROR(st.Prepared("reading state"));
  st.Bind(1, key);
  ASSIGN_OR_RETURN(bool row, st.Step("reading state"));
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.Text(0));
}

// A row of "SELECT id, cluster, kind, reason, started_ms, finished_ms, result, detail FROM jobs".
JobRecord ReadJobRow(const Stmt& st) {
  JobRecord j;
  j.id = st.Int(0);
  j.cluster = st.Text(1);
  j.kind = st.Text(2);
  j.reason = st.Text(3);
  j.started = FromMs(st.Int(4));
  if (!st.IsNull(5)) j.finished = FromMs(st.Int(5));
  j.result = st.Text(6);
  j.detail = st.Text(7);
  return j;
}

Status PutKv(sqlite3* db, const std::string& key, const std::string& value) {
  Stmt st(db, "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  RETURN_IF_ERROR(st.Prepared("writing state"));
  st.Bind(1, key);
  st.Bind(2, value);
  return st.Run("writing state");
}

}  // namespace

const char* HealthCategoryName(HealthCategory c) {
  switch (c) {
    case HealthCategory::kStorageError: return "storage_error";
    case HealthCategory::kPostgresError: return "postgres_error";
    case HealthCategory::kCredentialError: return "credential_error";
    case HealthCategory::kOtherError: return "other_error";
    case HealthCategory::kCorruptedBackup: return "corrupted_backup";
    case HealthCategory::kDeletedBackup: return "deleted_backup";
    case HealthCategory::kBackupLoop: return "backup_loop";
    case HealthCategory::kRetentionLoop: return "retention_loop";
    case HealthCategory::kChainBreak: return "chain_break";
    case HealthCategory::kWarning: return "warning";
    case HealthCategory::kDrill: return "drill";
    case HealthCategory::kDrillFailed: return "drill_failed";
  }
  return "other_error";
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return Status::IoError(fmt::format("cannot create state directory \"{}\": {}; hint: check state_dir in the "
                                         "config file and its permissions",
                                         parent.string(), ec.message()));
    }
  }
  std::unique_ptr<StateStore> store(new StateStore());
  const int rc = sqlite3_open_v2(path.c_str(), &store->db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = store->db_ ? sqlite3_errmsg(store->db_) : sqlite3_errstr(rc);
    return Status::IoError(fmt::format("cannot open state database \"{}\": {}; hint: check state_dir and its "
                                       "permissions",
                                       path, msg));
  }
  sqlite3* db = store->db_;
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  {
    Stmt st(db, "PRAGMA journal_mode=WAL");
    RETURN_IF_ERROR(st.Prepared("setting WAL journal mode"));
    RETURN_IF_ERROR(st.Step("setting WAL journal mode").status());
  }
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL", "setting synchronous mode"));
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", "creating the schema"));
  Status s = Exec(db, kSchema, "creating the schema");
  if (s.ok()) {
    Stmt st(db, "SELECT MAX(version) FROM schema_version");
    s = st.Prepared("reading the schema version");
    if (s.ok()) {
      auto row = st.Step("reading the schema version");
      s = row.status();
      if (s.ok() && !st.IsNull(0)) {
        const int64_t v = st.Int(0);
        if (v > kSchemaVersion) {
          s = Status::FailedPrecondition(fmt::format(
              "state database \"{}\" has schema version {}, newer than this smartbackup understands ({}); hint: "
              "run the newer smartbackup or move the file away",
              path, v, kSchemaVersion));
        }
      } else if (s.ok()) {
        s = Exec(db, fmt::format("INSERT INTO schema_version (version) VALUES ({})", kSchemaVersion).c_str(),
                 "writing the schema version");
      }
    }
  }
  if (!s.ok()) {
    (void)Exec(db, "ROLLBACK", "rolling back");
    return s;
  }
  RETURN_IF_ERROR(Exec(db, "COMMIT", "creating the schema"));
  return store;
}

StateStore::~StateStore() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status StateStore::SaveClusterOverrides(const std::string& cluster, const PartialSettings& overrides) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "INSERT INTO cluster_overrides (cluster, settings) VALUES (?1, ?2) "
          "ON CONFLICT(cluster) DO UPDATE SET settings = excluded.settings");
  RETURN_IF_ERROR(st.Prepared("saving cluster settings"));
  st.Bind(1, cluster);
  st.Bind(2, EncodeSettings(overrides));
  return st.Run("saving cluster settings");
}

Result<std::map<std::string, PartialSettings>> StateStore::LoadClusterOverrides() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT cluster, settings FROM cluster_overrides ORDER BY cluster");
  RETURN_IF_ERROR(st.Prepared("loading cluster settings"));
  std::map<std::string, PartialSettings> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("loading cluster settings"));
    if (!row) break;
    ASSIGN_OR_RETURN(out[st.Text(0)], DecodeSettings(db_, st.Text(1)));
  }
  return out;
}

Status StateStore::SaveInstanceDefaults(const PartialSettings& defaults) {
  std::lock_guard<std::mutex> lock(mu_);
  return PutKv(db_, "instance_defaults", EncodeSettings(defaults));
}

Result<std::optional<PartialSettings>> StateStore::LoadInstanceDefaults() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto text, GetKv(db_, "instance_defaults"));
  if (!text) return std::optional<PartialSettings>();
  ASSIGN_OR_RETURN(PartialSettings s, DecodeSettings(db_, *text));
  return std::optional<PartialSettings>(std::move(s));
}

Status StateStore::SetMasterSwitch(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  return PutKv(db_, "master_switch", on ? "on" : "off");
}

Result<bool> StateStore::MasterSwitch() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto text, GetKv(db_, "master_switch"));
  return !text || *text != "off";
}

Status StateStore::UpsertKnownCluster(const KnownCluster& c) {
  std::lock_guard<std::mutex> lock(mu_);
  // first_seen keeps the earliest value ever recorded.
  Stmt st(db_,
          "INSERT INTO known_clusters (name, system_identifier, first_seen_ms, defaults_applied, dropped, last_seen_ms) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET "
          "system_identifier = excluded.system_identifier, "
          "first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms), "
          "defaults_applied = excluded.defaults_applied, dropped = excluded.dropped, "
          "last_seen_ms = excluded.last_seen_ms");
  RETURN_IF_ERROR(st.Prepared("saving a known cluster"));
  st.Bind(1, c.name);
  st.Bind(2, static_cast<int64_t>(c.system_identifier));  // bit pattern kept; read back as uint64
  st.Bind(3, ToMs(c.first_seen));
  st.Bind(4, int64_t{c.defaults_applied ? 1 : 0});
  st.Bind(5, int64_t{c.dropped ? 1 : 0});
  st.Bind(6, ToMs(c.last_seen));
  return st.Run("saving a known cluster");
}

Result<std::vector<KnownCluster>> StateStore::KnownClusters() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT name, system_identifier, first_seen_ms, defaults_applied, dropped, last_seen_ms "
          "FROM known_clusters ORDER BY name");
  RETURN_IF_ERROR(st.Prepared("loading known clusters"));
  std::vector<KnownCluster> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("loading known clusters"));
    if (!row) break;
    KnownCluster c;
    c.name = st.Text(0);
    c.system_identifier = static_cast<uint64_t>(st.Int(1));
    c.first_seen = FromMs(st.Int(2));
    c.defaults_applied = st.Int(3) != 0;
    c.dropped = st.Int(4) != 0;
    c.last_seen = FromMs(st.Int(5));
    out.push_back(std::move(c));
  }
  return out;
}

Result<int64_t> StateStore::StartJob(const JobRecord& job) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "INSERT INTO jobs (cluster, kind, reason, started_ms, finished_ms, result, detail) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  RETURN_IF_ERROR(st.Prepared("recording a job"));
  st.Bind(1, job.cluster);
  st.Bind(2, job.kind);
  st.Bind(3, job.reason);
  st.Bind(4, ToMs(job.started));
  if (job.finished) {
    st.Bind(5, ToMs(*job.finished));
  } else {
    st.BindNull(5);
  }
  st.Bind(6, job.result.empty() ? std::string("running") : job.result);
  st.Bind(7, job.detail);
  RETURN_IF_ERROR(st.Run("recording a job"));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

// kNotFound when the UPDATE just run touched no row: there is no job `id`.
static Status ChangedJob(sqlite3* db, int64_t id) {
  if (sqlite3_changes(db) != 0) return Status::Ok();
  return Status::NotFound(fmt::format("state database \"{}\": no job {}", DbName(db), id));
}

Status StateStore::MarkJobRunning(int64_t id, SystemTime at) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "UPDATE jobs SET result = 'running', started_ms = ?2 WHERE id = ?1");
  RETURN_IF_ERROR(st.Prepared("starting a job"));
  st.Bind(1, id);
  st.Bind(2, ToMs(at));
  RETURN_IF_ERROR(st.Run("starting a job"));
  return ChangedJob(db_, id);
}

Status StateStore::FinishJob(int64_t id, const std::string& result, const std::string& detail, SystemTime at) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "UPDATE jobs SET result = ?2, detail = ?3, finished_ms = ?4 WHERE id = ?1");
  RETURN_IF_ERROR(st.Prepared("finishing a job"));
  st.Bind(1, id);
  st.Bind(2, result);
  st.Bind(3, detail);
  st.Bind(4, ToMs(at));
  RETURN_IF_ERROR(st.Run("finishing a job"));
  return ChangedJob(db_, id);
}

Status StateStore::MarkInterruptedJobs(SystemTime at) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "UPDATE jobs SET result = 'interrupted', finished_ms = ?1, "
          "detail = CASE WHEN detail = '' THEN 'the agent stopped before the job finished' ELSE detail END "
          "WHERE result IN ('running', 'queued')");
  RETURN_IF_ERROR(st.Prepared("marking interrupted jobs"));
  st.Bind(1, ToMs(at));
  return st.Run("marking interrupted jobs");
}

Result<std::optional<JobRecord>> StateStore::Job(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT id, cluster, kind, reason, started_ms, finished_ms, result, detail FROM jobs WHERE id = ?1");
  RETURN_IF_ERROR(st.Prepared("loading a job"));
  st.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, st.Step("loading a job"));
  if (!row) return std::optional<JobRecord>();
  return std::optional<JobRecord>(ReadJobRow(st));
}

Result<std::vector<JobRecord>> StateStore::RecentJobs(const std::string& cluster, int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT id, cluster, kind, reason, started_ms, finished_ms, result, detail FROM jobs "
          "WHERE (?1 = '' OR cluster = ?1) ORDER BY id DESC LIMIT ?2");
  RETURN_IF_ERROR(st.Prepared("loading jobs"));
  st.Bind(1, cluster);
  st.Bind(2, int64_t{limit > 0 ? limit : -1});
  std::vector<JobRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("loading jobs"));
    if (!row) break;
    out.push_back(ReadJobRow(st));
  }
  return out;
}

Status StateStore::RecordHealthEvent(const HealthEvent& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Stmt st(db_, "INSERT INTO health_events (at_ms, cluster, category, message) VALUES (?1, ?2, ?3, ?4)");
    RETURN_IF_ERROR(st.Prepared("recording a health event"));
    st.Bind(1, ToMs(e.at));
    st.Bind(2, e.cluster);
    st.Bind(3, std::string(HealthCategoryName(e.category)));
    st.Bind(4, e.message);
    RETURN_IF_ERROR(st.Run("recording a health event"));
    if (++inserts_ < retention_.prune_every) return Status::Ok();
    inserts_ = 0;
  }
  return Prune(e.at, retention_);
}

Status StateStore::Prune(SystemTime now, const StateRetention& r) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string loops = fmt::format("'{}', '{}'", HealthCategoryName(HealthCategory::kBackupLoop),
                                        HealthCategoryName(HealthCategory::kRetentionLoop));
  struct Step {
    std::string sql;
    int64_t arg;
  };
  const Step steps[] = {
      {"DELETE FROM health_events WHERE at_ms < ?1", ToMs(now - r.events)},
      {"DELETE FROM health_events WHERE at_ms < ?1 AND category IN (" + loops + ")", ToMs(now - r.heartbeats)},
      {"DELETE FROM health_events WHERE id <= (SELECT id FROM health_events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
       r.max_events},
      {"DELETE FROM jobs WHERE result NOT IN ('running', 'queued') AND coalesce(finished_ms, started_ms) < ?1",
       ToMs(now - r.jobs)},
      {"DELETE FROM jobs WHERE result NOT IN ('running', 'queued') AND id <= (SELECT id FROM jobs WHERE result NOT "
       "IN ('running', 'queued') ORDER BY id DESC LIMIT 1 OFFSET ?1)",
       r.max_jobs},
  };
  for (const auto& step : steps) {
    Stmt st(db_, step.sql.c_str());
    RETURN_IF_ERROR(st.Prepared("pruning the state store"));
    st.Bind(1, step.arg);
    RETURN_IF_ERROR(st.Run("pruning the state store"));
  }
  return Status::Ok();
}

Result<std::vector<HealthEvent>> StateStore::HealthEvents(SystemTime since, SystemTime until) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT at_ms, cluster, category, message FROM health_events "
          "WHERE at_ms >= ?1 AND at_ms <= ?2 ORDER BY at_ms, id");
  RETURN_IF_ERROR(st.Prepared("loading health events"));
  st.Bind(1, ToMs(since));
  st.Bind(2, ToMs(until));
  std::vector<HealthEvent> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st.Step("loading health events"));
    if (!row) break;
    HealthEvent e;
    e.at = FromMs(st.Int(0));
    e.cluster = st.Text(1);
    const std::string cat = st.Text(2);
    e.category = HealthCategory::kOtherError;
    for (HealthCategory c : kAllCategories) {
      if (cat == HealthCategoryName(c)) e.category = c;
    }
    e.message = st.Text(3);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace sb
