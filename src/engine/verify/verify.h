// Verify: re-reads every object of every complete backup and checks it
// against its manifest (presence, size, SHA-256) and, where possible, decodes
// it (zstd; GCM authentication when the key is given). Reports every problem
// found rather than stopping at the first. Read-only. With a key, a backup
// that is not encrypted under it is a problem. kNotFound when nothing was
// there to check (no backups for --db, or none at all): proving nothing is
// not success.
// Thread-safety: reentrant.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "repo/object_codec.h"
#include "repo/repository.h"

namespace sb {

struct VerifyProblem {
  std::string database;
  std::string backup_id;  // empty for repository-level problems
  std::string key;        // the object concerned
  std::string kind;       // "missing" | "corrupt" | "unreadable" | "manifest" | "key" | "unencrypted"
  std::string detail;     // one line
};

struct VerifyReport {
  int databases = 0;
  int backups_checked = 0;
  int backups_unauthenticated = 0;  // encrypted, checked by checksum only (no key given)
  uint64_t objects_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<VerifyProblem> problems;
  bool ok() const { return problems.empty(); }
};

struct VerifyOptions {
  std::optional<std::string> database;  // all when unset
  const KeySource* key = nullptr;
  int parallelism = 0;
  // Optional: stored bytes checked so far and the stored size of the backups listed so far
  // (each database's are added when it is listed), called from reader workers one at a time.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

Result<VerifyReport> RunVerify(Repository& repo, const VerifyOptions& options);

}  // namespace sb
