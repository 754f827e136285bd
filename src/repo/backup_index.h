// BackupIndex: the index of repository format version 2 (doc/repository.md,
// "Index"): immutable objects under db/<db>/index/ that each hold many
// manifests verbatim, merged level-wise (8 objects of a level become one of
// the next), plus pending markers for manifests being written. A reader lists
// one small prefix and reads O(log n) objects instead of every manifest.
//
// Index content is untrusted: every object is checked (object format,
// grammar, checksum, database, entry keys); entries are manifest texts that
// the caller checks exactly like manifests read from their own keys. A bad
// object makes Read report `usable = false` so the caller falls back to
// listing every manifest.
// Thread-safety: free functions are reentrant; an IndexCache is not
// thread-safe (one per reader).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "repo/manifest.h"
#include "storage/storage.h"

namespace sb {

// One decoded index object.
struct IndexObject {
  int level = 0;
  std::map<std::string, std::string> entries;  // manifest key → the manifest's stored text
  std::map<std::string, SystemTime> deleted;   // manifest key → when retention deleted it
};

// What a reader keeps between refreshes: index objects are immutable, so one
// read once is never read again; parsed manifests are kept by key and text.
struct BackupListing;

struct IndexCache {
  std::map<std::string, std::shared_ptr<const IndexObject>> objects;  // index object key → content
  // The last listing and what it was made from (the index objects' and
  // markers' names): objects are immutable, so the same names give the same
  // listing, returned as it is instead of rebuilt.
  std::string listing_signature;
  std::shared_ptr<const BackupListing> listing;
  // The last listing built (memoized or not) and the SHA-256 of the entry
  // text each of its manifests was parsed from: a rebuild copies the
  // manifests whose text is unchanged instead of parsing them again.
  std::shared_ptr<const BackupListing> parsed_from;
  std::map<std::string, std::string> entry_sha;  // manifest key → sha256 of its entry text
};

// The union of the index as one read found it.
struct IndexView {
  bool usable = true;                          // false: a bad object; list every manifest instead
  std::vector<std::string> warnings;           // why objects were ignored
  std::map<std::string, std::string> entries;  // manifest key → text (tombstoned and conflicting removed)
  std::set<std::string> conflicting;           // keys whose entries disagree: read from storage
  std::map<std::string, SystemTime> deleted;   // tombstones
  std::map<std::string, int> objects;          // index object key → level, as listed and read
  std::vector<ObjectInfo> markers;             // pending markers as listed
  std::string signature;                       // the names of the objects and markers listed
  // The cache's listing was made from exactly these names: nothing else is
  // filled in (the caller reuses that listing).
  bool unchanged = false;
};

namespace backup_index {

inline constexpr int kFanIn = 8;          // objects of one level merged into one of the next
inline constexpr int kMaxLevel = 99;
inline constexpr auto kTombstoneLife = std::chrono::hours(24 * 7);

std::string Prefix(const std::string& db);  // "db/<db>/index/"
std::string MarkerKey(const std::string& db, const std::string& container, const std::string& backup_id);
// The manifest key a pending marker stands for, or "" when `key` is not a
// marker of db in its grammar.
std::string ManifestKeyOfMarker(const std::string& db, const std::string& key);
// True for "db/<db>/backups/<container>/<backup_id>.json" in its grammar.
bool IsManifestKey(const std::string& db, const std::string& key);
// Level of an index object key, or -1 when `key` is not one.
int LevelOfObjectKey(const std::string& db, const std::string& key);

std::string Encode(const std::string& db, const IndexObject& object);  // stored bytes
Result<IndexObject> Decode(const std::string& db, const std::string& key, const std::string& stored);

// Lists the index and reads every object (from `cache` when it holds it;
// cache may be null). An object gone between list and read makes it list once
// more. Storage errors are returned; bad objects make the view unusable.
Result<IndexView> Read(Storage& storage, const std::string& db, IndexCache* cache);

// Writes `object` under a new unique name at its level (put-if-absent).
Result<std::string> Put(Storage& storage, const std::string& db, const IndexObject& object, Clock* clock);

// Steps 3-5 of writing a manifest: a level-0 object with its text, the
// marker's deletion, then the merges that are due.
Status AfterManifestWritten(Storage& storage, const std::string& db, const std::string& manifest_key,
                            const std::string& text, Clock* clock);

// Merges every level holding kFanIn or more objects into the next (inputs
// are deleted only after the merged object is stored).
Status MergeDue(Storage& storage, const std::string& db, Clock* clock);

}  // namespace backup_index
}  // namespace sb
