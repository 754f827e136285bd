#include "engine/wal/wal_archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <fmt/core.h>

#include "common/logging.h"
#include "common/text.h"
#include "engine/wal/compaction.h"
#include "engine/wal/seal_scan.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_lookup.h"
#include "repo/key_store.h"

namespace sb {
namespace {

constexpr uint16_t kLongHeaderFlag = 0x0002;  // XLP_LONG_HEADER

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(fmt::format("cannot open \"{}\": {}", path, std::strerror(errno)));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IoError(fmt::format("cannot read \"{}\"", path));
  return ss.str();
}

// Writes dest atomically: temp file, rename. No fsync: restore_command's
// file is recovery's scratch copy; PostgreSQL fsyncs the ones it keeps
// (durable_rename in KeepFileRestoredFromArchive) and, after a crash, asks
// again for the rest. The fsync of a 16 MiB segment was ~10 ms of every
// wal-get.
Status WriteFileAtomically(const std::string& dest, std::string_view data) {
  const std::string tmp = dest + ".sbtmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(fmt::format("cannot create \"{}\": {}", tmp, std::strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::IoError(fmt::format("cannot write \"{}\": {}", tmp, std::strerror(e)));
    }
    done += static_cast<size_t>(w);
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::IoError(fmt::format("cannot write \"{}\": {}", tmp, std::strerror(e)));
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IoError(fmt::format("cannot rename to \"{}\": {}", dest, std::strerror(errno)));
  }
  return Status::Ok();
}

uint64_t LoadLe(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool IsHistoryName(const std::string& name) {
  return name.size() == 16 && EndsWith(name, ".history") &&
         name.find_first_not_of("0123456789ABCDEF") == 8;
}

Result<uint32_t> HistoryTimeline(const std::string& name) {
  uint32_t tli = static_cast<uint32_t>(std::strtoul(name.substr(0, 8).c_str(), nullptr, 16));
  if (tli == 0) return Status::InvalidArgument(fmt::format("\"{}\" is not a timeline history file", name));
  return tli;
}

std::string Basename(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool IsSmartbackupArchiveCommand(const std::string& archive_command) {
  return archive_command.find("smartbackup") != std::string::npos &&
         archive_command.find("wal-push") != std::string::npos;
}

Result<WalSegmentHeader> ParseWalSegmentHeader(std::string_view seg, const std::string& origin) {
  if (seg.size() < 40) return Status::Corruption(fmt::format("\"{}\" is too short to be a WAL segment", origin));
  uint16_t info = static_cast<uint16_t>(LoadLe(seg.data() + 2, 2));
  if (!(info & kLongHeaderFlag)) {
    return Status::Corruption(fmt::format("\"{}\" does not start with a WAL segment header", origin));
  }
  WalSegmentHeader h;
  h.timeline = static_cast<uint32_t>(LoadLe(seg.data() + 4, 4));
  h.page_address = Lsn{LoadLe(seg.data() + 8, 8)};
  h.system_identifier = LoadLe(seg.data() + 24, 8);
  h.segment_size = static_cast<uint32_t>(LoadLe(seg.data() + 32, 4));
  if (h.segment_size < (1u << 20) || (h.segment_size & (h.segment_size - 1)) != 0 || h.segment_size != seg.size()) {
    return Status::Corruption(fmt::format("\"{}\" has an invalid WAL segment size {} (file is {} bytes)", origin,
                                          h.segment_size, seg.size()));
  }
  return h;
}

Result<int> SealLogBackups(Repository& repo, const std::string& db, const ContainerInfo& container,
                           uint64_t wal_segment_size, const EncryptionKey* key, const LogThresholds& thresholds,
                           bool force, const KnownPartHashes& known, std::vector<BackupManifest>* sealed) {
  // What is sealed already, per timeline (up to the furthest end of its log
  // backups), and the parts after it: a bounded scan (seal_scan.h).
  ASSIGN_OR_RETURN(SealScan scan, ScanForSealing(repo, db, container));
  const auto& parts = scan.parts;
  const auto& sealed_upto = scan.sealed_upto;
  // Runs of consecutive unsealed parts on one timeline.
  std::vector<std::vector<WalPart>> runs;
  // An unsealed merged object (an interrupted seal) overlaps the parts it
  // merged: runs are built from the finer parts (compaction.h).
  for (const auto& p : WithoutContainingParts(parts)) {
    auto mark = sealed_upto.find(p.timeline);
    if (mark != sealed_upto.end() && p.end <= mark->second) continue;
    if (!runs.empty() && runs.back().back().timeline == p.timeline && runs.back().back().end == p.start) {
      runs.back().push_back(p);
    } else {
      runs.push_back({p});
    }
  }
  const auto now = repo.clock()->Now();
  int written = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& run = runs[i];
    uint64_t bytes = run.back().end.value - run.front().start.value;
    auto oldest = run.front().mtime;
    // A run followed by another one ends at a gap: nothing more will join it.
    bool closed = i + 1 < runs.size();
    if (!force && !closed && bytes < thresholds.max_wal && now - oldest < thresholds.max_age) continue;
    BackupManifest m;
    m.database = db;
    m.system_identifier = container.system_identifier;
    m.container = container.name;
    m.type = BackupType::kLog;
    m.timeline = run.front().timeline;
    m.start_lsn = run.front().start.ToString();
    m.end_lsn = run.back().end.ToString();
    m.start_time = oldest;
    m.finish_time = now;
    m.backup_id = Repository::NewBackupId(now, BackupType::kLog);
    m.wal_segment_size = wal_segment_size;
    m.encryption_key_id = key ? key->key_id() : "";
    ArchiveRecord wal{.index = 0, .name = "wal"};
    // The run's parts inside one segment become one merged object (compaction.h).
    ASSIGN_OR_RETURN(auto refs, CompactRun(repo, db, run, wal_segment_size, key, known));
    for (auto& ref : refs) {
      wal.raw_bytes += ref.raw_size;
      m.size_bytes += ref.raw_size;
      m.stored_bytes += ref.stored_size;
      wal.chunks.push_back(std::move(ref));
    }
    m.archives.push_back(std::move(wal));
    RETURN_IF_ERROR(repo.WriteManifest(m, key));
    if (sealed) sealed->push_back(m);
    log::Info("log backup {} sealed: timeline {} {}..{}", m.backup_id, m.timeline, m.start_lsn, m.end_lsn);
    ++written;
  }
  return written;
}

Result<WalPushResult> WalPush(Repository& repo, const WalPushOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(options.database));
  const std::string name = Basename(options.path);
  WalPushResult result;
  ASSIGN_OR_RETURN(std::string data, ReadWholeFile(options.path));

  if (IsHistoryName(name)) {
    ASSIGN_OR_RETURN(uint32_t tli, HistoryTimeline(name));
    // A history file names no system identifier: it belongs with the newest lineage of this database.
    ASSIGN_OR_RETURN(auto containers, repo.ListContainers(options.database));
    if (containers.empty()) {
      return Status::FailedPrecondition(fmt::format(
          "cannot archive \"{}\": database \"{}\" has no WAL in the repository yet; hint: take a full backup first",
          name, options.database));
    }
    ASSIGN_OR_RETURN(ContainerInfo c, repo.EnsureContainer(options.database, containers.back().system_identifier, tli,
                                                           "timeline switch"));
    result.key = Repository::HistoryKey(options.database, c.name, tli);
    ASSIGN_OR_RETURN(EncodedObject enc, EncodeObject(data, result.key, {.zstd_level = options.zstd_level}));
    Status s = repo.storage().Put(result.key, enc.bytes, {.if_absent = true});
    if (s.IsAlreadyExists()) {
      result.already_archived = true;
    } else {
      RETURN_IF_ERROR(s);
    }
    result.note = "timeline history stored";
    return result;
  }

  // Backup history files and partial segments of an old timeline hold nothing a restore needs.
  if (EndsWith(name, ".backup") || EndsWith(name, ".partial")) {
    result.note = fmt::format("\"{}\" is not needed for restore; skipped", name);
    return result;
  }

  ASSIGN_OR_RETURN(WalSegmentHeader header, ParseWalSegmentHeader(data, options.path));
  auto parsed = ParseWalSegmentName(name, header.segment_size);
  if (!parsed.ok()) {
    return Status::InvalidArgument(fmt::format("\"{}\" is not a WAL segment file name", name));
  }
  auto [tli, start] = *parsed;
  if (header.page_address != start) {
    return Status::Corruption(fmt::format("WAL file \"{}\" holds segment {} but is named for {}", options.path,
                                          header.page_address.ToString(), start.ToString()));
  }
  ASSIGN_OR_RETURN(ContainerInfo c, repo.EnsureContainer(options.database, header.system_identifier, tli,
                                                         "first WAL (archive mode)"));
  Lsn end{start.value + header.segment_size};
  result.key = Repository::WalPartKey(options.database, c.name, tli, start, end);
  std::optional<EncryptionKey> single_use;
  if (!options.public_key.empty()) {
    ASSIGN_OR_RETURN(single_use, NewWrappedDataKey(repo.storage(), options.public_key, result.key));
  }
  const EncryptionKey* key = single_use ? &*single_use : options.key;
  ASSIGN_OR_RETURN(EncodedObject enc, EncodeObject(data, result.key, {.zstd_level = options.zstd_level, .key = key}));
  Status s = repo.storage().Put(result.key, enc.bytes, {.if_absent = true});
  KnownPartHashes known;
  if (s.IsAlreadyExists()) {
    // Archiving the same segment twice is normal after a crash; different content is not.
    ASSIGN_OR_RETURN(std::string stored, repo.storage().Get(result.key));
    ASSIGN_OR_RETURN(ObjectHeaderInfo header, ParseObjectHeader(stored, result.key));
    // Stored by an earlier push, not by a retried Put of ours: our new key
    // encrypted nothing and goes, best effort (a leftover is harmless).
    const bool earlier_push = single_use && header.key_id != single_use->key_id();
    if (earlier_push) (void)repo.storage().Delete(WrappedKeyObject(single_use->key_id()));
    if (earlier_push && header.encrypted) {
      if (header.raw_size != data.size()) {
        return Status::AlreadyExists(fmt::format(
            "WAL segment {} of database \"{}\" is already archived with a different size ({} bytes, now {})", name,
            options.database, header.raw_size, data.size()));
      }
      result.note = "already archived (sealed to the public key under another data key: its size matches, its "
                    "content cannot be compared without the private key)";
    } else {
      // Only comparing content: a plain object stored before encryption was
      // switched on is decoded without the key (readers with a key refuse it).
      ASSIGN_OR_RETURN(std::string existing, DecodeObject(stored, result.key, header.encrypted ? key : nullptr));
      if (existing != data) {
        return Status::AlreadyExists(fmt::format(
            "WAL segment {} of database \"{}\" is already archived with different content; hint: another server "
            "with the same system identifier may be archiving into this repository",
            name, options.database));
      }
      result.note = "already archived with identical content";
    }
    result.already_archived = true;
  } else {
    RETURN_IF_ERROR(s.WithContext(fmt::format("cannot archive WAL segment {}", name)));
    known[result.key] = enc.sha256;
    result.note = "archived";
  }
  ASSIGN_OR_RETURN(int sealed, SealLogBackups(repo, options.database, c, header.segment_size,
                                              key, options.thresholds,
                                              /*force=*/false, known));
  (void)sealed;
  return result;
}

Result<WalGetOutcome> WalGet(Repository& repo, const WalGetOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(options.database));
  if (options.system_identifier && options.wal_segment_size != 0) {
    const uint64_t seg = options.wal_segment_size;
    if (seg < (1u << 20) || seg > (uint64_t{1} << 30) || (seg & (seg - 1)) != 0) {
      return Status::InvalidArgument(fmt::format(
          "invalid WAL segment size {}; hint: a power of two from 1MiB to 1GiB (the cluster's wal_segment_size)", seg));
    }
    WalLookup lookup(repo.storage(), {.database = options.database,
                                      .system_identifier = *options.system_identifier,
                                      .segment_size = options.wal_segment_size,
                                      .keys = options.key});
    if (IsHistoryName(options.name)) {
      ASSIGN_OR_RETURN(uint32_t tli, HistoryTimeline(options.name));
      ASSIGN_OR_RETURN(auto content, lookup.History(tli));
      if (!content) return WalGetOutcome::kAbsent;
      RETURN_IF_ERROR(WriteFileAtomically(options.dest, *content));
      return WalGetOutcome::kRestored;
    }
    auto parsed = ParseWalSegmentName(options.name, options.wal_segment_size);
    if (!parsed.ok()) return WalGetOutcome::kAbsent;  // ".partial", ".backup": never stored
    ASSIGN_OR_RETURN(auto segment, lookup.Segment(parsed->first, parsed->second));
    if (!segment) return WalGetOutcome::kAbsent;
    RETURN_IF_ERROR(WriteFileAtomically(options.dest, segment->bytes));
    return WalGetOutcome::kRestored;
  }
  ASSIGN_OR_RETURN(WalCatalog catalog, WalCatalog::Load(repo, options.database, options.system_identifier));
  // A manifest or history file that could not be read may be exactly what
  // would have made this file present: answering "absent" would end recovery.
  if (!catalog.skipped().empty()) {
    const Status& first = catalog.skipped().front();
    return Status(first.code(), fmt::format("cannot serve \"{}\": {} of the repository's objects are unreadable "
                                            "(first: {}); hint: run verify",
                                            options.name, catalog.skipped().size(), first.message()));
  }
  if (IsHistoryName(options.name)) {
    ASSIGN_OR_RETURN(uint32_t tli, HistoryTimeline(options.name));
    auto content = catalog.HistoryFile(tli);
    if (!content) return WalGetOutcome::kAbsent;
    RETURN_IF_ERROR(WriteFileAtomically(options.dest, *content));
    return WalGetOutcome::kRestored;
  }
  uint64_t seg_size = 16ull << 20;
  if (!catalog.bases().empty()) seg_size = catalog.bases().back().wal_segment_size;
  // Names smartbackup never stores (e.g. ".partial", ".backup") are absent.
  auto parsed = ParseWalSegmentName(options.name, seg_size);
  if (!parsed.ok()) return WalGetOutcome::kAbsent;
  auto [tli, start] = *parsed;
  auto bytes = catalog.Assemble(repo.storage(), tli, start, Lsn{start.value + seg_size}, options.key);
  // Assemble's kNotFound means no listed part covers the segment; every
  // other failure (including an object that vanished) is an error.
  if (!bytes.ok()) {
    if (bytes.status().IsNotFound()) return WalGetOutcome::kAbsent;
    return bytes.status();
  }
  // Past the newest durable WAL the segment is zeros, which recovery reads as the end of WAL.
  bytes->resize(seg_size, '\0');
  RETURN_IF_ERROR(WriteFileAtomically(options.dest, *bytes));
  return WalGetOutcome::kRestored;
}

}  // namespace sb
