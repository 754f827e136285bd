// Other tools that take a cluster's WAL, named where recognisable (coexistence rules 4, 5 and 8):
// the owner of a foreign archive_command (pgBackRest, Barman, WAL-G, …) and the consumer of
// smartbackup's replication slot (pg_receivewal, Barman's receive-wal, a standby, …). The
// recognisers are pure; ReadSlotView reads what they need from a cluster in one round trip.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sb {

class PgConnection;

// The tool an archive_command runs ("pgBackRest", "Barman", "WAL-G", "WAL-E", "pg_probackup"), from
// the executables it names (any path, e.g. "envdir /etc/wal-g.d/env /usr/local/bin/wal-g wal-push %p")
// or Barman's rsync target ("rsync -a %p barman@backup:/var/lib/barman/pg/incoming/%f"). nullopt for
// anything else: smartbackup's own wal-push, cp/rsync log shipping, "" and "(disabled)".
std::optional<std::string> RecogniseArchiver(std::string_view archive_command);

// The tool behind a replication connection's application_name: "pg_receivewal" (its default name;
// also the older pg_receivexlog), "Barman" (barman_receive_wal), "pg_basebackup", "a standby's WAL
// receiver" (walreceiver, the default of a standby without cluster_name), "WAL-G", "pg_probackup".
// nullopt when unknown, empty, or smartbackup's own ("smartbackup…").
std::optional<std::string> RecogniseWalConsumer(std::string_view application_name);

// For messages: "archive_command belongs to pgBackRest: '<cmd>'" or "archive_command is '<cmd>'".
std::string DescribeForeignArchiveCommand(const std::string& archive_command);
// For messages: "pgBackRest (archive_command '<cmd>')" or "archive_command '<cmd>'".
std::string NameArchiveCommand(const std::string& archive_command);

// Another client streaming from smartbackup's slot.
struct SlotConsumer {
  int pid = 0;
  std::string application_name;
  std::string client_addr;  // "" when not shown (needs pg_read_all_stats) or a local socket
};
// "pg_receivewal (pid 123, from 10.0.0.5)", "Barman (application_name 'barman_receive_wal', pid 123)",
// "a client with application_name 'foo' (pid 123)".
std::string DescribeWalConsumer(const SlotConsumer& consumer);

// What one query shows about smartbackup's slot and a pending wal_level change.
struct SlotView {
  bool slot_exists = false;
  bool slot_active = false;
  // The client on the slot when it is not smartbackup: its application_name is neither the one this
  // connection has (the streamer connects with the same conninfo) nor "smartbackup…".
  std::optional<SlotConsumer> foreign_consumer;
  bool wal_level_change_pending = false;         // pg_settings.pending_restart (a reload has seen it)
  std::optional<std::string> pending_wal_level;  // from pg_file_settings: superusers only
  // WAL the slot keeps on the primary: pg_current_wal_lsn() - restart_lsn (unset on a standby or
  // for a slot without a restart LSN).
  std::optional<uint64_t> retained_bytes;
};
// Any role may run it (pg_file_settings is skipped when not readable).
Result<SlotView> ReadSlotView(PgConnection& conn, const std::string& slot);

}  // namespace sb
