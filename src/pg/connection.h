// PgConnection: a libpq connection, regular or replication. Translates libpq
// failures into Status with a hint: unreachable server → kUnavailable, bad
// password / missing role / missing REPLICATION → kPermissionDenied.
// Thread-safety: one connection per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "pg/lsn.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace sb {

using PgRow = std::vector<std::optional<std::string>>;  // nullopt = SQL NULL

class PgConnection {
 public:
  // replication=true adds "replication=true" (physical walsender protocol).
  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo, bool replication);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Simple-protocol query returning all rows as text (works on replication
  // connections too, e.g. IDENTIFY_SYSTEM).
  Result<std::vector<PgRow>> Query(const std::string& sql);
  Status Exec(const std::string& sql);
  PGconn* raw() { return conn_; }
  // host/port/user for messages, never the password.
  std::string Describe() const;
  // "127.0.0.1:5432" (host or socket directory, then port).
  std::string HostPort() const;
  bool replication() const { return replication_; }

  // The one place server errors become Status: res is a failed result (or
  // null when the connection itself failed); `what` names the operation,
  // e.g. "BASE_BACKUP". SQLSTATE decides the code (42501/28xxx → permission
  // denied, 53xxx/57P0x/08xxx or a lost connection → unavailable, XX001 →
  // corruption, ...); the message is one line naming the server.
  Status ErrorFromResult(const PGresult* res, const std::string& what) const;
  // Same, from PQerrorMessage (e.g. after PQgetCopyData returned -2).
  Status ErrorFromConnection(const std::string& what) const;

 private:
  PgConnection(PGconn* conn, bool replication) : conn_(conn), replication_(replication) {}
  PGconn* conn_;
  bool replication_ = false;
};

// `conninfo` (key=value string or postgresql:// URI) with some keywords
// replaced or added, e.g. {{"host", h}, {"port", p}} to reach another node
// with the same credentials. Returns a key='value' string; kInvalidArgument
// when conninfo cannot be parsed (the message quotes nothing of it).
Result<std::string> ConninfoWith(const std::string& conninfo,
                                 const std::vector<std::pair<std::string, std::string>>& overrides);

struct ServerInfo {
  uint64_t system_identifier = 0;
  int server_version_num = 0;  // e.g. 150018
  uint32_t timeline = 0;
  bool in_recovery = false;
  std::string wal_level;       // "minimal" | "replica" | "logical"
  uint64_t wal_segment_size = 16 * 1024 * 1024;
  std::string archive_mode;
  std::string archive_command;
  Lsn current_lsn;  // pg_current_wal_lsn() or pg_last_wal_replay_lsn() on a standby
  // pg_stat_archiver: the last archive_command run failed (no success since), and on which segment.
  bool archiving_failing = false;
  std::string last_failed_wal;
};

// Reads ServerInfo over a regular connection (needs pg_read_all_settings or
// pg_monitor for archive_command; falls back to "" with a warning otherwise).
// timeline comes from pg_walfile_name(pg_current_wal_lsn()) on a primary
// (exact) and from the last checkpoint/restartpoint on a standby (may lag a
// promotion); use IdentifySystem when the exact timeline matters.
Result<ServerInfo> ReadServerInfo(PgConnection& conn);

// IDENTIFY_SYSTEM's answer: exact values straight from the walsender.
struct SystemIdentity {
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;
  Lsn xlogpos;  // current flush (primary) or replay (standby) position
};
// Runs IDENTIFY_SYSTEM; conn must be a replication connection.
Result<SystemIdentity> IdentifySystem(PgConnection& replication_conn);

}  // namespace sb
