#include "engine/wal/seal_scan.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>

#include "common/text.h"
#include "engine/wal/wal_catalog.h"

namespace sb {
namespace {

constexpr size_t kNewestLogs = 3;  // read at least this many (sealers may race)
constexpr int kHours = 48;         // hour prefixes listed back from now, then days
constexpr int kDays = 45;

bool Unreadable(const Status& s) {
  return s.code() == StatusCode::kCorruption || s.code() == StatusCode::kFailedPrecondition;
}

// Format version 1's way: every part and every log manifest key.
Result<SealScan> ScanWhole(Repository& repo, const std::string& db, const ContainerInfo& container) {
  SealScan scan;
  ASSIGN_OR_RETURN(scan.parts, repo.ListWalParts(db, container.name));
  std::set<uint32_t> timelines;
  for (const auto& p : scan.parts) timelines.insert(p.timeline);
  ASSIGN_OR_RETURN(auto log_keys, repo.ListManifestKeys(db, container.name, 'L'));
  constexpr size_t kAtLeast = 8;
  size_t read = 0;
  for (auto it = log_keys.rbegin(); it != log_keys.rend(); ++it) {
    if (read >= kAtLeast && std::all_of(timelines.begin(), timelines.end(),
                                        [&](uint32_t t) { return scan.sealed_upto.count(t) > 0; })) {
      break;
    }
    auto m = repo.ReadManifest(*it);
    if (!m.ok()) {
      if (Unreadable(m.status())) continue;  // seals nothing (verify reports it)
      return m.status();
    }
    ++read;
    Lsn& upto = scan.sealed_upto[m->timeline];
    upto = std::max(upto, m->EndLsn());
  }
  return scan;
}

// Manifest keys of the container whose backup id begins with one of the
// recent time prefixes, newest first, until enough log backups are seen.
Result<std::vector<std::string>> RecentManifestKeys(Repository& repo, const std::string& db,
                                                    const ContainerInfo& container) {
  const std::string root = fmt::format("db/{}/backups/{}/", db, container.name);
  std::set<std::string, std::greater<>> keys;
  std::set<std::string> listed;
  size_t logs = 0;
  auto list = [&](const std::string& prefix) -> Status {
    if (!listed.insert(prefix).second) return Status::Ok();
    ASSIGN_OR_RETURN(auto objects, ListAll(repo.storage(), root + prefix));
    for (const auto& o : objects) {
      if (!EndsWith(o.key, ".json")) continue;
      if (keys.insert(o.key).second && o.key.find("-L-", root.size()) != std::string::npos) ++logs;
    }
    return Status::Ok();
  };
  const SystemTime now = repo.clock()->Now();
  // Nothing in the container is older than the container (less an hour for clocks).
  const SystemTime oldest = container.created - std::chrono::hours(1);
  for (int h = -1; h < kHours && logs < kNewestLogs; ++h) {
    const SystemTime t = now - std::chrono::hours(h);
    if (t < oldest - std::chrono::hours(1)) break;
    RETURN_IF_ERROR(list(FormatCompactTime(t).substr(0, 11)));
  }
  for (int d = 2; d < kDays && logs < kNewestLogs; ++d) {
    const SystemTime t = now - std::chrono::hours(24 * d);
    if (t < oldest - std::chrono::hours(24)) break;
    RETURN_IF_ERROR(list(FormatCompactTime(t).substr(0, 8)));
  }
  return std::vector<std::string>(keys.begin(), keys.end());
}

}  // namespace

Result<SealScan> ScanForSealing(Repository& repo, const std::string& db, const ContainerInfo& container) {
  if (repo.format_version() < 2) return ScanWhole(repo, db, container);
  ASSIGN_OR_RETURN(auto keys, RecentManifestKeys(repo, db, container));
  SealScan scan;
  std::map<uint32_t, Lsn> newest_start;  // per timeline: start of the sealed part with the highest end
  std::vector<std::pair<uint32_t, Lsn>> anchors;
  size_t read = 0;
  std::string newest_log_id;
  for (const auto& key : keys) {
    if (read >= kNewestLogs) break;
    if (key.find("-L-", key.rfind('/')) == std::string::npos) continue;
    auto m = repo.ReadManifest(key);
    if (!m.ok()) {
      if (Unreadable(m.status())) continue;
      return m.status();
    }
    if (newest_log_id.empty()) newest_log_id = m->backup_id;
    ++read;
    Lsn& upto = scan.sealed_upto[m->timeline];
    for (const ObjectRef* ref : m->AllObjects()) {
      auto p = Repository::ParseWalPartKey(ref->key);
      if (!p) continue;
      if (p->end > upto || !newest_start.count(p->timeline)) {
        upto = std::max(upto, p->end);
        newest_start[p->timeline] = p->start;
      }
    }
    upto = std::max(upto, m->EndLsn());
  }
  if (read == 0) return ScanWhole(repo, db, container);  // no recent log backup: all of it is tail
  // A full backup newer than the newest log backup, beyond the sealed WAL: WAL after a break.
  for (const auto& key : keys) {
    const std::string id = key.substr(key.rfind('/') + 1);
    if (id < newest_log_id) break;
    if (id.find("-F-") == std::string::npos) continue;
    auto m = repo.ReadManifest(key);
    if (!m.ok()) continue;
    auto upto = scan.sealed_upto.find(m->timeline);
    if (upto != scan.sealed_upto.end() && m->StartLsn() <= upto->second) continue;
    const uint64_t start = m->StartLsn().value;
    anchors.emplace_back(m->timeline, Lsn{start >= (1u << 24) ? start - (1u << 24) : 0});
  }
  for (const auto& [tli, start] : newest_start) anchors.emplace_back(tli, start);
  std::map<std::string, WalPart> parts;
  for (const auto& [tli, from] : anchors) {
    ASSIGN_OR_RETURN(auto tail, ListWalTail(repo, db, container.name, tli, from));
    for (auto& p : tail) parts[p.key] = std::move(p);
  }
  for (auto& [key, p] : parts) scan.parts.push_back(std::move(p));
  std::sort(scan.parts.begin(), scan.parts.end(), [](const WalPart& a, const WalPart& b) {
    return a.timeline != b.timeline ? a.timeline < b.timeline : a.start < b.start;
  });
  return scan;
}

}  // namespace sb
