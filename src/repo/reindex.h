// Reindex: rebuilds the index of one database (doc/repository.md, "Index")
// from the objects alone — every manifest listed and read from its own key —
// and reports what it found. It does not upgrade a version 1 repository:
// the verb does, once every database is indexed. Safe to run while writers run: it
// deletes only index objects and markers it listed, after the new object is
// durable, and keeps recent markers whose manifest is not written yet.
// Thread-safety: reentrant.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"

namespace sb {

struct ReindexReport {
  std::string database;
  size_t manifests = 0;  // readable manifests indexed
  size_t full = 0, copy_only = 0, log = 0;
  size_t wal_parts = 0;
  std::vector<std::string> unreadable;  // messages of manifests that fail their checks
  size_t replaced_objects = 0;          // index objects the new one replaces
  size_t removed_markers = 0;
  std::string index_object;             // the key written
};

Result<ReindexReport> Reindex(Repository& repo, const std::string& db);

}  // namespace sb
