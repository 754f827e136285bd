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

Result<WalCatalog> WalCatalog::Load(Repository& repo, const std::string& db, std::optional<uint64_t> sysid) {
  WalCatalog c;
  ASSIGN_OR_RETURN(auto containers, repo.ListContainers(db));
  ASSIGN_OR_RETURN(BackupListing listing, repo.ListBackups(db));
  for (const auto& s : listing.unreadable) log::Warn("{}", s.message());
  c.skipped_ = listing.unreadable;
  if (sysid) {
    c.sysid_ = *sysid;
  } else if (!listing.backups.empty()) {
    c.sysid_ = listing.backups.back().system_identifier;
  } else if (!containers.empty()) {
    c.sysid_ = containers.back().system_identifier;
  }
  for (auto& m : listing.backups) {
    if (m.system_identifier != c.sysid_) continue;
    if (m.type == BackupType::kLog) {
      for (const ObjectRef* ref : m.AllObjects()) c.sealed_sha_[ref->key] = ref->sha256;
      c.logs_.push_back(std::move(m));
    } else {
      c.bases_.push_back(std::move(m));
    }
  }
  for (const auto& container : containers) {
    if (container.system_identifier != c.sysid_) continue;
    ASSIGN_OR_RETURN(auto parts, repo.ListWalParts(db, container.name));
    for (auto& p : parts) c.parts_.push_back(std::move(p));
    auto history = repo.storage().Get(Repository::HistoryKey(db, container.name, container.timeline));
    if (history.ok()) {
      auto plain = DecodeObject(*history, Repository::HistoryKey(db, container.name, container.timeline), nullptr);
      if (plain.ok()) {
        if (auto sw = ParseTimelineHistory(*plain)) c.switches_[container.timeline] = *sw;
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
  for (const auto& base : bases_) {
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
  for (const auto& b : bases_) {
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
      auto sha = sealed_sha_.find(p.key);
      if (sha != sealed_sha_.end() && Sha256Hex(*stored) != sha->second) {
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
