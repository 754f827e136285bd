#include "engine/restore/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <tuple>
#include <deque>
#include <filesystem>
#include <future>

#include <fmt/core.h>

#include "common/logging.h"
#include "common/thread_pool.h"
#include "common/text.h"
#include "common/beneath.h"
#include "engine/restore/recovery_config.h"
#include "engine/restore/tar_extractor.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_reader.h"

namespace sb {
namespace fs = std::filesystem;
namespace {

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

// The directory must be absent or empty; it is created (0700) when absent.
Status PrepareEmptyDir(const std::string& dir, bool* created) {
  std::error_code ec;
  *created = false;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) {
      return Status::InvalidArgument(fmt::format("restore target \"{}\" exists and is not a directory", dir));
    }
    if (!fs::is_empty(dir, ec)) {
      return Status::FailedPrecondition(fmt::format(
          "restore target \"{}\" is not empty; hint: restore into an empty or new directory", dir));
    }
  } else {
    if (!fs::create_directories(dir, ec) || ec) {
      return Status::IoError(fmt::format("cannot create restore target \"{}\": {}", dir, ec.message()));
    }
    *created = true;
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status::IoError(fmt::format("cannot set mode 0700 on \"{}\"", dir));
  }
  return Status::Ok();
}

void ClearDir(const std::string& dir, bool remove_itself) {
  std::error_code ec;
  if (remove_itself) {
    fs::remove_all(dir, ec);
    return;
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) fs::remove_all(e.path(), ec);
}

Status SyncFilesystem(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(fmt::format("cannot open \"{}\" to sync it", dir));
  int rc = ::syncfs(fd);
  ::close(fd);
  if (rc != 0) return Status::IoError(fmt::format("cannot sync the filesystem of \"{}\"", dir));
  return Status::Ok();
}

struct Destination {
  std::string dir;
  bool created = false;
};

// Three stages: `workers` threads fetch, verify and decode objects ahead;
// this thread parses the tar stream in order (headers only, cheap); one
// writer thread writes the file data in stream order and starts its
// writeback at once, so the final sync finds little left to do (measured:
// that sync was ~40% of a restore's time). Memory stays bounded: the fetch
// window and the writer's queue each hold a few decoded objects.
Status RestoreArchives(Repository& repo, const BackupManifest& m, const RestoreOptions& options,
                       const std::map<uint32_t, Destination>& dests, int workers) {
  // The main archive's pg_tblspc/<oid> links point at the operator's directories.
  std::map<uint32_t, std::string> tablespace_links;
  for (const auto& [oid, d] : dests) {
    if (oid != 0) tablespace_links[oid] = d.dir;
  }
  using Decoded = std::shared_ptr<const std::string>;
  ThreadPool pool(workers, 2 * workers);
  // One writer, in stream order: concurrent writes into one file contend on
  // its inode lock and cost more system time than they save.
  ThreadPool writer(1, 2);
  Status status;
  uint64_t restored = 0, total = 0;  // raw bytes of the archives' objects
  for (const auto& archive : m.archives) {
    for (const auto& chunk : archive.chunks) total += chunk.raw_size;
  }
  for (const auto& archive : m.archives) {
    const auto& dest = dests.at(archive.tablespace_oid);
    TarExtractor tar(dest.dir, archive.name,
                     archive.tablespace_oid == 0 ? tablespace_links : std::map<uint32_t, std::string>{});
    const std::shared_ptr<FirstError> write_errors = tar.errors();  // Finish reports them too
    std::deque<std::future<Result<Decoded>>> window;
    size_t next = 0;
    while (status.ok() && (next < archive.chunks.size() || !window.empty())) {
      while (next < archive.chunks.size() && window.size() < static_cast<size_t>(workers) + 1) {
        auto fetched = std::make_shared<std::promise<Result<Decoded>>>();
        window.push_back(fetched->get_future());
        pool.Submit([&repo, ref = &archive.chunks[next++], key = options.key, fetched] {
          auto data = FetchObject(repo.storage(), *ref, key);
          if (!data.ok()) {
            fetched->set_value(data.status());
          } else {
            fetched->set_value(Decoded(std::make_shared<const std::string>(std::move(data).value())));
          }
        });
      }
      auto data = window.front().get();
      window.pop_front();
      if (!data.ok()) {
        status = data.status();
        break;
      }
      std::vector<FileWrite> writes;
      status = tar.Feed(**data, &writes);
      restored += (*data)->size();
      if (options.progress) options.progress(restored, total);
      if (status.ok()) status = write_errors->Get();
      if (!status.ok() || writes.empty()) continue;
      // The task owns the decoded object the writes point into.
      writer.Submit([chunk = std::move(data).value(), writes = std::move(writes), write_errors]() mutable {
        for (auto& w : writes) {
          write_errors->Record(w.file->WriteAt(w.offset, w.bytes));
          w.file.reset();  // the last holder closes the file
        }
      });
    }
    for (auto& f : window) f.wait();
    if (!status.ok()) break;
    writer.Wait();  // every file of this archive written and closed
    status = tar.Finish();
    if (!status.ok()) break;
  }
  pool.Wait();
  writer.Wait();
  return status;
}

}  // namespace

Result<std::string> FetchObject(Storage& storage, const ObjectRef& ref, const KeySource* key) {
  auto stored = storage.Get(ref.key);
  if (!stored.ok()) {
    if (stored.status().IsNotFound()) {
      return Status::NotFound(fmt::format("object \"{}\" is missing from the repository; hint: run verify", ref.key));
    }
    return stored.status();
  }
  if (Sha256Hex(*stored) != ref.sha256) {
    return Status::Corruption(fmt::format("object \"{}\" is corrupt (sha256 mismatch); hint: run verify", ref.key));
  }
  return DecodeObject(*stored, ref.key, key, ref.raw_size);
}

std::string RecoveryTarget::ToString() const {
  switch (kind) {
    case Kind::kLatest: return "latest";
    case Kind::kTime: return "time " + FormatRfc3339(time);
    case Kind::kLsn: return "lsn " + lsn.ToString();
  }
  return "";
}

namespace {

// The time of the last commit or abort in `w`, read from its newest WAL
// backwards, a segment at a time, for at most kMaxSegments. nullopt when it
// cannot be told (not found that far back, WAL unreadable): the caller then
// leaves the target to PostgreSQL. `none_since_start` is set when the whole
// window was read and holds no transaction end.
std::optional<SystemTime> LastTransactionTimeIn(Repository& repo, const WalCatalog& catalog, const RestoreWindow& w,
                                                const KeySource* key, bool* none_since_start) {
  constexpr int kMaxSegments = 16;
  constexpr uint64_t kSegment = 16ull << 20;  // what smartbackup captures from PostgreSQL 15 clusters
  *none_since_start = false;
  uint64_t seg_start = (w.end_lsn.value == 0 ? 0 : (w.end_lsn.value - 1)) / kSegment * kSegment;
  for (int i = 0; i < kMaxSegments; ++i) {
    Lsn from{std::max(seg_start, w.start_lsn.value / 8192 * 8192)};
    Lsn to{std::min(seg_start + kSegment, w.end_lsn.value)};
    if (to.value <= from.value) return std::nullopt;
    auto bytes = catalog.Assemble(repo.storage(), w.end_timeline, from, to, key);
    if (!bytes.ok()) {
      log::Debug("cannot read WAL {}..{} for the last commit time: {}", from.ToString(), to.ToString(),
                 bytes.status().message());
      return std::nullopt;
    }
    auto last = LastTransactionTime(*bytes, from, to);
    if (!last.ok()) return std::nullopt;
    if (*last) return **last;
    if (from.value <= w.start_lsn.value || seg_start == 0) {
      *none_since_start = true;
      return std::nullopt;
    }
    seg_start -= kSegment;
  }
  return std::nullopt;
}

}  // namespace

namespace {

// Only on the error path of --backup-id: one listing of log manifest keys per
// container (keys only, no manifest read).
bool IsLogBackup(Repository& repo, const std::string& database, const std::string& backup_id) {
  auto containers = repo.ListContainers(database);
  if (!containers.ok()) return false;
  for (const auto& c : *containers) {
    auto keys = repo.ListManifestKeys(database, c.name, 'L');
    if (!keys.ok()) continue;
    const std::string key = Repository::ManifestKey(database, c.name, backup_id);
    if (std::find(keys->begin(), keys->end(), key) != keys->end()) return true;
  }
  return false;
}

}  // namespace

Result<RestorePlan> PlanRestore(Repository& repo, const std::string& database, const RecoveryTarget& target,
                                const std::string& backup_id, const KeySource* key) {
  ASSIGN_OR_RETURN(WalCatalog catalog, WalCatalog::Load(repo, database, std::nullopt));
  if (catalog.bases().empty()) {
    return Status::NotFound(fmt::format("no complete full backup of database \"{}\" in {}; hint: check --db and --repo",
                                        database, repo.storage().Describe()));
  }
  auto windows = catalog.Windows();
  auto holds = [&](const RestoreWindow& w) {
    switch (target.kind) {
      case RecoveryTarget::Kind::kLatest: return true;
      case RecoveryTarget::Kind::kTime: return w.start_time <= target.time && target.time <= w.end_time;
      case RecoveryTarget::Kind::kLsn: return w.start_lsn <= target.lsn && target.lsn <= w.end_lsn;
    }
    return false;
  };
  const RestoreWindow* best = nullptr;
  for (const auto& w : windows) {
    if (!backup_id.empty() && w.base_backup_id != backup_id) continue;
    if (!holds(w)) continue;
    // Latest: the window reaching furthest; otherwise the newest base that holds the target.
    bool better = !best || (target.kind == RecoveryTarget::Kind::kLatest
                                ? std::tie(w.end_timeline, w.end_lsn) >= std::tie(best->end_timeline, best->end_lsn)
                                : w.start_lsn >= best->start_lsn);
    if (better) {
      best = &w;
    }
  }
  if (!best) {
    if (!backup_id.empty() && std::none_of(windows.begin(), windows.end(),
                                           [&](const RestoreWindow& w) { return w.base_backup_id == backup_id; })) {
      if (IsLogBackup(repo, database, backup_id)) {
        return Status::InvalidArgument(fmt::format(
            "backup \"{}\" of database \"{}\" is a log backup: a restore starts from a full or copy-only backup; "
            "hint: pass the id of a full backup (available-backups lists them), or --time/--lsn to reach a point",
            backup_id, database));
      }
      return Status::NotFound(fmt::format(
          "backup \"{}\" of database \"{}\" does not exist in {}; hint: list them with available-backups", backup_id,
          database, repo.storage().Describe()));
    }
    std::string list;
    for (const auto& w : windows) {
      if (!list.empty()) list += ", ";
      list += fmt::format("{} ({}) .. {} ({})", FormatRfc3339(w.start_time), w.start_lsn.ToString(),
                          FormatRfc3339(w.end_time), w.end_lsn.ToString());
    }
    return Status::InvalidArgument(fmt::format(
        "recovery target {} of database \"{}\" is outside every restorable window: {}; hint: choose a target inside "
        "one",
        target.ToString(), database, list));
  }
  RestorePlan plan;
  for (const auto& m : catalog.bases()) {
    if (m.backup_id == best->base_backup_id) plan.base = m;
  }
  // The catalog may come from the index: the backup restored is read from
  // its own manifest, which must still exist and check (doc/repository.md).
  {
    auto real = repo.ReadManifest(Repository::ManifestKey(database, plan.base.container, plan.base.backup_id));
    if (!real.ok()) {
      if (real.status().IsNotFound()) {
        return Status::NotFound(fmt::format(
            "backup {} of database \"{}\" is listed by the index but its manifest is gone; hint: run smartbackup "
            "reindex --repo {} --db {}",
            plan.base.backup_id, database, repo.storage().Describe(), database));
      }
      return real.status();
    }
    plan.base = std::move(real).value();
  }
  plan.needs_wal = target.kind != RecoveryTarget::Kind::kLatest || best->end_lsn > best->start_lsn ||
                   best->end_timeline != best->start_timeline;
  plan.target_note = fmt::format("{}; window {} .. {} (timeline {})", target.ToString(), best->start_lsn.ToString(),
                                 best->end_lsn.ToString(), best->end_timeline);
  if (target.kind == RecoveryTarget::Kind::kTime && plan.needs_wal) {
    bool none_since_start = false;
    auto last = LastTransactionTimeIn(repo, catalog, *best, key, &none_since_start);
    if ((last && target.time >= *last) || none_since_start) {
      plan.replay_to_end = true;
      plan.target_note += last ? fmt::format("; no commit after {} up to the target: recovery replays the whole window",
                                             FormatRfc3339(*last))
                               : "; no commit in the window: recovery replays the whole window";
    }
  }
  return plan;
}

namespace {

// A recorded location is shown to the operator only when it is plainly a
// path: absolute, printable ASCII, no empty, "." or ".." components.
bool IsCleanAbsolutePath(const std::string& p) {
  if (p.size() < 2 || p[0] != '/' || p.back() == '/') return false;
  for (char c : p) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  std::vector<std::string> parts;
  return SplitRelativePath(p.substr(1), &parts) && Join(parts) == p.substr(1);
}

bool SameOrNested(const std::string& a, const std::string& b) {
  std::string x = fs::path(a).lexically_normal().string(), y = fs::path(b).lexically_normal().string();
  while (x.size() > 1 && x.back() == '/') x.pop_back();
  while (y.size() > 1 && y.back() == '/') y.pop_back();
  auto within = [](const std::string& in, const std::string& out) {
    return in == out || (in.size() > out.size() && in.compare(0, out.size(), out) == 0 &&
                         (out == "/" || in[out.size()] == '/'));
  };
  return within(x, y) || within(y, x);
}

// Where each archive goes. Tablespaces go only where the operator mapped
// them: the manifest's recorded location comes from storage others can
// write, so it is never a write destination.
Result<std::map<uint32_t, Destination>> PlanDestinations(const BackupManifest& m, const RestoreOptions& options) {
  std::map<uint32_t, Destination> dests;
  dests[0] = Destination{options.target_dir};
  std::string unmapped, flags;
  for (const auto& a : m.archives) {
    if (a.tablespace_oid == 0) continue;
    auto it = options.tablespace_map.find(a.tablespace_oid);
    if (it == options.tablespace_map.end()) {
      if (!unmapped.empty()) unmapped += ", ";
      unmapped += std::to_string(a.tablespace_oid);
      if (IsCleanAbsolutePath(a.location)) unmapped += " (recorded at \"" + a.location + "\")";
      flags += fmt::format(" --tablespace-map {}=DIR", a.tablespace_oid);
      continue;
    }
    dests[a.tablespace_oid] = Destination{it->second};
  }
  if (!unmapped.empty()) {
    return Status::InvalidArgument(fmt::format(
        "backup \"{}\" has tablespaces that are not mapped: {}; hint: add{} (a restore writes a tablespace only "
        "where --tablespace-map puts it)",
        Printable(m.backup_id), unmapped, flags));
  }
  for (const auto& [oid, d] : dests) {
    if (oid == 0) continue;
    const std::string flag = fmt::format("--tablespace-map {}={}", oid, Printable(d.dir));
    if (d.dir.empty() || d.dir[0] != '/' || HasControlCharacter(d.dir)) {
      return Status::InvalidArgument(
          fmt::format("{}: the directory must be an absolute path without control characters", flag));
    }
    for (const auto& [other_oid, other] : dests) {
      if (other_oid == oid || !SameOrNested(d.dir, other.dir)) continue;
      return Status::InvalidArgument(fmt::format(
          "{}: the directory overlaps {}; hint: give each tablespace its own directory outside --target-dir", flag,
          other_oid == 0 ? "the restore target" : fmt::format("the one of tablespace {}", other_oid)));
    }
  }
  return dests;
}

}  // namespace

Result<BackupManifest> RunRestore(Repository& repo, const RestoreOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(options.database));
  // Refused before anything is read or written: these end up in restore_command.
  RETURN_IF_ERROR(ValidateRecoveryCommandInputs(options));
  if (options.target_dir.empty() || options.target_dir[0] != '/') {
    return Status::InvalidArgument(
        fmt::format("restore target \"{}\" must be an absolute path", options.target_dir));
  }
  ASSIGN_OR_RETURN(RestorePlan plan,
                   PlanRestore(repo, options.database, options.target, options.backup_id, options.key));
  const BackupManifest& m = plan.base;
  if (m.type == BackupType::kLog) {
    return Status::InvalidArgument(fmt::format("backup \"{}\" is a log backup, not a full backup", m.backup_id));
  }
  // Refuse before writing anything when the key cannot work.
  if (!m.encryption_key_id.empty()) {
    if (!options.key) {
      return Status::PermissionDenied(
          fmt::format("backup \"{}\" is encrypted; hint: pass --key-file with its key, or --private-key if it was "
                      "written with a public key (key id {})",
                      m.backup_id, m.encryption_key_id));
    }
    auto key = options.key->KeyFor(m.encryption_key_id);
    if (!key.ok()) return key.status().WithContext(fmt::format("backup \"{}\"", m.backup_id));
    if ((*key)->key_id() != m.encryption_key_id) {
      return Status::PermissionDenied(fmt::format("wrong encryption key for backup \"{}\" (key id {}, backup needs {})",
                                                  m.backup_id, (*key)->key_id(), m.encryption_key_id));
    }
  }

  ASSIGN_OR_RETURN(auto dests, PlanDestinations(m, options));
  std::vector<uint32_t> prepared;
  auto undo = [&] {
    for (uint32_t oid : prepared) ClearDir(dests[oid].dir, dests[oid].created);
  };
  for (auto& [oid, d] : dests) {
    Status s = PrepareEmptyDir(d.dir, &d.created);
    if (!s.ok()) {
      undo();
      if (oid != 0) return s.WithContext(fmt::format("tablespace {} (--tablespace-map {}=DIR)", oid, oid));
      return s;
    }
    prepared.push_back(oid);
  }

  int workers = WorkerCount(options.parallelism);
  log::Info("restoring backup {} of \"{}\" into {}; recovery target {}", m.backup_id, m.database, options.target_dir,
            plan.target_note);
  Status s = RestoreArchives(repo, m, options, dests, workers);
  if (s.ok() && plan.needs_wal) {
    RestoreOptions recovery = options;
    if (plan.replay_to_end) recovery.target = RecoveryTarget{};  // same data, and PostgreSQL accepts it
    recovery.wal_segment_size = m.wal_segment_size;
    s = WriteRecoveryConfig(options.target_dir, m.system_identifier, m.backup_id, recovery);
  }
  if (s.ok()) s = SyncFilesystem(options.target_dir);
  if (!s.ok()) {
    undo();
    return s.WithContext(fmt::format("restore of backup \"{}\" failed", m.backup_id));
  }
  return m;
}

}  // namespace sb
