// scale_gen: builds the history of a cluster that has been writing steadily
// for N days, through the library's own writers, for bench/scale.sh. Not
// part of the product.
//
//   scale_gen --repo URL --db NAME --days N [--wal-kib-per-min 2048]
//             [--flush-seconds 5] [--log-mib 5] [--fulls-per-day 1]
//             [--sysid 7000000000000000001] [--jobs 16] [--seed 1]
//   scale_gen --repo URL --db NAME --sysid N --import-wal DIR
//
// What it writes is what stream mode writes (wal_streamer.cc) for that
// workload: a WAL part per flush (Repository::WalPartKey, EncodeObject,
// put-if-absent), a log backup sealed by SealLogBackups every --log-mib of
// WAL, and one small full backup a day (data object + WriteCheckedManifest),
// all in the container EnsureContainer gives the system identifier. Times
// come from a ManualClock that walks from now − N days to now, so backup ids,
// manifest times and retention see a real N-day history.
//
// Shortcuts, none visible in the result:
// - The WAL bytes are synthetic (a repeated pseudo-random block: WAL-like
//   size, cheap to compress); nothing replays them.
// - Each span is sealed in a scratch in-memory repository holding only that
//   span's parts (same keys, same clock, same known hashes), and what the
//   sealer writes there (manifest, merged parts) is copied out byte for
//   byte, so building the history costs O(n), not a listing per seal.
// - Per-flush parts that compaction replaced are not copied: the agent's
//   next retention pass deletes them (PartsReplacedByCompaction, no grace
//   period), so a live repository holds them only for minutes.
// - The index (format 2) is written once at the end in the shape the
//   writers' level merges leave after that many manifests (n written one by
//   one leave, per level k, the k-th base-8 digit of n objects of 8^k
//   entries), instead of one write and up to a merge per manifest.
// Part mtimes on the target storage are the wall-clock time of the run (the
// manifests carry the simulated times).
//
// Thread-safety: single-threaded driver; puts to the target go through a
// ThreadPool (the target storage is thread-safe).
#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <algorithm>
#include <random>
#include <set>
#include <vector>
#include <string>

#include "common/clock.h"
#include "common/logging.h"
#include "common/text.h"
#include "common/thread_pool.h"
#include "engine/backup/full_backup.h"
#include "engine/wal/wal_archive.h"
#include "repo/backup_index.h"
#include "engine/wal/compaction.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

struct Options {
  std::string repo_url;
  std::string db = "scale";
  double days = 1;
  uint64_t wal_bytes_per_min = 2ull << 20;
  int flush_seconds = 5;
  uint64_t log_bytes = 5ull << 20;
  int fulls_per_day = 1;
  uint64_t sysid = 7000000000000000001ull;
  int jobs = 16;
  uint64_t seed = 1;
  std::string import_wal;  // --import-wal DIR: store these real segments instead of generating
};

constexpr uint64_t kSegmentSize = 16ull << 20;
constexpr uint64_t kFullDataBytes = 256 << 10;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "scale_gen: %s\n", what.c_str());
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

// Collects the first failure of the background puts.
class PutQueue {
 public:
  PutQueue(Storage& target, int jobs) : target_(target), pool_(jobs, jobs * 8) {}

  void Put(std::string key, std::string bytes) {
    pool_.Submit([this, key = std::move(key), bytes = std::move(bytes)] {
      Status s = target_.Put(key, bytes, {.if_absent = true});
      if (s.IsAlreadyExists()) s = Status::Ok();  // a rerun over the same history
      if (!s.ok()) {
        std::lock_guard lock(mu_);
        if (first_error_.ok()) first_error_ = s.WithContext("cannot store \"" + key + "\"");
      }
      ++done_;
    });
  }
  Status Finish() {
    pool_.Wait();
    std::lock_guard lock(mu_);
    return first_error_;
  }
  uint64_t done() const { return done_; }

 private:
  Storage& target_;
  std::mutex mu_;
  Status first_error_;
  std::atomic<uint64_t> done_{0};
  ThreadPool pool_;  // last: joined first
};

// The parts of one not-yet-sealed span, in a scratch repository.
class SpanStage {
 public:
  explicit SpanStage(ManualClock* clock) : clock_(clock) { Reset(); }

  void Reset() {
    auto storage = std::make_unique<MemoryStorage>(clock_, "scale_gen scratch");
    memory_ = storage.get();
    auto repo = Repository::Open(std::move(storage), /*create=*/true, clock_);
    Check(repo.status(), "cannot open the scratch repository");
    repo_ = std::move(repo).value();
    known_.clear();
    bytes_ = 0;
    initial_.clear();
    auto listed = ListAll(*memory_, "");
    Check(listed.status(), "cannot list the scratch repository");
    for (const auto& obj : *listed) initial_.insert(obj.key);
  }
  // Keys the scratch repository holds before any part (its descriptor).
  const std::set<std::string>& initial() const { return initial_; }
  Repository& repo() { return *repo_; }
  MemoryStorage& memory() { return *memory_; }
  KnownPartHashes& known() { return known_; }
  uint64_t& bytes() { return bytes_; }

 private:
  ManualClock* clock_;
  MemoryStorage* memory_ = nullptr;
  std::unique_ptr<Repository> repo_;
  KnownPartHashes known_;
  uint64_t bytes_ = 0;
  std::set<std::string> initial_;
};

uint64_t ParseU64(const char* flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0) Die(fmt::format("{} wants a number, got \"{}\"", flag, v));
  return n;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (i + 1 >= argc) Die("missing value after " + a);
    std::string v = argv[i + 1];
    if (a == "--repo") o.repo_url = v;
    else if (a == "--db") o.db = v;
    else if (a == "--days") o.days = std::atof(v.c_str());
    else if (a == "--wal-kib-per-min") o.wal_bytes_per_min = ParseU64("--wal-kib-per-min", v) << 10;
    else if (a == "--flush-seconds") o.flush_seconds = static_cast<int>(ParseU64("--flush-seconds", v));
    else if (a == "--log-mib") o.log_bytes = ParseU64("--log-mib", v) << 20;
    else if (a == "--fulls-per-day") o.fulls_per_day = static_cast<int>(ParseU64("--fulls-per-day", v));
    else if (a == "--sysid") o.sysid = ParseU64("--sysid", v);
    else if (a == "--jobs") o.jobs = static_cast<int>(ParseU64("--jobs", v));
    else if (a == "--seed") o.seed = ParseU64("--seed", v);
    else if (a == "--import-wal") o.import_wal = v;
    else Die("unknown option " + a + " (see the header of tools/scale_gen.cc)");
  }
  if (o.repo_url.empty()) Die("--repo URL is required");
  if (o.days <= 0 || o.days > 60) Die("--days must be in (0, 60]");
  if (o.flush_seconds <= 0 || o.wal_bytes_per_min == 0 || o.log_bytes == 0 || o.fulls_per_day <= 0 || o.jobs <= 0) {
    Die("rates, intervals and --jobs must be positive");
  }
  return o;
}

// A small full backup as full_backup.cc stores one: one data chunk, then the
// checked manifest. Its WAL range is a slice of the streamed WAL.
void WriteFull(Repository& target, const Options& o, const ContainerInfo& c, ManualClock& clock, Lsn at,
               const std::string& payload) {
  BackupManifest m;
  m.database = o.db;
  m.system_identifier = o.sysid;
  m.container = c.name;
  m.type = BackupType::kFull;
  m.start_time = clock.Now();
  m.backup_id = Repository::NewBackupId(m.start_time, m.type);
  m.server_version_num = 150000;
  m.wal_segment_size = kSegmentSize;
  m.timeline = 1;
  m.start_lsn = at.ToString();
  m.end_lsn = Lsn{at.value + 1024}.ToString();
  const std::string key = Repository::DataPrefix(m.database, m.container, m.backup_id) + "00-000000";
  auto enc = EncodeObject(payload, key, {.zstd_level = 1});
  Check(enc.status(), "cannot encode a full backup chunk");
  Check(target.storage().Put(key, enc->bytes), "cannot store a full backup chunk");
  ArchiveRecord base{.index = 0, .name = "base.tar"};
  base.raw_bytes = payload.size();
  base.chunks.push_back({.key = key, .raw_size = enc->raw_size, .stored_size = enc->bytes.size(), .sha256 = enc->sha256});
  m.archives.push_back(std::move(base));
  m.size_bytes = payload.size();
  m.stored_bytes = enc->bytes.size();
  m.finish_time = clock.Now();
  Check(WriteCheckedManifest(target, m, nullptr), "cannot write a full backup manifest");
}

// Seals the staged span in the scratch repository and copies out what the
// sealer wrote (manifest, merged parts) and the parts compaction did not
// replace; index objects and markers stay behind (WriteIndex writes the
// index). Returns the log backups written; their texts go to `manifests`.
int SealSpan(SpanStage& stage, PutQueue& puts, const Options& o, const ContainerInfo& container,
             const LogThresholds& thresholds, std::map<std::string, std::string>& manifests) {
  auto n = SealLogBackups(stage.repo(), o.db, container, kSegmentSize, nullptr, thresholds, /*force=*/true,
                          stage.known());
  Check(n.status(), "cannot seal a log backup");
  auto listed = ListAll(stage.memory(), "");
  Check(listed.status(), "cannot list the scratch repository");
  std::vector<BackupManifest> sealed;
  for (const auto& obj : *listed) {
    if (!backup_index::IsManifestKey(o.db, obj.key)) continue;
    auto m = stage.repo().ReadManifest(obj.key);
    Check(m.status(), "cannot read a scratch manifest");
    sealed.push_back(std::move(m).value());
  }
  const auto replaced = PartsReplacedByCompaction(o.db, sealed, *listed);
  const std::set<std::string> skip(replaced.begin(), replaced.end());
  const std::string index_root = backup_index::Prefix(o.db);
  for (const auto& obj : *listed) {
    if (stage.initial().count(obj.key) || skip.count(obj.key) || StartsWith(obj.key, index_root)) continue;
    auto bytes = stage.memory().Get(obj.key);
    Check(bytes.status(), "cannot read a scratch object");
    if (backup_index::IsManifestKey(o.db, obj.key)) manifests[obj.key] = *bytes;
    puts.Put(obj.key, std::move(bytes).value());
  }
  stage.Reset();
  return *n;
}

// The index of `manifests` as the writers' merges leave it (see the header),
// then any merge the fulls' own index writes make due.
void WriteIndex(Repository& target, const Options& o, const std::map<std::string, std::string>& manifests,
                Clock* clock) {
  std::vector<std::pair<std::string, std::string>> all(manifests.begin(), manifests.end());
  size_t at = 0;
  for (int level = 20; level >= 0; --level) {
    size_t per = 1;
    for (int k = 0; k < level; ++k) per *= backup_index::kFanIn;
    while (all.size() - at >= per) {
      IndexObject obj{.level = level};
      for (size_t i = 0; i < per; ++i, ++at) obj.entries.emplace(all[at].first, all[at].second);
      Check(backup_index::Put(target.storage(), o.db, obj, clock).status(), "cannot write an index object");
    }
  }
  Check(backup_index::MergeDue(target.storage(), o.db, clock), "cannot merge the index");
}

// Stages one part in the scratch repository (SealSpan copies it out unless compaction replaced it).
void StagePart(SpanStage& stage, const std::string& key, std::string_view plain) {
  auto enc = EncodeObject(plain, key, {.zstd_level = 3});
  Check(enc.status(), "cannot encode a WAL part");
  Check(stage.memory().Put(key, enc->bytes), "cannot stage a WAL part");
  stage.known()[key] = enc->sha256;
  stage.bytes() += plain.size();
}

// --import-wal DIR: real WAL segments (archived by PostgreSQL into DIR),
// stored as wal-push stores them (a part per segment, a log backup sealed
// per push once 5 MiB are unsealed), after the history. Each wal-push would
// list the whole container to seal (the cost bench/scale.sh times once on
// its own); the import seals in the scratch repository instead.
int ImportWal(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  ManualClock clock(Clock::Real()->Now());
  auto storage = OpenStorage(o.repo_url);
  Check(storage.status(), "cannot open " + o.repo_url);
  auto opened = Repository::Open(std::move(storage).value(), /*create=*/false, &clock);
  Check(opened.status(), "cannot open the repository");
  Repository& target = **opened;
  auto container = target.EnsureContainer(o.db, o.sysid, 1, "first backup");
  Check(container.status(), "cannot find the container");
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(o.import_wal)) {
    const std::string name = e.path().filename().string();
    if (name.size() == 24 && name.find_first_not_of("0123456789ABCDEF") == std::string::npos) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  PutQueue puts(target.storage(), o.jobs);
  SpanStage stage(&clock);
  LogThresholds thresholds;
  thresholds.max_wal = o.log_bytes;
  std::map<std::string, std::string> manifests;
  int64_t logs = 0;
  for (const auto& name : names) {
    const std::string path = o.import_wal + "/" + name;
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) Die("cannot read " + path);
    auto header = ParseWalSegmentHeader(data, path);
    Check(header.status(), "not a WAL segment");
    if (header->system_identifier != o.sysid) Die(path + " belongs to another system identifier than --sysid");
    auto parsed = ParseWalSegmentName(name, header->segment_size);
    Check(parsed.status(), "not a WAL segment name");
    const auto [tli, start] = *parsed;
    if (tli != 1 || header->segment_size != kSegmentSize) Die(path + ": only timeline 1, 16 MiB segments");
    clock.Set(Clock::Real()->Now());
    StagePart(stage, Repository::WalPartKey(o.db, container->name, tli, start, Lsn{start.value + kSegmentSize}),
              data);
    if (stage.bytes() >= o.log_bytes) logs += SealSpan(stage, puts, o, *container, thresholds, manifests);
  }
  if (stage.bytes() > 0) logs += SealSpan(stage, puts, o, *container, thresholds, manifests);
  Check(puts.Finish(), "storing the WAL failed");
  WriteIndex(target, o, manifests, &clock);
  std::printf("scale_gen: imported %zu WAL segments from %s, %lld log backups, in %.1f s\n", names.size(),
              o.import_wal.c_str(), static_cast<long long>(logs),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

int Run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const SystemTime end_time = Clock::Real()->Now();
  const auto span = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(o.days * 86400));
  ManualClock clock(end_time - span);

  auto storage = OpenStorage(o.repo_url);
  Check(storage.status(), "cannot open " + o.repo_url);
  auto opened = Repository::Open(std::move(storage).value(), /*create=*/true, &clock);
  Check(opened.status(), "cannot open the repository");
  Repository& target = **opened;
  auto container = target.EnsureContainer(o.db, o.sysid, 1, "first backup");
  Check(container.status(), "cannot create the container");

  const uint64_t part_bytes = o.wal_bytes_per_min * o.flush_seconds / 60;
  const int64_t flushes = static_cast<int64_t>(o.days * 86400 / o.flush_seconds);
  const int64_t flushes_per_full = 86400 / o.flush_seconds / o.fulls_per_day;
  std::printf("scale_gen: %s db %s: %g days of %llu KiB/min WAL, a part per %d s flush (%llu bytes), a log "
              "backup per %llu MiB, %d full(s)/day: %lld parts\n",
              target.storage().Describe().c_str(), o.db.c_str(), o.days,
              static_cast<unsigned long long>(o.wal_bytes_per_min >> 10), o.flush_seconds,
              static_cast<unsigned long long>(part_bytes), static_cast<unsigned long long>(o.log_bytes >> 20),
              o.fulls_per_day, static_cast<long long>(flushes));
  std::fflush(stdout);

  // Synthetic WAL: a 4 KiB pseudo-random block repeated (deterministic per seed).
  std::mt19937_64 rng(o.seed);
  std::string block(4096, '\0');
  for (char& ch : block) ch = static_cast<char>(rng());
  std::string wal;
  while (wal.size() < part_bytes) wal += block;
  wal.resize(part_bytes);
  std::string full_payload;
  while (full_payload.size() < kFullDataBytes) full_payload += block;

  PutQueue puts(target.storage(), o.jobs);
  SpanStage stage(&clock);
  LogThresholds thresholds;
  thresholds.max_wal = o.log_bytes;
  Lsn next{2 * kSegmentSize};
  int64_t logs = 0, fulls = 0;
  std::map<std::string, std::string> manifests;  // log manifests written: key → stored text
  auto seal = [&] { logs += SealSpan(stage, puts, o, *container, thresholds, manifests); };

  auto last_report = t0;
  for (int64_t i = 0; i < flushes; ++i) {
    if (i % flushes_per_full == 0) {
      WriteFull(target, o, *container, clock, next, full_payload);
      ++fulls;
    }
    clock.Advance(std::chrono::seconds(o.flush_seconds));
    const Lsn start = next;
    next = Lsn{next.value + part_bytes};
    StagePart(stage, Repository::WalPartKey(o.db, container->name, 1, start, next), wal);
    if (stage.bytes() >= o.log_bytes) seal();
    if (const auto now = std::chrono::steady_clock::now(); now - last_report >= std::chrono::seconds(30)) {
      last_report = now;
      const double el = std::chrono::duration<double>(now - t0).count();
      std::fprintf(stderr, "scale_gen: %lld/%lld parts stored (%.0f/s)\n", static_cast<long long>(puts.done()),
                   static_cast<long long>(flushes), puts.done() / el);
    }
  }
  // The history ends on a segment boundary, sealed, as a streamer stopped
  // there would leave it: the cluster bench/scale.sh starts (pg_resetwal -l)
  // continues the same WAL in the same container from the next segment.
  if (next.value % kSegmentSize != 0) {
    clock.Advance(std::chrono::seconds(1));
    const Lsn start = next;
    next = Lsn{(next.value / kSegmentSize + 1) * kSegmentSize};
    std::string tail;
    while (tail.size() < next.value - start.value) tail += block;
    tail.resize(next.value - start.value);
    StagePart(stage, Repository::WalPartKey(o.db, container->name, 1, start, next), tail);
  }
  if (stage.bytes() > 0) seal();
  Check(puts.Finish(), "storing the history failed");
  WriteIndex(target, o, manifests, &clock);
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("scale_gen: wrote %lld parts, %lld log backups, %lld fulls (WAL up to %s, all sealed) "
              "in %.1f s\n",
              static_cast<long long>(flushes), static_cast<long long>(logs), static_cast<long long>(fulls),
              next.ToString().c_str(), elapsed);
  // For scripts: the first segment after the history (pg_resetwal -l takes it).
  const uint64_t seg = next.value / kSegmentSize;
  std::printf("NEXT_SEGMENT=00000001%08llX%08llX\n", static_cast<unsigned long long>(seg >> 8),
              static_cast<unsigned long long>(seg & 0xFF));
  std::printf("PARTS=%lld LOGS=%lld FULLS=%lld GEN_SECONDS=%.1f\n", static_cast<long long>(flushes),
              static_cast<long long>(logs), static_cast<long long>(fulls), elapsed);
  return 0;
}

}  // namespace
}  // namespace sb

int main(int argc, char** argv) {
  sb::log::SetLevel(sb::log::Level::kWarn);
  const sb::Options o = sb::ParseArgs(argc, argv);
  return o.import_wal.empty() ? sb::Run(o) : sb::ImportWal(o);
}
