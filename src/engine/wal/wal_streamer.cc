#include "engine/wal/wal_streamer.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>

#include "common/logging.h"
#include "engine/wal/wal_catalog.h"
#include "pg/connection.h"
#include "pg/wal_stream.h"

namespace sb {
namespace {

using std::chrono::milliseconds;

// The state of one streaming session on one timeline.
class StreamSession {
 public:
  StreamSession(Repository& repo, const WalStreamerOptions& o, ContainerInfo container, uint32_t timeline,
                uint64_t segment_size)
      : repo_(repo), o_(o), container_(std::move(container)), timeline_(timeline), segment_size_(segment_size) {}

  // Appends WAL received at `start`; bytes before `expected` were stored already.
  Status Append(Lsn start, std::string_view data) {
    if (start.value + data.size() <= next_.value) return Status::Ok();
    if (start < next_) {
      data.remove_prefix(next_.value - start.value);
      start = next_;
    }
    if (start != next_) {
      return Status::Internal(fmt::format("WAL from the server is not contiguous: expected {}, got {}",
                                          next_.ToString(), start.ToString()));
    }
    // A part never crosses a WAL segment boundary: the flush is cut there,
    // so every part lies in one segment (wal-get lists one segment's key
    // prefix; compaction merges per segment).
    while (!data.empty()) {
      const uint64_t take = std::min<uint64_t>(data.size(), BytesToSegmentEnd(next_, segment_size_));
      if (buffer_.empty()) buffer_since_ = repo_.clock()->SteadyNow();
      buffer_.append(data.substr(0, take));
      data.remove_prefix(take);
      next_ = Lsn{next_.value + take};
      if (buffer_.size() >= o_.part_max_bytes || BytesToSegmentEnd(next_, segment_size_) == segment_size_) {
        RETURN_IF_ERROR(Flush());
      }
    }
    return Status::Ok();
  }

  bool FlushDue() const {
    return !buffer_.empty() && repo_.clock()->SteadyNow() - buffer_since_ >= o_.flush_interval;
  }

  // Stores the buffered WAL as one part, then lets the slot move past it.
  Status Flush(WalStream* stream = nullptr) {
    if (buffer_.empty()) return Status::Ok();
    Lsn start{next_.value - buffer_.size()};
    const std::string key = Repository::WalPartKey(o_.database, container_.name, timeline_, start, next_);
    ASSIGN_OR_RETURN(EncodedObject enc, EncodeObject(buffer_, key, {.zstd_level = o_.zstd_level, .key = o_.key}));
    Status s = repo_.storage().Put(key, enc.bytes, {.if_absent = true});
    if (!s.ok() && !s.IsAlreadyExists()) return s.WithContext("cannot store WAL " + start.ToString() + ".." + next_.ToString());
    known_[key] = enc.sha256;
    if (unsealed_bytes_ == 0) unsealed_since_ = repo_.clock()->Now();
    unsealed_bytes_ += buffer_.size();
    buffer_.clear();
    if (stream_) RETURN_IF_ERROR(stream_->ReportDurable(next_));
    if (o_.on_durable) o_.on_durable(next_);
    return MaybeSeal(false);
  }

  Status MaybeSeal(bool force) {
    if (unsealed_bytes_ == 0 && !force) return Status::Ok();
    bool due = force || unsealed_bytes_ >= o_.thresholds.max_wal ||
               repo_.clock()->Now() - unsealed_since_ >= o_.thresholds.max_age;
    if (!due) return Status::Ok();
    ASSIGN_OR_RETURN(int n, SealLogBackups(repo_, o_.database, container_, segment_size_,
                                           o_.key, o_.thresholds, /*force=*/true, known_));
    (void)n;
    unsealed_bytes_ = 0;
    known_.clear();
    return Status::Ok();
  }

  void set_stream(WalStream* s) { stream_ = s; }
  void set_next(Lsn next) { next_ = next; }
  Lsn next() const { return next_; }

 private:
  Repository& repo_;
  const WalStreamerOptions& o_;
  const ContainerInfo container_;
  const uint32_t timeline_;
  const uint64_t segment_size_;
  WalStream* stream_ = nullptr;
  std::string buffer_;
  SteadyTime buffer_since_;
  Lsn next_;  // end of WAL received (and buffered or stored)
  uint64_t unsealed_bytes_ = 0;
  SystemTime unsealed_since_;
  KnownPartHashes known_;
};

void ReportBreak(const WalStreamerOptions& o, const ChainBreak& b) {
  log::Warn("log chain break in database \"{}\": {} (WAL {}..{} on timeline {} is missing); a full backup is needed",
            o.database, b.cause, b.start.ToString(), b.end.ToString(), b.timeline);
  if (o.on_chain_break) o.on_chain_break(b);
}

bool Stopped(const WalStreamerOptions& o) { return o.stop && o.stop->load(); }

// The server no longer has WAL we asked for (see ReplicationError in
// pg/wal_stream.cc). PostgreSQL reports this when the walsender first tries to
// read the removed segment, i.e. usually from Next() after START_REPLICATION
// has already succeeded, not from WalStream::Start.
bool IsWalRemoved(const Status& s) {
  return s.detail() == StatusDetail::kWalRemoved;
}

}  // namespace

uint64_t BytesToSegmentEnd(Lsn at, uint64_t segment_size) { return segment_size - at.value % segment_size; }

std::string DefaultSlotName(const std::string& database) {
  std::string name = "smartbackup_";
  for (char c : database) {
    name.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_');
  }
  return name.substr(0, 63);
}

Status RunWalStreamer(Repository& repo, const WalStreamerOptions& o) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(o.database));
  const std::string slot = o.slot.empty() ? DefaultSlotName(o.database) : o.slot;
  while (!Stopped(o)) {
    ServerInfo info;
    {
      ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(o.conninfo, false));
      ASSIGN_OR_RETURN(info, ReadServerInfo(*conn));
    }
    if (info.wal_level == "minimal") {
      return Status::FailedPrecondition(
          "cannot stream WAL: wal_level is minimal; hint: set wal_level = replica and restart PostgreSQL");
    }
    ASSIGN_OR_RETURN(auto repl, PgConnection::Connect(o.conninfo, true));
    ASSIGN_OR_RETURN(SystemIdentity id, IdentifySystem(*repl));
    const uint32_t tli = id.timeline;
    ASSIGN_OR_RETURN(ContainerInfo container,
                     repo.EnsureContainer(o.database, id.system_identifier, tli,
                                          tli > 1 ? "timeline switch" : "first WAL (stream mode)"));
    std::optional<TimelineSwitch> branch;
    if (tli > 1) {
      ASSIGN_OR_RETURN(TimelineHistoryFile history, FetchTimelineHistory(*repl, tli));
      const std::string key = Repository::HistoryKey(o.database, container.name, tli);
      ASSIGN_OR_RETURN(EncodedObject enc, EncodeObject(history.content, key, {.zstd_level = o.zstd_level}));
      Status s = repo.storage().Put(key, enc.bytes, {.if_absent = true});
      if (!s.ok() && !s.IsAlreadyExists()) return s;
      branch = ParseTimelineHistory(history.content);
    }

    // Where the repository's WAL on this timeline ends.
    ASSIGN_OR_RETURN(auto parts, repo.ListWalParts(o.database, container.name));
    Lsn stored_end;
    for (const auto& p : parts) {
      if (p.timeline == tli) stored_end = std::max(stored_end, p.end);
    }

    ASSIGN_OR_RETURN(SlotInfo slot_info, ReadReplicationSlot(*repl, slot));
    Lsn slot_lsn;
    bool slot_created = false;
    if (!slot_info.exists || !slot_info.restart_lsn) {
      if (slot_info.exists) (void)DropSlot(*repl, slot);
      ASSIGN_OR_RETURN(slot_lsn, CreatePhysicalSlot(*repl, slot));
      slot_created = true;
      log::Info("created replication slot \"{}\" at {}", slot, slot_lsn.ToString());
    } else {
      slot_lsn = *slot_info.restart_lsn;
    }

    Lsn want = slot_lsn;
    if (stored_end.value > 0) {
      want = stored_end;
    } else if (branch && branch->switch_point < slot_lsn) {
      want = branch->switch_point;  // a new timeline: from where it branched
    } else if (branch && want < branch->switch_point) {
      // A slot made right after a promotion reserves from the last restartpoint, which may lie in
      // a segment of the previous timeline: this timeline has no file for it ("already removed").
      // The WAL before the switch belongs to the previous timeline's container.
      want = branch->switch_point;
    }
    if (stored_end.value > 0 && slot_lsn > stored_end && !slot_created) {  // NOLINT
      log::Warn("replication slot \"{}\" was advanced to {} by another consumer while smartbackup had WAL up to {}",
                slot, slot_lsn.ToString(), stored_end.ToString());
    }
    const uint64_t seg = info.wal_segment_size;
    const std::string break_cause =
        slot_created ? "replication slot lost" : "WAL removed before smartbackup received it";
    const ChainBreakKind break_kind = slot_created ? ChainBreakKind::kSlotLost : ChainBreakKind::kWalRemoved;
    auto stream = WalStream::Start(o.conninfo, slot, Lsn{want.value - want.value % seg}, tli);
    // Only a removed-WAL error is a chain break (fix: any failure used to be
    // taken for one, e.g. a slot still held by another walsender).
    if (!stream.ok() && want < slot_lsn && IsWalRemoved(stream.status())) {
      // The WAL we still need is gone from the server: the chain breaks here.
      ReportBreak(o, {.kind = break_kind, .cause = break_cause, .timeline = tli, .start = want, .end = slot_lsn});
      want = slot_lsn;
      stream = WalStream::Start(o.conninfo, slot, Lsn{want.value - want.value % seg}, tli);
    }
    if (!stream.ok()) return stream.status().WithContext(fmt::format("cannot stream WAL of database \"{}\"", o.database));
    // Whether the WAL since stored_end is still on the server is known only
    // once the server sends some of it (fix: this used to be claimed as soon
    // as START_REPLICATION succeeded, before the removed-WAL error arrived).
    bool note_intact_on_data = slot_created && stored_end.value > 0 && want == stored_end;

    StreamSession session(repo, o, container, tli, seg);
    session.set_next(want);
    session.set_stream(stream->get());
    RETURN_IF_ERROR(session.MaybeSeal(false));
    log::Info("streaming WAL of \"{}\" from {} on timeline {} into {}", o.database, want.ToString(), tli,
              repo.storage().Describe());
    if (o.on_streaming) o.on_streaming();

    bool reconnect = false;
    while (!reconnect) {
      if (Stopped(o)) return session.Flush();
      auto event = (*stream)->Next(std::min<milliseconds>(o.flush_interval, milliseconds(500)));
      if (!event.ok()) {
        (void)session.Flush();
        // Fix: the server reports removed WAL when it first tries to send it,
        // so it arrives here rather than from WalStream::Start. Everything
        // from slot_lsn on is held by our slot; WAL missing below it is a
        // chain break: record it and go on from the slot's position, as the
        // Start path above does (this used to end `stream` with an error and
        // no break recorded, so the chain could never continue).
        if (IsWalRemoved(event.status()) && session.next() < slot_lsn) {
          ReportBreak(o, {.kind = break_kind, .cause = break_cause, .timeline = tli, .start = session.next(), .end = slot_lsn});
          note_intact_on_data = false;
          stream = WalStream::Start(o.conninfo, slot, Lsn{slot_lsn.value - slot_lsn.value % seg}, tli);
          if (!stream.ok()) {
            return stream.status().WithContext(fmt::format("cannot stream WAL of database \"{}\"", o.database));
          }
          session.set_next(slot_lsn);
          session.set_stream(stream->get());
          continue;
        }
        return event.status().WithContext(fmt::format("WAL streaming of database \"{}\" stopped", o.database));
      }
      switch (event->kind) {
        case WalEvent::Kind::kData:
          if (note_intact_on_data) {
            log::Warn("replication slot \"{}\" was missing and has been created again; the WAL since {} was still on "
                      "the server, so the log chain is intact",
                      slot, stored_end.ToString());
            note_intact_on_data = false;
          }
          RETURN_IF_ERROR(session.Append(event->start, event->data));
          if (session.FlushDue()) RETURN_IF_ERROR(session.Flush());
          break;
        case WalEvent::Kind::kTimeout:
          if (session.FlushDue()) RETURN_IF_ERROR(session.Flush());
          RETURN_IF_ERROR(session.MaybeSeal(false));
          break;
        case WalEvent::Kind::kTimelineEnd:
          RETURN_IF_ERROR(session.Flush());
          RETURN_IF_ERROR(session.MaybeSeal(true));
          log::Warn("timeline {} of database \"{}\" ended at {}; timeline {} begins (promotion): a new container starts",
                    tli, o.database, event->next_start.ToString(), event->next_timeline);
          if (o.on_chain_break) {
            o.on_chain_break({.kind = ChainBreakKind::kTimelineSwitch, .cause = "timeline switch", .timeline = event->next_timeline,
                              .start = event->next_start, .end = event->next_start});
          }
          reconnect = true;
          break;
        case WalEvent::Kind::kCancelled:
          return session.Flush();
      }
    }
  }
  return Status::Ok();
}

}  // namespace sb
