// Retention: which backups, WAL parts and leftovers of one database to purge.
//
// A cluster is one system identifier: the containers of another system
// identifier under the same name are another cluster (two hosts whose
// discovered names collide), kept whole by the dropped-cluster rule below.
// "now" is the storage's time (the mtime of a probe object), never the local
// clock's, and all time arithmetic saturates.
//
// The rule, for a live cluster (cutoff = now − retention):
// - Fulls are the complete backups of type full (copy-only excluded), across
//   every container of the cluster, ordered by finish_time. The anchor is the
//   newest restorable full (every object listed with its stored size) that
//   finished at or before the cutoff. When no full is that
//   old, nothing of the chain is purged (anchor_backup_id then names the
//   oldest full, where the restorable window starts).
// - Kept: the anchor, every full after it, every backup that finished after
//   the anchor, and all WAL needed to roll forward from any kept full.
// - Purged: fulls older than the anchor; log backups that finished no later
//   than the anchor and whose WAL is not needed; the WAL parts they cover
//   (unless a kept log backup also covers them); unsealed parts whose WAL is
//   not needed.
// - "Not needed", for WAL in container c on (system identifier, timeline t)
//   ending at `end`, is decided conservatively:
//     * c is newer than the anchor's container (or its age is unknown): needed.
//     * t descends (through timeline history) from the timeline of a kept full:
//       needed (rolling forward from that full crosses into t).
//     * a kept full is on t, or t is its ancestor and the full's start segment
//       begins before the switch point: needed iff end > floor, where floor is
//       the start of the WAL segment holding that full's start_lsn (the lowest
//       over kept fulls). The segment, not the exact LSN, so that wal-get can
//       still assemble the whole segment recovery asks for first.
//     * otherwise: not needed in containers created before the anchor's
//       container (an older lineage: failover, new system identifier), needed
//       in the anchor's own container (when in doubt, keep).
// - The live guard: the newest full and everything after it are never purged.
//   (The anchor is never newer than the newest full, so the rule implies it;
//   the code checks it again.) Since only a restorable full anchors, the
//   newest restorable full is never purged either.
// - Only listed keys are deleted, and a backup's data is what is listed under
//   the prefix its manifest's key names: a manifest copied under another name
//   does not match its key, plans nothing and is kept.
// Copy-only backups expire at finish_time + retention, independent of the chain.
// A dropped cluster keeps its chain whole until retention has elapsed since its
// newest backup (or newest object, whichever is later), then loses everything:
// manifests, data, WAL parts, history files and container descriptors.
// Leftovers: a data directory db/<db>/data/<container>/<backup_id>/ without a
// manifest (readable or not) whose newest object is older than leftover_grace,
// while no full backup holds the lease db/<db>/locks/full.
// The newest object, not each object: a long-running backup keeps writing, and
// its first chunks must not vanish under it.
#include "engine/retention/retention.h"

#include <fmt/core.h>

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "common/logging.h"
#include "common/lsn.h"
#include "common/text.h"
#include "engine/wal/compaction.h"
#include "engine/wal/wal_catalog.h"
#include "repo/key_store.h"
#include "repo/object_codec.h"

namespace sb {
namespace {

using Lineage = std::pair<uint64_t, uint32_t>;  // (system identifier, timeline): one LSN space
constexpr uint64_t kDefaultSegmentSize = 16ull << 20;

Lsn SegmentStart(Lsn lsn, uint64_t segment_size) {
  if (segment_size == 0) segment_size = kDefaultSegmentSize;
  return Lsn{lsn.value - lsn.value % segment_size};
}

bool FinishedBefore(const BackupManifest* a, const BackupManifest* b) {
  return a->finish_time != b->finish_time ? a->finish_time < b->finish_time : a->backup_id < b->backup_id;
}

// Saturating time arithmetic: a retention of centuries must mean "never",
// not wrap around into the past and purge everything.
SystemTime::duration ToDuration(std::chrono::milliseconds d) {
  using Dur = SystemTime::duration;
  constexpr auto kMax = std::chrono::duration_cast<std::chrono::milliseconds>(Dur::max());
  constexpr auto kMin = std::chrono::duration_cast<std::chrono::milliseconds>(Dur::min());
  if (d >= kMax) return Dur::max();
  if (d <= kMin) return Dur::min();
  return std::chrono::duration_cast<Dur>(d);
}

SystemTime Plus(SystemTime t, std::chrono::milliseconds d) {
  const auto a = t.time_since_epoch().count();
  const auto b = ToDuration(d).count();
  decltype(a + b) sum;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? SystemTime::max() : SystemTime::min();
  return SystemTime(SystemTime::duration(sum));
}

SystemTime Minus(SystemTime t, std::chrono::milliseconds d) {
  if (d == std::chrono::milliseconds::min()) return Plus(t, std::chrono::milliseconds::max());
  return Plus(t, -d);
}

std::string FormatWhen(SystemTime t) {
  if (t == SystemTime::max()) return "never (the retention outlasts the calendar)";
  if (t == SystemTime::min()) return "the beginning of time";
  return FormatRfc3339(t);
}

// Everything the rule looks at for one cluster (one system identifier, or
// the containers no descriptor names), read once from the repository.
struct Inputs {
  std::string db;
  std::map<std::string, size_t> container_index;  // by creation order
  std::map<std::string, uint64_t> container_sysid;
  std::map<Lineage, TimelineSwitch> switches;
  std::vector<BackupManifest> backups;       // manifests matching their listed keys, by start time
  std::vector<const BackupManifest*> fulls;  // by finish time
  std::vector<bool> restorable;              // per fulls[i]: every object listed with its stored size
  std::vector<ObjectInfo> objects;           // every object of the cluster's containers
  std::set<std::string> manifest_keys;       // every manifest key, readable or not
};

// The container a key under db/<db>/ belongs to, or "" (not a container's).
std::string ContainerOfKey(const std::string& db, const std::string& key) {
  const std::string root = fmt::format("db/{}/", db);
  if (!StartsWith(key, root)) return "";
  const std::string rest = key.substr(root.size());
  const std::string descriptors = "containers/";
  if (StartsWith(rest, descriptors) && EndsWith(rest, ".json")) {
    return rest.substr(descriptors.size(), rest.size() - descriptors.size() - 5);
  }
  for (const char* area : {"backups/", "data/", "wal/"}) {
    if (!StartsWith(rest, area)) continue;
    size_t from = std::string_view(area).size();
    size_t slash = rest.find('/', from);
    if (slash == std::string::npos || slash == from) return "";
    return rest.substr(from, slash - from);
  }
  return "";
}

// What the rule keeps when fulls[anchor] is the anchor. Built once for the
// real anchor and once per full for the expiration times.
class KeepSet {
 public:
  KeepSet(const Inputs& in, size_t anchor) : in_(in), anchor_(anchor), anchor_full_(in.fulls[anchor]) {
    std::set<Lineage> kept_lineages;
    for (size_t j = 0; j < in.fulls.size(); ++j) {
      if (!FullKept(j)) continue;
      const BackupManifest* f = in.fulls[j];
      auto start = Lsn::Parse(f->start_lsn);
      Lineage lin{f->system_identifier, f->timeline};
      kept_lineages.insert(lin);
      if (!start.ok()) {
        floors_[lin] = Lsn{0};  // unknown start: keep all of its timeline
        continue;
      }
      Lsn floor = SegmentStart(*start, f->wal_segment_size);
      LowerFloorTo(lin, floor);
      // Ancestors: their WAL is needed only below the switch point, and only
      // when the full's first segment reaches back across it.
      for (int depth = 0; depth < 1000; ++depth) {
        auto sw = in.switches.find(lin);
        if (sw == in.switches.end() || floor >= sw->second.switch_point) break;
        lin = {lin.first, sw->second.parent};
        LowerFloorTo(lin, floor);
      }
    }
    // Timelines that branch off a kept full's timeline (transitively).
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& [lin, sw] : in.switches) {
        Lineage parent{lin.first, sw.parent};
        if (descendants_.count(lin)) continue;
        if (kept_lineages.count(parent) || descendants_.count(parent)) {
          descendants_.insert(lin);
          grew = true;
        }
      }
    }
  }

  const BackupManifest& anchor() const { return *anchor_full_; }

  bool FullPurged(size_t j) const { return !FullKept(j); }

  bool LogPurged(const BackupManifest& m) const {
    if (m.finish_time > anchor_full_->finish_time) return false;            // finished after the anchor
    if (m.finish_time >= in_.fulls.back()->finish_time) return false;       // live guard
    auto end = Lsn::Parse(m.end_lsn);
    if (!end.ok()) return false;
    return WalPurgeable(m.container, m.system_identifier, m.timeline, *end);
  }

  bool PartPurgeable(const WalPart& p) const {
    auto sysid = in_.container_sysid.find(p.container);
    if (sysid == in_.container_sysid.end()) return false;  // unknown container: keep
    return WalPurgeable(p.container, sysid->second, p.timeline, p.end);
  }

 private:
  // Keeps the lowest floor seen for the lineage.
  void LowerFloorTo(const Lineage& lin, Lsn floor) {
    auto it = floors_.find(lin);
    if (it == floors_.end() || floor < it->second) floors_[lin] = floor;
  }

  // Created before the anchor's container (both known).
  bool Older(const std::string& container) const {
    auto c = in_.container_index.find(container);
    auto a = in_.container_index.find(anchor_full_->container);
    return c != in_.container_index.end() && a != in_.container_index.end() && c->second < a->second;
  }
  bool SameOrOlder(const std::string& container) const {
    return container == anchor_full_->container || Older(container);
  }

  bool FullKept(size_t j) const {
    if (j >= anchor_ || j + 1 == in_.fulls.size()) return true;
    // A full in a container newer than the anchor's (or of unknown age) that
    // still finished earlier only happens with skewed clocks: keep it.
    return !SameOrOlder(in_.fulls[j]->container);
  }

  bool WalPurgeable(const std::string& container, uint64_t sysid, uint32_t timeline, Lsn end) const {
    if (!SameOrOlder(container)) return false;
    Lineage lin{sysid, timeline};
    if (descendants_.count(lin)) return false;
    auto floor = floors_.find(lin);
    if (floor != floors_.end()) return end <= floor->second;
    return container != anchor_full_->container;
  }

  const Inputs& in_;
  size_t anchor_;
  const BackupManifest* anchor_full_;
  std::map<Lineage, Lsn> floors_;  // WAL ending above the floor is needed
  std::set<Lineage> descendants_;
};

// The data directory a key belongs to ("db/<db>/data/<container>/<id>/"), or "".
std::string DataDirOf(const std::string& db, const std::string& key) {
  const std::string root = fmt::format("db/{}/data/", db);
  if (!StartsWith(key, root)) return "";
  size_t c = key.find('/', root.size());
  if (c == std::string::npos || c == root.size()) return "";
  size_t id = key.find('/', c + 1);
  if (id == std::string::npos || id == c + 1 || id + 1 >= key.size()) return "";
  return key.substr(0, id + 1);
}

// One cluster of the database: a system identifier, or nullopt for objects
// of containers without a descriptor.
using ClusterKey = std::optional<uint64_t>;

// Everything of the database read once: listing, descriptors, histories and
// manifests, split by cluster. `listed`: every key this pass listed, the only
// keys a plan may delete.
struct Repo {
  std::map<ClusterKey, Inputs> clusters;
  std::set<std::string> listed;
  IndexRewrite index;  // format version 2: what the index is rewritten from
};

// A manifest is trusted only where it lies: its content must name the key it
// was listed under, this database and its container's system identifier.
// Otherwise (a copy under another name, an edited one) it is kept and ignored.
bool ManifestMatchesKey(const std::string& db, const std::string& key, const BackupManifest& m,
                        const std::map<std::string, uint64_t>& sysids) {
  if (m.database != db || Repository::ManifestKey(db, m.container, m.backup_id) != key) return false;
  auto sysid = sysids.find(m.container);
  return sysid == sysids.end() || sysid->second == m.system_identifier;
}

Result<Repo> ReadRepo(Repository& repo, const std::string& db) {
  Repo r;
  auto cluster_of = [&](const std::map<std::string, uint64_t>& sysids, const std::string& container) -> Inputs& {
    auto it = sysids.find(container);
    ClusterKey key = it == sysids.end() ? ClusterKey{} : ClusterKey{it->second};
    Inputs& in = r.clusters[key];
    in.db = db;
    return in;
  };
  std::map<std::string, uint64_t> sysids;
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(db));
  for (size_t i = 0; i < containers.size(); ++i) sysids[containers[i].name] = containers[i].system_identifier;
  for (size_t i = 0; i < containers.size(); ++i) {
    const auto& c = containers[i];
    Inputs& in = cluster_of(sysids, c.name);
    in.container_index[c.name] = i;
    in.container_sysid[c.name] = c.system_identifier;
    const std::string hkey = Repository::HistoryKey(db, c.name, c.timeline);
    auto history = repo.storage().Get(hkey);
    if (history.ok()) {
      auto plain = DecodeObject(*history, hkey, nullptr);
      if (!plain.ok()) {
        log::Warn("retention: history file \"{}\" is unreadable: {}", hkey, plain.status().message());
        continue;
      }
      if (auto sw = ParseTimelineHistory(*plain)) in.switches[{c.system_identifier, c.timeline}] = *sw;
    } else if (!history.status().IsNotFound()) {
      return history.status();
    }
  }
  // Version 2: a listed manifest's text is taken from the index when an entry
  // holds it (checked like the manifest itself), so a pass reads only
  // unindexed manifests. The index is not backups: never planned, rewritten
  // by ApplyRetention. Read BEFORE the listing: every index object read then
  // names only manifests written before it (step 2 before 3), which the
  // listing holds, so the rewrite that replaces these objects keeps every
  // entry; an object written after the listing is not read, not replaced.
  IndexView view;
  if (repo.format_version() >= 2) {
    ASSIGN_OR_RETURN(view, backup_index::Read(repo.storage(), db, nullptr));
    r.index.enabled = view.usable;
    for (const auto& [key, level] : view.objects) {
      r.index.objects.push_back(key);
      r.index.level = std::max(r.index.level, level);
    }
  }
  ASSIGN_OR_RETURN(auto objects, ListAll(repo.storage(), fmt::format("db/{}/", db)));
  const std::string index_root = backup_index::Prefix(db);
  const std::string locks_root = fmt::format("db/{}/locks/", db);
  const std::string drills_root = fmt::format("db/{}/drills/", db);
  const std::string backups_root = fmt::format("db/{}/backups/", db);
  std::map<std::string, uint64_t> sizes;
  for (auto& o : objects) {
    r.listed.insert(o.key);
    sizes[o.key] = o.size;
    if (StartsWith(o.key, locks_root)) continue;  // leases are not backups
    if (StartsWith(o.key, drills_root)) continue;  // drill records (one a day at most) are kept
    if (StartsWith(o.key, index_root)) {
      if (!backup_index::ManifestKeyOfMarker(db, o.key).empty()) r.index.markers.push_back(o);
      continue;
    }
    Inputs& in = cluster_of(sysids, ContainerOfKey(db, o.key));
    if (StartsWith(o.key, backups_root) && EndsWith(o.key, ".json")) {
      in.manifest_keys.insert(o.key);
      auto entry = view.entries.find(o.key);
      std::string text;
      if (entry != view.entries.end()) {
        text = entry->second;
      } else {
        auto got = repo.storage().Get(o.key);
        if (got.ok()) {
          text = std::move(got).value();
        } else if (!got.status().IsNotFound()) {  // not found: deleted since the listing
          return got.status();
        }
      }
      auto m = text.empty() ? Result<BackupManifest>(Status::NotFound(o.key)) : repo.ParseManifest(text, o.key);
      if (m.ok()) r.index.live[o.key] = text;
      if (m.ok()) {
        if (ManifestMatchesKey(db, o.key, *m, sysids)) {
          in.backups.push_back(std::move(m).value());
        } else {
          log::Warn("retention: keeping manifest \"{}\", whose content names another backup (\"{}\")", o.key,
                    Repository::ManifestKey(m->database, m->container, m->backup_id));
        }
      } else if (m.status().code() == StatusCode::kCorruption ||
                 m.status().code() == StatusCode::kFailedPrecondition) {
        log::Warn("retention: keeping unreadable manifest: {}", m.status().message());
      } else if (!m.status().IsNotFound()) {  // not found: deleted since the listing
        return m.status();
      }
    }
    in.objects.push_back(std::move(o));
  }
  for (auto& [key, in] : r.clusters) {
    std::sort(in.backups.begin(), in.backups.end(), [](const auto& a, const auto& b) {
      return a.start_time != b.start_time ? a.start_time < b.start_time : a.backup_id < b.backup_id;
    });
    for (const auto& m : in.backups) {
      if (m.type == BackupType::kFull) in.fulls.push_back(&m);
    }
    std::sort(in.fulls.begin(), in.fulls.end(), FinishedBefore);
    for (const BackupManifest* f : in.fulls) {
      const std::string dir = Repository::DataPrefix(db, f->container, f->backup_id);
      auto refs = f->AllObjects();
      bool ok = !refs.empty();
      for (const ObjectRef* ref : refs) {
        auto size = sizes.find(ref->key);
        ok = ok && StartsWith(ref->key, dir) && size != sizes.end() && size->second == ref->stored_size;
      }
      in.restorable.push_back(ok);
    }
  }
  return r;
}

// Collects the plan's deletions without duplicates, in the order added. Only
// keys the pass listed are taken: nothing a manifest merely names is deleted.
class Deletions {
 public:
  explicit Deletions(const std::set<std::string>& listed) : listed_(listed) {}
  void Manifest(const std::string& key) {
    if (listed_.count(key) && seen_.insert(key).second) manifests_.push_back(key);
  }
  void Object(const std::string& key) {
    if (listed_.count(key) && seen_.insert(key).second) objects_.push_back(key);
  }
  // Deleted after every other object (container descriptors: a database stays
  // listed until its data is gone).
  void Last(const std::string& key) {
    if (listed_.count(key) && seen_.insert(key).second) last_.push_back(key);
  }
  // A single-use data key outside db/<db>/, not listed: its own content names
  // the listed WAL part it was made for (AddSingleUseKeys checks).
  void SingleUseKey(const std::string& key) {
    if (seen_.insert(key).second) objects_.push_back(key);
  }
  bool Has(const std::string& key) const { return seen_.count(key) > 0; }
  std::vector<std::string>& manifests() { return manifests_; }
  std::vector<std::string>& objects() { return objects_; }
  std::vector<std::string> TakeObjects() {
    std::vector<std::string> all = std::move(objects_);
    all.insert(all.end(), last_.begin(), last_.end());
    return all;
  }
  size_t object_count() const { return objects_.size() + last_.size(); }

 private:
  const std::set<std::string>& listed_;
  std::set<std::string> seen_;
  std::vector<std::string> manifests_;
  std::vector<std::string> objects_;
  std::vector<std::string> last_;
};

// Whether a full backup of the database may be running: its lease is held.
// Asked at most once a pass, and only when there are leftovers to remove.
class FullLeaseProbe {
 public:
  FullLeaseProbe(Repository& repo, const std::string& db) : repo_(repo), key_(fmt::format("db/{}/locks/full", db)) {}
  bool Held() {
    if (!held_) {
      auto lease = repo_.storage().AcquireLease(key_, {.ttl = std::chrono::seconds(15), .owner = "smartbackup retention"});
      if (lease.ok()) {
        (void)(*lease)->Release();
        held_ = false;
      } else {
        // Held, or unknown: either way a backup may be writing.
        if (lease.status().code() != StatusCode::kAlreadyExists) {
          log::Warn("retention: cannot check the lease \"{}\", keeping leftovers: {}", key_, lease.status().message());
        }
        held_ = true;
      }
    }
    return *held_;
  }

 private:
  Repository& repo_;
  std::string key_;
  std::optional<bool> held_;
};

struct Counts {
  int full = 0, log = 0, copy_only = 0, leftovers = 0;
  bool leftovers_kept_for_lease = false;
};

// Single-use data keys (wal-push with a public key) go with the WAL part they
// were made for, after it. A part whose header or key cannot be read keeps its
// key: a key too many costs a few hundred bytes, a key too few loses WAL.
void AddSingleUseKeys(Repository& repo, Deletions& del) {
  std::vector<std::string> parts;
  for (const auto& key : del.objects()) {
    if (Repository::ParseWalPartKey(key)) parts.push_back(key);
  }
  if (parts.empty()) return;  // the usual retention pass: nothing purged, no storage call
  auto any = repo.storage().List("keys/", "", 1);
  if (!any.ok() || any->objects.empty()) return;  // no public-key writer ever wrote here
  std::vector<std::string> keys;
  for (const auto& key : parts) {
    auto head = repo.storage().GetRange(key, 0, kObjectHeaderSize);
    if (!head.ok()) continue;
    auto info = ParseObjectHeader(*head, key, /*whole_object=*/false);
    if (!info.ok() || !info->encrypted) continue;
    auto target = SingleUseKeyTarget(repo.storage(), info->key_id);
    if (target.ok() && *target == key) keys.push_back(WrappedKeyObject(info->key_id));
  }
  for (const auto& k : keys) del.SingleUseKey(k);
}

std::string CountsText(const Counts& n, size_t objects) {
  return fmt::format("purged {} full, {} log, {} copy-only backups, {} objects ({} of leftovers)", n.full, n.log,
                     n.copy_only, objects, n.leftovers);
}

using Dirs = std::map<std::string, std::vector<const ObjectInfo*>>;  // data directory → its listed objects

// A base backup: its manifest and the objects listed under the data prefix
// its manifest's key names (never what the manifest's content lists).
void PurgeBaseBackup(const Inputs& in, const BackupManifest& m, const Dirs& dirs, Deletions& del) {
  del.Manifest(Repository::ManifestKey(in.db, m.container, m.backup_id));
  auto listed = dirs.find(Repository::DataPrefix(in.db, m.container, m.backup_id));
  if (listed != dirs.end()) {
    for (const ObjectInfo* o : listed->second) del.Object(o->key);
  }
}

void PurgeCopyOnlyAndLeftovers(const Inputs& in, SystemTime now, const RetentionOptions& options, const Dirs& dirs,
                               FullLeaseProbe& lease, RetentionPlan& plan, Deletions& del, Counts& n) {
  for (const auto& m : in.backups) {
    if (m.type != BackupType::kCopyOnly) continue;
    SystemTime expires = Plus(m.finish_time, options.retention);
    plan.expiration[m.backup_id] = expires;
    if (expires <= now) {
      PurgeBaseBackup(in, m, dirs, del);
      ++n.copy_only;
    }
  }
  const SystemTime idle_since = Minus(now, options.leftover_grace);
  for (const auto& [dir, objects] : dirs) {
    // dir = db/<db>/data/<container>/<id>/ → its manifest key.
    std::string rest = dir.substr(fmt::format("db/{}/data/", in.db).size());
    rest.pop_back();
    size_t slash = rest.find('/');
    const std::string manifest = Repository::ManifestKey(in.db, rest.substr(0, slash), rest.substr(slash + 1));
    if (in.manifest_keys.count(manifest)) continue;
    SystemTime newest{};
    for (const ObjectInfo* o : objects) newest = std::max(newest, o->mtime);
    if (newest > idle_since) continue;
    // A backup that stalled longer than the grace period still holds its
    // lease: its data is not a leftover yet.
    if (lease.Held()) {
      n.leftovers_kept_for_lease = true;
      continue;
    }
    for (const ObjectInfo* o : objects) del.Object(o->key);
    ++n.leftovers;
  }
}

Dirs DataDirs(const Inputs& in) {
  Dirs dirs;
  for (const auto& o : in.objects) {
    std::string dir = DataDirOf(in.db, o.key);
    if (!dir.empty()) dirs[dir].push_back(&o);
  }
  return dirs;
}

// The dropped-cluster rule for one cluster: whole until `retention` after its
// newest backup or object, then everything goes. `own`: the cluster the pass
// is for (its copy-only backups and leftovers are handled meanwhile); another
// cluster under the same name is otherwise left alone.
std::string PlanExpiring(const Inputs& in, SystemTime now, const RetentionOptions& options, bool own,
                         FullLeaseProbe& lease, RetentionPlan& plan, Deletions& del, Counts& n) {
  const Dirs dirs = DataDirs(in);
  // Object times count too (WAL archived after the last backup is part of it).
  std::optional<SystemTime> last;
  for (const auto& m : in.backups) last = std::max(last.value_or(m.finish_time), m.finish_time);
  for (const auto& o : in.objects) last = std::max(last.value_or(o.mtime), o.mtime);
  if (!last) return "holds nothing";
  const SystemTime expires = Plus(*last, options.retention);
  for (const auto& m : in.backups) {
    plan.expiration[m.backup_id] =
        m.type == BackupType::kCopyOnly ? std::min(expires, Plus(m.finish_time, options.retention)) : expires;
  }
  if (now >= expires) {
    const std::string containers_root = fmt::format("db/{}/containers/", in.db);
    for (const auto& key : in.manifest_keys) del.Manifest(key);
    for (const auto& o : in.objects) {
      if (in.manifest_keys.count(o.key)) continue;
      if (StartsWith(o.key, containers_root)) {
        del.Last(o.key);
      } else {
        del.Object(o.key);
      }
    }
    for (const auto& m : in.backups) {
      if (m.type == BackupType::kFull) ++n.full;
      if (m.type == BackupType::kLog) ++n.log;
      if (m.type == BackupType::kCopyOnly) ++n.copy_only;
    }
    return fmt::format("retention elapsed at {}; purged everything ({} manifests)", FormatWhen(expires),
                       in.manifest_keys.size());
  }
  if (own) PurgeCopyOnlyAndLeftovers(in, now, options, dirs, lease, plan, del, n);
  return fmt::format("kept until {}", FormatWhen(expires));
}

// The live rule for one cluster (see the top of this file).
std::string PlanLive(const Inputs& in, SystemTime now, const RetentionOptions& options, FullLeaseProbe& lease,
                     RetentionPlan& plan, std::string& anchor_id, Deletions& del, Counts& n) {
  const Dirs dirs = DataDirs(in);
  const std::string& db = in.db;
  const SystemTime cutoff = Minus(now, options.retention);

  // Expiration of fulls and log backups: the finish time of the first full
  // whose anchorship would purge them, plus retention (the newest full and
  // anything it still needs: none yet). Only a restorable full anchors.
  for (size_t k = 0; k < in.fulls.size(); ++k) {
    if (!in.restorable[k]) continue;
    KeepSet keep(in, k);
    const SystemTime when = Plus(in.fulls[k]->finish_time, options.retention);
    for (size_t j = 0; j < k; ++j) {
      if (keep.FullPurged(j)) plan.expiration.try_emplace(in.fulls[j]->backup_id, when);
    }
    for (const auto& m : in.backups) {
      if (m.type == BackupType::kLog && keep.LogPurged(m)) plan.expiration.try_emplace(m.backup_id, when);
    }
  }

  // The anchor: the newest restorable full that finished at or before the
  // cutoff. A full with missing objects never anchors, so the window always
  // starts at a backup that restores.
  std::optional<size_t> anchor;
  for (size_t k = 0; k < in.fulls.size(); ++k) {
    if (in.restorable[k] && in.fulls[k]->finish_time <= cutoff) anchor = k;
  }
  std::string chain_note;
  if (anchor) {
    KeepSet keep(in, *anchor);
    anchor_id = keep.anchor().backup_id;
    std::set<std::string> kept_sealed;  // parts a kept log backup covers
    std::vector<const BackupManifest*> purged_logs;
    for (size_t j = 0; j < in.fulls.size(); ++j) {
      if (!keep.FullPurged(j)) continue;
      PurgeBaseBackup(in, *in.fulls[j], dirs, del);
      ++n.full;
    }
    for (const auto& m : in.backups) {
      if (m.type != BackupType::kLog) continue;
      if (keep.LogPurged(m)) {
        purged_logs.push_back(&m);
      } else {
        for (const ObjectRef* ref : m.AllObjects()) kept_sealed.insert(ref->key);
      }
    }
    std::set<std::string> sealed;  // parts any log backup covers
    for (const BackupManifest* m : purged_logs) {
      del.Manifest(Repository::ManifestKey(db, m->container, m->backup_id));
      ++n.log;
      for (const ObjectRef* ref : m->AllObjects()) {
        sealed.insert(ref->key);
        // The part's own key says which container and WAL it holds: a part
        // of another cluster's container is never this cluster's to purge.
        auto part = Repository::ParseWalPartKey(ref->key);
        if (!part || !StartsWith(ref->key, fmt::format("db/{}/wal/", db))) continue;
        if (!in.container_index.count(part->container)) continue;
        if (kept_sealed.count(ref->key) || !keep.PartPurgeable(*part)) continue;
        del.Object(ref->key);
      }
      auto listed = dirs.find(Repository::DataPrefix(db, m->container, m->backup_id));
      if (listed != dirs.end()) {
        for (const ObjectInfo* o : listed->second) del.Object(o->key);
      }
    }
    // Unsealed parts whose WAL no kept full needs.
    for (const auto& o : in.objects) {
      auto part = Repository::ParseWalPartKey(o.key);
      if (!part || !StartsWith(o.key, fmt::format("db/{}/wal/", db))) continue;
      if (sealed.count(o.key) || kept_sealed.count(o.key)) continue;
      if (keep.PartPurgeable(*part)) del.Object(o.key);
    }
    chain_note = fmt::format("anchor {}; window starts {}", anchor_id, FormatWhen(cutoff));
  } else if (!in.fulls.empty()) {
    anchor_id = in.fulls.front()->backup_id;
    for (size_t k = 0; k < in.fulls.size(); ++k) {
      if (in.restorable[k]) {
        anchor_id = in.fulls[k]->backup_id;
        break;
      }
    }
    chain_note = fmt::format("no full backup finished before the window start {} yet: chain kept whole",
                             FormatWhen(cutoff));
  } else {
    chain_note = "no full backup yet: chain kept whole";
  }
  // Per-flush WAL parts that compaction merged into an object a readable log
  // manifest references (compaction.h): listed by this pass, never on the
  // say-so of an unreferenced object.
  for (const auto& key : PartsReplacedByCompaction(db, in.backups, in.objects)) del.Object(key);
  PurgeCopyOnlyAndLeftovers(in, now, options, dirs, lease, plan, del, n);
  return chain_note;
}

}  // namespace

std::string ClockProbeKey(const std::string& db) { return fmt::format("locks/retention-clock/{}", db); }

Result<SystemTime> StorageNow(Repository& repo, const std::string& db) {
  const std::string key = ClockProbeKey(db);
  RETURN_IF_ERROR(repo.storage()
                      .Put(key, "smartbackup retention: the modification time of this object is the storage's clock\n")
                      .WithContext(fmt::format("retention: cannot write the clock probe \"{}\"", key)));
  ASSIGN_OR_RETURN(ObjectInfo info, repo.storage().Stat(key));
  if (info.mtime == SystemTime{}) {
    return Status::FailedPrecondition(fmt::format(
        "retention: storage {} reports no modification time for \"{}\"; hint: use a storage that records them",
        repo.storage().Describe(), key));
  }
  return info.mtime;
}

Result<RetentionPlan> PlanRetention(Repository& repo, const std::string& db, SystemTime local_now,
                                    const RetentionOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(db));
  ASSIGN_OR_RETURN(const SystemTime now, StorageNow(repo, db));
  if (local_now > Plus(now, options.max_clock_ahead)) {
    // Ages taken from a clock hours ahead make a running backup's chunks look
    // abandoned and every backup older than it is.
    return Status::FailedPrecondition(fmt::format(
        "retention of database \"{}\" refused: the local clock ({}) is {} ahead of the storage's ({}); hint: "
        "synchronize the clock (NTP) and run again",
        db, FormatRfc3339(local_now),
        FormatDuration(std::chrono::duration_cast<std::chrono::milliseconds>(local_now - now)), FormatRfc3339(now)));
  }
  ASSIGN_OR_RETURN(Repo r, ReadRepo(repo, db));
  r.index.db = db;
  RetentionPlan plan;
  plan.storage_now = now;
  Deletions del(r.listed);
  Counts n;
  FullLeaseProbe lease(repo, db);

  // The clusters this pass is for: the live one, or (no system identifier
  // given) each known one on its own.
  auto own = [&](const ClusterKey& key) {
    return key.has_value() && (!options.system_identifier || *options.system_identifier == *key);
  };
  std::vector<std::string> notes;
  size_t newest_container = 0;
  for (const auto& [key, in] : r.clusters) {
    if (in.objects.empty() && in.backups.empty()) continue;
    const std::string who = key ? fmt::format("system identifier {}", *key) : "containers without descriptor";
    std::string note;
    if (own(key) && options.cluster_live) {
      std::string anchor_id;
      note = PlanLive(in, now, options, lease, plan, anchor_id, del, n);
      // The anchor shown is the one of the newest cluster (the live one, for the purge verb).
      size_t newest = 0;
      for (const auto& [name, index] : in.container_index) newest = std::max(newest, index + 1);
      if (!anchor_id.empty() && newest > newest_container) {
        newest_container = newest;
        plan.anchor_backup_id = anchor_id;
      }
    } else {
      note = (options.cluster_live || !own(key) ? "not this cluster: " : "dropped cluster: ") +
             PlanExpiring(in, now, options, own(key), lease, plan, del, n);
    }
    notes.push_back(fmt::format("{}: {}", who, note));
  }
  AddSingleUseKeys(repo, del);
  plan.summary = CountsText(n, del.object_count());
  if (!options.cluster_live) plan.summary = "dropped cluster: " + plan.summary;
  if (notes.empty()) notes.push_back(fmt::format("database \"{}\" holds nothing", db));
  for (const auto& note : notes) plan.summary += "; " + note;
  if (n.leftovers_kept_for_lease) plan.summary += "; leftovers kept: a full backup holds the lease";
  plan.manifests_to_delete = std::move(del.manifests());
  plan.objects_to_delete = del.TakeObjects();
  plan.index = std::move(r.index);
  return plan;
}

Status ApplyRetention(Repository& repo, const RetentionPlan& plan) {
  // The index first (version 2): tombstones hide the backups about to go, so
  // an interruption never leaves the index listing a deleted backup.
  RETURN_IF_ERROR(RewriteIndex(repo, plan).WithContext("retention: cannot rewrite the index"));
  // Manifests first: a backup stops existing before its data goes, so an
  // interruption leaves at worst leftovers, never a manifest without data.
  for (const auto& key : plan.manifests_to_delete) {
    Status s = repo.storage().Delete(key);
    if (!s.ok()) return s.WithContext(fmt::format("retention: cannot delete manifest \"{}\"", key));
  }
  for (const auto& key : plan.objects_to_delete) {
    Status s = repo.storage().Delete(key);
    if (!s.ok()) return s.WithContext(fmt::format("retention: cannot delete object \"{}\"", key));
  }
  return Status::Ok();
}

Status RewriteIndex(Repository& repo, const RetentionPlan& plan) {
  const IndexRewrite& ix = plan.index;
  if (!ix.enabled || ix.db.empty()) return Status::Ok();
  const auto grace = std::chrono::hours(6);
  std::vector<std::string> stale_markers;
  for (const auto& m : ix.markers) {
    const std::string key = backup_index::ManifestKeyOfMarker(ix.db, m.key);
    if (ix.live.count(key) || plan.storage_now - m.mtime > grace) stale_markers.push_back(m.key);
  }
  // Nothing deleted and nothing to fold in: the index stays as it is.
  if (plan.manifests_to_delete.empty() && stale_markers.empty()) return Status::Ok();
  IndexObject rewritten{.level = std::max(ix.level, 1)};
  std::set<std::string> deleted(plan.manifests_to_delete.begin(), plan.manifests_to_delete.end());
  for (const auto& [key, text] : ix.live) {
    if (!deleted.count(key)) rewritten.entries[key] = text;
  }
  for (const auto& key : deleted) rewritten.deleted[key] = plan.storage_now;
  // The new object is durable before any object it replaces goes. Nothing
  // left: no object (readers of an empty index list the few manifests).
  if (!rewritten.entries.empty()) {
    RETURN_IF_ERROR(backup_index::Put(repo.storage(), ix.db, rewritten, repo.clock()).status());
  }
  for (const auto& key : ix.objects) RETURN_IF_ERROR(repo.storage().Delete(key));
  for (const auto& key : stale_markers) RETURN_IF_ERROR(repo.storage().Delete(key));
  return Status::Ok();
}

}  // namespace sb
