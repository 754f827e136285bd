// Retention: which backups, WAL parts and leftovers of one database to purge.
//
// The rule, for a live cluster (cutoff = now − retention):
// - Fulls are the complete backups of type full (copy-only excluded), across
//   every container of the database, ordered by finish_time. The anchor is the
//   newest full that finished at or before the cutoff. When no full is that
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
//   the code checks it again.)
// Copy-only backups expire at finish_time + retention, independent of the chain.
// A dropped cluster keeps its chain whole until retention has elapsed since its
// newest backup (or newest object, whichever is later), then loses everything:
// manifests, data, WAL parts, history files and container descriptors.
// Leftovers: a data directory db/<db>/data/<container>/<backup_id>/ without a
// manifest (readable or not) whose newest object is older than leftover_grace.
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

// Everything the rule looks at, read once from the repository.
struct Inputs {
  std::string db;
  std::map<std::string, size_t> container_index;  // by creation order
  std::map<std::string, uint64_t> container_sysid;
  std::map<Lineage, TimelineSwitch> switches;
  std::vector<BackupManifest> backups;     // readable manifests, by start time
  std::vector<const BackupManifest*> fulls;  // by finish time
  std::vector<ObjectInfo> objects;         // every object under db/<db>/
  std::set<std::string> manifest_keys;     // every manifest key, readable or not
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
      Lower(lin, floor);
      // Ancestors: their WAL is needed only below the switch point, and only
      // when the full's first segment reaches back across it.
      for (int depth = 0; depth < 1000; ++depth) {
        auto sw = in.switches.find(lin);
        if (sw == in.switches.end() || floor >= sw->second.switch_point) break;
        lin = {lin.first, sw->second.parent};
        Lower(lin, floor);
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
  void Lower(const Lineage& lin, Lsn floor) {
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

Result<Inputs> ReadInputs(Repository& repo, const std::string& db) {
  Inputs in;
  in.db = db;
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(db));
  for (size_t i = 0; i < containers.size(); ++i) {
    const auto& c = containers[i];
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
  ASSIGN_OR_RETURN(BackupListing listing, repo.ListBackups(db));
  for (const auto& s : listing.unreadable) log::Warn("retention: keeping unreadable manifest: {}", s.message());
  in.backups = std::move(listing.backups);
  for (const auto& m : in.backups) {
    if (m.type == BackupType::kFull) in.fulls.push_back(&m);
  }
  std::sort(in.fulls.begin(), in.fulls.end(), FinishedBefore);
  ASSIGN_OR_RETURN(in.objects, ListAll(repo.storage(), fmt::format("db/{}/", db)));
  const std::string backups_root = fmt::format("db/{}/backups/", db);
  for (const auto& o : in.objects) {
    if (StartsWith(o.key, backups_root) && EndsWith(o.key, ".json")) in.manifest_keys.insert(o.key);
  }
  return in;
}

// Collects the plan's deletions without duplicates, in the order added.
class Deletions {
 public:
  void Manifest(const std::string& key) {
    if (seen_.insert(key).second) manifests_.push_back(key);
  }
  void Object(const std::string& key) {
    if (seen_.insert(key).second) objects_.push_back(key);
  }
  bool Has(const std::string& key) const { return seen_.count(key) > 0; }
  std::vector<std::string>& manifests() { return manifests_; }
  std::vector<std::string>& objects() { return objects_; }

 private:
  std::set<std::string> seen_;
  std::vector<std::string> manifests_;
  std::vector<std::string> objects_;
};

struct Counts {
  int full = 0, log = 0, copy_only = 0, leftovers = 0;
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
  for (const auto& k : keys) del.Object(k);
}

std::string CountsText(const Counts& n, size_t objects) {
  return fmt::format("purged {} full, {} log, {} copy-only backups, {} objects ({} of leftovers)", n.full, n.log,
                     n.copy_only, objects, n.leftovers);
}

// The data objects of a base backup: its listed directory and its manifest's
// objects inside that directory (never another backup's).
void PurgeBaseBackup(const Inputs& in, const BackupManifest& m,
                     const std::map<std::string, std::vector<const ObjectInfo*>>& dirs, Deletions& del) {
  del.Manifest(Repository::ManifestKey(in.db, m.container, m.backup_id));
  const std::string dir = Repository::DataPrefix(in.db, m.container, m.backup_id);
  for (const ObjectRef* ref : m.AllObjects()) {
    if (StartsWith(ref->key, dir)) del.Object(ref->key);
  }
  auto listed = dirs.find(dir);
  if (listed != dirs.end()) {
    for (const ObjectInfo* o : listed->second) del.Object(o->key);
  }
}

void PurgeCopyOnlyAndLeftovers(const Inputs& in, SystemTime now, const RetentionOptions& options,
                               const std::map<std::string, std::vector<const ObjectInfo*>>& dirs,
                               RetentionPlan& plan, Deletions& del, Counts& n) {
  for (const auto& m : in.backups) {
    if (m.type != BackupType::kCopyOnly) continue;
    SystemTime expires = m.finish_time + options.retention;
    plan.expiration[m.backup_id] = expires;
    if (expires <= now) {
      PurgeBaseBackup(in, m, dirs, del);
      ++n.copy_only;
    }
  }
  const SystemTime idle_since = now - options.leftover_grace;
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
    for (const ObjectInfo* o : objects) del.Object(o->key);
    ++n.leftovers;
  }
}

}  // namespace

Result<RetentionPlan> PlanRetention(Repository& repo, const std::string& db, SystemTime now,
                                    const RetentionOptions& options) {
  ASSIGN_OR_RETURN(Inputs in, ReadInputs(repo, db));
  RetentionPlan plan;
  Deletions del;
  Counts n;
  const SystemTime cutoff = now - options.retention;

  std::map<std::string, std::vector<const ObjectInfo*>> dirs;  // data directory → its objects
  for (const auto& o : in.objects) {
    std::string dir = DataDirOf(db, o.key);
    if (!dir.empty()) dirs[dir].push_back(&o);
  }

  if (!options.cluster_live) {
    // Dropped: the whole database expires `retention` after its last backup.
    // Object times count too (WAL archived after the last backup is part of it).
    std::optional<SystemTime> last;
    for (const auto& m : in.backups) last = std::max(last.value_or(m.finish_time), m.finish_time);
    for (const auto& o : in.objects) {
      last = std::max(last.value_or(o.mtime), o.mtime);
    }
    if (!last) {
      plan.summary = fmt::format("dropped cluster: database \"{}\" holds nothing", db);
      return plan;
    }
    const SystemTime expires = *last + options.retention;
    for (const auto& m : in.backups) {
      plan.expiration[m.backup_id] =
          m.type == BackupType::kCopyOnly ? std::min(expires, m.finish_time + options.retention) : expires;
    }
    if (now >= expires) {
      const std::string backups_root = fmt::format("db/{}/backups/", db);
      const std::string containers_root = fmt::format("db/{}/containers/", db);
      for (const auto& key : in.manifest_keys) del.Manifest(key);
      for (const auto& o : in.objects) {
        if (!in.manifest_keys.count(o.key) && !StartsWith(o.key, containers_root)) del.Object(o.key);
      }
      // Descriptors last: the database stays listed until its data is gone.
      for (const auto& o : in.objects) {
        if (StartsWith(o.key, containers_root)) del.Object(o.key);
      }
      for (const auto& m : in.backups) {
        if (m.type == BackupType::kFull) ++n.full;
        if (m.type == BackupType::kLog) ++n.log;
        if (m.type == BackupType::kCopyOnly) ++n.copy_only;
      }
      plan.summary = fmt::format("dropped cluster: retention elapsed at {}; purged everything: {} manifests, {} objects",
                                 FormatRfc3339(expires), del.manifests().size(), del.objects().size());
    } else {
      PurgeCopyOnlyAndLeftovers(in, now, options, dirs, plan, del, n);
      plan.summary = fmt::format("dropped cluster: kept until {}; {}", FormatRfc3339(expires),
                                 CountsText(n, del.objects().size()));
    }
    AddSingleUseKeys(repo, del);
    plan.manifests_to_delete = std::move(del.manifests());
    plan.objects_to_delete = std::move(del.objects());
    return plan;
  }

  // Expiration of fulls and log backups: the finish time of the first full
  // whose anchorship would purge them, plus retention (the newest full and
  // anything it still needs: none yet).
  for (size_t k = 0; k < in.fulls.size(); ++k) {
    KeepSet keep(in, k);
    const SystemTime when = in.fulls[k]->finish_time + options.retention;
    for (size_t j = 0; j < k; ++j) {
      if (keep.FullPurged(j)) plan.expiration.try_emplace(in.fulls[j]->backup_id, when);
    }
    for (const auto& m : in.backups) {
      if (m.type == BackupType::kLog && keep.LogPurged(m)) plan.expiration.try_emplace(m.backup_id, when);
    }
  }

  // The anchor: the newest full that finished at or before the cutoff.
  std::optional<size_t> anchor;
  for (size_t k = 0; k < in.fulls.size(); ++k) {
    if (in.fulls[k]->finish_time <= cutoff) anchor = k;
  }
  std::string chain_note;
  if (anchor) {
    KeepSet keep(in, *anchor);
    plan.anchor_backup_id = keep.anchor().backup_id;
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
        auto part = Repository::ParseWalPartKey(ref->key);
        if (!part || !StartsWith(ref->key, fmt::format("db/{}/wal/", db))) continue;
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
    chain_note = fmt::format("anchor {}; window starts {}", plan.anchor_backup_id, FormatRfc3339(cutoff));
  } else if (!in.fulls.empty()) {
    plan.anchor_backup_id = in.fulls.front()->backup_id;
    chain_note = fmt::format("no full backup finished before the window start {} yet: chain kept whole",
                             FormatRfc3339(cutoff));
  } else {
    chain_note = "no full backup yet: chain kept whole";
  }

  PurgeCopyOnlyAndLeftovers(in, now, options, dirs, plan, del, n);
  AddSingleUseKeys(repo, del);
  plan.summary = fmt::format("{}; {}", CountsText(n, del.objects().size()), chain_note);
  plan.manifests_to_delete = std::move(del.manifests());
  plan.objects_to_delete = std::move(del.objects());
  return plan;
}

Status ApplyRetention(Repository& repo, const RetentionPlan& plan) {
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

}  // namespace sb
