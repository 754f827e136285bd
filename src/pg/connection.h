// PgConnection: a libpq connection, regular or replication. Translates libpq
// failures into Status with a hint: unreachable server → kUnavailable, bad
// password / missing role / missing REPLICATION → kPermissionDenied.
// Thread-safety: one connection per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "pg/lsn.h"

typedef struct pg_conn PGconn;

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

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  PGconn* conn_;
};

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
};

// Reads ServerInfo over a regular connection (needs pg_read_all_settings or
// pg_monitor for archive_command; falls back to "" with a warning otherwise).
Result<ServerInfo> ReadServerInfo(PgConnection& conn);

}  // namespace sb
