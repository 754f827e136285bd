#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "agent/agent.h"
#include "agent/api.h"
#include "agent/job_wait.h"
#include "agent/settings.h"
#include "cli/backup_listing_view.h"
#include "cli/option_flags.h"
#include "cli/progress.h"
#include "cli/repo_target.h"
#include "cli/verb_check.h"
#include "cli/verb_drill.h"
#include "cli/verified_at.h"
#include "cli/verb_reindex.h"
#include "common/backoff.h"
#include "common/encoding.h"
#include "common/logging.h"
#include "common/text.h"
#include "engine/backup/full_backup.h"
#include "engine/restore/restore.h"
#include "engine/retention/retention.h"
#include "engine/verify/verify.h"
#include "engine/wal/wal_archive.h"
#include "engine/wal/log_backup.h"
#include "engine/wal/wal_catalog.h"
#include "engine/wal/wal_prefetch.h"
#include "engine/wal/wal_streamer.h"
#include "pg/connection.h"
#include "repo/key_store.h"
#include "repo/name_claim.h"
#include "repo/public_key.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

using nlohmann::json;

enum class Output { kText, kJson };

struct CommonFlags {
  std::string output = "text";
  bool verbose = false;
  bool quiet = false;
  Output format() const { return output == "json" ? Output::kJson : Output::kText; }
};

// Thrown only inside this file to unwind from a verb with its exit status.
struct VerbFailed {
  Status status;
};

void Check(const Status& s) {
  if (!s.ok()) throw VerbFailed{s};
}
// A command line that cannot run as given: exit 2 with the verb's --help hint, like a parse error.
[[noreturn]] void Usage(std::string message) {
  throw VerbFailed{Status::InvalidArgument(std::move(message)).WithDetail(StatusDetail::kUsage)};
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) throw VerbFailed{r.status()};
  return std::move(r).value();
}

std::unique_ptr<Repository> OpenRepo(const std::string& url, bool create) {
  auto storage = Check(OpenStorage(url));
  return Check(Repository::Open(std::move(storage), create));
}

std::optional<EncryptionKey> LoadKey(const std::string& path) {
  if (path.empty()) return std::nullopt;
  return Check(EncryptionKey::LoadFromFile(path));
}

// The key flags of a verb, checked and the key file read once, before the
// repository is touched: --key-file, or a PEM path (--public-key for
// writers, --private-key for readers), never both.
struct KeyFlags {
  std::optional<EncryptionKey> key;
  std::string pem;
};
KeyFlags LoadKeyFlags(const std::string& key_file, const std::string& pem, const char* pem_flag) {
  if (!key_file.empty() && !pem.empty()) {
    Usage(fmt::format("--key-file and {} exclude each other: give one", pem_flag));
  }
  return {LoadKey(key_file), pem};
}

// What a writer encrypts with: the --key-file key, or with --public-key a new
// data key whose wrapped form is stored in the repository first.
struct WriterKey {
  std::optional<EncryptionKey> key;
  const EncryptionKey* get() const { return key ? &*key : nullptr; }
};
WriterKey WriterKeyFor(KeyFlags flags, Repository& repo) {
  if (flags.pem.empty()) return {std::move(flags.key)};
  return {Check(NewWrappedDataKey(repo.storage(), flags.pem))};
}

// What a reader opens encrypted objects with: the --key-file key, or the
// --private-key that opens the repository's wrapped data keys. Handed to
// the repository too, so every manifest read is authenticated (MAC) and a
// plain one refused; the keys must outlive the repository's use.
std::unique_ptr<KeySource> ReaderKeysFor(KeyFlags flags, Repository& repo) {
  std::unique_ptr<KeySource> keys;
  if (!flags.pem.empty()) {
    keys = Check(PrivateKeyRing::Open(repo.storage(), flags.pem));
  } else if (flags.key) {
    keys = std::make_unique<EncryptionKey>(std::move(*flags.key));
  }
  repo.SetReadKeys(keys.get());
  return keys;
}

// restore_command runs in the data directory: paths written into it must be absolute.
std::string Absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

json BackupJson(const BackupManifest& m, const std::string& status) {
  return {{"database", m.database},
          {"system_identifier", std::to_string(m.system_identifier)},
          {"container", m.container},
          {"backup_id", m.backup_id},
          {"type", BackupTypeName(m.type)},
          {"timeline", m.timeline},
          {"start_lsn", m.start_lsn},
          {"end_lsn", m.end_lsn},
          {"start_time", FormatRfc3339(m.start_time)},
          {"finish_time", FormatRfc3339(m.finish_time)},
          {"expiration_time", m.expiration_time ? json(FormatRfc3339(*m.expiration_time)) : json(nullptr)},
          {"size_bytes", m.size_bytes},
          {"stored_bytes", m.stored_bytes},
          {"encrypted", !m.encryption_key_id.empty()},
          {"status", status},
          {"path", Repository::ManifestKey(m.database, m.container, m.backup_id)}};
}

void AddCommon(CLI::App* verb, CommonFlags& flags) {
  verb->add_option("--output", flags.output, "output format")->check(CLI::IsMember({"text", "json"}));
  verb->add_flag("-v,--verbose", flags.verbose, "log progress to stderr");
}

// Checked while parsing, so that a bad value is a usage error (exit 2, one
// line) and never reaches a verb as an exception or an overflowing number.
// CLI11 prefixes the flag's name and RunCli appends the hint, so these
// messages carry neither.
CLI::Validator DurationFlag() {
  return CLI::Validator(
      [](std::string& v) {
        return ParseDuration(v).ok() ? std::string()
                                     : fmt::format("\"{}\" is not a duration of at most {} (e.g. 7d, 36h, 90m, 30s)",
                                                   v, FormatDuration(kMaxDuration));
      },
      "DURATION", "duration");
}
CLI::Validator ByteSizeFlag(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& v) {
        auto n = ParseByteSize(v);
        if (n.ok() && *n >= min && *n <= max) return std::string();
        return fmt::format("\"{}\" is not a size from {} to {} (e.g. 8MiB)", v, FormatByteSize(min), FormatByteSize(max));
      },
      "SIZE", "byte size");
}

// "OID=DIR" of --tablespace-map: a tablespace OID (a positive 32-bit number) and an absolute directory.
Result<std::pair<uint32_t, std::string>> ParseTablespaceMapEntry(const std::string& entry) {
  auto bad = [&] {
    return Status::InvalidArgument(fmt::format(
        "\"{}\" is not OID=DIR with a tablespace OID and an absolute directory (e.g. 16385=/srv/pg/ts1)", entry));
  };
  auto eq = entry.find('=');
  if (eq == std::string::npos || eq == 0) return bad();
  uint32_t oid = 0;
  auto r = std::from_chars(entry.data(), entry.data() + eq, oid, 10);
  if (r.ec != std::errc() || r.ptr != entry.data() + eq || oid == 0) return bad();
  std::string dir = entry.substr(eq + 1);
  if (dir.empty() || dir.front() != '/') return bad();
  return std::make_pair(oid, dir);
}
CLI::Validator TablespaceMapFlag() {
  return CLI::Validator(
      [](std::string& v) { auto e = ParseTablespaceMapEntry(v); return e.ok() ? std::string() : e.status().message(); },
      "OID=DIR", "tablespace map entry");
}

// --since of health: a duration back from now (30m, 2h, 1d) or an RFC 3339 time (a word such as
// "yesterday" used to be dropped for the default 30 minutes without a word).
CLI::Validator SinceFlag() {
  return CLI::Validator(
      [](std::string& v) {
        return ParseDuration(v).ok() || ParseRfc3339(v).ok()
                   ? std::string()
                   : fmt::format("\"{}\" is neither a duration (30m, 2h, 1d) nor an RFC 3339 time such as "
                                 "2026-11-30T08:00:00Z",
                                 v);
      },
      "DURATION|TIME", "duration or RFC 3339 time");
}
// The RFC 3339 time the agent's API takes for --since.
std::string SinceTime(const std::string& since) {
  auto d = ParseDuration(since);
  if (!d.ok()) return since;
  return FormatRfc3339(Clock::Real()->Now() - *d);
}

// Progress of a long verb on stderr (cli/progress.h): redrawn on a terminal, one summary line
// otherwise. A verb that fails leaves the meter unfinished: its error line says enough.
struct VerbProgress {
  ProgressMeter meter;
  bool finished = false;
  explicit VerbProgress(const std::string& label)
      : meter(Clock::Real(), {.label = label,
                              .terminal = ::isatty(STDERR_FILENO) == 1,
                              .write = [](const std::string& text) {
                                std::fputs(text.c_str(), stderr);
                                std::fflush(stderr);
                              }}) {}
  void Done(bool success = true) {
    finished = true;
    meter.Finish(success);
  }
  ~VerbProgress() {
    if (!finished) meter.Finish(false);
  }
};

// ---- verbs ------------------------------------------------------------------

struct BackupArgs {
  std::string pg, repo, db, type = "full", key_file, public_key;
  bool copy_only = false;
  int parallel = 0, compress_level = 3;
  std::string chunk_size = "8MiB";
};

// One system identifier per database name (repo/name_claim.h): a second live cluster under --db is
// refused before anything is written, or its backups would mix with the other's.
void ClaimName(Repository& repo, const std::string& db, uint64_t system_identifier) {
  Check(CheckDatabaseName(repo.storage(), db, system_identifier));
}
uint64_t ClaimNameOf(Repository& repo, const std::string& db, const std::string& conninfo) {
  auto conn = Check(PgConnection::Connect(conninfo, false));
  const uint64_t sysid = Check(ReadServerInfo(*conn)).system_identifier;
  ClaimName(repo, db, sysid);
  return sysid;
}
// The system identifier in a WAL segment's long page header, or 0 when `path` is not a segment
// (a history file, a backup label: WalPush decides about those without the claim).
uint64_t SegmentSystemIdentifier(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return 0;  // WalPush reports the unreadable file
  unsigned char h[32];
  const bool whole = std::fread(h, 1, sizeof h, f) == sizeof h;
  std::fclose(f);
  if (!whole || !(h[2] & 0x02)) return 0;  // XLP_LONG_HEADER: the first page of a segment
  uint64_t sysid = 0;
  for (int i = 31; i >= 24; --i) sysid = (sysid << 8) | h[i];
  return sysid;
}

void RunLogBackupVerb(const BackupArgs& a, const CommonFlags& flags, const EncryptionKey* key) {
  auto repo = OpenRepo(a.repo, /*create=*/true);
  auto m = Check(RunLogBackup(*repo, {.conninfo = a.pg, .database = a.db, .key = key}));
  if (flags.format() == Output::kJson) {
    std::cout << BackupJson(m, "available").dump(2) << "\n";
  } else {
    std::cout << fmt::format("log backup {} complete: timeline {} {}..{}\n", m.backup_id, m.timeline, m.start_lsn,
                             m.end_lsn)
              << Repository::ManifestKey(m.database, m.container, m.backup_id) << "\n";
  }
}

void RunBackupVerb(const BackupArgs& a, const CommonFlags& flags) {
  KeyFlags key_flags = LoadKeyFlags(a.key_file, a.public_key, "--public-key");
  auto repo = OpenRepo(a.repo, /*create=*/true);
  ClaimNameOf(*repo, a.db, a.pg);
  WriterKey key = WriterKeyFor(std::move(key_flags), *repo);
  if (a.type == "log") return RunLogBackupVerb(a, flags, key.get());
  auto started = std::chrono::steady_clock::now();
  VerbProgress progress("backup");
  auto m = Check(RunFullBackup(*repo, {.conninfo = a.pg,
                                       .database = a.db,
                                       .copy_only = a.copy_only,
                                       .key = key.get(),
                                       .zstd_level = a.compress_level,
                                       .parallelism = a.parallel,
                                       .chunk_size = Check(ParseByteSize(a.chunk_size)),
                                       .progress = [&progress](const FullBackupProgress& p) {
                                         progress.meter.Update(FullBackupPhaseName(p.phase), p.bytes_done,
                                                               p.bytes_total);
                                       }}));
  progress.Done();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (flags.format() == Output::kJson) {
    json j = BackupJson(m, "available");
    j["seconds"] = secs;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("backup {} complete: {} ({}) of database \"{}\", {} → {} stored in {:.1f}s\n",
                             m.backup_id, BackupTypeName(m.type), m.start_lsn + ".." + m.end_lsn, m.database,
                             FormatByteSize(m.size_bytes), FormatByteSize(m.stored_bytes), secs)
              << Repository::ManifestKey(m.database, m.container, m.backup_id) << "\n";
  }
}

// Absolute path of this binary, for the restore_command a restore writes.
std::string SelfPath() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "smartbackup";
  return std::string(buf, static_cast<size_t>(n));
}

struct RestoreArgs {
  RepoTargetFlags target;
  std::string target_dir, backup_id, time, lsn;
  bool latest = false;
  int parallel = 0;
  std::vector<std::string> tablespace_map;
  int prefetch = RestoreOptions().prefetch_depth;
};

void RunRestoreVerb(const RestoreArgs& a, const CommonFlags& flags) {
  const RepoTarget target = Check(ResolveRepoTarget(a.target));
  RestoreOptions options{.database = target.database, .repo_url = target.storage_url, .key_file = Absolute(target.key_file),
                         .smartbackup_path = SelfPath(), .target_dir = a.target_dir, .backup_id = a.backup_id,
                         .parallelism = a.parallel, .prefetch_depth = a.prefetch};
  if (!a.time.empty()) {
    options.target.kind = RecoveryTarget::Kind::kTime;
    options.target.time = Check(ParseRfc3339(a.time));
  } else if (!a.lsn.empty()) {
    options.target.kind = RecoveryTarget::Kind::kLsn;
    options.target.lsn = Check(Lsn::Parse(a.lsn));
  }
  for (const auto& entry : a.tablespace_map) {
    auto [oid, dir] = Check(ParseTablespaceMapEntry(entry));
    options.tablespace_map[oid] = dir;
  }
  KeyFlags key_flags = LoadKeyFlags(target.key_file, target.private_key, "--private-key");
  auto repo = OpenRepo(target.storage_url, /*create=*/false);
  auto keys = ReaderKeysFor(std::move(key_flags), *repo);
  options.key = keys.get();
  options.private_key_file = Absolute(target.private_key);
  auto started = std::chrono::steady_clock::now();
  VerbProgress progress("restore");
  options.progress = [&progress](uint64_t done, uint64_t total) { progress.meter.Update("", done, total); };
  auto m = Check(RunRestore(*repo, options));
  progress.Done();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (flags.format() == Output::kJson) {
    json j = BackupJson(m, "available");
    j["target_dir"] = a.target_dir;
    j["seconds"] = secs;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("restored backup {} of database \"{}\" ({}) into {} in {:.1f}s; start it with: pg_ctl -D {} start\n",
                             m.backup_id, m.database, FormatByteSize(m.size_bytes), a.target_dir, secs, a.target_dir);
  }
}

struct ListArgs {
  RepoTargetFlags target{.database_required = false};
  bool all = false;
};

// Cost: per database, the listing WalCatalog::Load makes (manifests, containers, WAL parts);
// a log backup's objects are checked against the parts listed, with no request of their own.
void RunAvailableBackupsVerb(const ListArgs& a, const CommonFlags& flags) {
  const RepoTarget target = Check(ResolveRepoTarget(a.target));
  auto repo = OpenRepo(target.storage_url, /*create=*/false);
  std::vector<std::string> dbs;
  if (!target.database.empty()) {
    Check(Repository::ValidateDatabaseName(target.database));
    dbs.push_back(target.database);
  } else {
    dbs = Check(repo->ListDatabases());
  }
  json out = json::array();
  std::string text;
  for (const auto& db : dbs) {
    CatalogCache cache;
    // Parts listed, not inferred from the index: a missing object must show.
    auto catalog = Check(WalCatalog::Load(*repo, db, std::nullopt, &cache, WalCatalog::PartSource::kListed));
    DatabaseListing listing = BuildListing(db, catalog, a.all);
    AddVerifiedAt(*repo, listing);  // restore drills (verified_at.h)
    out.push_back(ListingJson(listing));
    text += ListingText(listing);
  }
  if (flags.format() == Output::kJson) {
    std::cout << out.dump(2) << "\n";
  } else {
    std::cout << (dbs.empty() ? "(no backups)\n" : text);
  }
}

struct PurgeArgs {
  std::string repo, db, retention;
  PartialSettings settings;  // --retention-days (agent/settings.h)
  bool dry_run = false;
};

// Retention without the agent (cron): the agent's rule for a live cluster,
// run once. Never purges the newest restorable set.
void RunPurgeVerb(const PurgeArgs& a, const CommonFlags& flags) {
  const bool days = a.settings.count("retention_days") > 0;
  if (days == !a.retention.empty()) {
    Usage("give one of --retention-days N or --retention DURATION (e.g. 7d, 36h)");
  }
  const std::chrono::milliseconds keep =
      days ? std::chrono::milliseconds(std::chrono::hours(24) * Check(SettingsFrom(a.settings)).retention_days)
           : Check(ParseDuration(a.retention));
  if (keep.count() <= 0) Usage("--retention must be positive, e.g. 7d");
  Check(Repository::ValidateDatabaseName(a.db));
  auto repo = OpenRepo(a.repo, /*create=*/false);
  auto plan = Check(PlanRetention(*repo, a.db, repo->clock()->Now(), {.retention = keep}));
  const bool any = !plan.manifests_to_delete.empty() || !plan.objects_to_delete.empty();
  if (any && !a.dry_run) Check(ApplyRetention(*repo, plan));
  if (flags.format() == Output::kJson) {
    std::cout << json{{"database", a.db},
                      {"dry_run", a.dry_run},
                      {"anchor_backup_id", plan.anchor_backup_id},
                      {"manifests", plan.manifests_to_delete},
                      {"objects", plan.objects_to_delete.size()},
                      {"summary", plan.summary}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << plan.summary << (a.dry_run && any ? " (dry run: nothing deleted)" : "") << "\n";
  }
}

struct VerifyArgs {
  RepoTargetFlags target{.database_required = false};
  int parallel = 0;
};

// Returns the exit code: 0 when everything checks out, 1 otherwise.
int RunVerifyVerb(const VerifyArgs& a, const CommonFlags& flags) {
  const RepoTarget target = Check(ResolveRepoTarget(a.target));
  KeyFlags key_flags = LoadKeyFlags(target.key_file, target.private_key, "--private-key");
  auto repo = OpenRepo(target.storage_url, /*create=*/false);
  auto keys = ReaderKeysFor(std::move(key_flags), *repo);
  VerifyOptions options{.key = keys.get(), .parallelism = a.parallel};
  if (!target.database.empty()) options.database = target.database;
  VerbProgress progress("verify");
  options.progress = [&progress](uint64_t done, uint64_t total) { progress.meter.Update("", done, total); };
  auto report = Check(RunVerify(*repo, options));
  progress.Done(report.ok());
  if (flags.format() == Output::kJson) {
    json problems = json::array();
    for (const auto& p : report.problems) {
      problems.push_back({{"database", p.database}, {"backup_id", p.backup_id}, {"object", p.key},
                          {"problem", p.kind}, {"detail", p.detail}});
    }
    std::cout << json{{"ok", report.ok()},
                      {"databases", report.databases},
                      {"backups_checked", report.backups_checked},
                      {"backups_unauthenticated", report.backups_unauthenticated},
                      {"objects_checked", report.objects_checked},
                      {"bytes_checked", report.bytes_checked},
                      {"problems", problems}}
                     .dump(2)
              << "\n";
  } else {
    for (const auto& p : report.problems) {
      std::cout << fmt::format("{}: backup {}: {}\n", p.kind, p.backup_id.empty() ? "-" : p.backup_id, p.detail);
    }
    std::cout << fmt::format("verified {} backups, {} objects, {}: {}\n", report.backups_checked,
                             report.objects_checked, FormatByteSize(report.bytes_checked),
                             report.ok() ? "all ok" : fmt::format("{} problems", report.problems.size()));
    if (report.backups_unauthenticated > 0) {
      std::cout << fmt::format("{} encrypted backups were checked against their checksums only; give --key-file or "
                               "--private-key to authenticate them\n",
                               report.backups_unauthenticated);
    }
  }
  if (!report.ok()) {
    std::fprintf(stderr, "smartbackup: error: verify found %zu problems (first: %s); hint: take a new full backup\n",
                 report.problems.size(), report.problems.front().detail.c_str());
    return 1;
  }
  return 0;
}

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop = true; }

struct StreamArgs {
  std::string pg, repo, db, slot, key_file, public_key;
  PartialSettings settings;  // --flush-interval, --log-max-wal, --log-max-age (agent/settings.h)
  bool no_loop = false;
};

// Waits up to `d`, returning early once a stop signal arrived.
void SleepUnlessStopped(std::chrono::milliseconds d) {
  for (auto end = std::chrono::steady_clock::now() + d; !g_stop && std::chrono::steady_clock::now() < end;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void RunStreamVerb(const StreamArgs& a, const CommonFlags& flags) {
  KeyFlags key_flags = LoadKeyFlags(a.key_file, a.public_key, "--public-key");
  auto repo = OpenRepo(a.repo, /*create=*/true);
  const uint64_t sysid = ClaimNameOf(*repo, a.db, a.pg);
  WriterKey key = WriterKeyFor(std::move(key_flags), *repo);
  const ClusterSettings s = Check(SettingsFrom(a.settings));
  WalStreamerOptions o{.conninfo = a.pg,
                       .database = a.db,
                       .slot = a.slot,
                       .key = key.get(),
                       .flush_interval = s.flush_interval,
                       .thresholds = {.max_wal = s.log_max_wal, .max_age = s.log_max_age},
                       .stop = &g_stop};
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  // Like pg_receivewal: once streaming, a lost connection (server restart,
  // network) is retried with backoff until a stop signal; the slot keeps the
  // WAL meanwhile. A failure before the first WAL arrives (bad conninfo, no
  // privilege, slot in use) is the operator's to fix: it exits at once.
  // The name claim is renewed while streaming (well inside its 10-minute live window), so that a
  // long session never looks dead to another cluster's writer.
  std::atomic<bool> renew_stop{false};
  std::thread renew([&] {
    for (;;) {
      const auto due = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      while (!g_stop && !renew_stop && std::chrono::steady_clock::now() < due) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (g_stop || renew_stop) return;
      Status claimed = CheckDatabaseName(repo->storage(), a.db, sysid);
      if (!claimed.ok()) log::Warn("{}", claimed.message());
    }
  });
  struct JoinOnExit {  // also when a Check below throws
    std::atomic<bool>& stop;
    std::thread& t;
    ~JoinOnExit() {
      stop = true;
      t.join();
    }
  } join_renew{renew_stop, renew};
  bool ever_streamed = false, streamed_this_run = false;
  o.on_streaming = [&] { ever_streamed = streamed_this_run = true; };
  Backoff backoff({.initial = std::chrono::seconds(1), .max = std::chrono::seconds(30), .jitter = 0});
  int retry = 0;
  for (;;) {
    streamed_this_run = false;
    Status s = RunWalStreamer(*repo, o);
    const bool transient = !s.ok() && s.code() == StatusCode::kUnavailable && ever_streamed;
    if (s.ok() || (transient && g_stop)) break;  // stopped: what was received is stored
    if (!transient || a.no_loop) Check(s);
    if (streamed_this_run) retry = 0;  // it ran: the backoff starts again
    const std::chrono::milliseconds delay = backoff.Delay(++retry);
    log::Warn("{}; retrying in {} s (the replication slot holds the WAL meanwhile; --no-loop exits instead)",
              s.message(), delay.count() / 1000);
    SleepUnlessStopped(delay);
    if (g_stop) break;
  }
  if (flags.format() == Output::kJson) std::cout << json{{"stopped", true}}.dump() << "\n";
}

struct WalPushArgs {
  std::string path, repo, db, key_file, public_key;
  PartialSettings settings;  // --log-max-wal, --log-max-age (agent/settings.h)
};

void RunWalPushVerb(const WalPushArgs& a, const CommonFlags& flags) {
  KeyFlags key_flags = LoadKeyFlags(a.key_file, a.public_key, "--public-key");
  // With --public-key each segment gets its own data key (WalPush makes it):
  // only check the file now, before the repository is touched.
  if (!key_flags.pem.empty()) Check(PublicKeyFingerprint(key_flags.pem).status());
  const ClusterSettings s = Check(SettingsFrom(a.settings));
  auto repo = OpenRepo(a.repo, /*create=*/true);
  if (const uint64_t sysid = SegmentSystemIdentifier(a.path); sysid != 0) ClaimName(*repo, a.db, sysid);
  auto r = Check(WalPush(*repo, {.database = a.db,
                                 .path = a.path,
                                 .key = key_flags.key ? &*key_flags.key : nullptr,
                                 .public_key = key_flags.pem,
                                 .thresholds = {.max_wal = s.log_max_wal, .max_age = s.log_max_age}}));
  log::Info("wal-push {}: {}", a.path, r.note);
  if (flags.format() == Output::kJson) {
    std::cout << json{{"key", r.key}, {"already_archived", r.already_archived}, {"note", r.note}}.dump() << "\n";
  }
}

struct WalGetArgs {
  std::string name, dest, repo, db, key_file, private_key;
  uint64_t sysid = 0;
  uint64_t wal_segment_size = 0;  // with sysid: the constant-request lookup (wal_lookup.h)
  int prefetch = 0;               // segments spooled ahead by a worker (wal_prefetch.h); 0: off
  std::string spool_dir = PrefetchOptions().spool_dir;
};

// Exit codes follow what restore_command needs: 1 = not in a repository that
// was opened and read (recovery ends there), 255 = any other failure,
// including ones met before WalGet runs (key file, storage URL, opening the
// repository): PostgreSQL stops recovery on an exit status above 125 instead
// of promoting without the newest WAL.
constexpr int kWalGetAbsent = 1;
constexpr int kWalGetFailed = 255;

// The hidden verb the prefetch worker runs as (a detached process).
std::vector<std::string> WalPrefetchArgv(const WalGetArgs& a) {
  std::vector<std::string> argv = {SelfPath(), "wal-prefetch", "--repo", a.repo, "--db", a.db,
                                   "--sysid", std::to_string(a.sysid), "--wal-segment-size",
                                   std::to_string(a.wal_segment_size), "--prefetch", std::to_string(a.prefetch),
                                   "--spool-dir", Absolute(a.spool_dir)};
  if (!a.key_file.empty()) argv.insert(argv.end(), {"--key-file", Absolute(a.key_file)});
  if (!a.private_key.empty()) argv.insert(argv.end(), {"--private-key", Absolute(a.private_key)});
  return argv;
}

int RunWalPrefetchVerb(const WalGetArgs& a) {
  try {
    KeyFlags key_flags = LoadKeyFlags(a.key_file, a.private_key, "--private-key");
    auto repo = OpenRepo(a.repo, /*create=*/false);
    auto keys = ReaderKeysFor(std::move(key_flags), *repo);
    Check(RunPrefetchWorker(repo->storage(),
                            {.database = a.db, .system_identifier = a.sysid, .segment_size = a.wal_segment_size,
                             .keys = keys.get()},
                            {.spool_dir = a.spool_dir, .depth = a.prefetch}));
    return 0;
  } catch (const VerbFailed& f) {
    std::fprintf(stderr, "smartbackup: error: wal-prefetch: %s\n", f.status.message().c_str());
    return 1;
  }
}

int RunWalGetVerb(const WalGetArgs& a) {
  try {
    WalGetOptions options{.database = a.db,
                          .name = a.name,
                          .dest = a.dest,
                          .system_identifier = a.sysid ? std::optional<uint64_t>(a.sysid) : std::nullopt,
                          .wal_segment_size = a.wal_segment_size};
    // A prefetched segment needs no storage, no key: only the spool's checks.
    if (a.prefetch > 0 && TakePrefetched(options, {.spool_dir = a.spool_dir, .depth = a.prefetch}, WalPrefetchArgv(a))) {
      return 0;
    }
    KeyFlags key_flags = LoadKeyFlags(a.key_file, a.private_key, "--private-key");
    auto repo = OpenRepo(a.repo, /*create=*/false);
    auto keys = ReaderKeysFor(std::move(key_flags), *repo);
    options.key = keys.get();
    auto outcome = Check(WalGet(*repo, options));
    if (outcome == WalGetOutcome::kRestored) return 0;
    log::Info("wal-get: {} is not in the repository", a.name);
    return kWalGetAbsent;
  } catch (const VerbFailed& f) {
    std::fprintf(stderr, "smartbackup: error: wal-get %s: %s (exit %d stops recovery; fix it and start the server again)\n",
                 a.name.c_str(), f.status.message().c_str(), kWalGetFailed);
    return kWalGetFailed;
  }
}

// ---- managed verbs: talk to the running agent ---------------------------------

json CallAgentJson(const std::string& config, const std::string& method, const std::string& path,
                   const json& body = nullptr) {
  if (config.empty()) Usage("--config is required to find the agent");
  auto endpoint = Check(EndpointFromConfig(config));
  auto token = Check(ReadToken(endpoint.token_path));
  auto response = Check(CallAgent(endpoint.socket, token, method, path, body.is_null() ? "" : body.dump()));
  json j = json::parse(response.body, nullptr, false);
  if (j.is_discarded()) Check(Status::Internal("the agent sent a response that is not JSON"));
  return j;
}

// backup-on-demand: the agent answers at once with a job, polled here with a
// short deadline per request and none overall (a full may take hours). While it
// runs, progress goes to stderr: one line rewritten in place on a terminal, a
// line every 30 s (or when the phase changes) otherwise, nothing with --quiet.
void RunBackupOnDemandVerb(const std::string& config, const std::string& db, const std::string& type,
                           const CommonFlags& flags) {
  if (config.empty()) Usage("--config is required to find the agent");
  auto endpoint = Check(EndpointFromConfig(config));
  auto token = Check(ReadToken(endpoint.token_path));
  auto api = SocketAgentApi(endpoint.socket, token, std::chrono::seconds(10));
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  bool line_open = false;  // a progress line is on the terminal
  std::string last_phase;
  std::chrono::milliseconds last_line{-1};
  auto progress = [&](const JobView& job, std::chrono::milliseconds elapsed) {
    if (flags.quiet) return;
    const std::string line = JobProgressLine(job, elapsed);
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      line_open = true;
    } else if (last_line.count() < 0 || job.phase != last_phase || elapsed - last_line >= std::chrono::seconds(30)) {
      std::fprintf(stderr, "%s\n", line.c_str());
      last_line = elapsed;
    }
    std::fflush(stderr);
    last_phase = job.phase;
  };
  auto result = BackupOnDemand(*api, Clock::Real(), db, type, {.config_flag = " --config " + config}, progress);
  if (line_open) std::fprintf(stderr, "\r\033[K");
  json j = Check(std::move(result));
  if (flags.format() == Output::kJson) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << j.value("path", "") << "\n";
  }
}

void PrintObject(const json& j, const CommonFlags& flags) {
  if (flags.format() == Output::kJson) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (auto& [k, v] : j.items()) {
    std::cout << fmt::format("{:<16} {}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
  }
}

void PrintStatus(const json& j, const CommonFlags& flags) {
  if (flags.format() == Output::kJson) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (j.contains("counts")) {
    std::cout << fmt::format("health {} .. {}{}\n", j["since"].get<std::string>(), j["until"].get<std::string>(),
                             j["stuck"].get<bool>() ? "  STUCK: no backup or retention loop in 30 minutes" : "");
    for (auto& [k, v] : j["counts"].items()) std::cout << fmt::format("  {:<18} {}\n", k, v.dump());
    for (const auto& e : j["events"]) {
      std::cout << fmt::format("  {} [{}] {}: {}\n", e["at"].get<std::string>(), e["database"].get<std::string>(),
                               e["category"].get<std::string>(), e["message"].get<std::string>());
    }
  }
  std::cout << fmt::format("master switch: {}\n", j["master_switch"].get<bool>() ? "on" : "off");
  for (const auto& c : j["clusters"]) {
    std::cout << fmt::format("{} ({}, {}, {}): {}\n", c["database"].get<std::string>(),
                             c["enabled"].get<bool>() ? "enabled" : "disabled", c["role"].get<std::string>(),
                             c["mode"].get<std::string>(), c["state"].get<std::string>());
    // Times as they are, unquoted; "none" only when the repository holds no such backup.
    auto time = [](const json& t) { return t.is_string() ? t.get<std::string>() : std::string("none"); };
    std::cout << fmt::format("  last full: {}  last log: {}  streaming: {}\n", time(c["last_full"]),
                             time(c["last_log"]), c["streaming"].get<bool>() ? "yes" : "no");
    if (c.contains("restore_windows") && !c["restore_windows"].empty()) {
      for (const auto& w : c["restore_windows"]) {
        std::cout << fmt::format("  restore window: {} .. {} (full {})\n", w["start"].get<std::string>(),
                                 w["end"].get<std::string>(), w["base_backup_id"].get<std::string>());
      }
    } else if (c.contains("restore_window")) {
      std::cout << fmt::format("  restore window: {} .. {}\n", c["restore_window"]["start"].get<std::string>(),
                               c["restore_window"]["end"].get<std::string>());
    } else {
      std::cout << "  restore window: none\n";
    }
    if (c.contains("recovery_point_age_seconds")) {
      std::cout << fmt::format("  recovery point age: {}s\n", c["recovery_point_age_seconds"].dump());
    }
    std::cout << fmt::format("  next full: {} ({})\n", c["next_full"]["action"].get<std::string>(),
                             c["next_full"]["reason"].get<std::string>());
    std::cout << fmt::format("  next log:  {} ({})\n", c["next_log"]["action"].get<std::string>(),
                             c["next_log"]["reason"].get<std::string>());
  }
}

struct SetBackupArgs {
  std::string config, db;
  PartialSettings settings;  // the option flags and --set, validated (agent/settings.h)
};

// {"settings": {option: text}}: --enable/--disable travel as "enabled".
json SetBackupBody(const SetBackupArgs& a) {
  json settings = json::object();
  for (const auto& [k, v] : a.settings) settings[k] = v;
  return {{"settings", settings}};
}

std::atomic<bool> g_agent_stop{false};
void OnAgentStop(int) { g_agent_stop = true; }

void RunAgentVerb(const std::string& config_path) {
  auto config = Check(LoadAgentConfig(config_path));
  auto agent = Check(Agent::Create(std::move(config)));
  struct sigaction sa {};
  sa.sa_handler = OnAgentStop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  Check(agent->Run(g_agent_stop));
}

std::string LowerErrno(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

void RunGenerateKeyVerb(const std::string& out_path) {
  auto key = EncryptionKey::Generate();
  std::string text =
      HexEncode(std::string_view(reinterpret_cast<const char*>(key.bytes().data()), key.bytes().size())) + "\n";
  // Created 0600 in the same call that creates it (no moment with the
  // umask's mode), never over an existing file and never through a symlink
  // planted at the path.
  int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    OPENSSL_cleanse(text.data(), text.size());
    Check(Status(err == EEXIST ? StatusCode::kAlreadyExists : StatusCode::kIoError,
                 fmt::format("cannot create key file \"{}\": {}; hint: {}", out_path, LowerErrno(err),
                             err == EEXIST ? "it exists already: choose a new path, an existing key is never "
                                             "overwritten"
                                           : "check the directory")));
  }
  // The umask may have taken bits from 0600 (never added any): the owner must still read it.
  int err = ::fchmod(fd, 0600) == 0 ? 0 : errno;
  size_t done = 0;
  while (err == 0 && done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  OPENSSL_cleanse(text.data(), text.size());
  if (err != 0) {
    ::unlink(out_path.c_str());  // a partial key file must not be mistaken for a key
    Check(Status::IoError(fmt::format("cannot write key file \"{}\": {}; hint: check the disk", out_path, LowerErrno(err))));
  }
  std::cout << fmt::format("key written to {} (key id {}); keep a copy: backups encrypted with it cannot be restored without it\n",
                           out_path, key.key_id());
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"smartbackup: managed backup for PostgreSQL"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smartbackup 0.1.0");
  CommonFlags flags;

  BackupArgs backup;
  auto* b = app.add_subcommand("backup", "take one backup now");
  b->add_option("--pg", backup.pg, "libpq connection string of the cluster")->required();
  b->add_option("--repo", backup.repo, "repository URL: file:///path or azure://container[/prefix]")->required();
  b->add_option("--db", backup.db, "database (cluster) name in the repository")->required();
  b->add_option("--type", backup.type, "full or log")->check(CLI::IsMember({"full", "log"}));
  b->add_flag("--copy-only", backup.copy_only, "a backup outside the managed chain");
  b->add_option("--key-file", backup.key_file, "encrypt with this 256-bit key (AES-256-GCM)");
  b->add_option("--public-key", backup.public_key,
                "encrypt with a new data key sealed to this RSA public key or certificate (PEM): this host cannot read the backup");
  b->add_option("--parallel", backup.parallel, "compression/upload workers (default: cores)")->check(CLI::Range(1, 64));
  b->add_option("--compress-level", backup.compress_level, "zstd level (0 stores uncompressed)")->check(CLI::Range(0, 19));
  b->add_option("--chunk-size", backup.chunk_size, "plaintext size of one stored object")
      ->check(ByteSizeFlag(64 * 1024, kMaxObjectRawSize));
  AddCommon(b, flags);

  RestoreArgs restore;
  auto* r = app.add_subcommand("restore", "restore a backup into a data directory ready for pg_ctl start");
  AddRepoTargetFlags(r, &restore.target);
  r->add_option("--target-dir", restore.target_dir, "empty or new directory (absolute path)")->required();
  auto* latest = r->add_flag("--latest", restore.latest, "restore to the latest point (default)");
  auto* t = r->add_option("--time", restore.time, "recovery target time (RFC 3339)")
                ->check(CLI::Validator(
                    [](std::string& v) {
                      return ParseRfc3339(v).ok()
                                 ? std::string()
                                 : fmt::format("\"{}\" is not an RFC 3339 time such as 2026-11-30T08:00:00Z", v);
                    },
                    "TIME", "RFC 3339 time"));
  auto* l = r->add_option("--lsn", restore.lsn, "recovery target LSN")
                ->check(CLI::Validator(
                    [](std::string& v) {
                      return Lsn::Parse(v).ok() ? std::string()
                                                : fmt::format("\"{}\" is not an LSN such as 0/3000028", v);
                    },
                    "LSN", "LSN"));
  latest->excludes(t)->excludes(l);
  t->excludes(l);
  r->add_option("--backup-id", restore.backup_id, "restore this backup instead of the newest");
  r->add_option("--key-file", restore.target.key_file, "key for encrypted backups (with --config: the agent's key_file)");
  r->add_option("--private-key", restore.target.private_key, "RSA private key (PEM) for backups written with --public-key");
  r->add_option("--prefetch", restore.prefetch,
                "WAL segments fetched ahead during recovery (default 8; 0: off, one wal-get at a time)")
      ->check(CLI::Range(0, 64));
  r->add_option("--parallel", restore.parallel, "download/decompress workers")->check(CLI::Range(1, 64));
  r->add_option("--tablespace-map", restore.tablespace_map, "OID=DIR: where tablespace OID goes (one for each tablespace of the backup)")
      ->check(TablespaceMapFlag());
  AddCommon(r, flags);

  ListArgs list;
  auto* ab = app.add_subcommand("available-backups", "list the backups in a repository");
  AddRepoTargetFlags(ab, &list.target);
  ab->add_flag("--all", list.all, "every log backup too (default: the WAL coverage of each restore window)");
  AddCommon(ab, flags);

  PurgeArgs purge;
  auto* pg = app.add_subcommand("purge", "apply the retention rule once: delete what no restore in the window needs");
  pg->add_option("--repo", purge.repo, "repository URL")->required();
  pg->add_option("--db", purge.db, "database name in the repository")->required();
  AddOptionFlags(pg, kPurgeVerb, &purge.settings, /*with_default=*/false);
  pg->add_option("--retention", purge.retention, "the same as a duration (7d, 36h, 90m)")->check(DurationFlag());
  pg->add_flag("--dry-run", purge.dry_run, "only print what would be deleted");
  AddCommon(pg, flags);

  ReindexArgs reindex;  // verb_reindex.cc
  auto* ri = AddReindexVerb(app, reindex);
  AddCommon(ri, flags);

  VerifyArgs verify;
  auto* v = app.add_subcommand("verify", "re-read every object and check it");
  AddRepoTargetFlags(v, &verify.target);
  v->add_option("--key-file", verify.target.key_file, "also authenticate encrypted objects");
  v->add_option("--private-key", verify.target.private_key, "RSA private key (PEM) for backups written with --public-key");
  v->add_option("--parallel", verify.parallel, "reader workers")->check(CLI::Range(1, 64));
  AddCommon(v, flags);

  StreamArgs stream;
  auto* st = app.add_subcommand("stream", "capture WAL over the replication protocol until SIGTERM/SIGINT");
  st->add_option("--pg", stream.pg, "libpq connection string of the cluster")->required();
  st->add_option("--repo", stream.repo, "repository URL")->required();
  st->add_option("--db", stream.db, "database name in the repository")->required();
  st->add_option("--slot", stream.slot, "replication slot (default smartbackup_<db>)");
  st->add_option("--key-file", stream.key_file, "encrypt with this key");
  st->add_option("--public-key", stream.public_key, "encrypt with a data key sealed to this RSA public key (PEM)");
  AddOptionFlags(st, kStreamVerb, &stream.settings);
  st->add_flag("--no-loop", stream.no_loop, "exit when the connection is lost instead of reconnecting");
  AddCommon(st, flags);

  WalPushArgs push;
  auto* wp = app.add_subcommand("wal-push", "archive one WAL file (archive_command = 'smartbackup wal-push %p ...')");
  wp->add_option("path", push.path, "the WAL file (%p)")->required();
  wp->add_option("--repo", push.repo, "repository URL")->required();
  wp->add_option("--db", push.db, "database name in the repository")->required();
  wp->add_option("--key-file", push.key_file, "encrypt with this key");
  wp->add_option("--public-key", push.public_key, "encrypt with a data key sealed to this RSA public key (PEM)");
  AddOptionFlags(wp, kWalPushVerb, &push.settings);
  AddCommon(wp, flags);

  WalGetArgs get;
  auto* wg = app.add_subcommand("wal-get", "fetch one WAL file (restore_command = 'smartbackup wal-get %f %p ...')");
  wg->add_option("name", get.name, "the WAL file name (%f)")->required();
  wg->add_option("dest", get.dest, "where to write it (%p)")->required();
  wg->add_option("--repo", get.repo, "repository URL")->required();
  wg->add_option("--db", get.db, "database name in the repository")->required();
  wg->add_option("--sysid", get.sysid, "system identifier of the cluster being restored");
  wg->add_option("--key-file", get.key_file, "key for encrypted WAL");
  wg->add_option("--private-key", get.private_key, "RSA private key (PEM) for WAL written with --public-key");
  wg->add_option("--wal-segment-size", get.wal_segment_size,
                 "the cluster's WAL segment size in bytes (with --sysid: a few storage requests per segment)");
  wg->add_option("--prefetch", get.prefetch, "segments a background worker fetches ahead (0: off)")
      ->check(CLI::Range(0, 64));
  wg->add_option("--spool-dir", get.spool_dir, "where prefetched segments wait (relative to the data directory)");
  AddCommon(wg, flags);
  WalGetArgs prefetch;
  auto* wpf = app.add_subcommand("wal-prefetch", "");  // hidden: the worker wal-get --prefetch starts
  wpf->group("");
  wpf->add_option("--repo", prefetch.repo)->required();
  wpf->add_option("--db", prefetch.db)->required();
  wpf->add_option("--sysid", prefetch.sysid)->required();
  wpf->add_option("--wal-segment-size", prefetch.wal_segment_size)->required();
  wpf->add_option("--prefetch", prefetch.prefetch)->check(CLI::Range(1, 64));
  wpf->add_option("--spool-dir", prefetch.spool_dir)->required();
  wpf->add_option("--key-file", prefetch.key_file);
  wpf->add_option("--private-key", prefetch.private_key);
  AddCommon(wpf, flags);

  std::string config_path;
  auto* ag = app.add_subcommand("agent", "run the managed-backup agent (until SIGTERM/SIGINT)");
  ag->add_option("--config", config_path, "agent configuration file (TOML)")->required();
  AddCommon(ag, flags);

  SetBackupArgs set_db, set_inst;
  auto add_set_flags = [&](CLI::App* verb, SetBackupArgs& a) {
    verb->add_option("--config", a.config, "the agent's configuration file")->required();
    AddOptionFlags(verb, kSetBackupVerbs, &a.settings);
    AddSetFlag(verb, &a.settings);
    AddCommon(verb, flags);
  };
  auto* sdb = app.add_subcommand("set-db-backup", "change a database's managed-backup settings");
  sdb->add_option("db", set_db.db, "database (cluster) name")->required();
  add_set_flags(sdb, set_db);
  auto* sib = app.add_subcommand("set-instance-backup", "change the instance defaults (for clusters found later)");
  add_set_flags(sib, set_inst);

  std::string switch_state, switch_config;
  auto* ms = app.add_subcommand("master-switch", "pause (off) or resume (on) all managed scheduling");
  ms->add_option("state", switch_state, "on or off")->required()->check(CLI::IsMember({"on", "off"}));
  ms->add_option("--config", switch_config, "the agent's configuration file")->required();
  AddCommon(ms, flags);

  std::string od_db, od_type, od_config;
  auto* od = app.add_subcommand("backup-on-demand", "a full or log backup now, in the managed chain");
  od->add_option("db", od_db, "database name")->required();
  od->add_option("--type", od_type, "full or log")->required()->check(CLI::IsMember({"full", "log"}));
  od->add_option("--config", od_config, "the agent's configuration file")->required();
  AddCommon(od, flags);

  std::string dc_db, dc_config;
  auto* dc = app.add_subcommand("db-config", "a database's effective managed-backup settings");
  dc->add_option("db", dc_db, "database name")->required();
  dc->add_option("--config", dc_config, "the agent's configuration file")->required();
  AddCommon(dc, flags);

  std::string ic_config;
  auto* ic = app.add_subcommand("instance-config", "the instance defaults");
  ic->add_option("--config", ic_config, "the agent's configuration file")->required();
  AddCommon(ic, flags);

  std::string health_config, health_since;
  auto* hl = app.add_subcommand("health", "error counts, loops and per-cluster state");
  hl->add_option("--config", health_config, "the agent's configuration file")->required();
  hl->add_option("--since", health_since,
                 "count events since this long ago (30m, 2h, 1d) or this RFC 3339 time (default: 30m)")
      ->check(SinceFlag());
  AddCommon(hl, flags);

  std::string status_config;
  auto* stv = app.add_subcommand("status", "per-cluster state: last backups, restore window, next action and why");
  stv->add_option("--config", status_config, "the agent's configuration file")->required();
  AddCommon(stv, flags);

  bool options_markdown = false;
  auto* op = app.add_subcommand("options", "the managed settings: values, defaults, flags (the README's table)");
  op->add_flag("--markdown", options_markdown, "print the markdown table of README.md");
  AddCommon(op, flags);

  CheckArgs check_args;
  auto* ck = AddCheckVerb(app, &check_args);
  AddCommon(ck, flags);

  std::string key_out;
  auto* gk = app.add_subcommand("generate-key", "write a new random 256-bit key file (mode 0600)");
  gk->add_option("--out", key_out, "path of the new key file")->required();
  AddCommon(gk, flags);

  DrillVerbArgs drill;
  auto* dr = AddDrillVerb(app, drill);

  // A mistyped verb is named as such (CLI11 would say "a subcommand is required").
  std::string verbs;
  bool known = false;
  for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    verbs += (verbs.empty() ? "" : ", ") + sub->get_name();
    known = known || (argc > 1 && sub->get_name() == argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !known) {
    std::fprintf(stderr, "smartbackup: error: unknown verb \"%s\"; hint: one of %s (smartbackup --help)\n", argv[1],
                 verbs.c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "smartbackup 0.1.0\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string verb = app.get_subcommands().empty() ? "" : " " + app.get_subcommands().front()->get_name();
    std::fprintf(stderr, "smartbackup: error: %s; hint: see smartbackup%s --help\n", e.what(), verb.c_str());
    // PostgreSQL reads 2 from restore_command as "no such file" and ends
    // recovery: a wal-get it cannot run must stop recovery instead.
    if (wg->parsed()) return kWalGetFailed;
    return 2;
  }
  log::SetLevel(flags.verbose || drill.verbose ? log::Level::kInfo : log::Level::kWarn);
  if (dr->parsed()) return RunDrillVerb(drill);

  try {
    if (b->parsed()) RunBackupVerb(backup, flags);
    else if (r->parsed()) RunRestoreVerb(restore, flags);
    else if (ab->parsed()) RunAvailableBackupsVerb(list, flags);
    else if (v->parsed()) return RunVerifyVerb(verify, flags);
    else if (ri->parsed()) return RunReindexVerb({reindex.repo, reindex.db, flags.format() == Output::kJson});
    else if (pg->parsed()) RunPurgeVerb(purge, flags);
    else if (gk->parsed()) RunGenerateKeyVerb(key_out);
    else if (ck->parsed()) return Check(RunCheckVerb(check_args, flags.format() == Output::kJson));
    else if (op->parsed()) PrintOptions(options_markdown, flags.format() == Output::kJson);
    else if (st->parsed()) RunStreamVerb(stream, flags);
    else if (wp->parsed()) RunWalPushVerb(push, flags);
    else if (wg->parsed()) return RunWalGetVerb(get);
    else if (wpf->parsed()) return RunWalPrefetchVerb(prefetch);
    else if (ag->parsed()) {
      // The agent logs its decisions, backups and purges at info by default (-v: debug too).
      log::SetLevel(flags.verbose ? log::Level::kDebug : log::Level::kInfo);
      RunAgentVerb(config_path);
    }
    else if (sdb->parsed()) PrintObject(CallAgentJson(set_db.config, "POST", "/v1/db/" + set_db.db + "/config", SetBackupBody(set_db)), flags);
    else if (sib->parsed()) PrintObject(CallAgentJson(set_inst.config, "POST", "/v1/instance-config", SetBackupBody(set_inst)), flags);
    else if (ms->parsed()) PrintObject(CallAgentJson(switch_config, "POST", "/v1/master-switch", json{{"on", switch_state == "on"}}), flags);
    else if (od->parsed()) RunBackupOnDemandVerb(od_config, od_db, od_type, flags);
    else if (dc->parsed()) PrintObject(CallAgentJson(dc_config, "GET", "/v1/db/" + dc_db + "/config"), flags);
    else if (ic->parsed()) PrintObject(CallAgentJson(ic_config, "GET", "/v1/instance-config"), flags);
    else if (hl->parsed()) PrintStatus(CallAgentJson(health_config, "GET", "/v1/health" + (health_since.empty() ? std::string() : "?since=" + SinceTime(health_since))), flags);
    else if (stv->parsed()) PrintStatus(CallAgentJson(status_config, "GET", "/v1/status"), flags);
  } catch (const VerbFailed& f) {
    if (f.status.detail() == StatusDetail::kUsage) {
      // The same exit code and hint as a usage error CLI11 finds while parsing.
      std::fprintf(stderr, "smartbackup: error: %s; hint: see smartbackup %s --help\n", f.status.message().c_str(),
                   app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name().c_str());
      return 2;
    }
    std::fprintf(stderr, "smartbackup: error: %s\n", f.status.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace sb
