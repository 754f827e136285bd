#include "agent/slot_watch.h"

#include <fmt/core.h>

#include "common/logging.h"
#include "common/text.h"
#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_streamer.h"

namespace sb {

// The warning about wal_level changing at the next restart, "" when none; *pending: to minimal.
std::string SlotWatch::MinimalNote(const ClusterSettings& s, const SlotView& view, const ServerInfo& info,
                                   const std::string& slot, bool* pending) {
  *pending = false;
  if (!view.wal_level_change_pending || info.wal_level == "minimal") return "";
  const std::string drop = fmt::format("SELECT pg_drop_replication_slot('{}')", slot);
  const std::string stopped = s.enabled && s.mode == WalMode::kStream ? "WAL capture stopped; " : "";
  if (view.pending_wal_level == "minimal") {
    *pending = true;
    if (view.slot_exists) {
      return fmt::format(
          "wal_level = minimal is pending a restart: {}PostgreSQL 15 does not start with wal_level = minimal while "
          "a physical replication slot exists: drop smartbackup's before the restart: {}",
          stopped, drop);
    }
    if (s.mode == WalMode::kStream) {
      return fmt::format("wal_level = minimal is pending a restart: {}replication slot {} is dropped: ready for "
                         "the restart (scheduling stops under minimal)",
                         stopped, slot);
    }
    return "";
  }
  if (!view.pending_wal_level && view.slot_exists) {
    return fmt::format(
        "wal_level changes at the next restart (only a superuser can read to what): if to minimal, PostgreSQL 15 "
        "will not start while replication slot {} exists: disable managed backup of this cluster, then {} before "
        "the restart",
        slot, drop);
  }
  return "";
}

void SlotWatch::Watch(Cluster& c, const ClusterSettings& s, ServerSession& session, const ServerInfo& info) {
  const std::string slot = DefaultSlotName(c.name);
  auto view = session.Slot(slot);
  if (!view.ok()) {
    log::Debug("[{}] cannot read replication slot {}: {}", c.name, slot, view.status().message());
    return;
  }
  std::string consumer, consumer_warning;
  if (s.enabled && view->foreign_consumer) {
    consumer = DescribeWalConsumer(*view->foreign_consumer) + " on replication slot " + slot;
    consumer_warning = fmt::format(
        "replication slot {} is consumed by {}, not smartbackup: the WAL it receives is lost to the log chain (a "
        "chain break, then a full backup, follow); hint: give that tool its own replication slot",
        slot, DescribeWalConsumer(*view->foreign_consumer));
  }
  bool minimal_pending = false;
  const std::string minimal = MinimalNote(s, *view, info, slot, &minimal_pending);
  const bool foreign_archiver = s.mode == WalMode::kArchive && info.archive_mode != "off" && !info.archive_command.empty() &&
                                !IsSmartbackupArchiveCommand(info.archive_command);
  bool warn_consumer = false, warn_minimal = false;
  {
    std::lock_guard lock(c.mu);
    c.slot_exists = view->slot_exists;
    c.slot_active = view->slot_active;
    c.slot_retained = view->retained_bytes;
    if (!consumer.empty()) {
      c.wal_taker = consumer;
    } else if (foreign_archiver) {
      c.wal_taker = NameArchiveCommand(info.archive_command);
    }
    warn_consumer = !consumer.empty() && consumer != c.slot_consumer;
    c.slot_consumer = consumer;
    warn_minimal = !minimal.empty() && minimal != c.minimal_note;
    c.minimal_note = minimal;
    c.minimal_pending = minimal_pending;
    c.slot_note = consumer_warning.empty() ? minimal
                  : minimal.empty()        ? "warning: " + consumer_warning
                                           : "warning: " + consumer_warning + "; " + minimal;
  }
  if (warn_consumer) ctx_.Event(c.name, HealthCategory::kWarning, consumer_warning);
  if (warn_minimal) ctx_.Event(c.name, HealthCategory::kWarning, minimal);
}

void SlotWatch::HandleIdle(Cluster& c, const ClusterSettings& s, const ClusterObservation& o, bool reading,
                           const std::string& why_stopped) {
  bool exists = false, active = false, minimal = false, ours = false;
  std::optional<uint64_t> retained;
  {
    std::lock_guard lock(c.mu);
    ours = c.streamed_here;
    exists = c.slot_exists;
    active = c.slot_active;
    retained = c.slot_retained;
    minimal = c.minimal_pending;  // Watch's note already gives the SQL for that case
  }
  const std::string slot = DefaultSlotName(c.name);
  const std::string drop = fmt::format("SELECT pg_drop_replication_slot('{}');", slot);
  std::string note, event;
  if (o.reachable && !o.in_recovery && exists && !active && !reading && !minimal) {
    const std::string bytes =
        retained ? fmt::format("{} ({} bytes)", FormatByteSize(*retained), *retained) : std::string("unknown");
    const bool for_good = !s.enabled || s.mode == WalMode::kArchive;
    const std::string why = !s.enabled            ? "managed backup is disabled"
                            : s.mode == WalMode::kArchive ? "the cluster is in archive mode"
                                                  : why_stopped;
    Status dropped = !for_good ? Status::Ok()
                     : ours    ? probe_.DropSlot(c.conninfo, slot)
                               : Status::FailedPrecondition(
                                  "this agent has not streamed through it since it started (it may be a "
                                  "smartbackup stream run by hand)");
    if (for_good && dropped.ok()) {
      ctx_.Event(c.name, HealthCategory::kWarning,
                 fmt::format("dropped replication slot {}: smartbackup no longer reads it ({}); it retained {} of WAL "
                             "on the primary",
                             slot, why, bytes));
      std::lock_guard lock(c.mu);
      c.slot_exists = false;
      c.slot_retained.reset();
      c.idle_slot_note.clear();
      c.idle_slot_reported.clear();
      c.idle_slot_drop_sql.clear();
      return;
    }
    note = for_good ? fmt::format(
                          "warning: replication slot {} is no longer read by smartbackup ({}) and retains {} of WAL "
                          "on the primary; not dropped: {}; hint: if nothing else uses it, drop it as a superuser: {}",
                          slot, why, bytes, dropped.message(), drop)
                    : fmt::format(
                          "warning: replication slot {} is not read while {} and retains {} of WAL on the primary "
                          "(it fills the primary's disk if capture stays off); hint: resume capture, or disable "
                          "managed backup (the agent then drops it), or drop it: {}",
                          slot, why, bytes, drop);
    event = slot + ": " + why + (for_good ? ": drop failed" : "");  // once per cause, not per byte count
  }
  bool report = false;
  {
    std::lock_guard lock(c.mu);
    c.idle_slot_note = note;
    c.idle_slot_drop_sql = note.empty() ? "" : drop;
    report = !event.empty() && event != c.idle_slot_reported;
    c.idle_slot_reported = event;
  }
  if (report) ctx_.Event(c.name, HealthCategory::kWarning, note);
}

}  // namespace sb
