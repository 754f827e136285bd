#include "pg/connection.h"

#include <fmt/core.h>
#include <libpq-fe.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "common/logging.h"
#include "common/text.h"

namespace sb {
namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// libpq messages are multi-line ("...failed: FATAL:  x\n\tIs the server
// running..."): keep the first line's essence, without severity prefixes,
// lowercase first letter as our messages are.
std::string CleanLibpqMessage(std::string_view raw) {
  std::string_view s = raw;
  size_t nl = s.find('\n');
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  // "connection to server at "h", port p failed: reason" → "reason".
  if (StartsWith(s, "connection to server")) {
    size_t pos = s.find("failed: ");
    if (pos != std::string_view::npos) s = s.substr(pos + 8);
  }
  for (std::string_view prefix : {"FATAL:  ", "ERROR:  ", "PANIC:  ", "FATAL: ", "ERROR: "}) {
    if (StartsWith(s, prefix)) s = s.substr(prefix.size());
  }
  std::string out = Trim(s);
  if (out.size() > 1 && out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z')) {
    out[0] = static_cast<char>(out[0] - 'A' + 'a');
  }
  if (out.empty()) out = "unknown error";
  return out;
}

// Whole libpq error text, one line, for classification.
std::string Flatten(std::string_view raw) {
  std::string out;
  for (char c : raw) out += (c == '\n' || c == '\t') ? ' ' : c;
  return out;
}

struct Classified {
  StatusCode code;
  std::string hint;
};

// Connection-time failures only come as text (no SQLSTATE), so this matches
// on the server's and libpq's message wording; see ClassifySqlState for
// errors that carry a code.
Classified ClassifyConnectFailure(const std::string& text, const std::string& user) {
  const std::string role = user.empty() ? "<role>" : user;
  if (Contains(text, "must be superuser or replication role") ||
      Contains(text, "permission denied to start WAL sender") ||
      Contains(text, "REPLICATION attribute")) {
    return {StatusCode::kPermissionDenied,
            fmt::format("as a superuser run: ALTER ROLE {} REPLICATION", role)};
  }
  if (Contains(text, "no pg_hba.conf entry") || Contains(text, "pg_hba.conf rejects")) {
    return {StatusCode::kPermissionDenied,
            "add a pg_hba.conf line for this host and user (database \"replication\" for replication "
            "connections) and reload the server"};
  }
  if (Contains(text, "password authentication failed") || Contains(text, "no password supplied") ||
      Contains(text, "authentication failed") || (Contains(text, "role \"") && Contains(text, "does not exist")) ||
      Contains(text, "is not permitted to log in") || Contains(text, "password is required") ||
      Contains(text, "SCRAM authentication")) {
    return {StatusCode::kPermissionDenied, "check the user and password in --pg (or ~/.pgpass)"};
  }
  if (Contains(text, "permission denied for database")) {
    return {StatusCode::kPermissionDenied, fmt::format("GRANT CONNECT ON DATABASE ... TO {}", role)};
  }
  if (Contains(text, "database \"") && Contains(text, "does not exist")) {
    return {StatusCode::kNotFound, "check dbname in --pg"};
  }
  if (Contains(text, "exceeds max_wal_senders")) {
    return {StatusCode::kUnavailable,
            "raise max_wal_senders on the server or wait for other backups and replicas to disconnect"};
  }
  if (Contains(text, "too many clients") || Contains(text, "remaining connection slots are reserved")) {
    return {StatusCode::kUnavailable, "raise max_connections or wait for clients to disconnect"};
  }
  if (Contains(text, "starting up") || Contains(text, "shutting down") || Contains(text, "not yet accepting") ||
      Contains(text, "in recovery mode")) {
    return {StatusCode::kUnavailable, "retry once the server is up"};
  }
  if (Contains(text, "invalid connection option") || Contains(text, "invalid URI") ||
      Contains(text, "invalid sslmode") || Contains(text, "invalid integer value")) {
    return {StatusCode::kInvalidArgument, "check the connection string given with --pg"};
  }
  if (Contains(text, "certificate") || Contains(text, "SSL")) {
    return {StatusCode::kPermissionDenied, "check the sslmode and certificates in --pg"};
  }
  // Refused, timed out, unreachable, name lookup, closed unexpectedly, ...
  return {StatusCode::kUnavailable, "check that the server runs and --pg is right"};
}

StatusCode ClassifySqlState(std::string_view sqlstate) {
  if (sqlstate.size() != 5) return StatusCode::kInternal;
  std::string_view cls = sqlstate.substr(0, 2);
  if (sqlstate == "42501" || cls == "28") return StatusCode::kPermissionDenied;
  if (cls == "08" || cls == "53" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
    return StatusCode::kUnavailable;
  }
  if (sqlstate == "57014") return StatusCode::kCancelled;
  if (sqlstate == "XX001" || sqlstate == "XX002") return StatusCode::kCorruption;
  if (sqlstate == "3D000" || sqlstate == "42704" || sqlstate == "42883" || sqlstate == "42P01" ||
      sqlstate == "58P01") {
    return StatusCode::kNotFound;
  }
  if (sqlstate == "42710" || sqlstate == "42P07" || sqlstate == "23505") return StatusCode::kAlreadyExists;
  if (cls == "55" || cls == "0A" || cls == "25") return StatusCode::kFailedPrecondition;
  if (cls == "42" || cls == "22") return StatusCode::kInvalidArgument;
  if (cls == "58") return StatusCode::kIoError;
  return StatusCode::kInternal;
}

// Routes server NOTICE/WARNING messages to our log instead of libpq's
// default of printing them on stderr.
void NoticeReceiver(void* /*arg*/, const PGresult* res) {
  const char* severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  std::string msg = primary ? primary : CleanLibpqMessage(PQresultErrorMessage(res));
  if (severity && std::strcmp(severity, "WARNING") == 0) {
    log::Warn("postgresql: {}", msg);
  } else {
    log::Debug("postgresql: {}", msg);
  }
}

std::string HostPortOf(PGconn* conn) {
  const char* host = conn ? PQhost(conn) : nullptr;
  const char* port = conn ? PQport(conn) : nullptr;
  std::string h = (host && *host) ? host : "localhost";
  std::string p = (port && *port) ? port : "5432";
  return h + ":" + p;
}

std::string UserOf(PGconn* conn) {
  const char* user = conn ? PQuser(conn) : nullptr;
  return (user && *user) ? user : "";
}

bool LooksLikeConninfo(const std::string& s) {
  return s.find('=') != std::string::npos || StartsWith(s, "postgresql://") || StartsWith(s, "postgres://");
}

}  // namespace

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo, bool replication) {
  bool has_app_name = std::getenv("PGAPPNAME") != nullptr;
  bool has_timeout = std::getenv("PGCONNECT_TIMEOUT") != nullptr;
  if (LooksLikeConninfo(conninfo)) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (opts == nullptr) {
      std::string why = err ? CleanLibpqMessage(err) : "out of memory";
      if (err) PQfreemem(err);
      // Only libpq's "invalid connection option" names nothing secret; other
      // parse errors may quote a piece of the string (maybe a password).
      if (!Contains(why, "invalid connection option")) why = "it cannot be parsed";
      return Status::InvalidArgument(fmt::format(
          "invalid PostgreSQL connection string: {}; hint: use \"host=... port=... user=... dbname=...\" or a "
          "postgresql:// URI",
          why));
    }
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
      if (o->val == nullptr || *o->val == '\0') continue;
      if (std::strcmp(o->keyword, "application_name") == 0) has_app_name = true;
      if (std::strcmp(o->keyword, "connect_timeout") == 0) has_timeout = true;
    }
    PQconninfoFree(opts);
  }

  // Entries before "dbname" are defaults the connection string may override;
  // "replication" comes after it so it always wins.
  std::vector<const char*> keys;
  std::vector<const char*> values;
  if (!has_app_name) {
    keys.push_back("application_name");
    values.push_back("smartbackup");
  }
  if (!has_timeout) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  keys.push_back("dbname");
  values.push_back(conninfo.c_str());
  if (replication) {
    keys.push_back("replication");
    values.push_back("true");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);

  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return Status::Internal("cannot allocate a PostgreSQL connection (out of memory)");
  std::unique_ptr<PgConnection> pc(new PgConnection(conn, replication));
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string raw = PQerrorMessage(conn);
    std::string user = UserOf(conn);
    Classified c = ClassifyConnectFailure(Flatten(raw), user);
    std::string where = HostPortOf(conn);
    if (c.code == StatusCode::kPermissionDenied && !user.empty()) where += fmt::format(" as user \"{}\"", user);
    std::string reason = CleanLibpqMessage(raw);
    if (c.code == StatusCode::kPermissionDenied && Contains(c.hint, "REPLICATION")) {
      reason = fmt::format("role \"{}\" lacks the REPLICATION privilege needed for replication connections ({})",
                           user, reason);
    }
    return Status(c.code, fmt::format("cannot connect to PostgreSQL at {}: {}; hint: {}", where, reason, c.hint));
  }
  PQsetNoticeReceiver(conn, NoticeReceiver, nullptr);
  return pc;
}

Result<std::string> ConninfoWith(const std::string& conninfo,
                                 const std::vector<std::pair<std::string, std::string>>& overrides) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    if (err) PQfreemem(err);
    return Status::InvalidArgument("invalid PostgreSQL connection string: it cannot be parsed");
  }
  auto quote = [](const std::string& v) {
    std::string q = "'";
    for (char ch : v) {
      if (ch == '\\' || ch == '\'') q += '\\';
      q += ch;
    }
    return q + "'";
  };
  std::string out;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    std::optional<std::string> value;
    if (o->val != nullptr && *o->val != '\0') value = o->val;
    for (const auto& [k, v] : overrides) {
      if (k == o->keyword) value = v;
    }
    if (!value || value->empty()) continue;  // an override to "" removes the keyword (e.g. hostaddr)
    if (!out.empty()) out += ' ';
    out += std::string(o->keyword) + "=" + quote(*value);
  }
  PQconninfoFree(opts);
  return out;
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

std::string PgConnection::HostPort() const { return HostPortOf(conn_); }

std::string PgConnection::Describe() const {
  std::string user = UserOf(conn_);
  if (user.empty()) return HostPort();
  return fmt::format("{} as user \"{}\"", HostPort(), user);
}

Status PgConnection::ErrorFromConnection(const std::string& what) const {
  std::string raw = conn_ ? PQerrorMessage(conn_) : "";
  bool lost = conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK;
  StatusCode code = lost ? StatusCode::kUnavailable : StatusCode::kInternal;
  std::string hint = lost ? "; hint: the connection to the server was lost, check the server log" : "";
  return Status(code, fmt::format("{} on PostgreSQL at {} failed: {}{}", what, HostPort(), CleanLibpqMessage(raw),
                                  hint));
}

Status PgConnection::ErrorFromResult(const PGresult* res, const std::string& what) const {
  if (res == nullptr) return ErrorFromConnection(what);
  const char* sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (sqlstate == nullptr) {
    // libpq-generated (e.g. connection lost mid-query): no SQLSTATE.
    if (PQstatus(conn_) != CONNECTION_OK) return ErrorFromConnection(what);
    const char* m = PQresultErrorMessage(res);
    return Status::Internal(fmt::format("{} on PostgreSQL at {} failed: {}", what, HostPort(),
                                        CleanLibpqMessage(m && *m ? m : PQresStatus(PQresultStatus(res)))));
  }
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  const char* server_hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
  std::string message = primary ? primary : CleanLibpqMessage(PQresultErrorMessage(res));
  StatusCode code = ClassifySqlState(sqlstate);
  std::string hint;
  std::string user = UserOf(conn_);
  if (Contains(message, "must be superuser or replication role") || Contains(message, "REPLICATION attribute")) {
    code = StatusCode::kPermissionDenied;
    hint = fmt::format("as a superuser run: ALTER ROLE {} REPLICATION", user.empty() ? "<role>" : user);
  } else if (Contains(message, "exceeds max_wal_senders")) {
    code = StatusCode::kUnavailable;
    hint = "raise max_wal_senders on the server or wait for other backups and replicas to disconnect";
  } else if (Contains(message, "replication slots") && Contains(message, "max_replication_slots")) {
    code = StatusCode::kUnavailable;
    hint = "raise max_replication_slots on the server or drop unused slots";
  } else if (Contains(message, "WAL level not sufficient") || Contains(message, "wal_level")) {
    code = StatusCode::kFailedPrecondition;
    hint = "set wal_level = replica (or logical) and restart the server";
  } else if (code == StatusCode::kCorruption) {
    hint = "the server found corrupt data; check its log for the affected files";
  } else if (code == StatusCode::kPermissionDenied) {
    hint = server_hint ? server_hint
                       : fmt::format("grant {} the missing privilege (e.g. GRANT pg_monitor TO {})",
                                     user.empty() ? "the role" : user, user.empty() ? "<role>" : user);
  } else if (server_hint) {
    hint = server_hint;
  }
  std::string where = HostPort();
  if (code == StatusCode::kPermissionDenied && !user.empty()) where += fmt::format(" as user \"{}\"", user);
  std::string out = fmt::format("{} on PostgreSQL at {} failed: {} (SQLSTATE {})", what, where, message, sqlstate);
  if (!hint.empty()) out += "; hint: " + hint;
  return Status(code, std::move(out));
}

Result<std::vector<PgRow>> PgConnection::Query(const std::string& sql) {
  ResultPtr res(PQexec(conn_, sql.c_str()));
  std::string what = sql.size() > 60 ? sql.substr(0, 57) + "..." : sql;
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    return ErrorFromResult(res.get(), fmt::format("query \"{}\"", what));
  }
  std::vector<PgRow> rows;
  const int n = PQntuples(res.get());
  const int cols = PQnfields(res.get());
  rows.reserve(n);
  for (int r = 0; r < n; ++r) {
    PgRow row;
    row.reserve(cols);
    for (int c = 0; c < cols; ++c) {
      if (PQgetisnull(res.get(), r, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c)));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Status PgConnection::Exec(const std::string& sql) {
  auto r = Query(sql);
  return r.status();
}

namespace {

Result<uint64_t> ParseU64(const std::optional<std::string>& v, const char* what) {
  if (!v) return Status::Internal(fmt::format("server returned NULL for {}", what));
  char* end = nullptr;
  errno = 0;
  unsigned long long x = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || errno != 0 || end == nullptr || *end != '\0') {
    return Status::Internal(fmt::format("server returned an invalid {} \"{}\"", what, *v));
  }
  return static_cast<uint64_t>(x);
}

}  // namespace

Result<ServerInfo> ReadServerInfo(PgConnection& conn) {
  // One round trip for everything every role may read. CASE keeps the
  // primary-only functions from running on a standby.
  ASSIGN_OR_RETURN(
      std::vector<PgRow> rows,
      conn.Query("SELECT s.system_identifier, current_setting('server_version_num'), pg_is_in_recovery(), "
                 "current_setting('wal_level'), "
                 "(SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size'), "
                 "current_setting('archive_mode'), c.timeline_id, "
                 "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, "
                 "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END "
                 "FROM pg_control_system() s, pg_control_checkpoint() c"));
  if (rows.size() != 1 || rows[0].size() != 9) {
    return Status::Internal(fmt::format("unexpected answer reading server info from PostgreSQL at {}", conn.HostPort()));
  }
  const PgRow& r = rows[0];
  ServerInfo info;
  ASSIGN_OR_RETURN(info.system_identifier, ParseU64(r[0], "system identifier"));
  ASSIGN_OR_RETURN(uint64_t version, ParseU64(r[1], "server_version_num"));
  info.server_version_num = static_cast<int>(version);
  info.in_recovery = r[2].value_or("f") == "t";
  info.wal_level = r[3].value_or("");
  if (r[4]) {
    ASSIGN_OR_RETURN(info.wal_segment_size, ParseU64(r[4], "wal_segment_size"));
  }
  info.archive_mode = r[5].value_or("");
  ASSIGN_OR_RETURN(uint64_t checkpoint_tli, ParseU64(r[6], "checkpoint timeline"));
  info.timeline = static_cast<uint32_t>(checkpoint_tli);
  if (r[7]) {
    ASSIGN_OR_RETURN(info.current_lsn, Lsn::Parse(*r[7]));
  }
  if (r[8] && r[8]->size() == 24) {
    // The segment name's first 8 digits are the insert timeline: exact on a
    // primary even right after a promotion, unlike the checkpoint's.
    auto seg = ParseWalSegmentName(*r[8], info.wal_segment_size);
    if (seg.ok()) info.timeline = seg->first;
  }

  // Any role may read pg_stat_archiver; a failure to read it only leaves archiving_failing unset.
  auto archiver = conn.Query(
      "SELECT last_failed_time IS NOT NULL AND last_failed_time > coalesce(last_archived_time, '-infinity'), "
      "last_failed_wal FROM pg_catalog.pg_stat_archiver");
  if (archiver.ok() && archiver->size() == 1 && (*archiver)[0].size() == 2) {
    info.archiving_failing = (*archiver)[0][0].value_or("f") == "t";
    info.last_failed_wal = (*archiver)[0][1].value_or("");
  }

  // archive_command is readable only by superusers and pg_read_all_settings.
  // With archive_mode off the server shows "(disabled)" instead of the
  // command; reset_val still holds what is configured.
  auto ac = conn.Query(
      "SELECT current_setting('archive_command'), "
      "(SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'archive_command')");
  if (ac.ok()) {
    if (!ac->empty() && (*ac)[0].size() == 2) {
      info.archive_command = (*ac)[0][0].value_or("");
      if (info.archive_command == "(disabled)") info.archive_command = (*ac)[0][1].value_or("");
    }
  } else if (ac.status().code() == StatusCode::kPermissionDenied) {
    log::Warn("cannot read archive_command on PostgreSQL at {} (treating it as empty); hint: GRANT "
              "pg_read_all_settings TO the backup role",
              conn.Describe());
  } else {
    return ac.status();
  }
  return info;
}

Result<SystemIdentity> IdentifySystem(PgConnection& replication_conn) {
  if (!replication_conn.replication()) {
    return Status::InvalidArgument("IDENTIFY_SYSTEM needs a replication connection");
  }
  ASSIGN_OR_RETURN(std::vector<PgRow> rows, replication_conn.Query("IDENTIFY_SYSTEM"));
  if (rows.size() != 1 || rows[0].size() < 3) {
    return Status::Internal(
        fmt::format("unexpected IDENTIFY_SYSTEM answer from PostgreSQL at {}", replication_conn.HostPort()));
  }
  SystemIdentity id;
  ASSIGN_OR_RETURN(id.system_identifier, ParseU64(rows[0][0], "system identifier"));
  ASSIGN_OR_RETURN(uint64_t tli, ParseU64(rows[0][1], "timeline"));
  id.timeline = static_cast<uint32_t>(tli);
  if (!rows[0][2]) return Status::Internal("IDENTIFY_SYSTEM returned no WAL position");
  ASSIGN_OR_RETURN(id.xlogpos, Lsn::Parse(*rows[0][2]));
  return id;
}

}  // namespace sb
