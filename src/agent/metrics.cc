#include "agent/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#include "agent/status_view.h"

namespace sb {
namespace {

using prometheus::Registry;

double Seconds(SystemTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

constexpr Activity kActivities[] = {Activity::kObserve,    Activity::kCapture,   Activity::kArchive,
                                    Activity::kFullBackup, Activity::kLogBackup, Activity::kRetention};
constexpr Condition kConditions[] = {Condition::kNotObserved, Condition::kDropped, Condition::kFailing,
                                     Condition::kRefused,     Condition::kSkipped, Condition::kQueued,
                                     Condition::kBackingOff,  Condition::kOk};
constexpr JobKind kJobKinds[] = {JobKind::kFull, JobKind::kLog, JobKind::kCopyOnly, JobKind::kRetention,
                                 JobKind::kVerify, JobKind::kDrill};

// Thin builders: one family per metric name, registered in documentation order.
class Families {
 public:
  explicit Families(Registry& r) : r_(r) {}
  prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name, const std::string& help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(r_);
  }
  prometheus::Family<prometheus::Counter>& Counter(const std::string& name, const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(r_);
  }
  prometheus::Family<prometheus::Histogram>& Histogram(const std::string& name, const std::string& help) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(r_);
  }

 private:
  Registry& r_;
};

// A histogram from non-cumulative bucket counts (the +Inf one last) and the sum.
template <size_t N, size_t M>
void FillHistogram(prometheus::Family<prometheus::Histogram>& f, const prometheus::Labels& labels,
                   const std::array<double, N>& bounds, const std::array<uint64_t, M>& counts, double sum) {
  static_assert(M == N + 1);
  auto& h = f.Add(labels, prometheus::Histogram::BucketBoundaries(bounds.begin(), bounds.end()));
  h.ObserveMultiple(std::vector<double>(counts.begin(), counts.end()), sum);
}

void AgentFamilies(Families& fam, const MetricsSources& s) {
  fam.Gauge("smartbackup_agent_start_time_seconds", "When this agent process started (Unix time)")
      .Add({})
      .Set(Seconds(s.agent.started));
  fam.Gauge("smartbackup_master_switch_on", "1 while the master switch lets the agent schedule backups")
      .Add({})
      .Set(s.master_switch ? 1 : 0);
  auto& last_loop = fam.Gauge("smartbackup_loop_last_run_timestamp_seconds",
                              "When the backup or retention loop last completed a pass (Unix time): the heartbeat");
  auto& loops = fam.Counter("smartbackup_loop_runs_total", "Passes of the backup and retention loops");
  if (s.agent.last_backup_loop) last_loop.Add({{"loop", "backup"}}).Set(Seconds(*s.agent.last_backup_loop));
  if (s.agent.last_retention_loop) last_loop.Add({{"loop", "retention"}}).Set(Seconds(*s.agent.last_retention_loop));
  loops.Add({{"loop", "backup"}}).Increment(static_cast<double>(s.agent.backup_loops));
  loops.Add({{"loop", "retention"}}).Increment(static_cast<double>(s.agent.retention_loops));

  fam.Gauge("smartbackup_jobs_queued", "Jobs waiting for room (max_parallel_fulls)").Add({}).Set(s.jobs_queued);
  auto& running = fam.Gauge("smartbackup_jobs_running", "Jobs running now, by kind");
  for (JobKind k : kJobKinds) {
    auto it = s.jobs_running.find(k);
    running.Add({{"kind", JobKindName(k)}}).Set(it == s.jobs_running.end() ? 0 : it->second);
  }
  auto& jobs = fam.Counter("smartbackup_jobs_total", "Jobs that ended since the agent started, by result");
  for (const auto& [key, n] : s.agent.jobs) {
    const auto& [db, kind, state] = key;
    jobs.Add({{"database", db}, {"kind", JobKindName(kind)}, {"result", JobStateName(state)}})
        .Increment(static_cast<double>(n));
  }
  auto& durations = fam.Histogram("smartbackup_job_duration_seconds",
                                  "Duration of the jobs that succeeded (backups, drills, …) since the agent started");
  for (const auto& [key, d] : s.agent.durations) {
    FillHistogram(durations, {{"database", key.first}, {"kind", JobKindName(key.second)}}, kJobDurationBuckets,
                  d.buckets, d.sum_seconds);
  }
  auto& events = fam.Counter("smartbackup_health_events_total",
                             "Health events (errors and warnings) since the agent started, by category");
  auto& breaks = fam.Counter("smartbackup_chain_breaks_total", "Log chain breaks detected since the agent started");
  std::map<std::string, uint64_t> breaks_by_db;
  for (const auto& [key, n] : s.agent.events) {
    events.Add({{"database", key.first}, {"category", HealthCategoryName(key.second)}})
        .Increment(static_cast<double>(n));
    if (key.second == HealthCategory::kChainBreak) breaks_by_db[key.first] += n;
  }
  for (const ClusterFigures& c : s.clusters) breaks_by_db.try_emplace(c.database, 0);
  for (const auto& [db, n] : breaks_by_db) breaks.Add({{"database", db}}).Increment(static_cast<double>(n));

  auto& drills = fam.Counter("smartbackup_drills_total", "Restore drills that ended since the agent started, by result");
  for (const auto& [key, n] : s.agent.drills) {
    drills.Add({{"database", key.first}, {"result", key.second ? "passed" : "failed"}}).Increment(static_cast<double>(n));
  }
  auto& drill_at = fam.Gauge("smartbackup_last_drill_timestamp_seconds", "When the newest restore drill ended (Unix time)");
  auto& drill_ok = fam.Gauge("smartbackup_last_drill_passed", "1 when the newest restore drill proved its target");
  auto& drill_restore = fam.Gauge("smartbackup_last_drill_restore_duration_seconds",
                                  "The newest drill's restore of the base backup");
  auto& drill_replay = fam.Gauge("smartbackup_last_drill_replay_duration_seconds",
                                 "The newest drill's WAL replay up to the proven point");
  auto& drill_bytes = fam.Gauge("smartbackup_last_drill_restored_bytes", "Bytes the newest drill restored");
  for (const auto& [db, d] : s.agent.last_drill) {
    const prometheus::Labels l{{"database", db}};
    drill_at.Add(l).Set(Seconds(d.at));
    drill_ok.Add(l).Set(d.passed ? 1 : 0);
    drill_restore.Add(l).Set(d.restore_seconds);
    drill_replay.Add(l).Set(d.replay_seconds);
    drill_bytes.Add(l).Set(static_cast<double>(d.bytes));
  }
}

// The newest backup of a type among the catalog's marks (full: full or copy-only bases of type kFull).
const BackupMark* Newest(const std::vector<BackupMark>& marks, BackupType type) {
  const BackupMark* out = nullptr;
  for (const auto& m : marks) {
    if (m.type == type && (!out || m.finish_time >= out->finish_time)) out = &m;
  }
  return out;
}

void ClusterFamilies(Families& fam, const MetricsSources& s) {
  auto& enabled = fam.Gauge("smartbackup_cluster_enabled", "1 when managed backup is on for the cluster");
  auto& condition = fam.Gauge("smartbackup_cluster_condition",
                              "1 for the cluster's condition as status names it (ok, failing, skipped, …), else 0");
  auto& failing = fam.Gauge("smartbackup_cluster_failing", "1 while the activity is failing (status's faults)");
  auto& capture = fam.Gauge("smartbackup_wal_capture_running", "1 while stream-mode WAL capture runs");
  auto& last_full = fam.Gauge("smartbackup_last_full_backup_timestamp_seconds",
                              "Finish time of the newest full backup of the current timeline (Unix time)");
  auto& last_log = fam.Gauge("smartbackup_last_log_backup_timestamp_seconds",
                             "Finish time of the newest log backup after that full (Unix time)");
  auto& rp = fam.Gauge("smartbackup_recovery_point_timestamp_seconds",
                       "The newest point a restore can reach: when its WAL became durable (Unix time)");
  auto& rp_age = fam.Gauge("smartbackup_recovery_point_age_seconds",
                           "Seconds between now and the recovery point: the data a loss of the server would lose");
  auto& w_start = fam.Gauge("smartbackup_restore_window_start_timestamp_seconds",
                            "Start of the newest restore window: its full backup's consistent point (Unix time)");
  auto& w_end = fam.Gauge("smartbackup_restore_window_end_timestamp_seconds",
                          "End of the newest restore window (Unix time)");
  auto& windows = fam.Gauge("smartbackup_restore_windows", "Restore windows the repository holds");
  auto& broken = fam.Gauge("smartbackup_chain_broken", "1 while the log chain after the newest full is broken");
  auto& gaps = fam.Gauge("smartbackup_chain_gaps", "WAL gaps in the repository (any timeline)");
  auto& backups = fam.Gauge("smartbackup_backups", "Backups the repository holds, by type");
  auto& duration = fam.Gauge("smartbackup_last_backup_duration_seconds", "Duration of the newest backup, by type");
  auto& size = fam.Gauge("smartbackup_last_backup_size_bytes", "Data bytes of the newest backup, by type");
  auto& stored = fam.Gauge("smartbackup_repository_stored_bytes",
                           "Bytes the cluster's backups take in storage: full (and copy-only) backups, WAL");
  for (const ClusterFigures& c : s.clusters) {
    const prometheus::Labels db{{"database", c.database}};
    enabled.Add(db).Set(c.enabled ? 1 : 0);
    for (Condition k : kConditions) {
      condition.Add({{"database", c.database}, {"condition", ConditionName(k)}}).Set(k == c.condition ? 1 : 0);
    }
    for (Activity a : kActivities) {
      auto it = c.failing.find(a);
      failing.Add({{"database", c.database}, {"activity", ActivityName(a)}})
          .Set(it != c.failing.end() && it->second ? 1 : 0);
    }
    capture.Add(db).Set(c.capture_running ? 1 : 0);
    if (c.last_full) last_full.Add(db).Set(Seconds(*c.last_full));
    if (c.last_log) last_log.Add(db).Set(Seconds(*c.last_log));
    if (c.recovery_point) {
      rp.Add(db).Set(Seconds(*c.recovery_point));
      rp_age.Add(db).Set(std::chrono::duration<double>(s.now - *c.recovery_point).count());
    }
    if (c.window) {
      w_start.Add(db).Set(Seconds(c.window->start_time));
      w_end.Add(db).Set(Seconds(c.window->end_time));
    }
    broken.Add(db).Set(c.chain_broken ? 1 : 0);
    if (!c.catalog.loaded) continue;
    windows.Add(db).Set(static_cast<double>(c.catalog.windows.size()));
    gaps.Add(db).Set(static_cast<double>(c.catalog.gaps.size()));
    size_t fulls = 0, copies = 0;
    for (const auto& b : c.catalog.bases) (b.type == BackupType::kFull ? fulls : copies)++;
    backups.Add({{"database", c.database}, {"type", "full"}}).Set(static_cast<double>(fulls));
    backups.Add({{"database", c.database}, {"type", "copy_only"}}).Set(static_cast<double>(copies));
    backups.Add({{"database", c.database}, {"type", "log"}}).Set(static_cast<double>(c.catalog.log_count));
    for (const auto& [mark, type] : {std::pair{Newest(c.catalog.bases, BackupType::kFull), "full"},
                                     std::pair{Newest(c.catalog.logs, BackupType::kLog), "log"}}) {
      if (!mark) continue;
      const prometheus::Labels l{{"database", c.database}, {"type", type}};
      duration.Add(l).Set(std::chrono::duration<double>(mark->finish_time - mark->start_time).count());
      size.Add(l).Set(static_cast<double>(mark->size_bytes));
    }
    stored.Add({{"database", c.database}, {"type", "full"}}).Set(static_cast<double>(c.catalog.full_stored_bytes));
    stored.Add({{"database", c.database}, {"type", "wal"}}).Set(static_cast<double>(c.catalog.wal_stored_bytes));
  }
}

void StorageFamilies(Families& fam, const MetricsSources& s) {
  auto& requests = fam.Counter("smartbackup_storage_requests_total", "Storage requests, by operation and outcome");
  auto& retries = fam.Counter("smartbackup_storage_retries_total", "Storage requests tried again after a transient error");
  auto& latency = fam.Histogram("smartbackup_storage_request_duration_seconds",
                                "Storage request latency (retries included), by operation");
  auto& read = fam.Counter("smartbackup_storage_read_bytes_total", "Bytes read from storage");
  auto& written = fam.Counter("smartbackup_storage_written_bytes_total", "Bytes written to storage");
  for (int i = 0; i < kStorageOpCount; ++i) {
    const auto op = static_cast<StorageOp>(i);
    const StorageOpCounts& c = s.storage[static_cast<size_t>(i)];
    const prometheus::Labels l{{"operation", StorageOpName(op)}};
    for (int o = 0; o < kStorageOutcomeCount; ++o) {
      requests.Add({{"operation", StorageOpName(op)}, {"outcome", StorageOutcomeName(static_cast<StorageOutcome>(o))}})
          .Increment(static_cast<double>(c.requests[static_cast<size_t>(o)]));
    }
    retries.Add(l).Increment(static_cast<double>(c.retries));
    FillHistogram(latency, l, kStorageLatencyBuckets, c.buckets, c.latency_sum_seconds);
    if (op == StorageOp::kGet || op == StorageOp::kGetRange) read.Add(l).Increment(static_cast<double>(c.bytes_read));
    if (op == StorageOp::kPut) written.Add(l).Increment(static_cast<double>(c.bytes_written));
  }
}

}  // namespace

ClusterFigures FiguresOf(Cluster& c) {
  std::lock_guard lock(c.mu);
  ClusterFigures f;
  f.database = c.name;
  f.enabled = c.settings.enabled;
  f.condition = Headline(c).condition;
  for (Activity a : kActivities) f.failing[a] = c.faults.count(a) > 0;
  f.capture_running = c.stream_running.load();
  f.last_full = c.observation.last_full_finish;
  f.last_log = c.observation.last_log_finish;
  f.recovery_point = c.recovery_point;
  f.window = c.window;
  f.chain_broken = c.observation.chain_broken;
  f.catalog = c.catalog_view;
  return f;
}

MetricsSources GatherMetricsSources(const AgentContext& ctx, const std::vector<Cluster*>& clusters) {
  MetricsSources s;
  s.now = ctx.clock->Now();
  s.master_switch = ctx.MasterSwitchOn();
  for (Cluster* c : clusters) s.clusters.push_back(FiguresOf(*c));
  s.agent = ctx.stats->Snapshot();
  for (int i = 0; i < kStorageOpCount; ++i) {
    s.storage[static_cast<size_t>(i)] = StorageStats::Global().Counts(static_cast<StorageOp>(i));
  }
  if (ctx.jobs) {
    s.jobs_queued = ctx.jobs->Queued();
    for (JobKind k : kJobKinds) s.jobs_running[k] = ctx.jobs->Running(k);
  }
  return s;
}

std::string RenderMetrics(const MetricsSources& sources) {
  Registry registry;
  Families fam(registry);
  AgentFamilies(fam, sources);
  ClusterFamilies(fam, sources);
  StorageFamilies(fam, sources);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

}  // namespace sb
