#include "pg/wal_stream.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/logging.h"
#include "common/text.h"

namespace sb {
namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

using SteadyClock = std::chrono::steady_clock;

// PostgreSQL's epoch for replication timestamps: 2000-01-01 00:00:00 UTC,
// 946684800 s after the Unix epoch.
constexpr int64_t kPgEpochOffsetMicros = 946684800LL * 1000000LL;

// The walsender drops a client silent for wal_sender_timeout (60 s by
// default); a status update at least this often keeps it content even when
// the server never asks for one.
constexpr auto kStatusInterval = std::chrono::seconds(10);

// XLogData: 'w', dataStart, walEnd, sendTime, then the WAL bytes.
constexpr size_t kXLogDataHeader = 1 + 8 + 8 + 8;
// Primary keepalive: 'k', walEnd, sendTime, replyRequested.
constexpr size_t kKeepaliveSize = 1 + 8 + 8 + 1;

uint64_t DecodeBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void EncodeBigEndian64(uint64_t v, char* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

int64_t PgNowMicros() {
  auto since_unix = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return since_unix.count() - kPgEpochOffsetMicros;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The server's own rule (ReplicationSlotValidateName): [a-z0-9_], 1..63
// characters. Checking here keeps names out of the command text otherwise.
Status ValidateSlotName(const std::string& slot) {
  bool ok = !slot.empty() && slot.size() <= 63;
  for (char c : slot) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) ok = false;
  }
  if (ok) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "invalid replication slot name \"{}\"; hint: use 1 to 63 lowercase letters, digits and underscores", slot));
}

Status NeedReplication(const PgConnection& conn, const char* what) {
  if (conn.replication()) return Status::Ok();
  return Status::InvalidArgument(fmt::format("{} needs a replication connection to PostgreSQL at {}", what,
                                             conn.HostPort()));
}

Result<uint32_t> ParseTimeline(const PgConnection& conn, const char* text, const char* what) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(text, &end, 10);
  if (*text == '\0' || errno != 0 || end == nullptr || *end != '\0' || v == 0 || v > UINT32_MAX) {
    return Status::Internal(
        fmt::format("{} on PostgreSQL at {}: invalid timeline \"{}\" in the answer", what, conn.HostPort(), text));
  }
  return static_cast<uint32_t>(v);
}

// "replication slot "x" is active for PID 123" → "123" (empty if absent).
std::string ActivePid(std::string_view message) {
  size_t pos = message.find("PID ");
  if (pos == std::string_view::npos) return "";
  pos += 4;
  size_t end = pos;
  while (end < message.size() && message[end] >= '0' && message[end] <= '9') ++end;
  return std::string(message.substr(pos, end - pos));
}

std::string PrimaryMessage(const PGresult* res) {
  if (res == nullptr) return "";
  const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  if (primary != nullptr) return primary;
  const char* m = PQresultErrorMessage(res);
  return m ? m : "";
}

// ErrorFromResult, with the cases callers act on made explicit: a slot
// another consumer holds, WAL the server no longer has (a chain break), a
// start position the server's history does not contain.
Status ReplicationError(const PgConnection& conn, const PGresult* res, const std::string& what,
                        const std::string& slot, Lsn position) {
  Status base = conn.ErrorFromResult(res, what);
  const std::string primary = PrimaryMessage(res);
  const std::string where = conn.HostPort();
  const char* sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const bool object_in_use = sqlstate != nullptr && std::strcmp(sqlstate, "55006") == 0;
  if (Contains(primary, "is active for PID") || (object_in_use && Contains(primary, "replication slot"))) {
    std::string pid = ActivePid(primary);
    return Status::FailedPrecondition(fmt::format(
        "{} on PostgreSQL at {} failed: replication slot \"{}\" is in use by another process{}; hint: {}", what,
        where, slot, pid.empty() ? "" : fmt::format(" (pid {})", pid),
        StartsWith(what, "DROP") ? "stop the consumer streaming from it first"
                                 : "another consumer is streaming from this slot; stop it or give each its own slot"))
        .WithDetail(StatusDetail::kSlotInUse);
  }
  if (Contains(primary, "has already been removed")) {
    return Status::FailedPrecondition(fmt::format(
        "{} on PostgreSQL at {} failed: WAL at {} is no longer on the server ({}); hint: the WAL chain is broken "
        "here, a new full backup is needed",
        what, where, position.ToString(), primary))
        .WithDetail(StatusDetail::kWalRemoved);
  }
  if (Contains(primary, "replication slot") && Contains(primary, "does not exist")) {
    return Status::NotFound(fmt::format("{} on PostgreSQL at {} failed: replication slot \"{}\" does not exist",
                                        what, where, slot));
  }
  if (Contains(primary, "is not in this server's history") || Contains(primary, "ahead of the WAL flush position")) {
    return Status(StatusCode::kFailedPrecondition, base.message());
  }
  return base;
}

struct CopyBufferDeleter {
  void operator()(char* p) const { PQfreemem(p); }
};

}  // namespace

Result<SlotInfo> ReadReplicationSlot(PgConnection& replication_conn, const std::string& slot) {
  RETURN_IF_ERROR(NeedReplication(replication_conn, "READ_REPLICATION_SLOT"));
  RETURN_IF_ERROR(ValidateSlotName(slot));
  ASSIGN_OR_RETURN(std::vector<PgRow> rows, replication_conn.Query("READ_REPLICATION_SLOT \"" + slot + "\""));
  if (rows.size() != 1 || rows[0].size() < 3) {
    return Status::Internal(fmt::format("unexpected READ_REPLICATION_SLOT answer from PostgreSQL at {}",
                                        replication_conn.HostPort()));
  }
  const PgRow& r = rows[0];
  SlotInfo info;
  info.name = slot;
  // A missing slot comes back as one row of NULLs.
  info.exists = r[0].has_value();
  if (!info.exists) return info;
  info.slot_type = *r[0];
  if (r[1]) {
    ASSIGN_OR_RETURN(info.restart_lsn, Lsn::Parse(*r[1]));
  }
  if (r[2]) {
    ASSIGN_OR_RETURN(info.restart_tli, ParseTimeline(replication_conn, r[2]->c_str(), "READ_REPLICATION_SLOT"));
  }
  return info;
}

Result<Lsn> CreatePhysicalSlot(PgConnection& replication_conn, const std::string& slot) {
  RETURN_IF_ERROR(NeedReplication(replication_conn, "CREATE_REPLICATION_SLOT"));
  RETURN_IF_ERROR(ValidateSlotName(slot));
  auto created = replication_conn.Query("CREATE_REPLICATION_SLOT \"" + slot + "\" PHYSICAL (RESERVE_WAL)");
  if (!created.ok()) {
    if (created.status().IsAlreadyExists()) {
      return Status::AlreadyExists(fmt::format("replication slot \"{}\" already exists on PostgreSQL at {}", slot,
                                               replication_conn.HostPort()));
    }
    return created.status().WithContext(fmt::format("cannot create replication slot \"{}\"", slot));
  }
  // consistent_point is only filled in for logical slots; the reserved
  // position is the slot's restart_lsn.
  if (!created->empty() && created->front().size() >= 2 && created->front()[1]) {
    auto lsn = Lsn::Parse(*created->front()[1]);
    if (lsn.ok() && lsn->value != 0) return *lsn;
  }
  ASSIGN_OR_RETURN(SlotInfo info, ReadReplicationSlot(replication_conn, slot));
  if (!info.exists || !info.restart_lsn) {
    return Status::Internal(fmt::format("replication slot \"{}\" on PostgreSQL at {} reserved no WAL after creation",
                                        slot, replication_conn.HostPort()));
  }
  return *info.restart_lsn;
}

Status DropSlot(PgConnection& replication_conn, const std::string& slot) {
  RETURN_IF_ERROR(NeedReplication(replication_conn, "DROP_REPLICATION_SLOT"));
  RETURN_IF_ERROR(ValidateSlotName(slot));
  const std::string what = fmt::format("DROP_REPLICATION_SLOT \"{}\"", slot);
  ResultPtr res(PQexec(replication_conn.raw(), (what).c_str()));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::Ok();
  return ReplicationError(replication_conn, res.get(), what, slot, Lsn{});
}

Result<TimelineHistoryFile> FetchTimelineHistory(PgConnection& replication_conn, uint32_t timeline) {
  RETURN_IF_ERROR(NeedReplication(replication_conn, "TIMELINE_HISTORY"));
  if (timeline < 2) {
    // Timeline 1 has no history file; the server would say so less clearly.
    return Status::InvalidArgument(fmt::format("timeline {} has no history file (only timelines 2 and up do)",
                                               timeline));
  }
  ASSIGN_OR_RETURN(std::vector<PgRow> rows, replication_conn.Query(fmt::format("TIMELINE_HISTORY {}", timeline)));
  if (rows.size() != 1 || rows[0].size() < 2 || !rows[0][0] || !rows[0][1]) {
    return Status::Internal(fmt::format("unexpected TIMELINE_HISTORY answer from PostgreSQL at {}",
                                        replication_conn.HostPort()));
  }
  return TimelineHistoryFile{.filename = *rows[0][0], .content = *rows[0][1]};
}

struct WalStream::Impl {
  std::unique_ptr<PgConnection> conn;
  std::string slot;
  uint32_t timeline = 0;
  Lsn start;
  // Self-pipe: Cancel() writes a byte to [1] so poll() in Next() wakes.
  int wake_read = -1;
  int wake_write = -1;
  std::atomic<bool> cancelled{false};
  char* buffer = nullptr;  // the last CopyData, owned until the next Next()
  uint64_t received = 0;   // end of the highest WAL received
  uint64_t durable = 0;    // last ReportDurable(); 0 = nothing durable yet
  Lsn server_wal_end;
  SteadyClock::time_point last_status{};
  // Once the server ended the COPY (timeline switch), the stream only
  // repeats its end.
  bool ended = false;
  WalEvent end_event;

  ~Impl() {
    ReleaseBuffer();
    if (conn) {
      PGconn* raw = conn->raw();
      if (!ended && PQstatus(raw) == CONNECTION_OK) {
        // Tell the walsender we are done, but never wait on a server or
        // network that does not read: non-blocking, one flush attempt.
        PQsetnonblocking(raw, 1);
        PQputCopyEnd(raw, nullptr);
        PQflush(raw);
      }
      conn.reset();  // PQfinish
    }
    if (wake_read >= 0) close(wake_read);
    if (wake_write >= 0) close(wake_write);
  }

  void ReleaseBuffer() {
    if (buffer != nullptr) {
      PQfreemem(buffer);
      buffer = nullptr;
    }
  }

  std::string What() const {
    return slot.empty() ? std::string("START_REPLICATION") : fmt::format("START_REPLICATION SLOT \"{}\"", slot);
  }

  Status SendStatus(bool reply_requested = false) {
    char msg[1 + 8 + 8 + 8 + 8 + 1];
    msg[0] = 'r';
    EncodeBigEndian64(received, msg + 1);  // written: everything received
    EncodeBigEndian64(durable, msg + 9);   // flushed: only what the caller made durable
    EncodeBigEndian64(durable, msg + 17);  // applied: same
    EncodeBigEndian64(static_cast<uint64_t>(PgNowMicros()), msg + 25);
    msg[33] = reply_requested ? 1 : 0;
    if (PQputCopyData(conn->raw(), msg, sizeof(msg)) != 1 || PQflush(conn->raw()) != 0) {
      return conn->ErrorFromConnection(What() + " (sending a status update)");
    }
    last_status = SteadyClock::now();
    return Status::Ok();
  }

  Status HandleKeepalive(const char* data, size_t len) {
    if (len < kKeepaliveSize) return ProtocolError(fmt::format("keepalive of {} bytes", len));
    server_wal_end = Lsn{DecodeBigEndian64(data + 1)};
    if (data[17] != 0) return SendStatus();
    return Status::Ok();
  }

  Status ProtocolError(const std::string& what) const {
    return Status::Internal(fmt::format("{} on PostgreSQL at {}: unexpected protocol message: {}", What(),
                                        conn->HostPort(), what));
  }

  // The server ended the COPY: a timeline switch (a one-row result naming
  // the next timeline, then CommandComplete) or an error.
  Result<WalEvent> FinishCopy() {
    ResultPtr res(PQgetResult(conn->raw()));
    if (res && PQresultStatus(res.get()) == PGRES_COPY_IN) {
      // Server-side CopyDone: close our side too, then read what follows.
      if (PQputCopyEnd(conn->raw(), nullptr) != 1 || PQflush(conn->raw()) != 0) {
        return conn->ErrorFromConnection(What() + " (ending the stream)");
      }
      res.reset(PQgetResult(conn->raw()));
    }
    return ReadEndOfStream(std::move(res));
  }

  Result<WalEvent> ReadEndOfStream(ResultPtr res) {
    if (!res) return conn->ErrorFromConnection(What() + " (end of stream)");
    ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_TUPLES_OK) {
      if (PQntuples(res.get()) != 1 || PQnfields(res.get()) < 2 || PQgetisnull(res.get(), 0, 0) ||
          PQgetisnull(res.get(), 0, 1)) {
        return ProtocolError(fmt::format("end-of-timeline result with {} rows and {} columns", PQntuples(res.get()),
                                         PQnfields(res.get())));
      }
      WalEvent ev;
      ev.kind = WalEvent::Kind::kTimelineEnd;
      ASSIGN_OR_RETURN(ev.next_timeline, ParseTimeline(*conn, PQgetvalue(res.get(), 0, 0), What().c_str()));
      auto next = Lsn::Parse(PQgetvalue(res.get(), 0, 1));
      if (!next.ok()) return ProtocolError("end-of-timeline position: " + next.status().message());
      ev.next_start = *next;
      ev.server_wal_end = server_wal_end;
      // Then CommandComplete and the end of the results.
      for (;;) {
        ResultPtr more(PQgetResult(conn->raw()));
        if (!more) break;
        ExecStatusType mst = PQresultStatus(more.get());
        if (mst != PGRES_COMMAND_OK && mst != PGRES_TUPLES_OK) {
          return ReplicationError(*conn, more.get(), What(), slot, Lsn{received});
        }
      }
      ended = true;
      end_event = ev;
      log::Debug("wal stream: timeline {} ended; timeline {} starts at {}", timeline, ev.next_timeline,
                 ev.next_start.ToString());
      return ev;
    }
    if (st == PGRES_COMMAND_OK) {
      // The server stopped streaming without switching timelines, e.g. while
      // shutting down.
      while (ResultPtr(PQgetResult(conn->raw()))) {
      }
      return Status::Unavailable(fmt::format("{} on PostgreSQL at {}: the server ended the stream at {} (is it "
                                             "shutting down?); hint: start streaming again",
                                             What(), conn->HostPort(), Lsn{received}.ToString()));
    }
    return ReplicationError(*conn, res.get(), What(), slot, Lsn{std::max(received, start.value)});
  }
};

Result<std::unique_ptr<WalStream>> WalStream::Start(const std::string& conninfo, const std::string& slot, Lsn start,
                                                    uint32_t timeline) {
  if (!slot.empty()) RETURN_IF_ERROR(ValidateSlotName(slot));
  auto impl = std::make_unique<Impl>();
  impl->slot = slot;
  impl->timeline = timeline;
  impl->start = start;
  impl->received = start.value;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Status::Internal(fmt::format("cannot create a pipe for the WAL stream: {}", std::strerror(errno)));
  }
  impl->wake_read = fds[0];
  impl->wake_write = fds[1];

  ASSIGN_OR_RETURN(impl->conn, PgConnection::Connect(conninfo, /*replication=*/true));
  std::string command = "START_REPLICATION";
  if (!slot.empty()) command += " SLOT \"" + slot + "\"";
  command += " PHYSICAL " + start.ToString();
  if (timeline != 0) command += fmt::format(" TIMELINE {}", timeline);
  log::Debug("wal stream: {} on {}", command, impl->conn->Describe());

  // Not PQexec: when `start` is the very end of a historic timeline the
  // server answers with the end-of-timeline result set and no COPY, and
  // PQexec would keep only the last result.
  PGconn* raw = impl->conn->raw();
  if (PQsendQuery(raw, command.c_str()) != 1) return impl->conn->ErrorFromConnection(impl->What());
  ResultPtr res(PQgetResult(raw));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  std::unique_ptr<WalStream> stream(new WalStream());
  if (st == PGRES_TUPLES_OK) {
    auto ev = impl->ReadEndOfStream(std::move(res));
    if (!ev.ok()) return ev.status();
  } else if (st != PGRES_COPY_BOTH) {
    Status err = ReplicationError(*impl->conn, res.get(), impl->What(), slot, start);
    res.reset();
    while (ResultPtr(PQgetResult(raw))) {
    }
    return err;
  }
  impl->last_status = SteadyClock::now();
  stream->impl_ = std::move(impl);
  return stream;
}

WalStream::~WalStream() = default;

void WalStream::Cancel() {
  if (!impl_) return;
  impl_->cancelled.store(true, std::memory_order_relaxed);
  char byte = 1;
  // Async-signal-safe; a full pipe already wakes the reader.
  ssize_t n = write(impl_->wake_write, &byte, 1);
  (void)n;
}

Status WalStream::ReportDurable(Lsn lsn) {
  Impl& s = *impl_;
  // The slot follows whatever we report, even backwards: never lower it.
  if (lsn.value <= s.durable) return Status::Ok();
  s.durable = lsn.value;
  if (s.ended) {
    return Status::FailedPrecondition(fmt::format(
        "{} on PostgreSQL at {}: cannot report {} as durable, the stream has ended at a timeline switch; hint: "
        "report it on the stream that continues on the next timeline",
        s.What(), s.conn->HostPort(), lsn.ToString()));
  }
  return s.SendStatus();
}

Result<WalEvent> WalStream::Next(std::chrono::milliseconds poll_timeout) {
  Impl& s = *impl_;
  s.ReleaseBuffer();
  const auto deadline = SteadyClock::now() + poll_timeout;
  for (;;) {
    if (s.cancelled.load(std::memory_order_relaxed)) {
      WalEvent ev;
      ev.kind = WalEvent::Kind::kCancelled;
      ev.server_wal_end = s.server_wal_end;
      return ev;
    }
    if (s.ended) return s.end_event;

    if (SteadyClock::now() - s.last_status >= kStatusInterval) RETURN_IF_ERROR(s.SendStatus());

    char* raw = nullptr;
    int n = PQgetCopyData(s.conn->raw(), &raw, /*async=*/1);
    if (n > 0) {
      std::unique_ptr<char, CopyBufferDeleter> buf(raw);
      const size_t len = static_cast<size_t>(n);
      if (raw[0] == 'w') {
        if (len < kXLogDataHeader) return s.ProtocolError(fmt::format("XLogData of {} bytes", len));
        WalEvent ev;
        ev.kind = WalEvent::Kind::kData;
        ev.start = Lsn{DecodeBigEndian64(raw + 1)};
        s.server_wal_end = Lsn{DecodeBigEndian64(raw + 9)};
        ev.server_wal_end = s.server_wal_end;
        ev.data = std::string_view(raw + kXLogDataHeader, len - kXLogDataHeader);
        s.received = std::max(s.received, ev.start.value + ev.data.size());
        s.buffer = buf.release();
        return ev;
      }
      if (raw[0] == 'k') {
        RETURN_IF_ERROR(s.HandleKeepalive(raw, len));
        continue;
      }
      return s.ProtocolError(fmt::format("CopyData message of unknown type 0x{:02x}", static_cast<unsigned char>(raw[0])));
    }
    if (n == -1) return s.FinishCopy();
    if (n == -2) return s.conn->ErrorFromConnection(s.What() + " (reading WAL)");

    // Nothing buffered: wait for the socket, Cancel(), the deadline or the
    // next periodic status update, whichever comes first.
    const auto now = SteadyClock::now();
    if (now >= deadline) {
      WalEvent ev;
      ev.kind = WalEvent::Kind::kTimeout;
      ev.server_wal_end = s.server_wal_end;
      return ev;
    }
    auto wait = std::min(deadline, s.last_status + kStatusInterval) - now;
    auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
    if (wait_ms < 0) wait_ms = 0;
    pollfd fds[2] = {{PQsocket(s.conn->raw()), POLLIN, 0}, {s.wake_read, POLLIN, 0}};
    int r = poll(fds, 2, static_cast<int>(std::min<int64_t>(wait_ms, 60 * 60 * 1000)));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::Internal(fmt::format("{}: poll failed: {}", s.What(), std::strerror(errno)));
    }
    if (r > 0 && fds[0].revents != 0) {
      if (PQconsumeInput(s.conn->raw()) != 1) {
        Status err = s.conn->ErrorFromConnection(s.What() + " (reading WAL)");
        return Status(StatusCode::kUnavailable, err.message());
      }
    }
  }
}

}  // namespace sb
