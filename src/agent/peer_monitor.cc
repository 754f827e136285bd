#include "agent/peer_monitor.h"

#include <fmt/core.h>

#include "common/logging.h"
#include "pg/connection.h"

namespace sb {

// The repository id of the cluster's storage (cached per URL). Empty when the storage cannot be
// opened (the observer reports that on a primary; a standby is checked again next loop).
std::string PeerMonitor::RepoIdOf(Cluster& c, const ClusterSettings& s) {
  if (c.repo_id_url == s.storage_url && !c.repo_id.empty()) return c.repo_id;
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) return "";
  c.repo_id_url = s.storage_url;
  c.repo_id = (*repo)->id();
  return c.repo_id;
}

void PeerMonitor::SayPromoted(Cluster& c, const ClusterSettings& s, const ClusterObservation& o) {
  bool refused = false;
  uint32_t timeline = 0;
  {
    std::lock_guard lock(c.mu);
    refused = !c.hybrid.empty() && c.hybrid_url == s.storage_url;
    timeline = c.timeline;
  }
  ctx_.Event(c.name, HealthCategory::kWarning,
             refused ? fmt::format("promoted: the cluster left recovery on timeline {}: backups stay refused (hybrid "
                                   "availability group)",
                                   timeline)
                     : fmt::format("promoted: the cluster left recovery on timeline {}: backups start on this node{}",
                                   timeline,
                                   o.new_container ? " in a new container, beginning with a full backup" : ""));
}

void PeerMonitor::Check(Cluster& c, const ClusterSettings& s, const ClusterObservation& o) {
  bool promoted = false;
  if (s.enabled && o.reachable) {
    promoted = c.was_standby && !o.in_recovery;
    c.was_standby = o.in_recovery;
  }
  if (!s.enabled || !o.reachable || o.wal_level == "minimal") {
    c.beacon.reset();
    std::lock_guard lock(c.mu);
    c.ha_note.clear();
    c.ha_reported.clear();
    c.ha_reported_warning = false;
    return;
  }
  if (promoted) SayPromoted(c, s, o);
  const std::string repo_id = RepoIdOf(c, s);
  if (repo_id.empty()) return;
  const std::string name = BeaconName(o.in_recovery ? "standby" : "primary", repo_id, c.name);
  std::string where, problem;
  const std::optional<PrimaryView> view = ReadThroughBeacon(c, o, name, &where, &problem);
  // Agents must also use one name for the cluster, or a failover continues the chain under another.
  const std::string my_db = ParseBeacon(name, "")->db;
  Line line;
  if (o.in_recovery) {
    line = StandbyLine(c, s, view, where, problem, repo_id, my_db);
  } else if (view) {
    line = PrimaryLine(c, s, *view, repo_id, my_db);
  }
  Record(c, s, line);
}

std::optional<PrimaryView> PeerMonitor::ReadThroughBeacon(Cluster& c, const ClusterObservation& o,
                                                          const std::string& name, std::string* where,
                                                          std::string* problem) {
  if (c.beacon && c.beacon_name != name) c.beacon.reset();  // role or storage changed
  *where = c.beacon ? c.beacon->HostPort() : "";
  if (c.beacon) {
    auto v = ReadPrimaryView(*c.beacon);
    if (v.ok() && !v->in_recovery) return std::move(v).value();
    c.beacon.reset();  // the primary went away or is a standby now: look again
    c.beacon_retry_at = SteadyTime{};
  }
  if (ctx_.clock->SteadyNow() < c.beacon_retry_at) return std::nullopt;
  Result<std::string> primary = o.in_recovery ? FindPrimary(c.conninfo, where) : Result<std::string>(c.conninfo);
  Result<std::unique_ptr<PgConnection>> conn = primary.status();
  if (primary.ok()) {
    auto named = ConninfoWith(*primary, {{"application_name", name}});
    conn = named.ok() ? PgConnection::Connect(*named, false) : Result<std::unique_ptr<PgConnection>>(named.status());
  }
  Result<PrimaryView> v = conn.ok() ? ReadPrimaryView(**conn) : Result<PrimaryView>(conn.status());
  if (v.ok() && !v->in_recovery) {
    c.beacon = std::move(conn).value();
    c.beacon_name = name;
    *where = c.beacon->HostPort();
    return std::move(v).value();
  }
  // Not every loop: reaching a primary that is down may take the whole connect timeout.
  c.beacon_retry_at = ctx_.clock->SteadyNow() + std::chrono::seconds(30);
  *problem = v.ok() ? "its primary is in recovery too" : v.status().message();
  return std::nullopt;
}

PeerMonitor::Line PeerMonitor::StandbyLine(Cluster& c, const ClusterSettings& s,
                                           const std::optional<PrimaryView>& view, const std::string& where,
                                           const std::string& problem, const std::string& repo_id,
                                           const std::string& my_db) {
  Line out;
  std::string hybrid;
  if (view) {
    const Beacon* primary_agent = nullptr;
    for (const auto& b : view->agents) {
      if (b.role == "primary" && (!primary_agent || b.db == my_db)) primary_agent = &b;
    }
    if (auto conflict = HybridConflict(*view, where, repo_id, s.storage_url)) {
      hybrid = *conflict;
    } else if (primary_agent && primary_agent->db != my_db) {
      out.note = fmt::format(
          "warning: the primary's agent names this cluster \"{}\", this agent \"{}\": after a failover the backups "
          "would continue under another name; hint: use one name on every node",
          primary_agent->db, my_db);
    } else if (primary_agent) {
      out.note = fmt::format("the primary at {} is backed up by its agent to this same storage", where);
    } else {
      out.note = fmt::format("no smartbackup agent seen on the primary at {}", where);
    }
  } else if (!problem.empty()) {
    out.note = "cannot compare storage targets with the primary: " + problem;
  }
  if (!hybrid.empty()) {
    std::lock_guard lock(c.mu);
    if (c.hybrid.empty() || c.hybrid_url != s.storage_url) {
      c.hybrid = hybrid;
      c.hybrid_url = s.storage_url;
    }
  }
  out.line = "skipped: standby: backups run on the primary only";
  if (!out.note.empty()) out.line += "; " + out.note;
  return out;
}

PeerMonitor::Line PeerMonitor::PrimaryLine(Cluster& c, const ClusterSettings& s, const PrimaryView& view,
                                           const std::string& repo_id, const std::string& my_db) {
  int same = 0;
  std::vector<std::string> elsewhere;
  for (const auto& a : view.agents) {
    if (a.role != "standby") continue;
    if (a.repo_id != repo_id.substr(0, 16)) {
      elsewhere.push_back(a.from);
    } else if (a.db == my_db) {
      ++same;
    }
  }
  const int standbys = static_cast<int>(view.standbys.size());
  if (standbys <= same) return {};
  std::string names;
  for (const auto& n : view.standbys) names += (names.empty() ? "" : ", ") + n;
  Line out;
  out.note = fmt::format(
      "warning: {} standby(s) replicate from this primary ({}) but {} run a smartbackup agent managing this "
      "cluster as \"{}\" on this storage: no backups follow a failover to an unmanaged standby{}; hint: on "
      "each standby, enable managed backup for this cluster with storage_url = {}",
      standbys, names, same == 0 ? std::string("none") : fmt::format("only {}", same), c.name,
      elsewhere.empty() ? "" : fmt::format(" ({} standby agent(s) target another storage: refused there)",
                                           elsewhere.size()),
      s.storage_url);
  out.line = out.note;
  out.unmanaged_standbys = true;
  return out;
}

void PeerMonitor::Record(Cluster& c, const ClusterSettings& s, const Line& in) {
  std::string line = in.line;
  HealthCategory category = HealthCategory::kWarning;
  bool record = false;
  {
    std::lock_guard lock(c.mu);
    c.ha_note = in.note;
    if (!c.hybrid.empty() && c.hybrid_url == s.storage_url) {
      line = "refused: " + c.hybrid;
      category = HealthCategory::kOtherError;
    }
    record = !line.empty() && line != c.ha_reported;
    if (line.empty() && c.ha_reported_warning) {
      log::Info("[{}] every standby of this primary now has a smartbackup agent on this storage", c.name);
    }
    c.ha_reported = line;
    c.ha_reported_warning = in.unmanaged_standbys && line == in.line;
  }
  if (record) ctx_.Event(c.name, category, line);
}

Status PeerMonitor::CheckSameStorageAsPrimary(const ClusterSettings& s, const std::string& conninfo) {
  auto conn = PgConnection::Connect(conninfo, false);
  if (!conn.ok()) return Status::Ok();
  auto info = ReadServerInfo(**conn);
  if (!info.ok() || !info->in_recovery) return Status::Ok();
  std::string where;
  auto primary = FindPrimary(conninfo, &where);
  if (!primary.ok()) return Status::Ok();
  auto pconn = PgConnection::Connect(*primary, false);
  if (!pconn.ok()) return Status::Ok();
  auto view = ReadPrimaryView(**pconn);
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!view.ok() || !repo.ok()) return Status::Ok();
  if (auto conflict = HybridConflict(*view, (*pconn)->HostPort(), (*repo)->id(), s.storage_url)) {
    return Status::FailedPrecondition("refused: " + *conflict);
  }
  return Status::Ok();
}

}  // namespace sb

