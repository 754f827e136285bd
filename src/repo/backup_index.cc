#include "repo/backup_index.h"

#include <fmt/core.h>
#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/text.h"
#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb::backup_index {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "smartbackup-index";
constexpr int kVersion = 1;
constexpr const char* kNoId = "00000000T000000Z-L-0000";

std::string RandomHex8() {
  unsigned char rnd[4];
  RAND_bytes(rnd, sizeof rnd);
  return fmt::format("{:02x}{:02x}{:02x}{:02x}", rnd[0], rnd[1], rnd[2], rnd[3]);
}

// The backup id of a manifest key already known to be in its grammar.
std::string IdOfManifestKey(const std::string& key) {
  const size_t slash = key.rfind('/');
  return key.substr(slash + 1, key.size() - slash - 1 - 5);
}

json Canonical(const std::string& db, const IndexObject& o) {
  json entries = json::array();
  for (const auto& [key, text] : o.entries) entries.push_back({{"key", key}, {"manifest", text}});
  json deleted = json::array();
  for (const auto& [key, at] : o.deleted) deleted.push_back({{"key", key}, {"at", FormatRfc3339(at)}});
  return {{"format", kFormat}, {"version", kVersion}, {"database", db},
          {"level", o.level},  {"entries", entries},  {"deleted", deleted}};
}

// Encode stores the canonical dump, where "checksum" sorts first: the
// checked body is the stored text without that member, so a reader hashes
// it as it is instead of re-serializing thousands of manifests. Text laid
// out otherwise gives "" and is checked by re-serializing.
std::string StoredBodyOf(std::string_view text) {
  constexpr std::string_view kHead = "{\"checksum\":\"";
  constexpr size_t kMember = kHead.size() + 64 + 2;  // {"checksum":"<64 hex>",
  if (text.size() <= kMember || !text.starts_with(kHead) || text.substr(kHead.size() + 64, 2) != "\",") return "";
  std::string body;
  body.reserve(text.size() - kMember + 1);
  body += '{';
  body += text.substr(kMember);
  return body;
}

Status Bad(const std::string& key, const std::string& why) {
  return Status::Corruption(
      fmt::format("index object \"{}\" is corrupt ({}); hint: run smartbackup reindex", Printable(key), why));
}

}  // namespace

std::string Prefix(const std::string& db) { return fmt::format("db/{}/index/", db); }

std::string MarkerKey(const std::string& db, const std::string& container, const std::string& backup_id) {
  return fmt::format("db/{}/index/pending/{}/{}", db, container, backup_id);
}

bool IsManifestKey(const std::string& db, const std::string& key) {
  const std::string root = fmt::format("db/{}/backups/", db);
  if (!StartsWith(key, root) || !EndsWith(key, ".json")) return false;
  const std::string rest = key.substr(root.size(), key.size() - root.size() - 5);
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) return false;
  return Repository::ValidateContainerName(rest.substr(0, slash)).ok() &&
         Repository::ValidateBackupId(rest.substr(slash + 1)).ok();
}

std::string ManifestKeyOfMarker(const std::string& db, const std::string& key) {
  const std::string root = Prefix(db) + "pending/";
  if (!StartsWith(key, root)) return "";
  const std::string rest = key.substr(root.size());
  const size_t slash = rest.find('/');
  if (slash == std::string::npos) return "";
  const std::string container = rest.substr(0, slash), id = rest.substr(slash + 1);
  if (!Repository::ValidateContainerName(container).ok() || !Repository::ValidateBackupId(id).ok()) return "";
  return Repository::ManifestKey(db, container, id);
}

int LevelOfObjectKey(const std::string& db, const std::string& key) {
  // db/<db>/index/<LL>-<backup_id>-<8 hex>.idx
  const std::string root = Prefix(db);
  if (!StartsWith(key, root) || !EndsWith(key, ".idx")) return -1;
  const std::string name = key.substr(root.size(), key.size() - root.size() - 4);
  if (name.size() != 2 + 1 + 23 + 1 + 8 || name[2] != '-' || name[26] != '-') return -1;
  if (!std::isdigit(static_cast<unsigned char>(name[0])) || !std::isdigit(static_cast<unsigned char>(name[1]))) {
    return -1;
  }
  if (!Repository::ValidateBackupId(name.substr(3, 23)).ok()) return -1;
  for (char c : name.substr(27)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return -1;
  }
  return (name[0] - '0') * 10 + (name[1] - '0');
}

std::string Encode(const std::string& db, const IndexObject& object) {
  json j = Canonical(db, object);
  j["checksum"] = Sha256Hex(j.dump());
  // Never encrypted: it holds manifests, which are plain. zstd makes the
  // repeated JSON of many manifests small.
  auto encoded = EncodeObject(j.dump(), "", {.zstd_level = 3});
  return encoded.ok() ? std::move(encoded->bytes) : std::string();
}

Result<IndexObject> Decode(const std::string& db, const std::string& key, const std::string& stored) {
  auto plain = DecodeObject(stored, "", nullptr);
  if (!plain.ok()) return Bad(key, plain.status().message());
  json j = json::parse(*plain, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Bad(key, "not JSON");
  IndexObject o;
  try {
    if (j.at("format").get<std::string>() != kFormat) return Bad(key, "not an index object");
    if (j.at("version").get<int64_t>() != kVersion) return Bad(key, "unknown version");
    if (j.at("database").get<std::string>() != db) return Bad(key, "another database's");
    const int64_t level = j.at("level").get<int64_t>();
    if (level < 0 || level > kMaxLevel || level != LevelOfObjectKey(db, key)) return Bad(key, "level");
    o.level = static_cast<int>(level);
    const std::string checksum = j.at("checksum").get<std::string>();
    // Checked on the document itself without the member: an index object
    // holds thousands of manifests, too many to copy.
    j.erase("checksum");
    if (j.size() != 6) return Bad(key, "unknown members");
    if (Sha256Hex(StoredBodyOf(*plain)) != checksum && Sha256Hex(j.dump()) != checksum) {
      return Bad(key, "checksum mismatch");
    }
    for (auto& e : j.at("entries")) {
      if (!e.is_object() || e.size() != 2) return Bad(key, "entry");
      const std::string mkey = e.at("key").get<std::string>();
      if (!IsManifestKey(db, mkey)) return Bad(key, "entry key \"" + Printable(mkey) + "\"");
      auto& text = e.at("manifest").get_ref<std::string&>();  // throws (caught below) when not a string
      if (!o.entries.emplace(mkey, std::move(text)).second) return Bad(key, "duplicate entry");
    }
    for (const auto& d : j.at("deleted")) {
      if (!d.is_object() || d.size() != 2) return Bad(key, "tombstone");
      const std::string mkey = d.at("key").get<std::string>();
      if (!IsManifestKey(db, mkey)) return Bad(key, "tombstone key \"" + Printable(mkey) + "\"");
      auto at = ParseRfc3339(d.at("at").get<std::string>());
      if (!at.ok()) return Bad(key, "tombstone time");
      o.deleted[mkey] = *at;
    }
  } catch (const std::exception& e) {
    return Bad(key, e.what());
  }
  return o;
}

namespace {

Result<IndexView> ReadOnce(Storage& storage, const std::string& db, IndexCache* cache, bool* vanished) {
  IndexView view;
  ASSIGN_OR_RETURN(auto listed, ListAll(storage, Prefix(db)));
  for (const auto& o : listed) {
    if (!ManifestKeyOfMarker(db, o.key).empty() || LevelOfObjectKey(db, o.key) >= 0) view.signature += o.key + "\n";
  }
  if (cache && cache->listing && cache->listing_signature == view.signature) {
    // The same immutable objects and markers as the last listing was made of.
    view.unchanged = true;
    return view;
  }
  std::map<std::string, std::string> seen;  // key → text, over all objects
  std::set<std::string> listed_keys;
  for (auto& o : listed) {
    listed_keys.insert(o.key);
    if (!ManifestKeyOfMarker(db, o.key).empty()) {
      view.markers.push_back(std::move(o));
      continue;
    }
    const int level = LevelOfObjectKey(db, o.key);
    if (level < 0) continue;  // not ours (a temp file): ignored
    std::shared_ptr<const IndexObject> object;
    if (cache) {
      auto it = cache->objects.find(o.key);
      if (it != cache->objects.end()) object = it->second;
    }
    if (!object) {
      auto stored = storage.Get(o.key);
      if (!stored.ok()) {
        if (stored.status().IsNotFound()) {  // merged away meanwhile
          *vanished = true;
          return view;
        }
        return stored.status();
      }
      auto decoded = Decode(db, o.key, *stored);
      if (!decoded.ok()) {
        log::Warn("{}; listing every manifest instead", decoded.status().message());
        view.warnings.push_back(decoded.status().message());
        view.usable = false;
        continue;
      }
      object = std::make_shared<const IndexObject>(std::move(decoded).value());
      if (cache) cache->objects[o.key] = object;
    }
    view.objects[o.key] = object->level;
    for (const auto& [key, at] : object->deleted) {
      auto& t = view.deleted[key];
      t = std::max(t, at);
    }
    for (const auto& [key, text] : object->entries) {
      auto [it, fresh] = seen.emplace(key, text);
      if (!fresh && it->second != text) view.conflicting.insert(key);
    }
  }
  if (cache) {  // forget objects merged away
    for (auto it = cache->objects.begin(); it != cache->objects.end();) {
      it = listed_keys.count(it->first) ? std::next(it) : cache->objects.erase(it);
    }
  }
  for (auto& [key, text] : seen) {
    if (view.deleted.count(key) || view.conflicting.count(key)) continue;
    view.entries.emplace(key, std::move(text));
  }
  return view;
}

}  // namespace

Result<IndexView> Read(Storage& storage, const std::string& db, IndexCache* cache) {
  for (int attempt = 0;; ++attempt) {
    bool vanished = false;
    ASSIGN_OR_RETURN(IndexView view, ReadOnce(storage, db, cache, &vanished));
    if (!vanished) return view;
    if (attempt == 1) {
      view.usable = false;
      view.warnings.push_back("the index changed twice while it was read");
      return view;
    }
  }
}

Result<std::string> Put(Storage& storage, const std::string& db, const IndexObject& object, Clock* clock) {
  (void)clock;
  std::string newest = kNoId;
  for (const auto& [key, text] : object.entries) newest = std::max(newest, IdOfManifestKey(key));
  const std::string key = fmt::format("{}{:02d}-{}-{}.idx", Prefix(db), object.level, newest, RandomHex8());
  RETURN_IF_ERROR(storage.Put(key, Encode(db, object), {.if_absent = true})
                      .WithContext(fmt::format("cannot write index object \"{}\"", key)));
  return key;
}

Status AfterManifestWritten(Storage& storage, const std::string& db, const std::string& manifest_key,
                            const std::string& text, Clock* clock) {
  IndexObject delta;
  delta.entries[manifest_key] = text;
  RETURN_IF_ERROR(Put(storage, db, delta, clock).status());
  const std::string id = IdOfManifestKey(manifest_key);
  const std::string rest = manifest_key.substr(fmt::format("db/{}/backups/", db).size());
  const std::string container = rest.substr(0, rest.find('/'));
  RETURN_IF_ERROR(storage.Delete(MarkerKey(db, container, id)));
  return MergeDue(storage, db, clock);
}

Status MergeDue(Storage& storage, const std::string& db, Clock* clock) {
  ASSIGN_OR_RETURN(auto listed, ListAll(storage, Prefix(db)));
  std::map<int, std::vector<std::string>> by_level;
  for (const auto& o : listed) {
    const int l = LevelOfObjectKey(db, o.key);
    if (l >= 0) by_level[l].push_back(o.key);
  }
  for (int level = 0; level < kMaxLevel; ++level) {
    auto it = by_level.find(level);
    if (it == by_level.end()) {
      if (by_level.upper_bound(level) == by_level.end()) break;
      continue;
    }
    const std::vector<std::string> inputs = it->second;
    if (static_cast<int>(inputs.size()) < kFanIn) continue;
    IndexObject merged{.level = level + 1};
    const SystemTime now = clock->Now();
    for (const auto& key : inputs) {
      auto stored = storage.Get(key);
      if (!stored.ok()) {
        if (stored.status().IsNotFound()) return Status::Ok();  // another writer merges them
        return stored.status();
      }
      auto o = Decode(db, key, *stored);
      if (!o.ok()) {
        // Never merge a bad object (it would hide it) nor delete it: reindex repairs.
        log::Warn("{}; not merged", o.status().message());
        return Status::Ok();
      }
      for (auto& [k, text] : o->entries) merged.entries.emplace(k, std::move(text));
      for (const auto& [k, at] : o->deleted) {
        if (now - at < kTombstoneLife) merged.deleted[k] = std::max(merged.deleted[k], at);
      }
    }
    for (const auto& [k, at] : merged.deleted) merged.entries.erase(k);
    ASSIGN_OR_RETURN(std::string out, Put(storage, db, merged, clock));
    // Inputs go only once the merged object is durable: an entry is always in some object.
    for (const auto& key : inputs) RETURN_IF_ERROR(storage.Delete(key));
    by_level[level + 1].push_back(out);
  }
  return Status::Ok();
}

}  // namespace sb::backup_index
