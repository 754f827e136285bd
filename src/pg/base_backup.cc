#include "pg/base_backup.h"

#include <fmt/core.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "common/logging.h"
#include "pg/connection.h"

namespace sb {
namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct CopyBufferDeleter {
  void operator()(char* p) const { PQfreemem(p); }
};
using CopyBufferPtr = std::unique_ptr<char, CopyBufferDeleter>;

// PostgreSQL 15 moved BASE_BACKUP to the option-list syntax and to a single
// COPY stream with typed messages; older servers speak a different protocol.
constexpr int kMinServerVersion = 150000;

Status ProtocolError(const PgConnection& conn, const std::string& what) {
  return Status::Internal(fmt::format("BASE_BACKUP on PostgreSQL at {}: unexpected protocol message: {}; hint: this "
                                      "needs a PostgreSQL 15 or later server",
                                      conn.HostPort(), what));
}

std::string QuoteLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string SlotName() {
  std::random_device rd;
  // Slot names allow [a-z0-9_] and at most 63 characters.
  return fmt::format("smartbackup_bb_{}_{:08x}", static_cast<long>(getpid()), static_cast<uint32_t>(rd()));
}

std::string BuildCommand(const BaseBackupOptions& o) {
  std::string cmd = "BASE_BACKUP (LABEL " + QuoteLiteral(o.label) + ", PROGRESS";
  cmd += o.fast_checkpoint ? ", CHECKPOINT 'fast'" : ", CHECKPOINT 'spread'";
  if (o.include_wal) cmd += ", WAL, WAIT false";
  cmd += ", MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C'";
  cmd += o.verify_checksums ? ", VERIFY_CHECKSUMS true" : ", VERIFY_CHECKSUMS false";
  if (o.tablespace_map) cmd += ", TABLESPACE_MAP";
  cmd += ")";
  return cmd;
}

// The "recptr, tli" result sets sent before and after the data.
Status ParsePosition(const PgConnection& conn, PGresult* res, const char* which, Lsn* lsn, uint32_t* tli) {
  if (PQntuples(res) != 1 || PQnfields(res) < 2 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) {
    return ProtocolError(conn, fmt::format("{} position result has {} rows and {} columns", which, PQntuples(res),
                                           PQnfields(res)));
  }
  auto parsed = Lsn::Parse(PQgetvalue(res, 0, 0));
  if (!parsed.ok()) return ProtocolError(conn, parsed.status().message());
  *lsn = *parsed;
  char* end = nullptr;
  unsigned long v = std::strtoul(PQgetvalue(res, 0, 1), &end, 10);
  if (end == nullptr || *end != '\0' || v == 0 || v > UINT32_MAX) {
    return ProtocolError(conn, fmt::format("invalid {} timeline \"{}\"", which, PQgetvalue(res, 0, 1)));
  }
  *tli = static_cast<uint32_t>(v);
  return Status::Ok();
}

Status ParseTablespaces(const PgConnection& conn, PGresult* res, std::vector<TablespaceInfo>* out) {
  if (PQnfields(res) < 3) return ProtocolError(conn, "tablespace list has fewer than 3 columns");
  for (int r = 0; r < PQntuples(res); ++r) {
    TablespaceInfo ti;
    if (!PQgetisnull(res, r, 0)) ti.oid = static_cast<uint32_t>(std::strtoul(PQgetvalue(res, r, 0), nullptr, 10));
    if (!PQgetisnull(res, r, 1)) ti.location = PQgetvalue(res, r, 1);
    if (!PQgetisnull(res, r, 2)) ti.size_kb = std::strtoll(PQgetvalue(res, r, 2), nullptr, 10);
    out->push_back(std::move(ti));
  }
  return Status::Ok();
}

// Reads one NUL-terminated string at *pos in [data, data+len).
bool ReadCString(const char* data, size_t len, size_t* pos, std::string* out) {
  const void* nul = std::memchr(data + *pos, '\0', len - *pos);
  if (nul == nullptr) return false;
  size_t n = static_cast<const char*>(nul) - (data + *pos);
  out->assign(data + *pos, n);
  *pos += n + 1;
  return true;
}

// Consumes the single COPY OUT stream: 'n' starts an archive, 'd' carries
// archive (or, after 'm', manifest) bytes, 'p' reports progress.
class CopyStreamReader {
 public:
  CopyStreamReader(PgConnection& conn, BaseBackupSink& sink, const std::vector<TablespaceInfo>& tablespaces)
      : conn_(conn), sink_(sink), tablespaces_(tablespaces) {
    for (const auto& t : tablespaces) {
      if (t.size_kb < 0) {
        total_estimate_ = 0;
        break;
      }
      total_estimate_ += static_cast<uint64_t>(t.size_kb) * 1024;
    }
  }

  Status Run() {
    for (;;) {
      char* raw = nullptr;
      int n = PQgetCopyData(conn_.raw(), &raw, /*async=*/0);
      if (n == -1) break;  // COPY ended (normally or by an error result fetched next)
      if (n == -2) return conn_.ErrorFromConnection("BASE_BACKUP (reading COPY data)");
      CopyBufferPtr buf(raw);
      if (n < 1) return ProtocolError(conn_, "empty CopyData message");
      RETURN_IF_ERROR(Handle(raw, static_cast<size_t>(n)));
    }
    return EndArchive();
  }

  bool saw_manifest() const { return in_manifest_; }
  int archives() const { return archives_; }

 private:
  Status Handle(const char* data, size_t len) {
    switch (data[0]) {
      case 'n': {
        if (in_manifest_) return ProtocolError(conn_, "archive after the manifest");
        RETURN_IF_ERROR(EndArchive());
        size_t pos = 1;
        std::string name;
        std::string location;
        if (!ReadCString(data, len, &pos, &name) || !ReadCString(data, len, &pos, &location)) {
          return ProtocolError(conn_, "truncated new-archive message");
        }
        TablespaceInfo ti;
        bool found = false;
        for (const auto& t : tablespaces_) {
          if (t.location == location) {
            ti = t;
            found = true;
            break;
          }
        }
        if (!found) ti.location = location;
        archive_open_ = true;
        ++archives_;
        log::Debug("base backup: archive \"{}\" ({})", name, location.empty() ? "data directory" : location);
        return sink_.OnArchiveStart(name, ti);
      }
      case 'd': {
        std::string_view bytes(data + 1, len - 1);
        if (in_manifest_) return sink_.OnManifestData(bytes);
        if (!archive_open_) return ProtocolError(conn_, "archive data before any archive began");
        return sink_.OnArchiveData(bytes);
      }
      case 'p': {
        if (len < 9) return ProtocolError(conn_, "truncated progress message");
        uint64_t done = 0;
        for (size_t i = 1; i < 9; ++i) done = (done << 8) | static_cast<unsigned char>(data[i]);
        sink_.OnProgress(done, total_estimate_);
        return Status::Ok();
      }
      case 'm': {
        if (in_manifest_) return ProtocolError(conn_, "second manifest");
        RETURN_IF_ERROR(EndArchive());
        in_manifest_ = true;
        return Status::Ok();
      }
      default:
        // An unknown message could carry data we would silently drop.
        return ProtocolError(conn_, fmt::format("CopyData message of unknown type 0x{:02x}",
                                                static_cast<unsigned char>(data[0])));
    }
  }

  Status EndArchive() {
    if (!archive_open_) return Status::Ok();
    archive_open_ = false;
    return sink_.OnArchiveEnd();
  }

  PgConnection& conn_;
  BaseBackupSink& sink_;
  const std::vector<TablespaceInfo>& tablespaces_;
  uint64_t total_estimate_ = 0;
  bool archive_open_ = false;
  bool in_manifest_ = false;
  int archives_ = 0;
};

}  // namespace

Result<BaseBackupResult> RunBaseBackup(const std::string& conninfo, const BaseBackupOptions& options,
                                       BaseBackupSink& sink) {
  if (options.label.find_first_of("\r\n") != std::string::npos || options.label.size() > 1000) {
    return Status::InvalidArgument("invalid base backup label: it must be one line of at most 1000 bytes");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, PgConnection::Connect(conninfo, /*replication=*/true));
  const int version = PQserverVersion(conn->raw());
  if (version < kMinServerVersion) {
    return Status::FailedPrecondition(
        fmt::format("PostgreSQL at {} is version {}.{}; base backups need PostgreSQL 15 or later", conn->HostPort(),
                    version / 10000, version % 10000));
  }

  BaseBackupResult result;
  ASSIGN_OR_RETURN(SystemIdentity identity, IdentifySystem(*conn));
  result.system_identifier = identity.system_identifier;

  // A temporary slot reserving WAL from now on: the server may not recycle
  // the segments this backup must include while it runs. The server drops it
  // when this session ends, however it ends.
  const std::string slot = SlotName();
  RETURN_IF_ERROR(conn->Exec("CREATE_REPLICATION_SLOT " + slot + " TEMPORARY PHYSICAL (RESERVE_WAL)")
                      .WithContext("cannot reserve WAL for the base backup"));

  const std::string command = BuildCommand(options);
  log::Debug("base backup: {} on {}", command, conn->Describe());
  if (PQsendQuery(conn->raw(), command.c_str()) != 1) return conn->ErrorFromConnection("BASE_BACKUP");

  // 1: start position; 2: tablespace list; 3: COPY OUT.
  {
    ResultPtr res(PQgetResult(conn->raw()));
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) return conn->ErrorFromResult(res.get(), "BASE_BACKUP");
    RETURN_IF_ERROR(ParsePosition(*conn, res.get(), "start", &result.start_lsn, &result.start_timeline));
  }
  {
    ResultPtr res(PQgetResult(conn->raw()));
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK) return conn->ErrorFromResult(res.get(), "BASE_BACKUP");
    RETURN_IF_ERROR(ParseTablespaces(*conn, res.get(), &result.tablespaces));
  }
  {
    ResultPtr res(PQgetResult(conn->raw()));
    if (!res || PQresultStatus(res.get()) != PGRES_COPY_OUT) return conn->ErrorFromResult(res.get(), "BASE_BACKUP");
  }

  CopyStreamReader reader(*conn, sink, result.tablespaces);
  // A sink error returns here; dropping conn closes the session, which makes
  // the server abort the backup and drop the slot.
  RETURN_IF_ERROR(reader.Run());

  // After CopyDone: the end position, then completion. An ErrorResponse
  // during the backup (e.g. checksum failures) surfaces here.
  bool have_end = false;
  for (;;) {
    ResultPtr res(PQgetResult(conn->raw()));
    if (!res) break;
    ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_COMMAND_OK) continue;
    if (st == PGRES_TUPLES_OK && !have_end) {
      RETURN_IF_ERROR(ParsePosition(*conn, res.get(), "end", &result.end_lsn, &result.end_timeline));
      have_end = true;
      continue;
    }
    if (st == PGRES_COPY_OUT) return ProtocolError(*conn, "a second COPY stream");
    return conn->ErrorFromResult(res.get(), "BASE_BACKUP");
  }
  if (!have_end) return ProtocolError(*conn, "no end position after the backup data");
  if (reader.archives() == 0) return ProtocolError(*conn, "no archive in the backup");
  if (!reader.saw_manifest()) return ProtocolError(*conn, "no backup manifest");
  log::Info("base backup of {} done: {} to {} on timeline {}", conn->HostPort(), result.start_lsn.ToString(),
            result.end_lsn.ToString(), result.end_timeline);
  return result;
}

}  // namespace sb
