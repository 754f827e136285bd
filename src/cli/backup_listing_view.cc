#include "cli/backup_listing_view.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "common/text.h"
#include "repo/repository.h"

namespace sb {
namespace {

using nlohmann::json;

int TypeOrder(const std::string& type) {
  static const char* kOrder[] = {"full", "copy_only", "log", "wal", "broken_chain"};
  for (int i = 0; i < 5; ++i) {
    if (type == kOrder[i]) return i;
  }
  return 5;
}

ListingRow BackupRow(const BackupManifest& m, const std::string& status) {
  return {.type = BackupTypeName(m.type),
          .backup_id = m.backup_id,
          .container = m.container,
          .timeline = m.timeline,
          .start_lsn = m.start_lsn,
          .end_lsn = m.end_lsn,
          .start_time = m.start_time,
          .finish_time = m.finish_time,
          .expiration_time = m.expiration_time,
          .size_bytes = m.size_bytes,
          .stored_bytes = m.stored_bytes,
          .encrypted = !m.encryption_key_id.empty(),
          .status = status,
          .path = Repository::ManifestKey(m.database, m.container, m.backup_id)};
}

// The WAL a window replays after its full: bytes of WAL and of the stored parts that overlap it.
ListingRow CoverageRow(const RestoreWindow& w, const WalCatalog& catalog, const std::string& container) {
  uint64_t raw = 0, stored = 0;
  for (const auto& p : catalog.parts()) {
    if (p.timeline < w.start_timeline || p.timeline > w.end_timeline) continue;
    const Lsn from = p.timeline == w.start_timeline ? std::max(p.start, w.start_lsn) : p.start;
    const Lsn to = p.timeline == w.end_timeline ? std::min(p.end, w.end_lsn) : p.end;
    if (from >= to) continue;
    raw += to.value - from.value;
    stored += p.stored_size;
  }
  return {.type = "wal",
          .container = container,
          .timeline = w.end_timeline,
          .start_lsn = w.start_lsn.ToString(),
          .end_lsn = w.end_lsn.ToString(),
          .start_time = w.start_time,
          .finish_time = w.end_time,
          .size_bytes = raw,
          .stored_bytes = stored,
          .status = "available",
          .base_backup_id = w.base_backup_id};
}

template <typename T, typename F>
json OrNull(const std::optional<T>& v, F f) {
  return v ? json(f(*v)) : json(nullptr);
}

}  // namespace

DatabaseListing BuildListing(const std::string& database, const WalCatalog& catalog, bool all) {
  DatabaseListing out{.database = database, .system_identifier = catalog.system_identifier()};
  out.windows = catalog.Windows();
  std::set<std::string> stored_parts;
  for (const auto& p : catalog.parts()) {
    stored_parts.insert(p.key);
    if (!out.wal) {
      out.wal = std::make_pair(p.start, p.end);
    } else {
      out.wal->first = std::min(out.wal->first, p.start);
      out.wal->second = std::max(out.wal->second, p.end);
    }
  }
  for (const auto& m : catalog.bases()) out.rows.push_back(BackupRow(m, "available"));
  bool missing = false;
  for (const auto& m : catalog.log_backups()) {
    bool whole = true;
    for (const ObjectRef* ref : m.AllObjects()) whole = whole && stored_parts.count(ref->key) > 0;
    missing = missing || !whole;
    if (all || !whole) out.rows.push_back(BackupRow(m, whole ? "available" : "missing_objects"));
  }
  for (const auto& w : out.windows) {
    if (w.end_timeline == w.start_timeline && w.end_lsn <= w.start_lsn) continue;  // nothing after the full
    std::string container;
    for (const auto& m : catalog.bases()) {
      if (m.backup_id == w.base_backup_id) container = m.container;
    }
    out.rows.push_back(CoverageRow(w, catalog, container));
  }
  const BackupManifest* newest = nullptr;
  for (const auto& m : catalog.bases()) {
    if (m.type == BackupType::kFull || !newest) newest = &m;
  }
  bool broken_now = false;
  for (const auto& g : catalog.Gaps()) {
    out.rows.push_back({.type = "broken_chain",
                        .container = g.container,
                        .timeline = g.timeline,
                        .start_lsn = g.start.ToString(),
                        .end_lsn = g.end.ToString(),
                        .start_time = g.detected_after,
                        .finish_time = g.detected_after,
                        .status = "broken_chain"});
    if (newest && std::tie(g.timeline, g.end) > std::make_tuple(newest->timeline, newest->EndLsn())) broken_now = true;
  }
  std::stable_sort(out.rows.begin(), out.rows.end(), [](const ListingRow& a, const ListingRow& b) {
    return std::make_tuple(a.start_time, TypeOrder(a.type)) < std::make_tuple(b.start_time, TypeOrder(b.type));
  });
  out.status = !newest ? "no_backups" : broken_now ? "broken_chain" : missing ? "missing_objects" : "ok";
  return out;
}

json ListingJson(const DatabaseListing& l) {
  json windows = json::array();
  for (const auto& w : l.windows) {
    windows.push_back({{"base_backup_id", w.base_backup_id},
                       {"start_time", FormatRfc3339(w.start_time)},
                       {"start_lsn", w.start_lsn.ToString()},
                       {"start_timeline", w.start_timeline},
                       {"end_time", FormatRfc3339(w.end_time)},
                       {"end_lsn", w.end_lsn.ToString()},
                       {"end_timeline", w.end_timeline}});
  }
  json rows = json::array();
  for (const auto& r : l.rows) {
    auto str = [](const std::string& s) { return s; };
    auto time = [](SystemTime t) { return FormatRfc3339(t); };
    auto num = [](uint64_t n) { return n; };
    auto flag = [](bool b) { return b; };
    rows.push_back({{"database", l.database},
                    {"system_identifier", std::to_string(l.system_identifier)},
                    {"type", r.type},
                    {"backup_id", OrNull(r.backup_id, str)},
                    {"base_backup_id", OrNull(r.base_backup_id, str)},
                    {"container", r.container},
                    {"timeline", r.timeline},
                    {"start_lsn", r.start_lsn},
                    {"end_lsn", r.end_lsn},
                    {"start_time", FormatRfc3339(r.start_time)},
                    {"finish_time", FormatRfc3339(r.finish_time)},
                    {"expiration_time", OrNull(r.expiration_time, time)},
                    {"size_bytes", OrNull(r.size_bytes, num)},
                    {"stored_bytes", OrNull(r.stored_bytes, num)},
                    {"encrypted", OrNull(r.encrypted, flag)},
                    {"status", r.status},
                    {"path", OrNull(r.path, str)},
                    {"verified_at", OrNull(r.verified_at, time)}});
  }
  return {{"database", l.database},
          {"system_identifier", std::to_string(l.system_identifier)},
          {"status", l.status},
          {"windows", windows},
          {"wal", l.wal ? json{{"start", l.wal->first.ToString()}, {"end", l.wal->second.ToString()}} : json(nullptr)},
          {"backups", rows}};
}

std::string ListingText(const DatabaseListing& l) {
  std::string out = fmt::format("database {} (system identifier {}): {}\n", l.database, l.system_identifier, l.status);
  for (const auto& w : l.windows) {
    out += fmt::format("  restore window {} .. {} (from full {}, {} .. {})\n", FormatRfc3339(w.start_time),
                       FormatRfc3339(w.end_time), w.base_backup_id, w.start_lsn.ToString(), w.end_lsn.ToString());
  }
  if (l.windows.empty()) out += "  no restore window\n";
  if (l.wal) out += fmt::format("  wal {} .. {}\n", l.wal->first.ToString(), l.wal->second.ToString());
  out += fmt::format("  {:<13} {:<26} {:>3} {:<12} {:<12} {:<24} {:<24} {:>10} {:>10} {:<10} {}\n", "type", "backup_id",
                     "tl", "start_lsn", "end_lsn", "start_time", "finish_time", "size", "stored", "verified",
                     "status");
  for (const auto& r : l.rows) {
    out += fmt::format("  {:<13} {:<26} {:>3} {:<12} {:<12} {:<24} {:<24} {:>10} {:>10} {:<10} {}\n", r.type,
                       r.backup_id.value_or("-"),
                       r.timeline, r.start_lsn, r.end_lsn, FormatRfc3339(r.start_time), FormatRfc3339(r.finish_time),
                       r.size_bytes ? FormatByteSize(*r.size_bytes) : "-",
                       r.stored_bytes ? FormatByteSize(*r.stored_bytes) : "-",
                       r.verified_at ? FormatRfc3339(*r.verified_at).substr(0, 10) : "-", r.status);
  }
  return out;
}

}  // namespace sb
