#include "engine/wal/wal_catalog.h"

#include <fmt/core.h>

#include <algorithm>
#include <sstream>

#include "common/logging.h"
#include "common/text.h"

namespace sb {

std::optional<TimelineSwitch> ParseTimelineHistory(const std::string& content) {
  std::optional<TimelineSwitch> last;
  std::istringstream in(content);
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::istringstream fields(t);
    uint32_t parent = 0;
    std::string lsn;
    if (!(fields >> parent >> lsn)) continue;
    auto parsed = Lsn::Parse(lsn);
    if (!parsed.ok()) continue;
    last = TimelineSwitch{.parent = parent, .switch_point = *parsed};
  }
  return last;
}

Result<std::vector<WalPart>> ListWalTail(Repository& repo, const std::string& db, const std::string& container,
                                         uint32_t timeline, Lsn from) {
  constexpr int kBlockBits = 24;    // 16 MiB of start LSNs per listing: the first 10 of 16 hex digits
  constexpr int kMaxLists = 4096;   // a bound, never reached in practice
  const std::string root = fmt::format("db/{}/wal/{}/{:08X}/", db, container, timeline);
  std::map<std::string, WalPart> found;
  uint64_t furthest = 0;  // highest start block seen
  int lists = 0;
  auto list = [&](const std::string& prefix) -> Result<uint64_t> {  // the highest end among the parts listed
    ++lists;
    ASSIGN_OR_RETURN(auto objects, ListAll(repo.storage(), root + prefix));
    uint64_t end = 0;
    for (const auto& o : objects) {
      auto p = Repository::ParseWalPartKey(o.key);
      if (!p || p->container != container || p->timeline != timeline) continue;
      p->stored_size = o.size;
      p->mtime = o.mtime;
      end = std::max(end, p->end.value);
      furthest = std::max(furthest, p->start.value >> kBlockBits);
      found[p->key] = std::move(*p);
    }
    return end;
  };
  uint64_t block = from.value >> kBlockBits;
  while (lists < kMaxLists) {
    // The contiguous run: the next block while the parts found reach into it.
    for (; lists < kMaxLists; ++block) {
      ASSIGN_OR_RETURN(uint64_t end, list(fmt::format("{:010X}", block)));
      if (end < (block + 1) << kBlockBits) break;
    }
    // WAL after a hole: two 256 MiB groups of starts from where the run stopped.
    const uint64_t before = furthest;
    for (uint64_t group : {block >> 4, (block >> 4) + 1}) {
      ASSIGN_OR_RETURN(uint64_t end, list(fmt::format("{:09X}", group)));
      (void)end;
    }
    if (furthest <= block || furthest == before) break;
    block = furthest;
  }
  std::vector<WalPart> out;
  for (auto& [key, p] : found) out.push_back(std::move(p));
  return out;
}

namespace {

// The backups of `sysid` in `listing`, and the parts their log backups name.
std::shared_ptr<const CatalogBackups> BackupsOf(const BackupListing& listing, uint64_t sysid) {
  auto out = std::make_shared<CatalogBackups>();
  out->unreadable = listing.unreadable;
  for (const auto& m : listing.backups) {
    if (m.system_identifier != sysid) continue;
    if (m.type != BackupType::kLog) {
      out->bases.push_back(m);
      continue;
    }
    for (const ObjectRef* ref : m.AllObjects()) {
      out->sealed_sha[ref->key] = ref->sha256;
      auto p = Repository::ParseWalPartKey(ref->key);
      if (!p || p->container != m.container) continue;
      p->stored_size = ref->stored_size;
      p->mtime = m.start_time;  // no later than this; the tail listing gives the newest ones exactly
      auto& n = out->newest_sealed[m.container][p->timeline];
      if (n.key.empty() || p->end > n.end) n = *p;
      out->sealed_parts[m.container].emplace(p->key, std::move(*p));
    }
    out->logs.push_back(m);
  }
  return out;
}

// Version 2: the parts of one container from its log backups' entries plus
// the tail listings after them.
Status AddPartsIncrementally(Repository& repo, const std::string& db, const ContainerInfo& container,
                             const CatalogBackups& backups, std::vector<WalPart>& parts) {
  auto newest = backups.newest_sealed.find(container.name);
  if (newest == backups.newest_sealed.end()) {  // no log backup yet: all of its WAL is tail
    ASSIGN_OR_RETURN(auto all, repo.ListWalParts(db, container.name));
    for (auto& p : all) parts.push_back(std::move(p));
    return Status::Ok();
  }
  const std::map<uint32_t, WalPart>& newest_sealed = newest->second;
  std::vector<std::pair<uint32_t, Lsn>> anchors;
  for (const auto& [tli, p] : newest_sealed) anchors.emplace_back(tli, p.start);
  for (const auto& b : backups.bases) {
    if (b.container != container.name) continue;
    auto n = newest_sealed.find(b.timeline);
    if (n != newest_sealed.end() && b.StartLsn() <= n->second.end) continue;
    // WAL after a break: a part covering the full backup's start may begin one block earlier.
    const uint64_t start = b.StartLsn().value;
    anchors.emplace_back(b.timeline, Lsn{start >= (1u << 24) ? start - (1u << 24) : 0});
  }
  std::map<std::string, WalPart> tail;  // anchors' listings may overlap
  for (const auto& [tli, from] : anchors) {
    ASSIGN_OR_RETURN(auto listed, ListWalTail(repo, db, container.name, tli, from));
    for (auto& p : listed) tail[p.key] = std::move(p);
  }
  // A sealed part also listed takes the listing's exact size and time.
  for (const auto& [key, p] : backups.sealed_parts.at(container.name)) {
    auto listed = tail.find(key);
    if (listed == tail.end()) {
      parts.push_back(p);
    } else {
      parts.push_back(std::move(listed->second));
      tail.erase(listed);
    }
  }
  for (auto& [key, p] : tail) parts.push_back(std::move(p));
  return Status::Ok();
}

}  // namespace

Result<WalCatalog> WalCatalog::Load(Repository& repo, const std::string& db, std::optional<uint64_t> sysid,
                                    CatalogCache* cache, PartSource part_source) {
  WalCatalog c;
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(db, cache ? &cache->containers : nullptr));
  ASSIGN_OR_RETURN(std::shared_ptr<const BackupListing> listing,
                   repo.ListBackupsShared(db, cache ? &cache->index : nullptr));
  if (sysid) {
    c.sysid_ = *sysid;
  } else if (!listing->backups.empty()) {
    c.sysid_ = listing->backups.back().system_identifier;
  } else if (!containers.empty()) {
    c.sysid_ = containers.back().system_identifier;
  }
  if (cache && cache->backups && cache->listing == listing && cache->sysid == c.sysid_) {
    c.backups_ = cache->backups;
  } else {
    for (const auto& s : listing->unreadable) log::Warn("{}", s.message());
    c.backups_ = BackupsOf(*listing, c.sysid_);
    if (cache) {
      cache->listing = listing;
      cache->sysid = c.sysid_;
      cache->backups = c.backups_;
    }
  }
  c.skipped_ = c.backups_->unreadable;
  const bool incremental = repo.format_version() >= 2 && part_source == PartSource::kIncremental;
  for (const auto& container : containers) {
    if (container.system_identifier != c.sysid_) continue;
    if (incremental) {
      RETURN_IF_ERROR(AddPartsIncrementally(repo, db, container, *c.backups_, c.parts_));
    } else {
      ASSIGN_OR_RETURN(auto parts, repo.ListWalParts(db, container.name));
      for (auto& p : parts) c.parts_.push_back(std::move(p));
    }
    if (container.timeline <= 1) continue;  // timeline 1 has no history file
    const std::string hkey = Repository::HistoryKey(db, container.name, container.timeline);
    if (cache && cache->histories.count(hkey)) {
      const std::string& plain = cache->histories[hkey];
      if (auto sw = ParseTimelineHistory(plain)) c.switches_[container.timeline] = *sw;
      c.histories_[container.timeline] = plain;
      continue;
    }
    auto history = repo.storage().Get(hkey);
    if (history.ok()) {
      auto plain = DecodeObject(*history, hkey, nullptr);
      if (plain.ok()) {
        if (auto sw = ParseTimelineHistory(*plain)) c.switches_[container.timeline] = *sw;
        if (cache) cache->histories[hkey] = *plain;
        c.histories_[container.timeline] = std::move(plain).value();
      } else {
        c.skipped_.push_back(plain.status());
      }
    } else if (!history.status().IsNotFound()) {
      return history.status();
    }
  }
  std::sort(c.parts_.begin(), c.parts_.end(), [](const WalPart& a, const WalPart& b) {
    return a.timeline != b.timeline ? a.timeline < b.timeline : a.start < b.start;
  });
  return c;
}

std::optional<std::string> WalCatalog::HistoryFile(uint32_t timeline) const {
  auto it = histories_.find(timeline);
  if (it == histories_.end()) return std::nullopt;
  return it->second;
}

Lsn WalCatalog::ContiguousEnd(uint32_t timeline, Lsn from, SystemTime* durable_at) const {
  Lsn x = from;
  for (const auto& p : parts_) {
    if (p.timeline != timeline) continue;
    if (p.start <= x && p.end > x) {
      x = p.end;
      if (durable_at) *durable_at = p.mtime;
    }
  }
  return x;
}

Lsn WalCatalog::TimelineEnd(uint32_t timeline) const {
  Lsn end;
  for (const auto& p : parts_) {
    if (p.timeline == timeline) end = std::max(end, p.end);
  }
  return end;
}

std::vector<RestoreWindow> WalCatalog::Windows() const {
  std::vector<RestoreWindow> windows;
  for (const auto& base : backups_->bases) {
    auto consistent = Lsn::Parse(base.end_lsn);
    if (!consistent.ok()) continue;
    RestoreWindow w{.base_backup_id = base.backup_id,
                    .start_timeline = base.timeline,
                    .start_lsn = *consistent,
                    .start_time = base.finish_time,
                    .end_timeline = base.timeline,
                    .end_lsn = *consistent,
                    .end_time = base.finish_time};
    // Follow the WAL on this timeline, then into any child timeline that
    // branched off within the covered range (recovery_target_timeline=latest).
    uint32_t tli = base.timeline;
    Lsn x = *consistent;
    for (;;) {
      SystemTime at = w.end_time;
      Lsn end = ContiguousEnd(tli, x, &at);
      if (end > x) {
        x = end;
        w.end_time = std::max(w.end_time, at);
      }
      w.end_timeline = tli;
      w.end_lsn = x;
      std::optional<uint32_t> child;
      for (const auto& [t, sw] : switches_) {
        if (sw.parent == tli && sw.switch_point >= *consistent && sw.switch_point <= x && (!child || t > *child)) {
          child = t;
        }
      }
      if (!child) break;
      Lsn from = switches_.at(*child).switch_point;
      SystemTime child_at = w.end_time;
      Lsn child_end = ContiguousEnd(*child, from, &child_at);
      if (child_end <= from) break;  // the child timeline's WAL is not (yet) in the repository
      tli = *child;
      x = from;
    }
    windows.push_back(w);
  }
  return windows;
}

std::vector<ChainGap> WalCatalog::Gaps() const {
  std::vector<ChainGap> gaps;
  // Per timeline, holes between parts after the first full backup on it.
  std::map<uint32_t, Lsn> first_base_end;
  for (const auto& b : backups_->bases) {
    if (b.type != BackupType::kFull) continue;
    auto end = Lsn::Parse(b.end_lsn);
    if (end.ok() && (!first_base_end.count(b.timeline) || *end < first_base_end[b.timeline])) {
      first_base_end[b.timeline] = *end;
    }
  }
  std::map<uint32_t, Lsn> reach;  // covered so far, per timeline
  std::map<uint32_t, SystemTime> reach_time;
  for (const auto& p : parts_) {
    if (!reach.count(p.timeline)) {
      Lsn begin = p.start;
      if (first_base_end.count(p.timeline)) begin = first_base_end[p.timeline];
      else if (switches_.count(p.timeline)) begin = switches_.at(p.timeline).switch_point;
      reach[p.timeline] = begin;
      reach_time[p.timeline] = p.mtime;
    }
    Lsn& r = reach[p.timeline];
    if (p.start > r) {
      gaps.push_back({.container = p.container, .timeline = p.timeline, .start = r, .end = p.start,
                      .detected_after = reach_time[p.timeline]});
    }
    if (p.end > r) {
      r = p.end;
      reach_time[p.timeline] = p.mtime;
    }
  }
  return gaps;
}

Result<std::string> WalCatalog::Assemble(Storage& storage, uint32_t timeline, Lsn start, Lsn end,
                                         const KeySource* key) const {
  std::string out;
  Lsn x = start;
  // Before a timeline's switch point its WAL is its parent's (PostgreSQL
  // copies that part of the segment at promotion).
  auto sw = switches_.find(timeline);
  if (sw != switches_.end() && x < sw->second.switch_point) {
    Lsn upto = std::min(end, sw->second.switch_point);
    auto head = Assemble(storage, sw->second.parent, x, upto, key);
    if (!head.ok()) return head.status();
    out = std::move(head).value();
    x = Lsn{start.value + out.size()};
    if (x < upto) return out;  // the parent's WAL stops short: so does this
  }
  bool progressed = true;
  while (x < end && progressed) {
    progressed = false;
    for (const auto& p : parts_) {
      if (p.timeline != timeline || !(p.start <= x && p.end > x)) continue;
      auto stored = storage.Get(p.key);
      if (!stored.ok()) {
        if (stored.status().IsNotFound()) {
          // Listed a moment ago: the repository changed or is damaged. Not
          // kNotFound, which would tell wal-get the WAL ends here.
          return Status::Corruption(fmt::format("WAL object \"{}\" is listed but missing; hint: run verify", p.key));
        }
        return stored.status();
      }
      auto sha = backups_->sealed_sha.find(p.key);
      if (sha != backups_->sealed_sha.end() && Sha256Hex(*stored) != sha->second) {
        return Status::Corruption(fmt::format("WAL object \"{}\" is corrupt (sha256 mismatch); hint: run verify", p.key));
      }
      ASSIGN_OR_RETURN(std::string plain, DecodeObject(*stored, p.key, key, p.end.value - p.start.value));
      if (plain.size() != p.end.value - p.start.value) {
        return Status::Corruption(fmt::format("WAL object \"{}\" holds {} bytes, its name says {}", p.key,
                                              plain.size(), p.end.value - p.start.value));
      }
      uint64_t from = x.value - p.start.value;
      uint64_t upto = std::min(end.value, p.end.value) - p.start.value;
      out.append(plain, from, upto - from);
      x = Lsn{x.value + (upto - from)};
      progressed = true;
      break;
    }
  }
  if (out.empty()) {
    return Status::NotFound(fmt::format("no WAL at {} on timeline {} in the repository", start.ToString(), timeline));
  }
  return out;
}

}  // namespace sb
