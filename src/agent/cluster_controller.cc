#include "agent/cluster_controller.h"

#include <fmt/core.h>

#include "agent/competing_tools.h"
#include "agent/drill_runner.h"
#include "common/logging.h"
#include "engine/wal/wal_archive.h"

namespace sb {

using Action = Decision::Action;

ClusterController::ClusterController(const AgentContext& ctx, ServerProbe& probe, ClusterActions& actions,
                                     PeerMonitor* peers)
    : ctx_(ctx), actions_(actions), peers_(peers), slots_(ctx, probe), observer_(ctx, probe, slots_), names_(ctx) {}

void ClusterController::Step(Cluster& c, bool master_on) {
  if (c.dropped) {
    if (actions_.CaptureRunning(c)) actions_.StopCapture(c);
    std::lock_guard lock(c.mu);
    c.observed = true;
    return;
  }
  Plan p = Decide(c, master_on);
  Act(c, p);
}

ClusterController::Plan ClusterController::Decide(Cluster& c, bool master_on) {
  Plan p;
  p.settings = ctx_.Resolve(c.name);
  const ClusterSettings& s = p.settings;
  p.observation = observer_.Observe(c, s, master_on);
  const ClusterObservation& o = p.observation;
  if (peers_) peers_->Check(c, s, o);
  names_.Check(c, s, o);
  // Capture keeps trying while the storage fails: it stops on its own error and says so.
  p.capture = master_on && s.enabled && o.reachable && !o.in_recovery && o.wal_level != "minimal" &&
              s.mode == WalMode::kStream;
  DrillRunner(ctx_).Observe(c, s, p.observation);
  p.observation.drill_running = actions_.DrillsRunning() > 0;
  p.full = DecideFull(o, s);
  p.log = DecideLog(o, s);
  p.drill = DecideDrill(o, s);
  ApplyRefusals(c, p);
  // A new timeline or system identifier gets its own container anyway; only a return from
  // wal_level=minimal reuses (sysid, timeline) and must force a new one.
  p.force_new_container = o.new_container && o.new_container_kind == NewContainerCause::kBackFromMinimal;
  p.capture_stopped_why = !master_on                        ? "the master switch is off"
                          : p.refusal != Refusal::kNone     ? "the cluster is refused"
                                                            : "WAL capture is stopped";
  return p;
}

// Coexistence rules that stop a reachable, enabled cluster: the "hybrid" availability group (rule
// 1, sticky until the storage changes), a name another cluster holds, a foreign archive_command in
// archive mode (rule 4), another agent capturing the WAL (rule 1).
void ClusterController::ApplyRefusals(Cluster& c, Plan& p) {
  const ClusterSettings& s = p.settings;
  const ClusterObservation& o = p.observation;
  bool stream_backoff = false, minimal_pending = false;
  std::string archive_command, archive_mode;
  {
    std::lock_guard lock(c.mu);
    if (!s.enabled || c.hybrid_url != s.storage_url) c.hybrid.clear();
    if (o.reachable && !c.hybrid.empty()) {
      p.refusal = Refusal::kHybrid;
      p.refusal_text = c.hybrid;
    } else if (o.reachable && !c.name_refusal.empty()) {
      p.refusal = Refusal::kNameClaimed;
      p.refusal_text = c.name_refusal;
    }
    stream_backoff = c.stream_backoff;
    minimal_pending = c.minimal_pending;
    archive_command = c.archive_command;
    archive_mode = c.archive_mode;
  }
  const bool may_capture = p.settings.enabled && o.reachable && !o.in_recovery && o.wal_level != "minimal" &&
                           o.master_switch_on;
  if (may_capture && s.mode == WalMode::kArchive && !IsSmartbackupArchiveCommand(archive_command)) {
    const std::string problem = fmt::format(
        "archive mode refused: {}, not smartbackup wal-push (log shipping or another tool owns the WAL)",
        DescribeForeignArchiveCommand(archive_command));
    p.full = p.log = {.action = Action::kSkip, .reason = problem};
  } else if (may_capture && s.mode == WalMode::kArchive && archive_mode == "off") {
    // PostgreSQL runs no archive_command at all: no WAL would reach the repository.
    p.full = p.log = {.action = Action::kSkip,
                      .reason = "archive mode refused: archive_mode is off, so PostgreSQL archives no WAL; hint: set "
                                "archive_mode = on and restart PostgreSQL, or use mode = stream"};
  }
  if (p.refusal != Refusal::kNone) {
    p.full = p.log = p.drill = {.action = Action::kSkip, .reason = p.refusal_text};
    p.capture = false;
  }
  if (stream_backoff && s.mode == WalMode::kStream && p.log.action == Action::kLog) {
    // Another agent holds the stream lease: it captures and seals this cluster's WAL.
    p.log = {.action = Action::kNone, .reason = "another smartbackup agent captures this cluster's WAL"};
  }
  // wal_level = minimal pending a restart: the slot must be dropped first (SlotWatch), so no capture.
  if (minimal_pending) p.capture = false;
}

void ClusterController::Act(Cluster& c, Plan& p) {
  const ClusterSettings& s = p.settings;
  const bool full_starts = p.full.action == Action::kFull && actions_.FullsRunning() < ctx_.config.max_parallel_fulls;
  // Back from wal_level=minimal the new container is made here, before the full starts, and WAL
  // capture is restarted so that it writes into it too. (Concurrent writers asking for the same
  // container get one container: Repository::EnsureContainer handles that race.)
  if (full_starts && p.force_new_container && actions_.PrepareNewContainer(c, s, p.full.reason)) {
    p.force_new_container = false;  // made above: the full must not make yet another
    if (actions_.CaptureRunning(c)) actions_.StopCapture(c);
  }
  if (p.capture) {
    actions_.EnsureCapture(c, s);
  } else {
    if (actions_.CaptureRunning(c)) actions_.StopCapture(c);
    ClearFault(c, Activity::kCapture);  // no capture is expected: nothing of it can fail
  }
  if (!s.enabled) {  // no backups are expected either: a job's failure from before is over
    ClearFault(c, Activity::kFullBackup);
    ClearFault(c, Activity::kLogBackup);
  }
  slots_.HandleIdle(c, s, p.observation, p.capture, p.capture_stopped_why);
  const bool queued = p.full.action == Action::kFull && !full_starts;
  Publish(c, p, queued);
  Stepped(c, p);
  if (p.full.action == Action::kFull && full_starts) {
    if (p.observation.chain_broken) ctx_.Event(c.name, HealthCategory::kChainBreak, p.full.reason);
    log::Info("[{}] {}", c.name, p.full.reason);
    actions_.StartFull(c, s, p.full, p.force_new_container);
  } else if (p.log.action == Action::kLog) {  // also while the full is queued: a log may overlap a full
    log::Info("[{}] {}", c.name, p.log.reason);
    actions_.StartLog(c, s, p.log);
  } else if (p.drill.action == Action::kDrill && p.full.action != Action::kFull && actions_.DrillsRunning() == 0) {
    // Drills yield to backups: none starts in a pass that starts or queues a backup.
    log::Info("[{}] restore drill: {}", c.name, p.drill.reason);
    actions_.StartDrill(c, s, p.drill);
  }
}

void ClusterController::Publish(Cluster& c, const Plan& p, bool queued) {
  std::lock_guard lock(c.mu);
  c.settings = p.settings;
  c.observation = p.observation;
  c.full_decision = p.full;
  c.log_decision = p.log;
  c.drill_decision = p.drill;
  c.refusal = p.refusal;
  c.refusal_text = p.refusal_text;
  c.full_queued = queued;
  c.observed = true;
}

// The unreachable server is an event each loop while managed backup should run.
void ClusterController::Stepped(Cluster& c, const Plan& p) {
  const ClusterObservation& o = p.observation;
  if (o.reachable || !p.settings.enabled || !o.master_switch_on) return;
  FailingPart part = FailingPart::kServer;
  {
    std::lock_guard lock(c.mu);
    if (auto it = c.faults.find(Activity::kObserve); it != c.faults.end()) part = it->second.part;
  }
  ctx_.Event(c.name, part == FailingPart::kCredentials ? HealthCategory::kCredentialError : HealthCategory::kPostgresError,
             "cluster unreachable: " + o.unreachable_error);
}

}  // namespace sb
