#include "agent/wal_capture.h"

#include <fmt/core.h>

#include "storage/held_lease.h"

namespace sb {

void WalCapture::Stop(Cluster& c) {
  c.stream_stop = true;
  if (c.stream_thread.joinable()) c.stream_thread.join();
  c.stream_stop = false;
}

void WalCapture::Ensure(Cluster& c, const ClusterSettings& s) {
  if (c.stream_running && c.stream_url == s.storage_url) {
    EndFaultIfHealthy(c, 3 * s.flush_interval);
    return;
  }
  if (c.stream_running) Stop(c);  // the storage changed
  if (c.stream_thread.joinable()) c.stream_thread.join();
  c.stream_running = true;
  c.stream_url = s.storage_url;
  {
    std::lock_guard lock(c.mu);
    c.streamed_here = true;
  }
  c.stream_thread = std::thread([this, &c, s] {
    Stopped(c, Capture(c, s));
    c.stream_running = false;
  });
}

Status WalCapture::Capture(Cluster& c, const ClusterSettings& s) {
  ASSIGN_OR_RETURN(auto repo, ctx_.OpenRepo(s.storage_url));
  auto lease = HeldLease::Acquire(repo->storage(), fmt::format("db/{}/locks/stream", c.name), ctx_.AgentLease());
  const bool backoff = !lease.ok() && lease.status().code() == StatusCode::kAlreadyExists;
  {
    std::lock_guard lock(c.mu);
    c.stream_backoff = backoff;
  }
  if (backoff) {
    // Another agent captures this cluster's WAL: said once, retried every loop.
    runner_.NoteBackOff(c, BackupRunner::BackOff(c.name, lease.status()).message(), /*stream=*/true);
    return Status::Ok();
  }
  RETURN_IF_ERROR(lease.status());
  Status key_error;
  std::optional<EncryptionKey> key = LoadWriteKey(s, repo->storage(), &key_error);  // under the lease
  RETURN_IF_ERROR(key_error);
  runner_.ClearBackOff(c, /*stream=*/true);
  Status result = RunWalStreamer(
      *repo, {.conninfo = c.conninfo,
              .database = c.name,
              .key = key ? &*key : nullptr,
              .flush_interval = s.flush_interval,
              .thresholds = {.max_wal = s.log_max_wal, .max_age = s.log_max_age},
              .stop = &c.stream_stop,
              .on_chain_break = [this, &c](const ChainBreak& b) { OnChainBreak(c, b); },
              .on_durable =
                  [this, &c](Lsn) {
                    {
                      std::lock_guard lock(c.mu);
                      c.recovery_point = ctx_.clock->Now();
                      c.writer_note.clear();  // this agent writes the chain
                    }
                    ClearFault(c, Activity::kCapture);
                  },
              .on_streaming =
                  [this, &c] {
                    std::lock_guard lock(c.mu);
                    c.stream_started = ctx_.clock->SteadyNow();
                  }});
  lease->reset();
  return result;
}

void WalCapture::OnChainBreak(Cluster& c, const ChainBreak& b) {
  if (b.kind == ChainBreakKind::kTimelineSwitch) return;  // a new container, not a break
  std::string taken;  // rule 8: the tool, by name
  {
    std::lock_guard lock(c.mu);
    if (!c.wal_taker.empty()) taken = ", taken by " + c.wal_taker;
    c.pending_break = b;
  }
  ctx_.Event(c.name, HealthCategory::kChainBreak,
             fmt::format("log chain break: {} (WAL {}..{} on timeline {}){}; a full backup is scheduled at once",
                         b.cause, b.start.ToString(), b.end.ToString(), b.timeline, taken));
}

void WalCapture::Stopped(Cluster& c, const Status& result) {
  {
    std::lock_guard lock(c.mu);
    c.stream_started = SteadyTime{};
  }
  if (result.ok()) return;
  std::string who;  // rule 8: the slot's other client, by name
  {
    std::lock_guard lock(c.mu);
    if (!c.slot_consumer.empty() && result.detail() == StatusDetail::kSlotInUse) who = "; it is " + c.slot_consumer;
  }
  const std::string message = "WAL streaming stopped: " + result.message() + who;
  ctx_.Event(c.name, CategoryOf(result, HealthCategory::kPostgresError), message);
  NoteFault(c, Activity::kCapture, PartOf(result, FailingPart::kCapture), message, ctx_.clock->Now());
}

void WalCapture::EndFaultIfHealthy(Cluster& c, std::chrono::milliseconds healthy_after) {
  bool healthy = false;
  {
    std::lock_guard lock(c.mu);
    healthy = c.stream_running && c.stream_started != SteadyTime{} &&
              ctx_.clock->SteadyNow() - c.stream_started >= healthy_after;
  }
  if (healthy) ClearFault(c, Activity::kCapture);
}

}  // namespace sb
