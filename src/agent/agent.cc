#include "agent/agent.h"

#include <dirent.h>

#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "agent/competing_tools.h"
#include "agent/job_manager.h"
#include "agent/job_routes.h"
#include "agent/peers.h"
#include "agent/scheduler.h"
#include "agent/state_store.h"
#include "repo/key_store.h"
#include "repo/name_claim.h"
#include "repo/public_key.h"
#include "common/logging.h"
#include "common/text.h"
#include "engine/backup/full_backup.h"
#include "engine/retention/retention.h"
#include "engine/wal/log_backup.h"
#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_streamer.h"
#include "pg/connection.h"
#include "storage/held_lease.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// What the agent knows about one managed cluster at runtime.
struct ClusterRuntime {
  std::string name;
  std::string conninfo;
  bool in_config = false;
  bool dropped = false;

  std::mutex mu;  // guards everything below
  ClusterSettings settings;
  ClusterObservation observation;
  Decision full_decision, log_decision;
  std::string state = "not yet observed";  // one line: what the agent does with it and why
  // (Coexistence rule 4.) archive_command when archive_mode is on and the command is not
  // smartbackup wal-push: someone else ships WAL; stream mode coexists and says so.
  std::string foreign_archive_command;
  std::string archive_command;  // as last observed; archive mode needs smartbackup's own
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;
  bool minimal_seen = false;
  // (Coexistence rules 7 and 8, see WatchSlot.) Another client on smartbackup's slot now ("" when
  // none); the last tool seen taking this cluster's WAL (that client, or in archive mode the owner of
  // a foreign archive_command), named when the chain breaks and forgotten after a full backup;
  // wal_level = minimal pending a restart (WAL capture stops so that the slot can be dropped).
  std::string slot_consumer;
  std::string wal_taker;
  std::string slot_note;  // a clause for the state line
  std::string minimal_note;
  bool minimal_pending = false;
  std::optional<ChainBreak> pending_break;  // from the streamer or the object check; cleared by a full
  std::optional<RestoreWindow> window;
  std::optional<SystemTime> recovery_point;

  std::thread stream_thread;  // full and log backups run as jobs (JobManager)
  std::atomic<bool> stream_stop{false};
  std::atomic<bool> stream_running{false};
  std::string stream_url;  // the storage the running streamer writes to

  // Availability groups and mirroring (coexistence rules 1 and 2; see kBeaconPrefix).
  // Loop thread only:
  std::unique_ptr<PgConnection> beacon;  // idle connection to the cluster's primary, named for this agent
  std::string beacon_name;
  SteadyTime beacon_retry_at{};
  std::string repo_id_url, repo_id;  // the repository id of repo_id_url (cached)
  bool was_standby = false;          // in recovery when last observed
  // Guarded by mu:
  std::string ha_note;       // a clause for the state line: the primary's agent, standbys without agents
  std::string ha_reported;   // the last availability line recorded in health (each change once)
  std::string hybrid;        // non-empty: refused (the "hybrid" case); sticky while storage_url is hybrid_url
  std::string hybrid_url;
  std::string writer_note;   // a full/log lease was held by another agent: this one backed off
  std::string stream_note;   // the stream lease is held by another agent: this one backs off
  bool stream_backoff = false;       // (stream_note is current)
  bool found_while_defaults_off = false;  // first seen while instance defaults were disabled (rule 2 tip)

  // One system identifier per name (see NameClaim). Guarded by mu: the refusal ("" when the claim
  // holds or was not made) and the system identifiers this agent saw under this name before (a
  // re-created cluster is a new database, not a conflict). Loop thread only: when the claim was
  // last made, for which system identifier and storage.
  std::string name_refusal;
  std::set<uint64_t> earlier_sysids;
  SteadyTime name_checked_at{};
  uint64_t name_checked_sysid = 0;
  std::string name_checked_url;

  // smartbackup's slot as WatchSlot last saw it (guarded by mu), and the warning about a slot that
  // nothing reads while it pins WAL on the primary (see HandleIdleSlot).
  bool slot_exists = false, slot_active = false;
  std::optional<uint64_t> slot_retained;
  std::string idle_slot_note, idle_slot_reported, idle_slot_drop_sql;
  // This agent streamed the cluster through the slot (since it started): only then is the slot
  // surely its own to drop; `smartbackup stream` run by hand uses the same default name.
  bool streamed_here = false;
};

HealthCategory CategoryOf(const Status& s, bool from_storage) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied: return HealthCategory::kCredentialError;
    case StatusCode::kCorruption: return HealthCategory::kCorruptedBackup;
    default: break;
  }
  return from_storage ? HealthCategory::kStorageError : HealthCategory::kPostgresError;
}

// The key a job writes with: the key_file's, or with public_key a new data
// key sealed to it (stored wrapped in the repository first; one per job).
std::optional<EncryptionKey> LoadKeyOrLog(const ClusterSettings& s, Storage& storage, Status* error) {
  if (!s.key_file.empty() && !s.public_key.empty()) {
    *error = Status::InvalidArgument("key_file and public_key exclude each other: set one");
    return std::nullopt;
  }
  if (s.key_file.empty() && s.public_key.empty()) return std::nullopt;
  auto key = s.public_key.empty() ? EncryptionKey::LoadFromFile(s.key_file) : NewWrappedDataKey(storage, s.public_key);
  if (!key.ok()) {
    *error = key.status();
    return std::nullopt;
  }
  return std::move(key).value();
}

}  // namespace

struct Agent::Impl {
  AgentConfig config;
  Clock* clock;
  std::unique_ptr<StateStore> store;
  std::string token;
  std::unique_ptr<ApiServer> api;

  std::mutex mu;  // guards clusters (the map; each runtime has its own lock)
  std::map<std::string, std::unique_ptr<ClusterRuntime>> clusters;
  // Full and log backups; declared after clusters, so stopped (Shutdown) before they go.
  std::unique_ptr<JobManager> jobs;
  // Discovered name ("15-main") → the name the cluster is managed under (see DiscoveredName).
  // Loop thread only.
  std::map<std::string, std::string> discovered_names;

  // ---- configuration --------------------------------------------------------

  PartialSettings InstanceDefaults() {
    PartialSettings d = config.defaults;
    auto saved = store->LoadInstanceDefaults();
    if (saved.ok() && *saved) {
      for (const auto& [k, v] : **saved) d[k] = v;
    }
    return d;
  }

  // builtins < [defaults] < [[cluster]] < changes made through verbs.
  ClusterSettings Resolve(const ClusterRuntime& c) {
    PartialSettings overrides;
    for (const auto& e : config.clusters) {
      if (e.name == c.name) overrides = e.overrides;
    }
    auto saved = store->LoadClusterOverrides();
    if (saved.ok()) {
      auto it = saved->find(c.name);
      if (it != saved->end()) {
        for (const auto& [k, v] : it->second) overrides[k] = v;
      }
    }
    return ResolveSettings(config.defaults, overrides);
  }

  void Event(const std::string& cluster, HealthCategory category, const std::string& message) {
    if (category == HealthCategory::kBackupLoop || category == HealthCategory::kRetentionLoop) {
      log::Debug("{}", message);
    } else {
      log::Warn("{}{}", cluster.empty() ? "" : "[" + cluster + "] ", message);
    }
    (void)store->RecordHealthEvent({.at = clock->Now(), .cluster = cluster, .category = category, .message = message});
  }

  // Clusters from the config and from discovery; the ones gone are dropped.
  void RefreshClusters() {
    auto known = store->KnownClusters();
    std::map<std::string, KnownCluster> known_by_name;
    if (known.ok()) {
      for (auto& k : *known) known_by_name[k.name] = k;
    }
    std::map<std::string, std::string> wanted;  // name → conninfo
    for (const auto& e : config.clusters) wanted[e.name] = e.conninfo;
    if (config.discover) {
      for (const auto& [name, conninfo] : Discover()) {
        wanted.emplace(DiscoveredName(name, conninfo, known_by_name), conninfo);
      }
    }
    std::lock_guard lock(mu);
    for (const auto& [name, conninfo] : wanted) {
      auto& slot = clusters[name];
      if (!slot) {
        slot = std::make_unique<ClusterRuntime>();
        slot->name = name;
        if (!known_by_name.count(name)) slot->found_while_defaults_off = !FirstSeen(name);
      }
      slot->conninfo = conninfo;
      slot->dropped = false;
      // An init-capture: clang 14 (the fuzz build) cannot capture a structured binding.
      slot->in_config = std::any_of(config.clusters.begin(), config.clusters.end(),
                                    [&n = name](const ClusterEntry& e) { return e.name == n; });
    }
    for (auto& [name, c] : clusters) {
      if (!wanted.count(name) && !c->dropped) {
        c->dropped = true;
        Event(name, HealthCategory::kWarning,
              fmt::format("cluster \"{}\" is gone from the config/discovery: no more backups; its backups stay until "
                          "retention has elapsed",
                          name));
      }
    }
    for (const auto& [name, k] : known_by_name) {
      if (!clusters.count(name) && !k.dropped) {
        // Known from an earlier run but no longer configured: dropped.
        auto c = std::make_unique<ClusterRuntime>();
        c->name = name;
        c->dropped = true;
        clusters[name] = std::move(c);
      }
    }
  }

  // Instance defaults apply to clusters that appear after they were enabled:
  // the defaults of that moment become the cluster's own settings. False when
  // instance defaults exist but are disabled (suspended, e.g. while a standby
  // is set up: coexistence rule 2's tip): the new cluster keeps managed backup off.
  bool FirstSeen(const std::string& name) {
    KnownCluster k{.name = name, .first_seen = clock->Now(), .last_seen = clock->Now()};
    auto saved = store->LoadInstanceDefaults();
    bool suspended = false;
    if (saved.ok() && *saved) {
      auto it = (*saved)->find("enabled");
      suspended = it == (*saved)->end() || it->second != "true";
      if (!suspended) {
        auto overrides = store->LoadClusterOverrides();
        PartialSettings mine = **saved;
        if (overrides.ok() && overrides->count(name)) {
          for (const auto& [kk, v] : overrides->at(name)) mine[kk] = v;
        }
        (void)store->SaveClusterOverrides(name, mine);
        k.defaults_applied = true;
        log::Info("instance defaults applied to new cluster \"{}\"", name);
      }
    }
    (void)store->UpsertKnownCluster(k);
    if (suspended) {
      Event(name, HealthCategory::kWarning,
            fmt::format("new cluster \"{}\" found while instance defaults are disabled: they are not applied, managed "
                        "backup stays off for it; hint: set-db-backup {} --enable to manage it",
                        name, name));
    }
    return !suspended;
  }

  // Discovery names every Debian host's cluster "15-main"; hosts sharing one storage must not mix
  // two clusters under it. Standbys of one primary share its system identifier and keep one name
  // (availability groups); a cluster whose storage already holds another system identifier under
  // the name is managed as "<name>-<system identifier>". The choice sticks: a name this agent
  // knows (state store) is kept, so a re-created cluster (initdb again) stays a new database under
  // its name. Undecidable now (cluster or storage unreachable): the plain name, asked again later.
  std::string DiscoveredName(const std::string& base, const std::string& conninfo,
                             const std::map<std::string, KnownCluster>& known) {
    if (auto it = discovered_names.find(base); it != discovered_names.end()) return it->second;
    auto is_known = [&](const std::string& n) {
      auto k = known.find(n);
      return k != known.end() && !k->second.dropped;
    };
    auto conn = PgConnection::Connect(conninfo, false);
    auto info = conn.ok() ? ReadServerInfo(**conn) : Result<ServerInfo>(conn.status());
    if (!info.ok()) return is_known(base) ? discovered_names[base] = base : base;
    const std::string apart = fmt::format("{}-{}", base, info->system_identifier);
    if (is_known(apart)) return discovered_names[base] = apart;
    if (is_known(base)) return discovered_names[base] = base;
    // A cluster new to this agent: does the storage it would use hold another system identifier?
    PartialSettings overrides;
    if (auto saved = store->LoadClusterOverrides(); saved.ok() && saved->count(base)) overrides = saved->at(base);
    const ClusterSettings s = ResolveSettings(InstanceDefaults(), overrides);
    auto storage = OpenStorage(s.storage_url);
    if (!storage.ok()) return base;
    auto repo = Repository::Open(std::move(storage).value(), /*create=*/false, clock);
    if (!repo.ok()) {
      // No repository there yet: nothing to collide with.
      return repo.status().IsNotFound() ? discovered_names[base] = base : base;
    }
    auto containers = (*repo)->ListContainers(base);
    auto claimants = NameClaimants((*repo)->storage(), base);
    if (!containers.ok() || !claimants.ok()) return base;
    bool other = std::any_of(claimants->begin(), claimants->end(),
                             [&](uint64_t id) { return id != info->system_identifier; });
    for (const auto& ci : *containers) other = other || ci.system_identifier != info->system_identifier;
    const std::string& chosen = other ? apart : base;
    if (other) {
      log::Info("discovered cluster \"{}\" (system identifier {}) is managed as \"{}\": storage {} holds another "
                "cluster under \"{}\"",
                base, info->system_identifier, apart, s.storage_url, base);
    }
    return discovered_names[base] = chosen;
  }

  // Debian layout: <root>/<version>/<name>/postgresql.conf → "<version>-<name>".
  std::map<std::string, std::string> Discover() {
    std::map<std::string, std::string> found;
    DIR* versions = ::opendir(config.discover_root.c_str());
    if (!versions) return found;
    while (dirent* v = ::readdir(versions)) {
      std::string version = v->d_name;
      if (version.empty() || version[0] == '.') continue;
      std::string vdir = config.discover_root + "/" + version;
      DIR* names = ::opendir(vdir.c_str());
      if (!names) continue;
      while (dirent* n = ::readdir(names)) {
        std::string name = n->d_name;
        if (name.empty() || name[0] == '.') continue;
        std::ifstream conf(vdir + "/" + name + "/postgresql.conf");
        if (!conf) continue;
        std::string line, port = "5432", socket = "/var/run/postgresql";
        while (std::getline(conf, line)) {
          std::string t = Trim(line);
          auto value = [&](const std::string& key) -> std::optional<std::string> {
            if (!StartsWith(t, key)) return std::nullopt;
            auto eq = t.find('=');
            if (eq == std::string::npos || Trim(t.substr(key.size(), eq - key.size())) != "") return std::nullopt;
            std::string v = Trim(t.substr(eq + 1));
            auto hash = v.find('#');
            if (hash != std::string::npos) v = Trim(v.substr(0, hash));
            if (v.size() >= 2 && v.front() == '\'') v = v.substr(1, v.size() - 2);
            return v;
          };
          if (auto p = value("port")) port = *p;
          if (auto s = value("unix_socket_directories")) socket = s->substr(0, s->find(','));
        }
        found[version + "-" + name] = fmt::format("host={} port={} dbname=postgres", socket, port);
      }
      ::closedir(names);
    }
    ::closedir(versions);
    return found;
  }

  std::vector<ClusterRuntime*> Snapshot() {
    std::lock_guard lock(mu);
    std::vector<ClusterRuntime*> out;
    for (auto& [_, c] : clusters) out.push_back(c.get());
    return out;
  }

  ClusterRuntime* Find(const std::string& name) {
    std::lock_guard lock(mu);
    auto it = clusters.find(name);
    return it == clusters.end() ? nullptr : it->second.get();
  }

  Result<std::unique_ptr<Repository>> OpenRepo(const std::string& url) {
    ASSIGN_OR_RETURN(auto storage, OpenStorage(url));
    return Repository::Open(std::move(storage), /*create=*/true, clock);
  }

  // ---- observation ------------------------------------------------------------

  ClusterObservation Observe(ClusterRuntime& c, const ClusterSettings& s, bool master_on) {
    ClusterObservation o{.now = clock->Now(), .master_switch_on = master_on, .enabled = s.enabled};
    auto conn = PgConnection::Connect(c.conninfo, false);
    Result<ServerInfo> info = conn.ok() ? ReadServerInfo(**conn) : Result<ServerInfo>(conn.status());
    if (!info.ok()) {
      o.reachable = false;
      o.unreachable_error = info.status().message();
      std::lock_guard lock(c.mu);
      c.state = "error: " + info.status().message();
      return o;
    }
    o.in_recovery = info->in_recovery;
    o.wal_level = info->wal_level;
    o.current_lsn = info->current_lsn;
    {
      std::lock_guard lock(c.mu);
      // Coexistence rule 4: remember another WAL archiver, to be named in the state line.
      const bool ours = IsSmartbackupArchiveCommand(info->archive_command);
      c.archive_command = info->archive_command;
      c.foreign_archive_command =
          info->archive_mode != "off" && !info->archive_command.empty() && !ours ? info->archive_command : "";
      if (info->wal_level == "minimal") c.minimal_seen = true;
      if (c.system_identifier != 0 && c.system_identifier != info->system_identifier) {
        o.new_container = true;
        o.new_container_cause = "new system identifier";
        c.earlier_sysids.insert(c.system_identifier);  // initdb again: its old claim is this agent's own
      }
      c.system_identifier = info->system_identifier;
      c.timeline = info->timeline;
    }
    if (!info->in_recovery) WatchSlot(c, s, **conn, *info);
    if (!s.enabled || info->in_recovery) return o;
    auto repo = OpenRepo(s.storage_url);
    if (!repo.ok()) {
      Event(c.name, CategoryOf(repo.status(), true), repo.status().message());
      o.reachable = false;
      return o;
    }
    auto catalog = WalCatalog::Load(**repo, c.name, info->system_identifier);
    if (!catalog.ok()) {
      Event(c.name, CategoryOf(catalog.status(), true), catalog.status().message());
      o.reachable = false;
      return o;
    }
    const BackupManifest* last_full = nullptr;
    for (const auto& b : catalog->bases()) {
      if (b.type == BackupType::kFull && b.timeline == info->timeline) last_full = &b;
    }
    bool older_lineage = std::any_of(catalog->bases().begin(), catalog->bases().end(),
                                     [&](const BackupManifest& b) { return b.timeline != info->timeline; });
    if (!last_full && older_lineage) {  // failover: a new timeline needs its own container
      o.new_container = true;
      o.new_container_cause = fmt::format("failover to timeline {}", info->timeline);
    }
    if (last_full) {
      o.last_full_finish = last_full->finish_time;
      auto start = Lsn::Parse(last_full->start_lsn);
      if (start.ok()) o.last_full_start_lsn = *start;
      for (const auto& l : catalog->log_backups()) {
        if (l.container != last_full->container || l.finish_time < last_full->start_time) continue;
        o.last_log_finish = std::max(o.last_log_finish.value_or(l.finish_time), l.finish_time);
        auto end = Lsn::Parse(l.end_lsn);
        if (end.ok()) o.last_log_end_lsn = std::max(o.last_log_end_lsn.value_or(*end), *end);
      }
      auto full_end = Lsn::Parse(last_full->end_lsn);
      for (const auto& gap : catalog->Gaps()) {
        if (gap.timeline == info->timeline && full_end.ok() && gap.end > *full_end) {
          o.chain_broken = true;
          o.chain_break_cause = fmt::format("WAL {}..{} missing", gap.start.ToString(), gap.end.ToString());
        }
      }
    }
    o.durable_wal_end = catalog->TimelineEnd(info->timeline);
    std::optional<RestoreWindow> newest_window;
    for (const auto& w : catalog->Windows()) {
      if (!newest_window || w.end_lsn >= newest_window->end_lsn) newest_window = w;
    }
    std::lock_guard lock(c.mu);
    if (c.minimal_seen && info->wal_level != "minimal") {
      o.new_container = true;  // back from wal_level=minimal: a new database for the chain
      o.new_container_cause = "wal_level is back to " + info->wal_level;
    }
    if (c.pending_break && last_full) {
      o.chain_broken = true;
      o.chain_break_cause = c.pending_break->cause;
    }
    if (o.chain_broken && !c.wal_taker.empty() && o.chain_break_cause.find(c.wal_taker) == std::string::npos) {
      o.chain_break_cause += ", taken by " + c.wal_taker;  // coexistence rule 8: the competing tool by name
    }
    o.full_running = jobs->Active(c.name, JobKind::kFull).has_value();
    o.log_running = jobs->Active(c.name, JobKind::kLog).has_value();
    c.window = newest_window;
    if (newest_window) c.recovery_point = newest_window->end_time;
    return o;
  }

  // ---- smartbackup's replication slot (coexistence rules 7 and 8) ------------------

  // What the server shows about smartbackup's slot. Rule 8: another client consuming it (pg_receivewal
  // and the like) takes WAL away from the chain: named, warned once per client, and remembered to name
  // the chain break it causes. Rule 7: PostgreSQL 15 does not start with wal_level = minimal while a
  // physical slot exists; seen pending a restart, WAL capture stops (BackupLoop) so that the DBA can
  // drop the slot, and the warning gives the command. Loop thread (from Observe).
  void WatchSlot(ClusterRuntime& c, const ClusterSettings& s, PgConnection& conn, const ServerInfo& info) {
    const std::string slot = DefaultSlotName(c.name);
    auto view = ReadSlotView(conn, slot);
    if (!view.ok()) {
      log::Debug("[{}] cannot read replication slot {}: {}", c.name, slot, view.status().message());
      return;
    }
    std::string consumer, consumer_warning, minimal;
    if (s.enabled && view->foreign_consumer) {
      consumer = DescribeWalConsumer(*view->foreign_consumer) + " on replication slot " + slot;
      consumer_warning = fmt::format(
          "replication slot {} is consumed by {}, not smartbackup: the WAL it receives is lost to the log chain (a "
          "chain break, then a full backup, follow); hint: give that tool its own replication slot",
          slot, DescribeWalConsumer(*view->foreign_consumer));
    }
    bool minimal_pending = false;
    if (view->wal_level_change_pending && info.wal_level != "minimal") {
      const std::string drop = fmt::format("SELECT pg_drop_replication_slot('{}')", slot);
      const std::string stopped = s.enabled && s.mode == "stream" ? "WAL capture stopped; " : "";
      if (view->pending_wal_level == "minimal") {
        minimal_pending = true;
        if (view->slot_exists) {
          minimal = fmt::format(
              "wal_level = minimal is pending a restart: {}PostgreSQL 15 does not start with wal_level = minimal while "
              "a physical replication slot exists: drop smartbackup's before the restart: {}",
              stopped, drop);
        } else if (s.mode == "stream") {
          minimal = fmt::format("wal_level = minimal is pending a restart: {}replication slot {} is dropped: ready for "
                                "the restart (scheduling stops under minimal)",
                                stopped, slot);
        }
      } else if (!view->pending_wal_level && view->slot_exists) {
        minimal = fmt::format(
            "wal_level changes at the next restart (only a superuser can read to what): if to minimal, PostgreSQL 15 "
            "will not start while replication slot {} exists: disable managed backup of this cluster, then {} before "
            "the restart",
            slot, drop);
      }
    }
    const bool foreign_archiver = s.mode == "archive" && info.archive_mode != "off" && !info.archive_command.empty() &&
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
    if (warn_consumer) Event(c.name, HealthCategory::kWarning, consumer_warning);
    if (warn_minimal) Event(c.name, HealthCategory::kWarning, minimal);
  }

  // ---- a slot nothing reads (the primary's disk) ------------------------------------

  // smartbackup's slot keeps WAL on the primary for as long as it exists; unread, it fills the
  // disk. When capture is off for good (managed backup disabled, or archive mode) the slot is
  // dropped; when that fails, or capture is only paused (master switch, refusal, a failing
  // streamer), status and health carry the retained bytes and the exact SQL. `reading`: WAL
  // capture is meant to run now. Loop thread, after the capture decision.
  void HandleIdleSlot(ClusterRuntime& c, const ClusterSettings& s, const ClusterObservation& o, bool reading,
                      bool master_on, const std::string& refusal) {
    bool exists = false, active = false, minimal = false, ours = false;
    std::optional<uint64_t> retained;
    {
      std::lock_guard lock(c.mu);
      ours = c.streamed_here;
      exists = c.slot_exists;
      active = c.slot_active;
      retained = c.slot_retained;
      minimal = c.minimal_pending;  // WatchSlot's note already gives the SQL for that case
    }
    const std::string slot = DefaultSlotName(c.name);
    const std::string drop = fmt::format("SELECT pg_drop_replication_slot('{}');", slot);
    std::string note, event;
    if (o.reachable && !o.in_recovery && exists && !active && !reading && !minimal) {
      const std::string bytes =
          retained ? fmt::format("{} ({} bytes)", FormatByteSize(*retained), *retained) : std::string("unknown");
      const bool for_good = !s.enabled || s.mode == "archive";
      const std::string why = !s.enabled            ? "managed backup is disabled"
                              : s.mode == "archive" ? "the cluster is in archive mode"
                              : !master_on          ? "the master switch is off"
                              : !refusal.empty()    ? "the cluster is refused"
                                                    : "WAL capture is stopped";
      Status dropped = !for_good ? Status::Ok()
                       : ours    ? DropIdleSlot(c.conninfo, slot)
                                 : Status::FailedPrecondition(
                                    "this agent has not streamed through it since it started (it may be a "
                                    "smartbackup stream run by hand)");
      if (for_good && dropped.ok()) {
        Event(c.name, HealthCategory::kWarning,
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
    if (report) Event(c.name, HealthCategory::kWarning, note);
  }

  // Drops an inactive physical slot over a regular connection (needs REPLICATION or superuser, as
  // creating it did). PostgreSQL refuses an active slot, so a slot taken meanwhile survives.
  static Status DropIdleSlot(const std::string& conninfo, const std::string& slot) {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(conninfo, false));
    std::string literal = "'";
    for (char ch : slot) literal += ch == '\'' ? std::string("''") : std::string(1, ch);
    literal += "'";
    return (*conn).Query("SELECT pg_catalog.pg_drop_replication_slot(" + literal + ")").status();
  }

  // ---- one system identifier per name ------------------------------------------

  // How often a granted claim is renewed: well inside NameClaimOptions::live_window, so that a
  // running agent never looks dead to another one.
  static constexpr std::chrono::minutes kNameClaimRenew{2};

  // Claims the cluster's name for its system identifier on its storage (primary only: a standby
  // has the primary's). Refused → the cluster is refused (no capture, no backups, no retention)
  // until the claim is granted; checked again every loop meanwhile. A storage error keeps the
  // previous verdict (Observe reports storage problems). Loop thread.
  void CheckName(ClusterRuntime& c, const ClusterSettings& s, const ClusterObservation& o) {
    if (!s.enabled || !o.reachable || o.in_recovery) {
      std::lock_guard lock(c.mu);
      c.name_refusal.clear();
      c.name_checked_sysid = 0;
      return;
    }
    uint64_t sysid = 0;
    NameClaimOptions options;
    bool refused = false;
    {
      std::lock_guard lock(c.mu);
      sysid = c.system_identifier;
      options.earlier_systems = c.earlier_sysids;
      refused = !c.name_refusal.empty();
    }
    if (sysid == 0) return;
    // The system identifier this agent last claimed the name for (state store): after a restart
    // too, a cluster re-created under the name is this agent's own new database, not a conflict.
    std::optional<KnownCluster> known;
    if (auto all = store->KnownClusters(); all.ok()) {
      for (auto& k : *all) {
        if (k.name == c.name) known = k;
      }
    }
    if (known && known->system_identifier != 0 && known->system_identifier != sysid) {
      options.earlier_systems.insert(known->system_identifier);
    }
    const bool due = refused || sysid != c.name_checked_sysid || s.storage_url != c.name_checked_url ||
                     clock->SteadyNow() >= c.name_checked_at + kNameClaimRenew;
    if (!due) return;
    auto repo = OpenRepo(s.storage_url);
    if (!repo.ok()) return;
    auto claim = ClaimDatabaseName((*repo)->storage(), c.name, sysid, options);
    if (!claim.ok()) {
      Event(c.name, CategoryOf(claim.status(), true), "cannot claim the database name: " + claim.status().message());
      return;
    }
    if (claim->granted && (!known || known->system_identifier != sysid)) {
      KnownCluster k = known.value_or(KnownCluster{.name = c.name, .first_seen = clock->Now()});
      k.system_identifier = sysid;
      k.last_seen = clock->Now();
      (void)store->UpsertKnownCluster(k);
    }
    c.name_checked_at = clock->SteadyNow();
    c.name_checked_sysid = sysid;
    c.name_checked_url = s.storage_url;
    const std::string refusal = claim->granted ? "" : NameClaimRefusal(c.name, sysid, *claim);
    bool report = false;
    {
      std::lock_guard lock(c.mu);
      report = !refusal.empty() && refusal.substr(0, refusal.find(", last seen")) !=
                                       c.name_refusal.substr(0, c.name_refusal.find(", last seen"));
      c.name_refusal = refusal;
    }
    if (report) Event(c.name, HealthCategory::kOtherError, "refused: " + refusal);
  }

  // kFailedPrecondition while the cluster's name is refused (for jobs started outside the loop).
  static Status NameRefusal(ClusterRuntime& c) {
    std::lock_guard lock(c.mu);
    if (c.name_refusal.empty()) return Status::Ok();
    return Status::FailedPrecondition("refused: " + c.name_refusal);
  }

  // ---- jobs -------------------------------------------------------------------

  // Who holds a lease, for the "held by" message of the agent that backs off.
  std::string LeaseOwner() const { return fmt::format("smartbackup agent (state_dir {})", config.state_dir); }

  // Coexistence rule 1: a lease held by another agent means that agent writes this cluster's chain
  // (both believe they run on the primary, or one is still finishing): back off, saying so.
  static Status BackOff(const std::string& db, const Status& lease) {
    if (lease.code() != StatusCode::kAlreadyExists) return lease;
    return Status::AlreadyExists(fmt::format(
        "backs off: another smartbackup agent is writing the backups of \"{}\" ({}); one writer per cluster", db,
        lease.message()));
  }
  // Records a back-off once (health, log, state line): a full or log backup's until this agent
  // writes again, WAL capture's for as long as the other agent holds the stream lease.
  void NoteBackOff(ClusterRuntime& c, const std::string& message, bool stream = false) {
    {
      std::lock_guard lock(c.mu);
      std::string& note = stream ? c.stream_note : c.writer_note;
      if (note == message) return;
      note = message;
    }
    Event(c.name, HealthCategory::kWarning, message);
  }
  void ClearBackOff(ClusterRuntime& c, bool stream = false) {
    std::lock_guard lock(c.mu);
    (stream ? c.stream_note : c.writer_note).clear();
  }

  // Runs a full backup now (on the calling thread). Returns its manifest. With `recheck` (scheduled
  // fulls), a full of the cluster's current lineage that finished after `seen_last_full` (what the
  // decision saw) means another agent took it meanwhile: kAlreadyExists, nothing written.
  // The job's progress and cancel token go to the engine.
  Result<BackupManifest> RunFull(ClusterRuntime& c, const ClusterSettings& s, const std::string& reason,
                                 bool new_container, JobContext& job, bool recheck = false,
                                 std::optional<SystemTime> seen_last_full = std::nullopt) {
    RETURN_IF_ERROR(NameRefusal(c));
    ASSIGN_OR_RETURN(auto repo, OpenRepo(s.storage_url));
    // One writer per cluster even if two agents believe they are primary.
    auto lease = HeldLease::Acquire(repo->storage(), fmt::format("db/{}/locks/full", c.name), LeaseOwner());
    if (!lease.ok()) return BackOff(c.name, lease.status());
    Status key_error;
    auto key = LoadKeyOrLog(s, repo->storage(), &key_error);
    RETURN_IF_ERROR(key_error);
    if (recheck) {
      uint64_t sysid = 0;
      uint32_t tli = 0;
      {
        std::lock_guard lock(c.mu);
        sysid = c.system_identifier;
        tli = c.timeline;
      }
      auto listing = repo->ListBackups(c.name);
      if (listing.ok()) {
        for (const auto& b : listing->backups) {
          if (b.type != BackupType::kFull || b.system_identifier != sysid || b.timeline != tli) continue;
          if (seen_last_full && b.finish_time <= *seen_last_full) continue;
          return Status::AlreadyExists(fmt::format(
              "backs off: another smartbackup agent finished full backup {} of \"{}\" meanwhile; none is needed "
              "from this one",
              b.backup_id, c.name));
        }
      }
    }
    auto m = RunFullBackup(*repo, {.conninfo = c.conninfo,
                                   .database = c.name,
                                   .key = key ? &*key : nullptr,
                                   .container_reason = reason,
                                   .new_container = new_container,
                                   .progress =
                                       [&job](const FullBackupProgress& p) {
                                         job.SetProgress(FullBackupPhaseName(p.phase), p.bytes_done, p.bytes_total);
                                       },
                                   .cancelled = [&job] { return job.cancelled(); }});
    lease->reset();
    if (m.ok()) {
      std::lock_guard lock(c.mu);
      c.pending_break.reset();
      c.minimal_seen = false;
      if (c.slot_consumer.empty()) c.wal_taker.clear();
      log::Info("[{}] full backup {} complete ({})", c.name, m->backup_id, reason);
    }
    return m;
  }

  Result<BackupManifest> RunLog(ClusterRuntime& c, const ClusterSettings& s, const std::string& reason) {
    RETURN_IF_ERROR(NameRefusal(c));
    ASSIGN_OR_RETURN(auto repo, OpenRepo(s.storage_url));
    auto lease = HeldLease::Acquire(repo->storage(), fmt::format("db/{}/locks/log", c.name), LeaseOwner());
    if (!lease.ok()) return BackOff(c.name, lease.status());
    Status key_error;
    auto key = LoadKeyOrLog(s, repo->storage(), &key_error);
    RETURN_IF_ERROR(key_error);
    return RunLogBackup(*repo, {.conninfo = c.conninfo, .database = c.name, .key = key ? &*key : nullptr});
  }

  static Result<JobOutput> Output(const Result<BackupManifest>& m) {
    if (!m.ok()) return m.status();
    return JobOutput{.detail = m->backup_id, .backup = *m};
  }

  // A full backup as a job (scheduled: the decision's reason; rechecked as it starts).
  void StartFullJob(ClusterRuntime& c, const ClusterSettings& s, const Decision& d, bool new_container) {
    std::optional<SystemTime> seen_last_full;
    {
      std::lock_guard lock(c.mu);
      seen_last_full = c.observation.last_full_finish;
    }
    auto started = jobs->Start(
        {.kind = JobKind::kFull, .cluster = c.name, .reason = d.reason},
        [this, &c, s, d, new_container, seen_last_full](JobContext& job) {
          auto m = RunFull(c, s, d.reason, new_container, job, /*recheck=*/true, seen_last_full);
          if (m.ok()) {
            ClearBackOff(c);
          } else if (m.status().code() == StatusCode::kAlreadyExists) {
            NoteBackOff(c, m.status().message());
          } else {
            Event(c.name, CategoryOf(m.status(), false), "full backup failed: " + m.status().message());
          }
          return Output(m);
        });
    if (!started.ok()) log::Debug("[{}] {}", c.name, started.status().message());
  }

  void StartLogJob(ClusterRuntime& c, const ClusterSettings& s, const Decision& d) {
    auto started = jobs->Start({.kind = JobKind::kLog, .cluster = c.name, .reason = d.reason},
                               [this, &c, s, d](JobContext& job) {
                                 job.SetPhase("sealing captured WAL");
                                 auto m = RunLog(c, s, d.reason);
                                 if (!m.ok() && m.status().code() == StatusCode::kAlreadyExists) {
                                   NoteBackOff(c, m.status().message());
                                 } else if (!m.ok() && m.status().code() != StatusCode::kFailedPrecondition) {
                                   Event(c.name, CategoryOf(m.status(), false),
                                         "log backup failed: " + m.status().message());
                                 }
                                 return Output(m);
                               });
    if (!started.ok()) log::Debug("[{}] {}", c.name, started.status().message());
  }

  void StopStreamer(ClusterRuntime& c) {
    c.stream_stop = true;
    if (c.stream_thread.joinable()) c.stream_thread.join();
    c.stream_stop = false;
  }

  // Stream mode: WAL capture runs whenever backups may run.
  void EnsureStreamer(ClusterRuntime& c, const ClusterSettings& s) {
    if (c.stream_running && c.stream_url == s.storage_url) return;
    if (c.stream_running) StopStreamer(c);  // the storage changed
    if (c.stream_thread.joinable()) c.stream_thread.join();
    c.stream_running = true;
    c.stream_url = s.storage_url;
    {
      std::lock_guard lock(c.mu);
      c.streamed_here = true;
    }
    c.stream_thread = std::thread([this, &c, s] {
      Status result;
      {
        auto repo = OpenRepo(s.storage_url);
        result = repo.status();
        if (repo.ok()) {
          auto lease = HeldLease::Acquire((*repo)->storage(), fmt::format("db/{}/locks/stream", c.name), LeaseOwner());
          result = lease.status();
          {
            std::lock_guard lock(c.mu);
            c.stream_backoff = !lease.ok() && lease.status().code() == StatusCode::kAlreadyExists;
          }
          if (!lease.ok() && lease.status().code() == StatusCode::kAlreadyExists) {
            // Another agent captures this cluster's WAL: said once, retried every loop.
            NoteBackOff(c, BackOff(c.name, lease.status()).message(), /*stream=*/true);
            result = Status::Ok();
          }
          std::optional<EncryptionKey> key;  // made under the lease: no wrapped key per back-off
          if (lease.ok()) key = LoadKeyOrLog(s, (*repo)->storage(), &result);
          if (lease.ok() && result.ok()) {
            ClearBackOff(c, /*stream=*/true);
            result = RunWalStreamer(**repo, {.conninfo = c.conninfo,
                                             .database = c.name,
                                             .key = key ? &*key : nullptr,
                                             .flush_interval = s.flush_interval,
                                             .thresholds = {.max_wal = s.log_max_wal, .max_age = s.log_max_age},
                                             .stop = &c.stream_stop,
                                             .on_chain_break =
                                                 [this, &c](const ChainBreak& b) {
                                                   if (b.cause == "timeline switch") return;
                                                   ChainBreak named = b;  // rule 8: the tool, by name
                                                   std::string taken;
                                                   {
                                                     std::lock_guard lock(c.mu);
                                                     if (!c.wal_taker.empty()) taken = ", taken by " + c.wal_taker;
                                                     named.cause += taken;
                                                     c.pending_break = named;
                                                   }
                                                   Event(c.name, HealthCategory::kChainBreak,
                                                         fmt::format("log chain break: {} (WAL {}..{} on timeline {}){}; "
                                                                     "a full backup is scheduled at once",
                                                                     b.cause, b.start.ToString(), b.end.ToString(),
                                                                     b.timeline, taken));
                                                 },
                                             .on_durable = [this, &c](Lsn) {
                                               std::lock_guard lock(c.mu);
                                               c.recovery_point = clock->Now();
                                               c.writer_note.clear();  // this agent writes the chain
                                             }});
            lease->reset();
          }
        }
      }
      if (!result.ok()) {
        std::string who;  // rule 8: the slot's other client, by name
        {
          std::lock_guard lock(c.mu);
          if (!c.slot_consumer.empty() && result.message().find("in use") != std::string::npos) {
            who = "; it is " + c.slot_consumer;
          }
        }
        Event(c.name, CategoryOf(result, false), "WAL streaming stopped: " + result.message() + who);
      }
      c.stream_running = false;
    });
  }

  // Makes (or finds) the cluster's container for its current (system identifier, timeline) on the
  // loop's thread. False when it could not (the jobs then do it).
  bool PrepareContainer(ClusterRuntime& c, const ClusterSettings& s, bool force_new, const std::string& reason) {
    uint64_t sysid = 0;
    uint32_t tli = 0;
    {
      std::lock_guard lock(c.mu);
      sysid = c.system_identifier;
      tli = c.timeline;
    }
    if (sysid == 0 || tli == 0) return false;
    auto repo = OpenRepo(s.storage_url);
    if (!repo.ok()) return false;
    return (*repo)->EnsureContainer(c.name, sysid, tli, reason, force_new).ok();
  }

  // ---- availability groups and mirroring (coexistence rules 1 and 2) ------------

  // The repository id of the cluster's storage (cached per URL). Empty when the storage cannot be opened
  // (Observe reports that on a primary; a standby is checked again next loop).
  std::string RepoIdOf(ClusterRuntime& c, const ClusterSettings& s) {
    if (c.repo_id_url == s.storage_url && !c.repo_id.empty()) return c.repo_id;
    auto repo = OpenRepo(s.storage_url);
    if (!repo.ok()) return "";
    c.repo_id_url = s.storage_url;
    c.repo_id = (*repo)->id();
    return c.repo_id;
  }

  // Keeps the cluster's beacon (see kBeaconPrefix) connected to its primary and reads what the primary
  // shows: on a standby, the primary's agent (same storage, or refused as hybrid); on the primary, the
  // standbys that no agent manages on this storage (warned: no backups after a failover to them).
  // Records each change of the resulting line in health once. Loop thread only.
  void CheckPeers(ClusterRuntime& c, const ClusterSettings& s, const ClusterObservation& o) {
    std::string line;  // what health records (once per change)
    HealthCategory category = HealthCategory::kWarning;
    std::string note;
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
      return;
    }
    if (promoted) {
      bool refused = false;
      {
        std::lock_guard lock(c.mu);
        refused = !c.hybrid.empty() && c.hybrid_url == s.storage_url;
      }
      Event(c.name, HealthCategory::kWarning,
            refused ? fmt::format("promoted: the cluster left recovery on timeline {}; backups stay refused (hybrid "
                                  "availability group)",
                                  c.timeline)
                    : fmt::format("promoted: the cluster left recovery on timeline {}: backups start on this node{}",
                                  c.timeline,
                                  o.new_container ? " in a new container, beginning with a full backup" : ""));
    }
    const std::string repo_id = RepoIdOf(c, s);
    if (repo_id.empty()) return;
    const std::string name = BeaconName(o.in_recovery ? "standby" : "primary", repo_id, c.name);
    if (c.beacon && c.beacon_name != name) c.beacon.reset();  // role or storage changed
    std::optional<PrimaryView> view;
    std::string where = c.beacon ? c.beacon->HostPort() : "", problem;
    if (c.beacon) {
      auto v = ReadPrimaryView(*c.beacon);
      if (v.ok() && !v->in_recovery) {
        view = std::move(v).value();
      } else {
        c.beacon.reset();  // the primary went away or is a standby now: look again
        c.beacon_retry_at = SteadyTime{};
      }
    }
    if (!c.beacon && clock->SteadyNow() >= c.beacon_retry_at) {
      Result<std::string> primary = o.in_recovery ? FindPrimary(c.conninfo, &where) : Result<std::string>(c.conninfo);
      Result<std::unique_ptr<PgConnection>> conn = primary.status();
      if (primary.ok()) {
        auto named = ConninfoWith(*primary, {{"application_name", name}});
        conn = named.ok() ? PgConnection::Connect(*named, false) : Result<std::unique_ptr<PgConnection>>(named.status());
      }
      Result<PrimaryView> v = conn.ok() ? ReadPrimaryView(**conn) : Result<PrimaryView>(conn.status());
      if (v.ok() && !v->in_recovery) {
        c.beacon = std::move(conn).value();
        c.beacon_name = name;
        where = c.beacon->HostPort();
        view = std::move(v).value();
      } else {
        // Not every loop: reaching a primary that is down may take the whole connect timeout.
        c.beacon_retry_at = clock->SteadyNow() + std::chrono::seconds(30);
        problem = v.ok() ? "its primary is in recovery too" : v.status().message();
      }
    }
    // Agents must also use one name for the cluster, or a failover continues the chain under another.
    const std::string my_db = ParseBeacon(name, "")->db;
    if (o.in_recovery) {
      std::string hybrid;
      const Beacon* primary_agent = nullptr;
      if (view) {
        for (const auto& b : view->agents) {
          if (b.role == "primary" && (!primary_agent || b.db == my_db)) primary_agent = &b;
        }
      }
      if (view) {
        if (auto conflict = HybridConflict(*view, where, repo_id, s.storage_url)) {
          hybrid = *conflict;
        } else if (primary_agent && primary_agent->db != my_db) {
          note = fmt::format(
              "warning: the primary's agent names this cluster \"{}\", this agent \"{}\": after a failover the backups "
              "would continue under another name; hint: use one name on every node",
              primary_agent->db, my_db);
        } else if (primary_agent) {
          note = fmt::format("the primary at {} is backed up by its agent to this same storage", where);
        } else {
          note = fmt::format("no smartbackup agent seen on the primary at {}", where);
        }
      } else if (!problem.empty()) {
        note = "cannot compare storage targets with the primary: " + problem;
      }
      if (!hybrid.empty()) {
        std::lock_guard lock(c.mu);
        if (c.hybrid.empty() || c.hybrid_url != s.storage_url) {
          c.hybrid = hybrid;
          c.hybrid_url = s.storage_url;
        }
      }
      line = "skipped: standby: backups run on the primary only";
      if (!note.empty()) line += "; " + note;
    } else if (view) {
      int same = 0;
      std::vector<std::string> elsewhere;
      for (const auto& a : view->agents) {
        if (a.role != "standby") continue;
        if (a.repo_id != repo_id.substr(0, 16)) {
          elsewhere.push_back(a.from);
        } else if (a.db == my_db) {
          ++same;
        }
      }
      const int standbys = static_cast<int>(view->standbys.size());
      if (standbys > same) {
        std::string names;
        for (const auto& n : view->standbys) names += (names.empty() ? "" : ", ") + n;
        note = fmt::format(
            "warning: {} standby(s) replicate from this primary ({}) but {} run a smartbackup agent managing this "
            "cluster as \"{}\" on this storage: no backups follow a failover to an unmanaged standby{}; hint: on "
            "each standby, enable managed backup for this cluster with storage_url = {}",
            standbys, names, same == 0 ? std::string("none") : fmt::format("only {}", same), c.name,
            elsewhere.empty() ? "" : fmt::format(" ({} standby agent(s) target another storage: refused there)",
                                                 elsewhere.size()),
            s.storage_url);
        line = note;
      }
    }
    bool record = false;
    {
      std::lock_guard lock(c.mu);
      c.ha_note = note;
      if (!c.hybrid.empty() && c.hybrid_url == s.storage_url) {
        line = "refused: " + c.hybrid;
        category = HealthCategory::kOtherError;
      }
      record = !line.empty() && line != c.ha_reported;
      if (line.empty() && StartsWith(c.ha_reported, "warning:")) {
        log::Info("[{}] every standby of this primary now has a smartbackup agent on this storage", c.name);
      }
      c.ha_reported = line;
    }
    if (record) Event(c.name, category, line);
  }

  // Refuses enabling a standby whose primary's agent writes to another storage (the "hybrid" case).
  // A check that cannot be made (the primary unreachable, no agent there) does not refuse.
  Status CheckSameStorageAsPrimary(const ClusterSettings& s, const std::string& conninfo) {
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
    auto repo = OpenRepo(s.storage_url);
    if (!view.ok() || !repo.ok()) return Status::Ok();
    if (auto conflict = HybridConflict(*view, (*pconn)->HostPort(), (*repo)->id(), s.storage_url)) {
      return Status::FailedPrecondition("refused: " + *conflict);
    }
    return Status::Ok();
  }

  // Archive mode: PostgreSQL's archive_command must be smartbackup's.
  static std::optional<std::string> ForeignArchiveCommand(const std::string& conninfo) {
    auto conn = PgConnection::Connect(conninfo, false);
    if (!conn.ok()) return std::nullopt;
    auto info = ReadServerInfo(**conn);
    if (!info.ok()) return std::nullopt;
    if (IsSmartbackupArchiveCommand(info->archive_command)) {
      return std::nullopt;
    }
    return info->archive_command;
  }

  // ---- loops --------------------------------------------------------------------

  void BackupLoop() {
    RefreshClusters();
    bool master_on = store->MasterSwitch().value_or(true);
    for (ClusterRuntime* c : Snapshot()) {
      if (c->dropped) {
        if (c->stream_running) StopStreamer(*c);
        std::lock_guard lock(c->mu);
        c->state = "dropped: no more backups; backups kept until retention has elapsed";
        continue;
      }
      ClusterSettings s = Resolve(*c);
      ClusterObservation o = Observe(*c, s, master_on);
      CheckPeers(*c, s, o);
      CheckName(*c, s, o);
      std::string refusal;  // coexistence rule 1: the "hybrid" case, sticky until the storage changes
      bool stream_backoff = false;
      {
        std::lock_guard lock(c->mu);
        if (!s.enabled || c->hybrid_url != s.storage_url) c->hybrid.clear();
        if (o.reachable) refusal = c->hybrid;
        if (o.reachable && refusal.empty()) refusal = c->name_refusal;  // another cluster uses this name
        stream_backoff = c->stream_backoff;
      }
      bool capture_ok = master_on && s.enabled && o.reachable && !o.in_recovery && o.wal_level != "minimal";
      std::string archive_problem;
      std::string observed_archive_command;
      bool minimal_pending = false;
      {
        std::lock_guard lock(c->mu);
        observed_archive_command = c->archive_command;
        minimal_pending = c->minimal_pending;
      }
      // Observe just read the server's settings: no second connection for this check.
      if (capture_ok && s.mode == "archive" && !IsSmartbackupArchiveCommand(observed_archive_command)) {
        archive_problem = fmt::format(
            "archive mode refused: {}, not smartbackup wal-push (log shipping or another tool owns the WAL)",
            DescribeForeignArchiveCommand(observed_archive_command));
        capture_ok = false;
      }
      Decision full = DecideFull(o, s);
      Decision logd = DecideLog(o, s);
      if (!archive_problem.empty()) {
        full = logd = {.action = Decision::Action::kSkip, .reason = archive_problem};
      }
      if (!refusal.empty()) {
        full = logd = {.action = Decision::Action::kSkip, .reason = refusal};
        capture_ok = false;
      }
      if (stream_backoff && s.mode == "stream" && logd.action == Decision::Action::kLog) {
        // Another agent holds the stream lease: it captures and seals this cluster's WAL.
        logd = {.action = Decision::Action::kNone, .reason = "another smartbackup agent captures this cluster's WAL"};
      }
      // A new timeline or system identifier gets its own container anyway; only a
      // return from wal_level=minimal reuses (sysid, timeline) and must force a new one.
      bool force_new_container = o.new_container && StartsWith(o.new_container_cause, "wal_level");
      const bool full_starts =
          full.action == Decision::Action::kFull && jobs->Running(JobKind::kFull) < config.max_parallel_fulls;
      // Back from wal_level=minimal the new container is made here, before the full starts, and WAL
      // capture is restarted so that it writes into it too. (Concurrent writers asking for the same
      // container get one container: Repository::EnsureContainer handles that race.)
      if (full_starts && force_new_container && PrepareContainer(*c, s, /*force_new=*/true, full.reason)) {
        force_new_container = false;  // made above: the full must not make yet another
        if (c->stream_running) StopStreamer(*c);
      }
      // wal_level = minimal pending a restart: the slot must be dropped first (WatchSlot), so no capture.
      const bool reading = capture_ok && s.mode == "stream" && !minimal_pending;
      if (reading) {
        EnsureStreamer(*c, s);
      } else if (c->stream_running) {
        StopStreamer(*c);
      }
      HandleIdleSlot(*c, s, o, reading, master_on, refusal);
      {
        std::lock_guard lock(c->mu);
        c->settings = s;
        c->observation = o;
        c->full_decision = full;
        c->log_decision = logd;
        if (!o.reachable) {
          // c->state already holds the error line
        } else if (!refusal.empty()) {
          c->state = "refused: " + refusal;
        } else if (full.action == Decision::Action::kSkip) {
          c->state = "skipped: " + full.reason;
          if (o.in_recovery && !c->ha_note.empty()) c->state += "; " + c->ha_note;
          if (!s.enabled && c->found_while_defaults_off) {
            c->state += " (found while instance defaults were disabled: they were not applied)";
          }
        } else {
          c->state = c->stream_backoff && !c->stream_note.empty() ? c->stream_note
                     : !c->writer_note.empty()                   ? c->writer_note
                                                                 : "ok";
          if (!c->ha_note.empty()) c->state += "; " + c->ha_note;
          // Coexistence rule 4: stream mode works beside log shipping through its own slot; say so.
          if (s.mode == "stream" && !c->foreign_archive_command.empty()) {
            c->state += fmt::format("; stream mode: coexists with {} through its own replication slot {}",
                                    NameArchiveCommand(c->foreign_archive_command), DefaultSlotName(c->name));
          }
        }
        if (o.reachable && !c->slot_note.empty()) c->state += "; " + c->slot_note;  // rules 7 and 8
        if (!c->idle_slot_note.empty()) c->state += "; " + c->idle_slot_note;
      }
      if (!o.reachable && s.enabled && master_on) {
        Event(c->name, HealthCategory::kPostgresError, c->state);
      }
      if (full.action == Decision::Action::kFull) {
        if (jobs->Running(JobKind::kFull) >= config.max_parallel_fulls) {
          std::lock_guard lock(c->mu);
          c->state = "queued: " + full.reason + " (max_parallel_fulls reached)";
        } else {
          if (o.chain_broken) Event(c->name, HealthCategory::kChainBreak, full.reason);
          log::Info("[{}] {}", c->name, full.reason);
          StartFullJob(*c, s, full, force_new_container);
        }
      } else if (logd.action == Decision::Action::kLog) {
        log::Info("[{}] {}", c->name, logd.reason);
        StartLogJob(*c, s, logd);
      }
    }
    Event("", HealthCategory::kBackupLoop, "backup loop");
  }

  void RetentionLoop() {
    bool master_on = store->MasterSwitch().value_or(true);
    if (!master_on) return;  // the master switch pauses purging and checks too
    for (ClusterRuntime* c : Snapshot()) {
      ClusterSettings s = Resolve(*c);
      if (!s.enabled && !c->dropped) continue;
      std::optional<uint64_t> sysid;  // unknown until first connected: then every system identifier keeps its set
      {
        // Refused name: the backups under it are another cluster's; its retention is not ours to run.
        std::lock_guard lock(c->mu);
        if (!c->name_refusal.empty()) continue;
        if (c->system_identifier != 0) sysid = c->system_identifier;
      }
      auto repo = OpenRepo(s.storage_url);
      if (!repo.ok()) {
        Event(c->name, CategoryOf(repo.status(), true), repo.status().message());
        continue;
      }
      auto plan = PlanRetention(**repo, c->name, clock->Now(),
                                {.retention = s.retention_unit * s.retention_days,
                                 .cluster_live = !c->dropped,
                                 .system_identifier = sysid});
      if (!plan.ok()) {
        Event(c->name, CategoryOf(plan.status(), true), "retention: " + plan.status().message());
        continue;
      }
      if (!plan->manifests_to_delete.empty() || !plan->objects_to_delete.empty()) {
        Status applied = ApplyRetention(**repo, *plan);
        if (!applied.ok()) Event(c->name, CategoryOf(applied, true), "retention: " + applied.message());
        else log::Info("[{}] retention: {}", c->name, plan->summary);
      }
      CheckChainObjects(*c, **repo);
    }
    Event("", HealthCategory::kRetentionLoop, "retention loop");
  }

  // Every object the newest full backup and the log backups after it need
  // must still exist with its recorded size: missing → deleted, wrong size →
  // corrupted; either breaks the chain and schedules a full backup at once.
  void CheckChainObjects(ClusterRuntime& c, Repository& repo) {
    if (c.dropped) return;
    auto catalog = WalCatalog::Load(repo, c.name, std::nullopt);
    if (!catalog.ok() || catalog->bases().empty()) return;
    const BackupManifest* last_full = nullptr;
    for (const auto& b : catalog->bases()) {
      if (b.type == BackupType::kFull) last_full = &b;
    }
    if (!last_full) return;
    std::vector<const BackupManifest*> needed{last_full};
    for (const auto& l : catalog->log_backups()) {
      if (l.finish_time >= last_full->start_time) needed.push_back(&l);
    }
    for (const BackupManifest* m : needed) {
      for (const ObjectRef* ref : m->AllObjects()) {
        auto st = repo.storage().Stat(ref->key);
        std::string problem;
        HealthCategory category = HealthCategory::kDeletedBackup;
        if (!st.ok() && st.status().IsNotFound()) {
          problem = fmt::format("object \"{}\" of backup {} is missing (deleted)", ref->key, m->backup_id);
        } else if (st.ok() && st->size != ref->stored_size) {
          problem = fmt::format("object \"{}\" of backup {} is corrupted (size {} instead of {})", ref->key,
                                m->backup_id, st->size, ref->stored_size);
          category = HealthCategory::kCorruptedBackup;
        }
        if (problem.empty()) continue;
        Event(c.name, category, problem + "; a full backup is scheduled at once");
        std::lock_guard lock(c.mu);
        c.pending_break = ChainBreak{.cause = problem};
        return;
      }
    }
  }

  // ---- API ------------------------------------------------------------------------

  json SettingsJson(const ClusterSettings& s) {
    json j = json::object();
    for (const auto& [k, v] : ToPartial(s)) j[k] = v;
    return j;
  }

  json StatusJson(ClusterRuntime& c) {
    std::lock_guard lock(c.mu);
    auto action = [](const Decision& d) {
      switch (d.action) {
        case Decision::Action::kFull: return "full";
        case Decision::Action::kLog: return "log";
        case Decision::Action::kSkip: return "skip";
        case Decision::Action::kNone: return "none";
      }
      return "none";
    };
    json j = {{"database", c.name},
              {"enabled", c.settings.enabled},
              {"dropped", c.dropped},
              {"mode", c.settings.mode},
              {"storage_url", c.settings.storage_url},
              {"state", c.state},
              {"role", !c.observation.reachable ? "unreachable" : c.observation.in_recovery ? "standby" : "primary"},
              {"wal_level", c.observation.wal_level},
              {"streaming", c.stream_running.load()},
              {"system_identifier", std::to_string(c.system_identifier)},
              {"timeline", c.timeline},
              {"last_full", c.observation.last_full_finish ? json(FormatRfc3339(*c.observation.last_full_finish))
                                                           : json(nullptr)},
              {"last_log", c.observation.last_log_finish ? json(FormatRfc3339(*c.observation.last_log_finish))
                                                         : json(nullptr)},
              {"chain_broken", c.observation.chain_broken},
              {"running", json::array()},
              {"next_full", {{"action", action(c.full_decision)}, {"reason", c.full_decision.reason}}},
              {"next_log", {{"action", action(c.log_decision)}, {"reason", c.log_decision.reason}}}};
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
    for (JobKind kind : {JobKind::kFull, JobKind::kLog}) {
      if (auto running = jobs->Active(c.name, kind)) j["running"].push_back(running->Describe());
    }
    if (c.recovery_point) {
      j["recovery_point_age_seconds"] =
          std::chrono::duration_cast<std::chrono::seconds>(clock->Now() - *c.recovery_point).count();
    }
    if (c.window) {
      j["restore_window"] = {{"start", FormatRfc3339(c.window->start_time)},
                             {"end", FormatRfc3339(c.window->end_time)},
                             {"start_lsn", c.window->start_lsn.ToString()},
                             {"end_lsn", c.window->end_lsn.ToString()}};
    }
    return j;
  }

  // Messages quote request paths, which may be any bytes: replace invalid
  // UTF-8 rather than let dump() throw out of the handler (found by fuzz_api).
  static ApiResponse Error(int status, const std::string& message) {
    return {.status = status, .body = json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace)};
  }

  // Applies {"enable":…, "settings":{…}} on top of `current`; validation first,
  // so a bad value leaves the previous configuration in force.
  Result<PartialSettings> Merge(const PartialSettings& current, const std::string& body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("request body is not a JSON object");
    PartialSettings next = current;
    if (j.contains("settings") && j["settings"].is_object()) {
      for (auto& [k, v] : j["settings"].items()) {
        std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        ASSIGN_OR_RETURN(std::string canonical, ValidateOption(k, text));
        next[k] = canonical;
      }
    }
    if (j.contains("enable") && j["enable"].is_boolean()) next["enabled"] = j["enable"].get<bool>() ? "true" : "false";
    RETURN_IF_ERROR(ValidateSettings(next));
    return next;
  }

  // Refuses settings that cannot work now: unreachable storage, a foreign archive_command.
  Status CheckUsable(const ClusterSettings& s, const std::string& conninfo) {
    if (!s.enabled) return Status::Ok();
    auto repo = OpenRepo(s.storage_url);
    if (!repo.ok()) {
      return repo.status().WithContext(fmt::format("storage {} is not usable", s.storage_url));
    }
    if (!s.key_file.empty() && !s.public_key.empty()) {
      return Status::InvalidArgument("key_file and public_key exclude each other: set one");
    }
    if (!s.key_file.empty()) RETURN_IF_ERROR(EncryptionKey::LoadFromFile(s.key_file).status());
    if (!s.public_key.empty()) RETURN_IF_ERROR(PublicKeyFingerprint(s.public_key).status());
    if (!conninfo.empty()) RETURN_IF_ERROR(CheckSameStorageAsPrimary(s, conninfo));
    if (!conninfo.empty() && s.mode == "archive") {
      if (auto foreign = ForeignArchiveCommand(conninfo)) {
        return Status::FailedPrecondition(fmt::format(
            "cannot enable archive mode: {}, not smartbackup wal-push; log shipping or another "
            "tool owns the WAL; hint: use mode = stream, which coexists through its own replication slot",
            DescribeForeignArchiveCommand(*foreign)));
      }
    }
    return Status::Ok();
  }

  ApiResponse Handle(const ApiRequest& r) {
    const std::string db_prefix = "/v1/db/";
    if (auto answer = RouteJobs(*jobs, r)) return *answer;
    if (r.method == "GET" && r.path == "/v1/status") {
      json j = {{"master_switch", store->MasterSwitch().value_or(true)}, {"clusters", json::array()}};
      for (ClusterRuntime* c : Snapshot()) j["clusters"].push_back(StatusJson(*c));
      return {.body = j.dump()};
    }
    if (r.method == "GET" && r.path == "/v1/health") {
      // A since= that is not a time is refused, not replaced by the default.
      if (StartsWith(r.query, "since=") && !ParseRfc3339(r.query.substr(6)).ok()) {
        return Error(400, fmt::format("since \"{}\" is not an RFC 3339 time such as 2026-11-30T08:00:00Z",
                                      r.query.substr(6)));
      }
      return {.body = HealthJson(r.query).dump()};
    }
    if (r.path == "/v1/master-switch" && r.method == "POST") {
      json j = json::parse(r.body, nullptr, false);
      if (j.is_discarded() || !j.contains("on") || !j["on"].is_boolean()) return Error(400, "expected {\"on\": true|false}");
      Status s = store->SetMasterSwitch(j["on"].get<bool>());
      if (!s.ok()) return Error(500, s.message());
      log::Info("master switch {}", j["on"].get<bool>() ? "on: scheduling resumed" : "off: scheduling paused");
      return {.body = json{{"master_switch", j["on"].get<bool>()}}.dump()};
    }
    if (r.path == "/v1/instance-config") {
      if (r.method == "POST") {
        auto saved = store->LoadInstanceDefaults();
        PartialSettings current = saved.ok() && *saved ? **saved : PartialSettings{};
        auto next = Merge(current, r.body);
        if (!next.ok()) return Error(400, next.status().message());
        PartialSettings effective = config.defaults;
        for (const auto& [k, v] : *next) effective[k] = v;
        Status usable = CheckUsable(ResolveSettings(effective, {}), "");
        if (!usable.ok()) return Error(400, usable.message());
        Status s = store->SaveInstanceDefaults(*next);
        if (!s.ok()) return Error(500, s.message());
        const bool was_on = current.count("enabled") && current.at("enabled") == "true";
        const bool on = next->count("enabled") && next->at("enabled") == "true";
        if (was_on != on) {
          log::Info("{}", on ? "instance defaults enabled: clusters found from now on are managed with them"
                       : "instance defaults disabled: clusters found from now on are not managed (settings kept; "
                         "clusters already known are unchanged)");
        }
      }
      return {.body = SettingsJson(ResolveSettings(InstanceDefaults(), {})).dump()};
    }
    if (StartsWith(r.path, db_prefix)) {
      std::string rest = r.path.substr(db_prefix.size());
      auto slash = rest.find('/');
      std::string name = rest.substr(0, slash);
      std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
      ClusterRuntime* c = Find(name);
      if (!c) return Error(404, fmt::format("unknown database \"{}\"; hint: add it as a [[cluster]] in the config", name));
      if (what == "config") {
        if (r.method == "POST") {
          auto saved = store->LoadClusterOverrides();
          PartialSettings current = saved.ok() && saved->count(name) ? saved->at(name) : PartialSettings{};
          auto next = Merge(current, r.body);
          if (!next.ok()) return Error(400, next.status().message());
          PartialSettings cfg;
          for (const auto& e : config.clusters) {
            if (e.name == name) cfg = e.overrides;
          }
          for (const auto& [k, v] : *next) cfg[k] = v;
          Status usable = CheckUsable(ResolveSettings(config.defaults, cfg), c->conninfo);
          if (!usable.ok()) return Error(400, usable.message());
          Status s = store->SaveClusterOverrides(name, *next);
          if (!s.ok()) return Error(500, s.message());
        }
        json j = SettingsJson(Resolve(*c));
        j["database"] = name;
        return {.body = j.dump()};
      }
      if (what == "backup" && r.method == "POST") return BackupOnDemand(*c, r.body);
    }
    return Error(404, fmt::format("no such API route {} {}", r.method, r.path));
  }

  // Answers at once with the job (202); the CLI waits on GET /v1/jobs/ID.
  ApiResponse BackupOnDemand(ClusterRuntime& c, const std::string& body) {
    return PostBackupJob(*jobs, c.name, body, [this, &c](JobKind kind) -> JobFn {
      ClusterSettings s = Resolve(c);
      if (kind == JobKind::kFull) {
        return [this, &c, s](JobContext& job) { return Output(RunFull(c, s, "on demand", false, job)); };
      }
      return [this, &c, s](JobContext& job) {
        job.SetPhase("sealing captured WAL");
        return Output(RunLog(c, s, "on demand"));
      };
    });
  }

  json HealthJson(const std::string& query) {
    SystemTime now = clock->Now();
    SystemTime since = now - std::chrono::minutes(30);
    if (StartsWith(query, "since=")) {
      auto t = ParseRfc3339(query.substr(6));
      if (t.ok()) since = *t;
    }
    json counts = json::object();
    for (auto c : {HealthCategory::kStorageError, HealthCategory::kPostgresError, HealthCategory::kCredentialError,
                   HealthCategory::kOtherError, HealthCategory::kCorruptedBackup, HealthCategory::kDeletedBackup,
                   HealthCategory::kBackupLoop, HealthCategory::kRetentionLoop, HealthCategory::kChainBreak,
                   HealthCategory::kWarning}) {
      counts[HealthCategoryName(c)] = 0;
    }
    json recent = json::array();
    auto events = store->HealthEvents(since, now);
    if (events.ok()) {
      for (const auto& e : *events) {
        counts[HealthCategoryName(e.category)] = counts[HealthCategoryName(e.category)].get<int>() + 1;
        if (e.category != HealthCategory::kBackupLoop && e.category != HealthCategory::kRetentionLoop) {
          recent.push_back({{"at", FormatRfc3339(e.at)}, {"database", e.cluster},
                            {"category", HealthCategoryName(e.category)}, {"message", e.message}});
        }
      }
    }
    // Zero loops in 30 minutes means the agent is stuck.
    auto loops_30m = store->HealthEvents(now - std::chrono::minutes(30), now);
    int backup_loops = 0, retention_loops = 0;
    if (loops_30m.ok()) {
      for (const auto& e : *loops_30m) {
        backup_loops += e.category == HealthCategory::kBackupLoop;
        retention_loops += e.category == HealthCategory::kRetentionLoop;
      }
    }
    json clusters = json::array();
    for (ClusterRuntime* c : Snapshot()) clusters.push_back(StatusJson(*c));
    return {{"since", FormatRfc3339(since)},
            {"until", FormatRfc3339(now)},
            {"counts", counts},
            {"stuck", backup_loops == 0 || retention_loops == 0},
            {"master_switch", store->MasterSwitch().value_or(true)},
            {"events", recent},
            {"clusters", clusters}};
  }

  void Shutdown() {
    for (ClusterRuntime* c : Snapshot()) {
      StopStreamer(*c);
    }
    jobs->Shutdown();
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  if (impl_) impl_->Shutdown();
}

Result<std::unique_ptr<Agent>> Agent::Create(AgentConfig config, Clock* clock) {
  auto impl = std::make_unique<Impl>();
  impl->clock = clock;
  impl->config = std::move(config);
  std::error_code ec;
  std::filesystem::create_directories(impl->config.state_dir, ec);
  if (ec) {
    return Status::IoError(fmt::format("cannot create state_dir \"{}\": {}", impl->config.state_dir, ec.message()));
  }
  ASSIGN_OR_RETURN(impl->store, StateStore::Open(impl->config.state_dir + "/state.db"));
  RETURN_IF_ERROR(impl->store->MarkInterruptedJobs(clock->Now()));
  impl->jobs = std::make_unique<JobManager>(
      impl->store.get(), clock, JobManagerOptions{.max_running = {{JobKind::kFull, impl->config.max_parallel_fulls}}});
  ASSIGN_OR_RETURN(impl->token, LoadOrCreateToken(impl->config.state_dir + "/api.token"));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Status Agent::Run(const std::atomic<bool>& stop) {
  ASSIGN_OR_RETURN(impl_->api, ApiServer::Start(impl_->config.socket, impl_->token,
                                                [this](const ApiRequest& r) { return impl_->Handle(r); }));
  log::Info("agent started: socket {}, state {}", impl_->config.socket, impl_->config.state_dir);
  SteadyTime next_retention = impl_->clock->SteadyNow();
  while (!stop) {
    impl_->BackupLoop();
    if (impl_->clock->SteadyNow() >= next_retention) {
      impl_->RetentionLoop();
      next_retention = impl_->clock->SteadyNow() + impl_->config.loop_interval;
    }
    SteadyTime wake = impl_->clock->SteadyNow() + impl_->config.loop_interval;
    while (!stop && impl_->clock->SteadyNow() < wake) impl_->clock->SleepFor(milliseconds(100));
  }
  log::Info("agent stopping: flushing WAL capture and waiting for running backups");
  impl_->api->Stop();
  impl_->Shutdown();
  return Status::Ok();
}

void Agent::BackupLoopOnce() { impl_->BackupLoop(); }
void Agent::RetentionLoopOnce() { impl_->RetentionLoop(); }
ApiResponse Agent::HandleApi(const ApiRequest& request) { return impl_->Handle(request); }

Result<AgentEndpoint> EndpointFromConfig(const std::string& config_path) {
  ASSIGN_OR_RETURN(AgentConfig config, LoadAgentConfig(config_path));
  return AgentEndpoint{.socket = config.socket, .token_path = config.state_dir + "/api.token"};
}

}  // namespace sb
