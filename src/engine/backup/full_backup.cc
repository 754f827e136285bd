#include "engine/backup/full_backup.h"

#include <fmt/core.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "common/logging.h"
#include "common/thread_pool.h"
#include "pg/base_backup.h"
#include "pg/connection.h"

namespace sb {
namespace {

// Receives BASE_BACKUP's tar streams, cuts them into chunks and hands each
// chunk to the worker pool, which encodes and stores it. The first worker
// error is returned from the next sink call, which aborts the backup.
class ChunkUploadSink final : public BaseBackupSink {
 public:
  ChunkUploadSink(Repository& repo, const FullBackupOptions& options, std::string data_prefix, int workers)
      : repo_(repo), options_(options), data_prefix_(std::move(data_prefix)), pool_(workers, workers) {}

  Status OnArchiveStart(const std::string& name, const TablespaceInfo& tablespace) override {
    RETURN_IF_ERROR(FirstError());
    Report(FullBackupPhase::kStreaming);
    std::lock_guard lock(mu_);
    ArchiveRecord rec;
    rec.index = static_cast<int>(archives_.size());
    rec.name = name;
    rec.tablespace_oid = tablespace.oid;
    rec.location = tablespace.location;
    archives_.push_back(std::move(rec));
    buffer_.clear();
    buffer_.reserve(options_.chunk_size);
    return Status::Ok();
  }

  Status OnArchiveData(std::string_view bytes) override {
    while (!bytes.empty()) {
      size_t take = std::min<size_t>(bytes.size(), options_.chunk_size - buffer_.size());
      buffer_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (buffer_.size() == options_.chunk_size) RETURN_IF_ERROR(SubmitChunk());
    }
    return FirstError();
  }

  Status OnArchiveEnd() override {
    if (!buffer_.empty()) RETURN_IF_ERROR(SubmitChunk());
    return FirstError();
  }

  Status OnManifestData(std::string_view bytes) override {
    pg_manifest_.append(bytes);
    return Status::Ok();
  }

  void OnProgress(uint64_t /*bytes_done*/, uint64_t bytes_total_estimate) override {
    bytes_total_ = bytes_total_estimate;
  }

  // Tells options_.progress where the backup is (bytes: what is stored so far).
  void Report(FullBackupPhase phase) {
    phase_ = phase;
    if (!options_.progress) return;
    options_.progress({.phase = phase_, .bytes_done = bytes_stored_, .bytes_total = bytes_total_});
  }

  // Waits for every upload; returns the first error, if any.
  Status Finish() {
    pool_.Wait();
    return FirstError();
  }

  Result<ObjectRef> StoreObject(const std::string& key, std::string_view plain) {
    ASSIGN_OR_RETURN(EncodedObject enc,
                     EncodeObject(plain, key, {.zstd_level = options_.zstd_level, .key = options_.key}));
    RETURN_IF_ERROR(repo_.storage().Put(key, enc.bytes).WithContext(fmt::format("cannot store \"{}\"", key)));
    return ObjectRef{.key = key, .raw_size = enc.raw_size, .stored_size = enc.bytes.size(), .sha256 = enc.sha256};
  }

  std::vector<ArchiveRecord> TakeArchives() { return std::move(archives_); }
  const std::string& pg_manifest() const { return pg_manifest_; }

 private:
  Status SubmitChunk() {
    if (options_.cancelled && options_.cancelled()) {
      return Status::Cancelled(fmt::format("the backup of \"{}\" was cancelled", options_.database));
    }
    int archive_index;
    size_t slot;
    {
      std::lock_guard lock(mu_);
      archive_index = static_cast<int>(archives_.size()) - 1;
      auto& rec = archives_.back();
      slot = rec.chunks.size();
      rec.chunks.emplace_back();
      rec.raw_bytes += buffer_.size();
    }
    std::string key = fmt::format("{}{:02}-{:06}", data_prefix_, archive_index, slot);
    auto chunk = std::make_shared<std::string>(std::move(buffer_));
    buffer_ = std::string();
    buffer_.reserve(options_.chunk_size);
    pool_.Submit([this, key = std::move(key), chunk, archive_index, slot] {
      if (!FirstError().ok()) return;  // the backup is failing: skip the remaining work
      auto ref = StoreObject(key, *chunk);
      {
        std::lock_guard lock(mu_);
        if (!ref.ok()) {
          if (first_error_.ok()) first_error_ = ref.status();
          return;
        }
        archives_[archive_index].chunks[slot] = std::move(ref).value();
      }
      bytes_stored_ += chunk->size();
      if (options_.progress) {
        options_.progress({.phase = phase_, .bytes_done = bytes_stored_, .bytes_total = bytes_total_});
      }
    });
    return FirstError();
  }

  Status FirstError() {
    std::lock_guard lock(mu_);
    return first_error_;
  }

  Repository& repo_;
  const FullBackupOptions& options_;
  const std::string data_prefix_;
  std::mutex mu_;
  std::vector<ArchiveRecord> archives_;  // guarded by mu_ (workers fill chunk slots)
  Status first_error_;                   // guarded by mu_
  std::string buffer_;                   // the chunk being filled; producer thread only
  std::string pg_manifest_;
  std::atomic<uint64_t> bytes_stored_{0};  // raw bytes of the chunks stored
  std::atomic<uint64_t> bytes_total_{0};   // the server's estimate
  std::atomic<FullBackupPhase> phase_{FullBackupPhase::kStarting};
  ThreadPool pool_;  // last: destroyed (joined) first
};

void RemoveLeftovers(Storage& storage, const std::string& prefix) {
  auto objects = ListAll(storage, prefix);
  if (!objects.ok()) return;
  for (const auto& o : *objects) (void)storage.Delete(o.key);
}

}  // namespace

const char* FullBackupPhaseName(FullBackupPhase phase) {
  switch (phase) {
    case FullBackupPhase::kStarting: return "starting (checkpoint)";
    case FullBackupPhase::kStreaming: return "streaming";
    case FullBackupPhase::kUploading: return "storing the last chunks";
    case FullBackupPhase::kManifest: return "writing the manifest";
  }
  return "running";
}

Status WriteCheckedManifest(Repository& repo, const BackupManifest& m, const EncryptionKey* mac_key) {
  const std::string prefix = Repository::DataPrefix(m.database, m.container, m.backup_id);
  ASSIGN_OR_RETURN(auto listed, ListAll(repo.storage(), prefix));
  std::map<std::string, uint64_t> sizes;
  for (const auto& o : listed) sizes[o.key] = o.size;
  for (const ObjectRef* ref : m.AllObjects()) {
    auto it = sizes.find(ref->key);
    if (it == sizes.end()) {
      return Status::NotFound(fmt::format(
          "object \"{}\" of backup {} vanished before its manifest was written; hint: check for a purge with a "
          "skewed clock or another writer, then run the backup again",
          ref->key, m.backup_id));
    }
    if (it->second != ref->stored_size) {
      return Status::Corruption(fmt::format(
          "object \"{}\" of backup {} has {} bytes instead of {} before its manifest was written; hint: check for "
          "another writer under this database name, then run the backup again",
          ref->key, m.backup_id, it->second, ref->stored_size));
    }
  }
  return repo.WriteManifest(m, mac_key);
}

Result<BackupManifest> RunFullBackup(Repository& repo, const FullBackupOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(options.database));
  if (options.chunk_size < 64 * 1024) return Status::InvalidArgument("chunk size must be at least 64KiB");
  if (options.progress) options.progress({.phase = FullBackupPhase::kStarting});
  if (options.cancelled && options.cancelled()) {
    return Status::Cancelled(fmt::format("the backup of \"{}\" was cancelled before it started", options.database));
  }

  ServerInfo info;
  {
    ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(options.conninfo, /*replication=*/false));
    ASSIGN_OR_RETURN(info, ReadServerInfo(*conn));
  }
  if (info.wal_level == "minimal") {
    return Status::FailedPrecondition(
        "cannot back up: wal_level is minimal, so no WAL can be captured; hint: set wal_level = replica and restart "
        "PostgreSQL");
  }
  if (info.server_version_num / 10000 != 15) {
    log::Warn("server version {} is not PostgreSQL 15, which is what smartbackup is tested with",
              info.server_version_num);
  }

  ASSIGN_OR_RETURN(ContainerInfo container,
                   repo.EnsureContainer(options.database, info.system_identifier, info.timeline,
                                        options.container_reason, options.new_container));

  BackupManifest m;
  m.database = options.database;
  m.system_identifier = info.system_identifier;
  m.container = container.name;
  m.type = options.copy_only ? BackupType::kCopyOnly : BackupType::kFull;
  m.start_time = repo.clock()->Now();
  m.backup_id = Repository::NewBackupId(m.start_time, m.type);
  m.server_version_num = info.server_version_num;
  m.wal_segment_size = info.wal_segment_size;
  m.encryption_key_id = options.key ? options.key->key_id() : "";

  const std::string data_prefix = Repository::DataPrefix(m.database, m.container, m.backup_id);
  int workers = WorkerCount(options.parallelism);
  log::Info("backup {} of database \"{}\" into {} started ({} workers)", m.backup_id, m.database,
            repo.storage().Describe(), workers);

  auto fail = [&](const Status& s) {
    RemoveLeftovers(repo.storage(), data_prefix);
    return s.WithContext(fmt::format("backup of database \"{}\" failed", options.database));
  };

  ChunkUploadSink sink(repo, options, data_prefix, workers);
  auto result = RunBaseBackup(options.conninfo,
                              {.label = "smartbackup " + m.backup_id, .fast_checkpoint = options.fast_checkpoint, .tablespace_map = false},
                              sink);
  if (result.ok()) sink.Report(FullBackupPhase::kUploading);
  Status finished = sink.Finish();  // always wait for the workers before touching the result
  if (!result.ok()) return fail(result.status());
  if (!finished.ok()) return fail(finished);
  if (result->system_identifier != 0 && result->system_identifier != info.system_identifier) {
    return fail(Status::FailedPrecondition("the server's system identifier changed during the backup"));
  }
  if (result->start_timeline != info.timeline) {
    return fail(Status::Unavailable(fmt::format(
        "the server switched from timeline {} to {} as the backup started (promotion?); hint: run the backup again",
        info.timeline, result->start_timeline)));
  }

  m.timeline = result->start_timeline;
  m.start_lsn = result->start_lsn.ToString();
  m.end_lsn = result->end_lsn.ToString();
  sink.Report(FullBackupPhase::kManifest);
  m.archives = sink.TakeArchives();
  if (!sink.pg_manifest().empty()) {
    auto ref = sink.StoreObject(data_prefix + "backup_manifest", sink.pg_manifest());
    if (!ref.ok()) return fail(ref.status());
    m.pg_manifest = std::move(ref).value();
  }
  for (const ObjectRef* ref : m.AllObjects()) {
    m.size_bytes += ref->raw_size;
    m.stored_bytes += ref->stored_size;
  }
  m.finish_time = repo.clock()->Now();
  if (Status s = WriteCheckedManifest(repo, m, options.key); !s.ok()) return fail(s);
  log::Info("backup {} complete: {} bytes, {} stored", m.backup_id, m.size_bytes, m.stored_bytes);
  return m;
}

}  // namespace sb
