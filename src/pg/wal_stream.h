// Physical WAL streaming over the replication protocol (START_REPLICATION),
// through a named physical replication slot, plus the slot and timeline
// commands around it. The caller decides what is durable: the stream reports
// flush positions to the server only when the caller calls ReportDurable(),
// so the slot never moves past WAL that is not yet safe in the repository.
// Thread-safety: one WalStream per thread; Cancel() may be called from any
// thread or a signal-handling thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "pg/connection.h"
#include "pg/lsn.h"

namespace sb {

struct SlotInfo {
  std::string name;
  bool exists = false;
  std::string slot_type;            // "physical"
  std::optional<Lsn> restart_lsn;   // null when the slot has not reserved WAL
  std::optional<uint32_t> restart_tli;
};

// READ_REPLICATION_SLOT (PostgreSQL 15).
Result<SlotInfo> ReadReplicationSlot(PgConnection& replication_conn, const std::string& slot);
// CREATE_REPLICATION_SLOT name PHYSICAL (RESERVE_WAL); returns its restart LSN.
Result<Lsn> CreatePhysicalSlot(PgConnection& replication_conn, const std::string& slot);
Status DropSlot(PgConnection& replication_conn, const std::string& slot);

// TIMELINE_HISTORY tli: the history file's name ("00000002.history") and content.
struct TimelineHistoryFile {
  std::string filename;
  std::string content;
};
Result<TimelineHistoryFile> FetchTimelineHistory(PgConnection& replication_conn, uint32_t timeline);

// One event from the stream.
struct WalEvent {
  enum class Kind {
    kData,         // WAL bytes starting at `start`
    kTimeout,      // nothing arrived within the poll timeout; time to flush
    kTimelineEnd,  // the server ended this timeline: next_timeline begins at next_start
    kCancelled,    // Cancel() was called
  } kind = Kind::kTimeout;
  Lsn start;
  std::string_view data;  // valid until the next Next() call
  Lsn server_wal_end;     // the server's current end of WAL
  uint32_t next_timeline = 0;
  Lsn next_start;
};

class WalStream {
 public:
  // Opens its own replication connection and issues
  // START_REPLICATION SLOT slot PHYSICAL start TIMELINE timeline.
  // `start` should be segment- or page-aligned or an LSN previously returned.
  // slot "" streams without a slot (no SLOT clause; nothing reserves WAL);
  // timeline 0 omits TIMELINE (the server's current one). Errors: slot
  // missing → kNotFound; slot active elsewhere → kFailedPrecondition "... is
  // in use by another process (pid N)"; start not in the server's history or
  // ahead of its flush position → kFailedPrecondition. WAL already removed
  // shows up as kFailedPrecondition naming the LSN, from Start or Next.
  static Result<std::unique_ptr<WalStream>> Start(const std::string& conninfo, const std::string& slot, Lsn start,
                                                  uint32_t timeline);
  ~WalStream();

  // Waits up to `poll` for the next event. Answers server keepalives that
  // request a reply (with the last durable position) by itself.
  Result<WalEvent> Next(std::chrono::milliseconds poll);

  // Tells the server that WAL before `lsn` is durable: it becomes the slot's
  // restart point. Sends a standby status update at once. Values at or below
  // an earlier report are ignored (the slot never moves back). After
  // kTimelineEnd there is no stream to report on: kFailedPrecondition.
  Status ReportDurable(Lsn lsn);

  // Makes a blocked Next() return kCancelled soon (async-signal-safe).
  void Cancel();

 private:
  WalStream() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
