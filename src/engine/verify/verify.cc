#include "engine/verify/verify.h"

#include <fmt/core.h>

#include <mutex>
#include <thread>

#include "common/thread_pool.h"

namespace sb {

Result<VerifyReport> RunVerify(Repository& repo, const VerifyOptions& options) {
  std::vector<std::string> databases;
  if (options.database) {
    RETURN_IF_ERROR(Repository::ValidateDatabaseName(*options.database));
    databases.push_back(*options.database);
  } else {
    ASSIGN_OR_RETURN(databases, repo.ListDatabases());
  }
  VerifyReport report;
  std::mutex mu;
  int workers = WorkerCount(options.parallelism);
  for (const auto& db : databases) {
    ++report.databases;
    ASSIGN_OR_RETURN(BackupListing listing, repo.ListBackups(db));
    for (const auto& s : listing.unreadable) {
      report.problems.push_back({.database = db, .kind = "manifest", .detail = s.message()});
    }
    for (const auto& m : listing.backups) {
      ++report.backups_checked;
      // Decode only when it can succeed: encrypted objects need the matching key.
      bool can_decode = m.encryption_key_id.empty();
      if (!can_decode && options.key) {
        auto key = options.key->KeyFor(m.encryption_key_id);
        can_decode = key.ok() && (*key)->key_id() == m.encryption_key_id;
      }
      ThreadPool pool(workers, workers * 2);
      for (const ObjectRef* ref : m.AllObjects()) {
        pool.Submit([&, ref] {
          VerifyProblem p{.database = db, .backup_id = m.backup_id, .key = ref->key};
          auto stored = repo.storage().Get(ref->key);
          if (!stored.ok()) {
            p.kind = stored.status().IsNotFound() ? "missing" : "unreadable";
            p.detail = stored.status().IsNotFound()
                           ? fmt::format("object \"{}\" is missing", ref->key)
                           : stored.status().message();
          } else if (stored->size() != ref->stored_size || Sha256Hex(*stored) != ref->sha256) {
            p.kind = "corrupt";
            p.detail = fmt::format("object \"{}\" is corrupt (sha256 mismatch)", ref->key);
          } else if (can_decode) {
            auto plain = DecodeObject(*stored, ref->key, options.key, ref->raw_size);
            if (!plain.ok()) {
              p.kind = "corrupt";
              p.detail = plain.status().message();
            }
          }
          std::lock_guard lock(mu);
          ++report.objects_checked;
          if (stored.ok()) report.bytes_checked += stored->size();
          if (!p.kind.empty()) report.problems.push_back(std::move(p));
        });
      }
      pool.Wait();
    }
  }
  return report;
}

}  // namespace sb
