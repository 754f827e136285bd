#include "agent/status_view.h"

#include <fmt/core.h>

#include "agent/competing_tools.h"
#include "agent/drill_runner.h"
#include "engine/drill/drill_history.h"
#include "common/text.h"
#include "engine/wal/wal_streamer.h"

namespace sb {
namespace {

using nlohmann::json;

const char* ActionName(const Decision& d) {
  switch (d.action) {
    case Decision::Action::kFull: return "full";
    case Decision::Action::kLog: return "log";
    case Decision::Action::kSkip: return "skip";
    case Decision::Action::kDrill: return "drill";
    case Decision::Action::kNone: return "none";
  }
  return "none";
}

// The fault status names first: the server and credentials before storage before capture.
const Fault* FirstFault(const Cluster& c) {
  const Fault* first = nullptr;
  for (const auto& [_, f] : c.faults) {
    if (!first || static_cast<int>(f.part) < static_cast<int>(first->part)) first = &f;
  }
  return first;
}

std::string FaultLine(const Fault& f) {
  return fmt::format("error: {} failing since {}: {}", FailingPartName(f.part), FormatRfc3339(f.since), f.error);
}

// The clauses that follow a reachable cluster's headline: availability group, coexistence with
// another archiver (rule 4), the slot's consumers and wal_level (rules 7, 8), an idle slot.
std::string Clauses(const Cluster& c, bool with_ha) {
  std::string out;
  if (with_ha && !c.ha_note.empty()) out += "; " + c.ha_note;
  if (with_ha && c.settings.mode == WalMode::kStream && !c.foreign_archive_command.empty()) {
    out += fmt::format("; stream mode: coexists with {} through its own replication slot {}",
                       NameArchiveCommand(c.foreign_archive_command), DefaultSlotName(c.name));
  }
  if (!c.slot_note.empty()) out += "; " + c.slot_note;
  return out;
}

}  // namespace

ClusterHeadline Headline(const Cluster& c) {
  const ClusterObservation& o = c.observation;
  ClusterHeadline h;
  if (c.dropped) return {Condition::kDropped, "dropped: no more backups; backups kept until retention has elapsed"};
  if (!c.observed) return {Condition::kNotObserved, "not yet observed"};
  const std::string& refusal_text = c.refusal_text;
  const bool queued = c.full_queued;
  const std::string idle = c.idle_slot_note.empty() ? "" : "; " + c.idle_slot_note;
  if (!o.reachable) {
    h = {Condition::kFailing, "error: " + o.unreachable_error};
    h.text += idle;
    return h;
  }
  const Fault* fault = FirstFault(c);
  if (queued) {
    h = {Condition::kQueued, "queued: " + c.full_decision.reason + " (max_parallel_fulls reached)"};
  } else if (!refusal_text.empty()) {
    h = {Condition::kRefused, "refused: " + refusal_text + Clauses(c, false)};
  } else if (fault) {
    h = {Condition::kFailing, FaultLine(*fault) + Clauses(c, true)};
  } else if (c.full_decision.action == Decision::Action::kSkip) {
    h = {Condition::kSkipped, "skipped: " + c.full_decision.reason};
    if (o.in_recovery && !c.ha_note.empty()) h.text += "; " + c.ha_note;
    if (!c.settings.enabled && c.found_while_defaults_off) {
      h.text += " (found while instance defaults were disabled: they were not applied)";
    }
    h.text += Clauses(c, false);
  } else if (c.stream_backoff && !c.stream_note.empty()) {
    h = {Condition::kBackingOff, c.stream_note + Clauses(c, true)};
  } else if (!c.writer_note.empty()) {
    h = {Condition::kBackingOff, c.writer_note + Clauses(c, true)};
  } else {
    h = {Condition::kOk, "ok" + Clauses(c, true)};
  }
  h.text += idle;
  return h;
}

json SettingsJson(const ClusterSettings& s) {
  json j = json::object();
  for (const auto& [k, v] : ToPartial(s)) j[k] = v;
  return j;
}

json StatusJson(Cluster& c, Clock& clock) {
  std::lock_guard lock(c.mu);
  const ClusterObservation& o = c.observation;
  const ClusterHeadline headline = Headline(c);
  auto time_or_null = [](const std::optional<SystemTime>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); };
  json j = {{"database", c.name},
            {"enabled", c.settings.enabled},
            {"dropped", c.dropped.load()},
            {"mode", WalModeName(c.settings.mode)},
            {"storage_url", c.settings.storage_url},
            {"state", headline.text},
            {"condition", ConditionName(headline.condition)},
            {"role", !o.reachable ? "unreachable" : o.in_recovery ? "standby" : "primary"},
            {"wal_level", o.wal_level},
            {"streaming", c.stream_running.load()},
            {"system_identifier", std::to_string(c.system_identifier)},
            {"timeline", c.timeline},
            {"last_full", time_or_null(c.newest_full ? c.newest_full : o.last_full_finish)},
            {"last_log", time_or_null(c.newest_log ? c.newest_log : o.last_log_finish)},
            {"chain_broken", o.chain_broken},
            {"running", json::array()},
            {"faults", json::array()},
            {"next_full", {{"action", ActionName(c.full_decision)}, {"reason", c.full_decision.reason}}},
            {"next_log", {{"action", ActionName(c.log_decision)}, {"reason", c.log_decision.reason}}}};
  for (const auto& [activity, f] : c.faults) {
    j["faults"].push_back({{"activity", ActivityName(activity)},
                           {"part", FailingPartName(f.part)},
                           {"error", f.error},
                           {"since", FormatRfc3339(f.since)},
                           {"last", FormatRfc3339(f.last)}});
  }
  if (const Fault* f = FirstFault(c)) j["failing_part"] = FailingPartName(f->part);
  if (c.slot_exists) {
    j["slot"] = {{"name", DefaultSlotName(c.name)},
                 {"active", c.slot_active},
                 {"retained_bytes", c.slot_retained ? json(*c.slot_retained) : json(nullptr)},
                 {"idle", !c.idle_slot_note.empty()}};
    if (!c.idle_slot_note.empty()) {
      j["slot"]["warning"] = c.idle_slot_note;
      j["slot"]["drop_sql"] = c.idle_slot_drop_sql;
    }
  }
  if (c.full_decision.next_due) j["next_full"]["due"] = FormatRfc3339(*c.full_decision.next_due);
  if (c.log_decision.next_due) j["next_log"]["due"] = FormatRfc3339(*c.log_decision.next_due);
  if (!c.running_full.empty()) j["running"].push_back(c.running_full);
  if (!c.running_log.empty()) j["running"].push_back(c.running_log);
  if (!c.running_drill.empty()) j["running"].push_back(c.running_drill);
  // Restore drills: the next decision, the last drill and what drills proved.
  j["next_drill"] = {{"action", ActionName(c.drill_decision)}, {"reason", c.drill_decision.reason}};
  if (c.drill_decision.next_due) j["next_drill"]["due"] = FormatRfc3339(*c.drill_decision.next_due);
  j["last_drill"] = nullptr;
  if (auto last = LastDrill(c.drills)) j["last_drill"] = DrillRecordJson(*last);
  j["verified_window"] = nullptr;
  if (auto w = VerifiedWindowOf(c.drills)) {
    j["verified_window"] = {{"start_lsn", w->start_lsn.ToString()},
                            {"end_lsn", w->end_lsn.ToString()},
                            {"start", w->start_time ? json(FormatRfc3339(*w->start_time)) : json(nullptr)},
                            {"end", w->end_time ? json(FormatRfc3339(*w->end_time)) : json(nullptr)},
                            {"drills", w->drills}};
  }
  if (c.recovery_point) {
    j["recovery_point_age_seconds"] =
        std::chrono::duration_cast<std::chrono::seconds>(clock.Now() - *c.recovery_point).count();
  }
  if (c.window) {
    j["restore_window"] = {{"start", FormatRfc3339(c.window->start_time)},
                           {"end", FormatRfc3339(c.window->end_time)},
                           {"start_lsn", c.window->start_lsn.ToString()},
                           {"end_lsn", c.window->end_lsn.ToString()}};
  }
  // Every window, oldest first: a target time in an older one is restorable too.
  j["restore_windows"] = json::array();
  for (const auto& w : c.windows) {
    j["restore_windows"].push_back({{"base_backup_id", w.base_backup_id},
                                    {"start", FormatRfc3339(w.start_time)},
                                    {"end", FormatRfc3339(w.end_time)},
                                    {"start_lsn", w.start_lsn.ToString()},
                                    {"end_lsn", w.end_lsn.ToString()}});
  }
  return j;
}

json HealthJson(const AgentContext& ctx, SystemTime since, const std::vector<Cluster*>& clusters) {
  const SystemTime now = ctx.clock->Now();
  json counts = json::object();
  for (auto c : {HealthCategory::kStorageError, HealthCategory::kPostgresError, HealthCategory::kCredentialError,
                 HealthCategory::kOtherError, HealthCategory::kCorruptedBackup, HealthCategory::kDeletedBackup,
                 HealthCategory::kBackupLoop, HealthCategory::kRetentionLoop, HealthCategory::kChainBreak,
                 HealthCategory::kWarning, HealthCategory::kDrill, HealthCategory::kDrillFailed}) {
    counts[HealthCategoryName(c)] = 0;
  }
  json recent = json::array();
  if (auto events = ctx.store->HealthEvents(since, now); events.ok()) {
    for (const auto& e : *events) {
      counts[HealthCategoryName(e.category)] = counts[HealthCategoryName(e.category)].get<int>() + 1;
      if (e.category != HealthCategory::kBackupLoop && e.category != HealthCategory::kRetentionLoop) {
        recent.push_back({{"at", FormatRfc3339(e.at)}, {"database", e.cluster},
                          {"category", HealthCategoryName(e.category)}, {"message", e.message}});
      }
    }
  }
  // Zero loops in 30 minutes means the agent is stuck.
  int backup_loops = 0, retention_loops = 0;
  if (auto loops = ctx.store->HealthEvents(now - std::chrono::minutes(30), now); loops.ok()) {
    for (const auto& e : *loops) {
      backup_loops += e.category == HealthCategory::kBackupLoop;
      retention_loops += e.category == HealthCategory::kRetentionLoop;
    }
  }
  json statuses = json::array();
  for (Cluster* c : clusters) statuses.push_back(StatusJson(*c, *ctx.clock));
  return {{"since", FormatRfc3339(since)},
          {"until", FormatRfc3339(now)},
          {"counts", counts},
          {"stuck", backup_loops == 0 || retention_loops == 0},
          {"master_switch", ctx.MasterSwitchOn()},
          {"events", recent},
          {"clusters", statuses}};
}

}  // namespace sb
