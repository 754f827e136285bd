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
  uint64_t total_bytes = 0;
  for (const auto& db : databases) {
    ++report.databases;
    // From their own keys, never the index: verify checks what is stored.
    ASSIGN_OR_RETURN(BackupListing listing, repo.ListBackupsFromStorage(db));
    for (const auto& s : listing.unreadable) {
      report.problems.push_back({.database = db, .kind = "manifest", .detail = s.message()});
    }
    if (listing.backups.empty() && listing.unreadable.empty() && options.database) {
      return Status::NotFound(fmt::format("database \"{}\" has no backups in {}; hint: check --db against "
                                          "available-backups",
                                          db, repo.storage().Describe()));
    }
    for (const auto& m : listing.backups) total_bytes += m.stored_bytes;
    for (const auto& m : listing.backups) {
      ++report.backups_checked;
      // Without a key only checksums against the manifest are checked. With
      // one, every backup must be encrypted under it: a backup it cannot open
      // or a plain one (anyone with write access could have planted it) is a
      // problem, never "all ok".
      if (options.key && m.encryption_key_id.empty()) {
        report.problems.push_back({.database = db, .backup_id = m.backup_id, .kind = "unencrypted",
                                   .detail = fmt::format("backup {} is not encrypted although a key was given; hint: "
                                                         "it was not written with this key, delete it or verify "
                                                         "without a key",
                                                         m.backup_id)});
        continue;
      }
      // Each object names the data key it was sealed with; decoding it with
      // the given key (or key ring) authenticates it, and a key that does not
      // open it is reported per object.
      const bool can_decode = m.encryption_key_id.empty() || options.key != nullptr;
      if (!can_decode) ++report.backups_unauthenticated;
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
              p.kind = plain.status().code() == StatusCode::kPermissionDenied ? "key" : "corrupt";
              p.detail = plain.status().message();
            }
          }
          std::lock_guard lock(mu);
          ++report.objects_checked;
          if (stored.ok()) report.bytes_checked += stored->size();
          if (options.progress) options.progress(report.bytes_checked, total_bytes);
          if (!p.kind.empty()) report.problems.push_back(std::move(p));
        });
      }
      pool.Wait();
    }
  }
  if (report.backups_checked == 0 && report.problems.empty()) {
    return Status::NotFound(fmt::format("{} holds no backups; hint: check --repo", repo.storage().Describe()));
  }
  return report;
}

}  // namespace sb
