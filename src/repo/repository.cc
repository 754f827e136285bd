#include "repo/repository.h"

#include <fmt/core.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/logging.h"
#include "common/text.h"
#include "common/thread_pool.h"
#include "repo/json_fields.h"
#include "repo/object_codec.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr const char* kDescriptorKey = "smartbackup-repo.json";
constexpr const char* kDescriptorFormat = "smartbackup-repository";

Status CheckDescriptor(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  // Members are type-checked before use: json::value() throws on a member of
  // another type, and the descriptor is storage-controlled text.
  if (j.is_discarded() || !j.is_object() || !j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != kDescriptorFormat) {
    return Status::FailedPrecondition(
        fmt::format("{} is not a smartbackup repository (\"{}\" is unreadable); hint: check the storage URL", where,
                    kDescriptorKey));
  }
  if (j.contains("version") && !j["version"].is_number_integer()) {
    return Status::FailedPrecondition(fmt::format(
        "{} is not a smartbackup repository (\"{}\" has no valid version); hint: check the storage URL", where,
        kDescriptorKey));
  }
  const int64_t version = j.contains("version") ? j["version"].get<int64_t>() : 0;
  if (version > Repository::kFormatVersion) {
    return Status::FailedPrecondition(
        fmt::format("repository {} has format version {}, newer than this smartbackup supports ({}); hint: upgrade "
                    "smartbackup",
                    where, version, Repository::kFormatVersion));
  }
  return Status::Ok();
}

// The descriptor's "repository_id"; a repository made before ids existed is
// named by a digest of its descriptor (written once, so just as stable).
int VersionOfDescriptor(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_object() && j.contains("version") && j["version"].is_number_integer()) {
    return static_cast<int>(j["version"].get<int64_t>());
  }
  return 1;
}

std::string IdOfDescriptor(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_object() && j.contains("repository_id") && j["repository_id"].is_string()) {
    return j["repository_id"].get<std::string>();
  }
  return "d" + Sha256Hex(text).substr(0, 31);
}

}  // namespace

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<Storage> storage, bool create, Clock* clock) {
  const std::string where = storage->Describe();
  auto existing = storage->Get(kDescriptorKey);
  std::string descriptor;
  if (existing.ok()) {
    RETURN_IF_ERROR(CheckDescriptor(*existing, where));
    descriptor = std::move(existing).value();
  } else if (existing.status().IsNotFound()) {
    if (!create) {
      return Status::NotFound(
          fmt::format("no smartbackup repository at {}; hint: check --repo, or take a backup first", where));
    }
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof rnd);
    std::string id;
    for (unsigned char b : rnd) id += fmt::format("{:02x}", b);
    json j = {{"format", kDescriptorFormat},
              {"version", kFormatVersion},
              {"created", FormatRfc3339(clock->Now())},
              {"repository_id", id}};
    descriptor = j.dump(1) + "\n";
    Status s = storage->Put(kDescriptorKey, descriptor, {.if_absent = true});
    if (s.IsAlreadyExists()) {  // another writer created it first: its descriptor (and id) wins
      ASSIGN_OR_RETURN(descriptor, storage->Get(kDescriptorKey));
      RETURN_IF_ERROR(CheckDescriptor(descriptor, where));
    } else if (!s.ok()) {
      return s.WithContext("cannot create repository at " + where);
    }
  } else {
    return existing.status().WithContext("cannot open repository at " + where);
  }
  std::unique_ptr<Repository> repo(new Repository(std::move(storage), clock));
  repo->id_ = IdOfDescriptor(descriptor);
  repo->format_version_ = VersionOfDescriptor(descriptor);
  repo->descriptor_ = descriptor;
  return repo;
}

Status Repository::ValidateDatabaseName(const std::string& db) {
  bool ok = !db.empty() && db.size() <= 63 && db != "." && db != "..";
  for (char c : db) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) ok = false;
  }
  if (ok) return Status::Ok();
  return Status::InvalidArgument(
      fmt::format("invalid database name \"{}\"; hint: use 1-63 letters, digits, '_', '-' or '.'", Printable(db)));
}

namespace {

bool AllOf(std::string_view s, bool (*pred)(char)) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpperHex(char c) { return IsDigit(c) || (c >= 'A' && c <= 'F'); }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

}  // namespace

std::optional<uint64_t> Repository::ParseSystemIdentifier(std::string_view digits) {
  if (digits.empty() || digits.size() > 20 || !AllOf(digits, IsDigit)) return std::nullopt;
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  uint64_t v = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v, 10);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;  // overflow
  return v;
}

Status Repository::ValidateContainerName(std::string_view c) {
  auto bad = [&] {
    return Status::InvalidArgument(fmt::format(
        "invalid container name \"{}\"; hint: a container is named <system identifier>-<timeline as 8 hex "
        "digits>[-<n>]",
        Printable(c)));
  };
  size_t dash = c.find('-');
  if (dash == std::string_view::npos || !ParseSystemIdentifier(c.substr(0, dash))) return bad();
  std::string_view rest = c.substr(dash + 1);
  if (rest.size() < 8 || !AllOf(rest.substr(0, 8), IsUpperHex) || rest.substr(0, 8) == "00000000") return bad();
  rest.remove_prefix(8);
  if (rest.empty()) return Status::Ok();
  if (rest[0] != '-') return bad();
  rest.remove_prefix(1);
  // A sequence number from EnsureContainer: 2, 3, … (nine digits is far beyond any real count).
  if (rest.empty() || rest.size() > 9 || !AllOf(rest, IsDigit) || rest[0] == '0' || rest == "1") return bad();
  return Status::Ok();
}

Status Repository::ValidateBackupId(std::string_view id) {
  // <YYYYMMDDTHHMMSSZ>-<F|C|L>-<4 lowercase hex>
  bool ok = id.size() == 16 + 1 + 1 + 1 + 4 && AllOf(id.substr(0, 8), IsDigit) && id[8] == 'T' &&
            AllOf(id.substr(9, 6), IsDigit) && id[15] == 'Z' && id[16] == '-' &&
            (id[17] == 'F' || id[17] == 'C' || id[17] == 'L') && id[18] == '-' && AllOf(id.substr(19), IsLowerHex);
  if (ok) return Status::Ok();
  return Status::InvalidArgument(fmt::format(
      "invalid backup id \"{}\"; hint: a backup id looks like 20261125T023328Z-F-1a2b", Printable(id)));
}

std::string Repository::ManifestKey(const std::string& db, const std::string& container, const std::string& id) {
  return fmt::format("db/{}/backups/{}/{}.json", db, container, id);
}

std::string Repository::DataPrefix(const std::string& db, const std::string& container, const std::string& id) {
  return fmt::format("db/{}/data/{}/{}/", db, container, id);
}

std::string Repository::ContainerKey(const std::string& db, const std::string& container) {
  return fmt::format("db/{}/containers/{}.json", db, container);
}

std::string Repository::NewBackupId(SystemTime start, BackupType type) {
  unsigned char rnd[2];
  RAND_bytes(rnd, sizeof rnd);
  char letter = type == BackupType::kFull ? 'F' : type == BackupType::kCopyOnly ? 'C' : 'L';
  return fmt::format("{}-{}-{:02x}{:02x}", FormatCompactTime(start), letter, rnd[0], rnd[1]);
}

std::string Repository::WalPartKey(const std::string& db, const std::string& container, uint32_t timeline, Lsn start,
                                   Lsn end) {
  return fmt::format("db/{}/wal/{}/{:08X}/{:016X}-{:016X}", db, container, timeline, start.value, end.value);
}

std::string Repository::HistoryKey(const std::string& db, const std::string& container, uint32_t timeline) {
  return fmt::format("db/{}/wal/{}/history/{:08X}.history", db, container, timeline);
}

std::optional<WalPart> Repository::ParseWalPartKey(std::string_view key) {
  // db/<db>/wal/<container>/<tli:08X>/<start:016X>-<end:016X>, every part
  // in its grammar: the key is rebuilt from the parsed fields and must match.
  if (!StartsWith(key, "db/")) return std::nullopt;
  const size_t tail = 8 + 1 + 16 + 1 + 16;
  if (key.size() < tail + 10) return std::nullopt;
  std::string_view rest = key.substr(key.size() - tail);
  if (rest[8] != '/' || rest[25] != '-' || key[key.size() - tail - 1] != '/') return std::nullopt;
  std::string_view head = key.substr(3, key.size() - tail - 4);  // <db>/wal/<container>
  size_t wal = head.find("/wal/");
  if (wal == std::string_view::npos) return std::nullopt;
  const std::string db(head.substr(0, wal));
  const std::string container(head.substr(wal + 5));
  if (!ValidateDatabaseName(db).ok() || !ValidateContainerName(container).ok()) return std::nullopt;
  auto hex = [](std::string_view s, uint64_t* out) {
    if (!AllOf(s, IsUpperHex)) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
  };
  uint64_t tli = 0, start = 0, end = 0;
  if (!hex(rest.substr(0, 8), &tli) || !hex(rest.substr(9, 16), &start) || !hex(rest.substr(26, 16), &end)) {
    return std::nullopt;
  }
  if (end <= start || tli == 0) return std::nullopt;
  return WalPart{.key = std::string(key),
                 .container = container,
                 .timeline = static_cast<uint32_t>(tli),
                 .start = Lsn{start},
                 .end = Lsn{end}};
}

Result<std::vector<WalPart>> Repository::ListWalParts(const std::string& db, const std::string& container) {
  ASSIGN_OR_RETURN(auto objects, ListAll(*storage_, fmt::format("db/{}/wal/{}/", db, container)));
  std::vector<WalPart> parts;
  for (const auto& o : objects) {
    auto p = ParseWalPartKey(o.key);
    if (!p) continue;  // history files, temp files
    p->stored_size = o.size;
    p->mtime = o.mtime;
    parts.push_back(std::move(*p));
  }
  std::sort(parts.begin(), parts.end(), [](const WalPart& a, const WalPart& b) {
    return a.timeline != b.timeline ? a.timeline < b.timeline : a.start < b.start;
  });
  return parts;
}

Result<std::vector<std::string>> Repository::ListDatabases() {
  ASSIGN_OR_RETURN(auto objects, ListAll(*storage_, "db/"));
  std::set<std::string> names;
  for (const auto& o : objects) {
    // db/<name>/containers/… marks a database even before its first backup completes.
    auto rest = std::string_view(o.key).substr(3);
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) continue;
    // A name outside the grammar is no database of ours (nothing here writes one): skipped, not an error.
    std::string name(rest.substr(0, slash));
    if (rest.substr(slash + 1).substr(0, 11) == "containers/" && ValidateDatabaseName(name).ok()) names.insert(name);
  }
  return std::vector<std::string>(names.begin(), names.end());
}

Result<std::vector<ContainerInfo>> Repository::ListContainers(const std::string& db, ContainerCache* cache) {
  RETURN_IF_ERROR(ValidateDatabaseName(db));
  ASSIGN_OR_RETURN(auto objects, ListAll(*storage_, fmt::format("db/{}/containers/", db)));
  std::vector<ContainerInfo> out;
  ContainerCache seen;
  for (const auto& o : objects) {
    if (!EndsWith(o.key, ".json")) continue;
    // Descriptors are written once (put-if-absent): one listed as before,
    // same size and time, is the one read before.
    const std::string stamp = fmt::format("{}\n{}\n{}", o.key, o.size, o.mtime.time_since_epoch().count());
    if (cache) {
      if (auto it = cache->find(stamp); it != cache->end()) {
        out.push_back(it->second);
        seen.emplace(stamp, it->second);
        continue;
      }
    }
    ASSIGN_OR_RETURN(std::string text, storage_->Get(o.key));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status::Corruption(fmt::format("container descriptor \"{}\" is corrupt; hint: run verify", o.key));
    }
    ContainerInfo info;
    try {
      info.name = j.at("name").get<std::string>();
      auto sysid = ParseSystemIdentifier(j.at("system_identifier").get<std::string>());
      info.timeline = IntegerMember<uint32_t>(j, "timeline");
      auto created = ParseRfc3339(j.at("created").get<std::string>());
      if (created.ok()) info.created = *created;
      info.reason = j.value("reason", "");
      // The name is used in keys and paths: it must be of its grammar, the
      // one its descriptor is stored under, and agree with the descriptor.
      std::string why;
      if (Status v = ValidateContainerName(info.name); !v.ok()) {
        why = v.message();
      } else if (ContainerKey(db, info.name) != o.key) {
        why = "its name does not match its key";
      } else if (!sysid || !StartsWith(info.name, fmt::format("{}-", *sysid))) {
        why = "invalid system identifier";
      } else if (info.timeline == 0) {
        why = "timeline 0";
      }
      if (!why.empty()) {
        return Status::Corruption(
            fmt::format("container descriptor \"{}\" is corrupt ({}); hint: run verify", o.key, why));
      }
      info.system_identifier = *sysid;
    } catch (const std::exception& e) {
      return Status::Corruption(fmt::format("container descriptor \"{}\" is corrupt ({})", o.key, e.what()));
    }
    seen.emplace(stamp, info);
    out.push_back(std::move(info));
  }
  if (cache) *cache = std::move(seen);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.created != b.created ? a.created < b.created : a.name < b.name;
  });
  return out;
}

Result<ContainerInfo> Repository::EnsureContainer(const std::string& db, uint64_t sysid, uint32_t timeline,
                                                  const std::string& reason, bool force_new) {
  ASSIGN_OR_RETURN(auto containers, ListContainers(db));
  const std::string base = fmt::format("{}-{:08X}", sysid, timeline);
  int same_lineage = 0;
  const ContainerInfo* newest = nullptr;
  for (const auto& c : containers) {
    if (c.system_identifier == sysid && c.timeline == timeline) {
      ++same_lineage;
      newest = &c;  // sorted by creation: the last match is the newest
    }
  }
  if (newest && !force_new) return *newest;
  for (int n = same_lineage + 1;; ++n) {
    ContainerInfo info{.name = n == 1 ? base : fmt::format("{}-{}", base, n),
                       .system_identifier = sysid,
                       .timeline = timeline,
                       .created = clock_->Now(),
                       .reason = reason};
    json j = {{"name", info.name},
              {"system_identifier", std::to_string(sysid)},
              {"timeline", timeline},
              {"created", FormatRfc3339(info.created)},
              {"reason", reason}};
    Status s = storage_->Put(ContainerKey(db, info.name), j.dump(1) + "\n", {.if_absent = true});
    if (s.ok()) return info;
    if (!s.IsAlreadyExists()) return s.WithContext("cannot create container for database \"" + db + "\"");
    if (!force_new) {
      // Another writer (the streamer, wal-push, a full backup) created it just now: use it.
      ASSIGN_OR_RETURN(auto again, ListContainers(db));
      const ContainerInfo* found = nullptr;
      for (const auto& c : again) {
        if (c.system_identifier == sysid && c.timeline == timeline) found = &c;
      }
      if (found) return *found;
    }
    // A name of an older lineage, or force_new: try the next.
  }
}

Status Repository::UpgradeToVersion2() {
  if (format_version_ >= 2) return Status::Ok();
  json j = json::parse(descriptor_, nullptr, false);
  if (!j.is_object()) return Status::Internal("repository descriptor unreadable");
  j["version"] = 2;
  if (!j.contains("repository_id")) j["repository_id"] = id_;  // keep the name it was known by
  const std::string text = j.dump(1) + "\n";
  RETURN_IF_ERROR(storage_->Put(kDescriptorKey, text).WithContext("cannot upgrade the repository descriptor"));
  descriptor_ = text;
  format_version_ = 2;
  return Status::Ok();
}

namespace {

// Manifests that fail their checks are listed as unreadable; other errors end the listing.
bool IsUnreadable(const Status& s) {
  return s.code() == StatusCode::kCorruption || s.code() == StatusCode::kFailedPrecondition ||
         s.code() == StatusCode::kPermissionDenied;
}

Result<BackupListing> Finish(BackupListing listing) {
  if (listing.backups.empty()) {
    for (const auto& s : listing.unreadable) {
      if (s.code() == StatusCode::kPermissionDenied) return s;
    }
  }
  std::sort(listing.backups.begin(), listing.backups.end(), [](const auto& a, const auto& b) {
    return a.start_time != b.start_time ? a.start_time < b.start_time : a.backup_id < b.backup_id;
  });
  return listing;
}

}  // namespace

Result<BackupListing> Repository::ListBackups(const std::string& db, IndexCache* cache) {
  ASSIGN_OR_RETURN(std::shared_ptr<const BackupListing> listing, ListBackupsShared(db, cache));
  return *listing;
}

Result<std::shared_ptr<const BackupListing>> Repository::ListBackupsShared(const std::string& db, IndexCache* cache) {
  RETURN_IF_ERROR(ValidateDatabaseName(db));
  auto from_storage = [&]() -> Result<std::shared_ptr<const BackupListing>> {
    ASSIGN_OR_RETURN(BackupListing listing, ListBackupsFromStorage(db));
    return std::make_shared<const BackupListing>(std::move(listing));
  };
  if (format_version_ < 2) return from_storage();
  ASSIGN_OR_RETURN(IndexView view, backup_index::Read(*storage_, db, cache));
  if (view.unchanged) return cache->listing;
  // A bad object, or no index at all (a database no version 2 writer has
  // written yet): list every manifest, as in version 1.
  if (!view.usable || (view.objects.empty() && view.markers.empty())) return from_storage();
  const std::string signature = view.signature;
  // Memoized only when it follows from the index objects alone (no manifest
  // read from its own key: those can appear or change under the same names).
  bool from_index_only = true;
  BackupListing listing;
  auto add = [&](Result<BackupManifest> m) -> Status {
    from_index_only = false;
    if (m.ok()) {
      listing.backups.push_back(std::move(m).value());
    } else if (IsUnreadable(m.status())) {
      listing.unreadable.push_back(m.status());
    } else if (!m.status().IsNotFound()) {  // not found: a marker of a write in flight, or deleted meanwhile
      return m.status();
    }
    return Status::Ok();
  };
  // Entries whose text this cache parsed before are copied from the last
  // listing; the others are parsed on every core (a 30-day index holds tens
  // of thousands of manifests).
  std::map<std::string, const BackupManifest*> previous;
  if (cache && cache->parsed_from) {
    for (const auto& m : cache->parsed_from->backups) previous[ManifestKey(m.database, m.container, m.backup_id)] = &m;
  }
  std::map<std::string, std::string> entry_sha;
  struct Todo {
    const std::string* key;
    const std::string* text;
    std::optional<Result<BackupManifest>> result;
  };
  std::vector<Todo> todo;
  for (const auto& [key, text] : view.entries) {
    if (cache) {
      std::string sha = Sha256Hex(text);
      auto known = cache->entry_sha.find(key);
      auto it = previous.find(key);
      const bool same = known != cache->entry_sha.end() && known->second == sha && it != previous.end();
      entry_sha.emplace(key, std::move(sha));
      if (same) {
        listing.backups.push_back(*it->second);
        continue;
      }
    }
    todo.push_back({&key, &text, std::nullopt});
  }
  ParallelFor(todo.size(), [&](size_t i) { todo[i].result = ParseManifest(*todo[i].text, *todo[i].key); });
  for (auto& t : todo) {
    if (t.result->ok()) {
      listing.backups.push_back(std::move(*t.result).value());
    } else {
      // A bad entry says nothing about the manifest: read it from its own key.
      entry_sha.erase(*t.key);
      RETURN_IF_ERROR(add(ReadManifest(*t.key)));
    }
  }
  std::set<std::string> extra(view.conflicting.begin(), view.conflicting.end());
  for (const auto& marker : view.markers) {
    std::string key = backup_index::ManifestKeyOfMarker(db, marker.key);
    if (!view.entries.count(key) && !view.deleted.count(key)) extra.insert(std::move(key));
  }
  for (const auto& key : extra) RETURN_IF_ERROR(add(ReadManifest(key)));
  ASSIGN_OR_RETURN(BackupListing finished, Finish(std::move(listing)));
  auto shared = std::make_shared<const BackupListing>(std::move(finished));
  if (cache) {
    cache->listing = from_index_only ? shared : nullptr;
    cache->listing_signature = from_index_only ? signature : "";
    cache->parsed_from = shared;
    cache->entry_sha = std::move(entry_sha);
  }
  return shared;
}


Result<BackupListing> Repository::ListBackupsFromStorage(const std::string& db) {
  RETURN_IF_ERROR(ValidateDatabaseName(db));
  ASSIGN_OR_RETURN(auto objects, ListAll(*storage_, fmt::format("db/{}/backups/", db)));
  BackupListing listing;
  for (const auto& o : objects) {
    if (!EndsWith(o.key, ".json")) continue;
    auto m = ReadManifest(o.key);
    if (m.ok()) {
      listing.backups.push_back(std::move(m).value());
    } else if (m.status().code() == StatusCode::kCorruption || m.status().code() == StatusCode::kFailedPrecondition ||
               m.status().code() == StatusCode::kPermissionDenied) {
      // A manifest made under a key we do not hold is one we cannot
      // authenticate: it is not listed, but it must not hide the others.
      listing.unreadable.push_back(m.status());
    } else {
      return m.status();
    }
  }
  return Finish(std::move(listing));
}

Result<std::vector<std::string>> Repository::ListManifestKeys(const std::string& db, const std::string& container,
                                                              char type_letter) {
  RETURN_IF_ERROR(ValidateDatabaseName(db));
  ASSIGN_OR_RETURN(auto objects, ListAll(*storage_, fmt::format("db/{}/backups/{}/", db, container)));
  const std::string marker = type_letter ? fmt::format("-{}-", type_letter) : "";
  std::vector<std::string> keys;
  for (const auto& o : objects) {
    if (!EndsWith(o.key, ".json")) continue;
    if (!marker.empty() && o.key.find(marker, o.key.rfind('/')) == std::string::npos) continue;
    keys.push_back(o.key);
  }
  std::sort(keys.begin(), keys.end());  // ids begin with their UTC start time
  return keys;
}

Result<BackupManifest> Repository::ReadManifest(const std::string& key) {
  ASSIGN_OR_RETURN(std::string text, storage_->Get(key));
  return ParseManifest(text, key);
}

Result<BackupManifest> Repository::ParseManifest(const std::string& text, const std::string& key) {
  ASSIGN_OR_RETURN(BackupManifest m, BackupManifest::FromJson(text, key, read_keys_));
  // The key is what listing, retention and restore go by; the content is
  // what they act on. A manifest copied under another name would make the
  // two disagree (purge would delete what the copy names): it is corrupt.
  if (ManifestKey(m.database, m.container, m.backup_id) != key) {
    return Status::Corruption(fmt::format(
        "backup manifest \"{}\" is corrupt (it describes backup {} of database \"{}\" in container {}, not the "
        "backup its name says); hint: run verify",
        key, m.backup_id, m.database, m.container));
  }
  return m;
}

Status Repository::WriteManifest(const BackupManifest& m, const EncryptionKey* mac_key) {
  const std::string key = ManifestKey(m.database, m.container, m.backup_id);
  if (!m.encryption_key_id.empty() && (mac_key == nullptr || mac_key->key_id() != m.encryption_key_id)) {
    return Status::Internal(fmt::format("cannot write backup manifest \"{}\": it is encrypted under key {} but no "
                                        "such key was given to authenticate it",
                                        key, m.encryption_key_id));
  }
  const std::string text = m.ToJson(mac_key);
  if (format_version_ >= 2) {
    // The marker first: from the moment the manifest exists, readers of the
    // index find it (doc/repository.md, "Index").
    RETURN_IF_ERROR(storage_->Put(backup_index::MarkerKey(m.database, m.container, m.backup_id), "")
                        .WithContext("cannot write the index marker of backup manifest \"" + key + "\""));
  }
  RETURN_IF_ERROR(storage_->Put(key, text, {.if_absent = true})
                      .WithContext("cannot write backup manifest \"" + key + "\""));
  if (format_version_ >= 2) {
    // The backup exists now; the marker keeps it findable if indexing fails.
    Status s = backup_index::AfterManifestWritten(*storage_, m.database, key, text, clock_);
    if (!s.ok()) log::Warn("backup {} is not indexed yet ({}); readers find it by its marker", m.backup_id, s.message());
  }
  return Status::Ok();
}

}  // namespace sb
