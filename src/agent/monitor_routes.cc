#include "agent/monitor_routes.h"

#include "agent/metrics.h"
#include "agent/monitor_page.h"
#include "agent/status_view.h"
#include "common/text.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr auto kOverviewHealthSpan = std::chrono::hours(24);
constexpr int kRecentJobs = 30;

json Time(SystemTime t) { return FormatRfc3339(t); }

json MarkJson(const BackupMark& m) {
  return {{"backup_id", m.backup_id},
          {"type", BackupTypeName(m.type)},
          {"timeline", m.timeline},
          {"start", Time(m.start_time)},
          {"finish", Time(m.finish_time)},
          {"start_lsn", m.start_lsn.ToString()},
          {"end_lsn", m.end_lsn.ToString()},
          {"size_bytes", m.size_bytes},
          {"stored_bytes", m.stored_bytes}};
}

json JobJson(const JobInfo& j) {
  json out = {{"id", j.id},
              {"kind", JobKindName(j.kind)},
              {"state", JobStateName(j.state)},
              {"reason", j.reason},
              {"created", Time(j.created)},
              {"started", j.started ? Time(*j.started) : json(nullptr)},
              {"finished", j.finished ? Time(*j.finished) : json(nullptr)},
              {"error", j.error.ok() ? json(nullptr) : json(j.error.message())}};
  return out;
}

}  // namespace

json TimelineJson(const CatalogView& v) {
  json t = {{"loaded", v.loaded},
            {"loaded_at", v.loaded ? Time(v.loaded_at) : json(nullptr)},
            {"bases", json::array()},
            {"logs", json::array()},
            {"log_count", v.log_count},
            {"wal_runs", json::array()},
            {"gaps", json::array()},
            {"windows", json::array()},
            {"full_stored_bytes", v.full_stored_bytes},
            {"wal_stored_bytes", v.wal_stored_bytes}};
  for (const auto& b : v.bases) t["bases"].push_back(MarkJson(b));
  for (const auto& l : v.logs) t["logs"].push_back(MarkJson(l));
  for (const auto& r : v.wal_runs) {
    t["wal_runs"].push_back({{"timeline", r.timeline},
                             {"start_lsn", r.start.ToString()},
                             {"end_lsn", r.end.ToString()},
                             {"first", Time(r.first)},
                             {"last", Time(r.last)},
                             {"stored_bytes", r.stored_bytes},
                             {"parts", r.parts}});
  }
  for (const auto& g : v.gaps) {
    t["gaps"].push_back({{"timeline", g.timeline},
                         {"start_lsn", g.start.ToString()},
                         {"end_lsn", g.end.ToString()},
                         {"after", Time(g.detected_after)}});
  }
  for (const auto& w : v.windows) {
    t["windows"].push_back({{"base_backup_id", w.base_backup_id},
                            {"start", Time(w.start_time)},
                            {"end", Time(w.end_time)},
                            {"start_lsn", w.start_lsn.ToString()},
                            {"end_lsn", w.end_lsn.ToString()},
                            {"start_timeline", w.start_timeline},
                            {"end_timeline", w.end_timeline}});
  }
  return t;
}

json OverviewJson(const AgentContext& ctx, const std::vector<Cluster*>& clusters) {
  const SystemTime now = ctx.clock->Now();
  json health = HealthJson(ctx, now - kOverviewHealthSpan, clusters);
  json out = {{"generated_at", Time(now)},
              {"master_switch", health["master_switch"]},
              {"health", {{"since", health["since"]}, {"counts", health["counts"]}, {"stuck", health["stuck"]},
                          {"events", health["events"]}}},
              {"clusters", json::array()}};
  size_t i = 0;
  for (Cluster* c : clusters) {
    json entry = {{"status", health["clusters"][i++]}};
    {
      std::lock_guard lock(c->mu);
      entry["timeline"] = TimelineJson(c->catalog_view);
    }
    entry["jobs"] = json::array();
    if (ctx.jobs) {
      for (const JobInfo& j : ctx.jobs->List(c->name, kRecentJobs)) entry["jobs"].push_back(JobJson(j));
    }
    out["clusters"].push_back(std::move(entry));
  }
  return out;
}

PageResponse MonitorRoutes::Handle(const std::string& path) {
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8",
            RenderMetrics(GatherMetricsSources(ctx_, clusters_.Snapshot()))};
  }
  if (path == "/" || path == "/index.html") return {200, "text/html; charset=utf-8", std::string(MonitorPageHtml())};
  if (path == "/overview.json") {
    return {200, "application/json",
            OverviewJson(ctx_, clusters_.Snapshot()).dump(-1, ' ', false, json::error_handler_t::replace)};
  }
  return {404, "text/plain; charset=utf-8", "not found: the listener serves /, /metrics and /overview.json\n"};
}

}  // namespace sb
