// Stream mode: receives a cluster's WAL over the replication protocol through
// smartbackup's own physical slot and stores it as WAL parts, sealing log
// backups when the thresholds say so. The slot is advanced only to WAL that is
// durable in the repository, so nothing acknowledged is ever lost by a crash of
// smartbackup, PostgreSQL or the storage. The open tail is made durable every
// flush_interval, which bounds the recovery point's age.
// Thread-safety: RunWalStreamer blocks its thread; stop it with *stop = true
// (checked at least every poll interval) or WalStreamer::RequestStop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "engine/wal/wal_archive.h"
#include "repo/repository.h"

namespace sb {

// Why the log chain broke (or, for a timeline switch, moved on): decisions use this, never `cause`.
enum class ChainBreakKind {
  kSlotLost,        // the replication slot was gone and the WAL since the last stored part with it
  kWalRemoved,      // the server removed WAL before smartbackup received it
  kTimelineSwitch,  // promotion: not a break of the old chain, a new container begins
  kObjectMissing,   // an object a needed backup lists was deleted from the storage
  kObjectCorrupt,   // an object a needed backup lists has the wrong size
};

struct ChainBreak {
  ChainBreakKind kind = ChainBreakKind::kWalRemoved;
  std::string cause;  // one line for people: "replication slot lost", "object … is missing", …
  uint32_t timeline = 0;
  Lsn start, end;     // the WAL that is missing (empty range for a timeline switch)
};

struct WalStreamerOptions {
  std::string conninfo;
  std::string database;
  std::string slot;  // default: "smartbackup_<database>"
  const EncryptionKey* key = nullptr;
  int zstd_level = 3;
  std::chrono::milliseconds flush_interval{5000};
  uint64_t part_max_bytes = 16ull << 20;
  LogThresholds thresholds;
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const ChainBreak&)> on_chain_break;  // also logged
  std::function<void(Lsn durable)> on_durable;            // after each part is stored
  std::function<void()> on_streaming;                     // each time the server starts sending
};

// Default slot name for a database: "smartbackup_" + name, lowercased, other characters → '_'.
std::string DefaultSlotName(const std::string& database);

// Bytes from `at` to the end of its WAL segment (segment_size at a
// boundary): where the streamer cuts a part, so that none crosses a segment.
uint64_t BytesToSegmentEnd(Lsn at, uint64_t segment_size);

// Runs until *stop (returns OK after a final flush) or an error.
Status RunWalStreamer(Repository& repo, const WalStreamerOptions& options);

}  // namespace sb
