#include "engine/wal/compaction.h"

#include <fmt/core.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/logging.h"
#include "common/text.h"

namespace sb {
namespace {

constexpr int kMergedZstdLevel = 3;  // the writers' default

bool InOneSegment(const WalPart& p, uint64_t seg) { return p.start.value / seg == (p.end.value - 1) / seg; }

Result<ObjectRef> RefOf(Repository& repo, const WalPart& p, const KnownPartHashes& known) {
  ObjectRef ref{.key = p.key, .raw_size = p.end.value - p.start.value, .stored_size = p.stored_size};
  auto it = known.find(p.key);
  if (it != known.end()) {
    ref.sha256 = it->second;
  } else {
    ASSIGN_OR_RETURN(std::string stored, repo.storage().Get(p.key));
    ref.sha256 = Sha256Hex(stored);
    ref.stored_size = stored.size();
  }
  return ref;
}

// A failure that says this object cannot be merged here (damage, a key we do
// not hold), as opposed to one worth failing the seal for (storage trouble).
bool Unmergeable(const Status& s) {
  return s.code() == StatusCode::kCorruption || s.code() == StatusCode::kPermissionDenied ||
         s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kFailedPrecondition;
}

// Merges `group` (≥ 2 consecutive parts inside one segment) into one object.
// nullopt: not mergeable (the caller references the parts as they are).
Result<std::optional<ObjectRef>> Merge(Repository& repo, const std::string& db, const std::vector<WalPart>& group,
                                       const EncryptionKey* key) {
  std::string plain;
  for (const auto& p : group) {
    ASSIGN_OR_RETURN(std::string stored, repo.storage().Get(p.key));
    auto part = DecodeObject(stored, p.key, key, p.end.value - p.start.value);
    if (!part.ok()) {
      if (!Unmergeable(part.status())) return part.status();
      log::Warn("compaction: WAL part \"{}\" is kept as it is: {}", p.key, part.status().message());
      return std::optional<ObjectRef>();
    }
    plain += *part;
  }
  const WalPart& first = group.front();
  const std::string merged_key =
      Repository::WalPartKey(db, first.container, first.timeline, first.start, group.back().end);
  ASSIGN_OR_RETURN(EncodedObject enc, EncodeObject(plain, merged_key, {.zstd_level = kMergedZstdLevel, .key = key}));
  ObjectRef ref{.key = merged_key, .raw_size = plain.size(), .stored_size = enc.bytes.size(), .sha256 = enc.sha256};
  Status s = repo.storage().Put(merged_key, enc.bytes, {.if_absent = true});
  if (s.IsAlreadyExists()) {
    // Written by an earlier, interrupted seal or a concurrent sealer (or
    // planted): reused only when it holds exactly these bytes.
    ASSIGN_OR_RETURN(std::string stored, repo.storage().Get(merged_key));
    auto existing = DecodeObject(stored, merged_key, key, plain.size());
    if (!existing.ok() || *existing != plain) {
      log::Warn("compaction: \"{}\" exists with other content{}; the parts it would replace are kept as they are",
                merged_key, existing.ok() ? "" : " (" + existing.status().message() + ")");
      if (!existing.ok() && !Unmergeable(existing.status())) return existing.status();
      return std::optional<ObjectRef>();
    }
    ref.sha256 = Sha256Hex(stored);
    ref.stored_size = stored.size();
  } else {
    RETURN_IF_ERROR(s.WithContext(fmt::format("cannot store merged WAL \"{}\"", merged_key)));
  }
  return std::optional<ObjectRef>(std::move(ref));
}

}  // namespace

Result<std::vector<ObjectRef>> CompactRun(Repository& repo, const std::string& db, const std::vector<WalPart>& run,
                                          uint64_t segment_size, const EncryptionKey* key,
                                          const KnownPartHashes& known) {
  std::vector<ObjectRef> refs;
  const uint64_t seg = segment_size == 0 ? (16ull << 20) : segment_size;
  for (size_t i = 0; i < run.size();) {
    // The group: parts i..j-1, all inside the segment of part i.
    size_t j = i + 1;
    if (InOneSegment(run[i], seg)) {
      const uint64_t segno = run[i].start.value / seg;
      while (j < run.size() && InOneSegment(run[j], seg) && run[j].start.value / seg == segno) ++j;
    }
    std::optional<ObjectRef> merged;
    if (j - i >= 2) {
      std::vector<WalPart> group(run.begin() + static_cast<std::ptrdiff_t>(i), run.begin() + static_cast<std::ptrdiff_t>(j));
      ASSIGN_OR_RETURN(merged, Merge(repo, db, group, key));
    }
    if (merged) {
      refs.push_back(std::move(*merged));
    } else {
      for (size_t k = i; k < j; ++k) {
        ASSIGN_OR_RETURN(ObjectRef ref, RefOf(repo, run[k], known));
        refs.push_back(std::move(ref));
      }
    }
    i = j;
  }
  return refs;
}

std::vector<WalPart> WithoutContainingParts(std::vector<WalPart> parts) {
  std::stable_sort(parts.begin(), parts.end(), [](const WalPart& a, const WalPart& b) {
    if (a.timeline != b.timeline) return a.timeline < b.timeline;
    if (a.start != b.start) return a.start < b.start;
    return a.end < b.end;
  });
  std::vector<WalPart> out;
  for (size_t i = 0; i < parts.size(); ++i) {
    const WalPart& p = parts[i];
    bool contains = false;
    // Earlier parts start no later; a same-start one is shorter (or a copy).
    for (size_t j = i; j-- > 0 && parts[j].start == p.start && parts[j].timeline == p.timeline && !contains;) {
      contains = parts[j].container == p.container;
    }
    for (size_t j = i + 1; j < parts.size() && parts[j].timeline == p.timeline && parts[j].start < p.end && !contains;
         ++j) {
      contains = parts[j].container == p.container && parts[j].end <= p.end;
    }
    if (!contains) out.push_back(p);
  }
  return out;
}

std::vector<std::string> PartsReplacedByCompaction(const std::string& db, const std::vector<BackupManifest>& manifests,
                                                   const std::vector<ObjectInfo>& listed) {
  const std::string wal_root = fmt::format("db/{}/wal/", db);
  std::set<std::string> listed_keys;
  for (const auto& o : listed) listed_keys.insert(o.key);
  std::set<std::string> referenced;
  // Ranges of listed parts that readable log manifests reference.
  std::map<std::pair<std::string, uint32_t>, std::vector<std::pair<Lsn, Lsn>>> covering;
  for (const auto& m : manifests) {
    for (const ObjectRef* ref : m.AllObjects()) {
      referenced.insert(ref->key);
      if (m.type != BackupType::kLog || !StartsWith(ref->key, wal_root) || !listed_keys.count(ref->key)) continue;
      auto part = Repository::ParseWalPartKey(ref->key);
      if (!part) continue;
      covering[{part->container, part->timeline}].emplace_back(part->start, part->end);
    }
  }
  // Per lineage, sorted by start with the running maximum of ends: a part
  // is contained iff some covering range starting at or before it reaches
  // its end.
  for (auto& [lineage, ranges] : covering) {
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) ranges[i].second = std::max(ranges[i].second, ranges[i - 1].second);
  }
  std::vector<std::string> out;
  for (const auto& o : listed) {
    if (!StartsWith(o.key, wal_root) || referenced.count(o.key)) continue;
    auto part = Repository::ParseWalPartKey(o.key);
    if (!part) continue;
    auto it = covering.find({part->container, part->timeline});
    if (it == covering.end()) continue;
    const auto& ranges = it->second;
    auto after = std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(part->start, Lsn{UINT64_MAX}));
    if (after == ranges.begin()) continue;
    if (std::prev(after)->second >= part->end) out.push_back(o.key);
  }
  return out;
}

}  // namespace sb
