#include "cli/verb_drill.h"

#include <unistd.h>

#include <fmt/core.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/api.h"
#include "agent/drill_runner.h"
#include "agent/job_wait.h"
#include "common/logging.h"
#include "common/text.h"
#include "engine/drill/drill.h"
#include "engine/drill/drill_scratch.h"
#include "repo/key_store.h"
#include "repo/public_key.h"
#include "storage/storage_factory.h"

namespace sb {
namespace {

using nlohmann::json;

constexpr const char* kDefaultScratch = "/var/tmp/smartbackup-drills";

int Failed(const Status& s) {
  std::fprintf(stderr, "smartbackup: error: %s\n", s.message().c_str());
  return 1;
}

std::string Absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n <= 0 ? std::string("smartbackup") : std::string(buf, static_cast<size_t>(n));
}

void Print(const json& j, bool as_json) {
  if (as_json) {
    std::cout << j.dump(2) << "\n";
    return;
  }
  const bool passed = j.value("result", "") == "passed";
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number() ? j[k].get<double>() : 0.0; };
  std::cout << fmt::format("drill {} of \"{}\" {}: backup {}, target {}\n", j.value("drill_id", "?"),
                           j.value("database", "?"), passed ? "PASSED" : "FAILED",
                           j["backup_id"].is_string() ? j["backup_id"].get<std::string>() : "-", j.value("target", "?"));
  if (passed) {
    std::cout << fmt::format("  proven point: {}{}\n", j["reached_lsn"].get<std::string>(),
                             j["reached_time"].is_string() ? " (" + j["reached_time"].get<std::string>() + ")" : "");
  }
  std::cout << fmt::format("  restore {:.1f}s, replay {:.1f}s (RTO {:.1f}s), checks {:.1f}s, {} restored\n",
                           num("restore_seconds"), num("replay_seconds"), num("rto_seconds"), num("check_seconds"),
                           FormatByteSize(j.contains("bytes") && j["bytes"].is_number_unsigned() ? j["bytes"].get<uint64_t>() : 0));
  if (!passed && j["error"].is_string()) std::cout << "  cause: " << j["error"].get<std::string>() << "\n";
  if (!passed && j["failed_object"].is_string()) std::cout << "  object: " << j["failed_object"].get<std::string>() << "\n";
}

int RunStandalone(const DrillVerbArgs& a) {
  if (!a.key_file.empty() && !a.private_key.empty()) {
    return Failed(Status::InvalidArgument("--key-file and --private-key exclude each other: give one"));
  }
  DrillOptions o{.database = a.db, .scratch_dir = Absolute(a.scratch_dir.empty() ? kDefaultScratch : a.scratch_dir),
                 .repo_url = a.repo, .key_file = Absolute(a.key_file), .private_key_file = Absolute(a.private_key),
                 .smartbackup_path = SelfPath(), .check_sql = a.check_sql, .parallelism = a.parallel};
  if (!a.time.empty()) {
    auto t = ParseRfc3339(a.time);
    if (!t.ok()) return Failed(t.status());
    o.target = {.kind = RecoveryTarget::Kind::kTime, .time = *t};
  } else if (!a.lsn.empty()) {
    auto l = Lsn::Parse(a.lsn);
    if (!l.ok()) return Failed(l.status());
    o.target = {.kind = RecoveryTarget::Kind::kLsn, .lsn = *l};
  }
  if (Status s = Repository::ValidateDatabaseName(a.db); !s.ok()) return Failed(s);
  std::optional<EncryptionKey> key;
  if (!a.key_file.empty()) {
    auto k = EncryptionKey::LoadFromFile(a.key_file);
    if (!k.ok()) return Failed(k.status());
    key = std::move(*k);
  }
  auto storage = OpenStorage(a.repo);
  if (!storage.ok()) return Failed(storage.status());
  auto repo = Repository::Open(std::move(*storage), /*create=*/false);
  if (!repo.ok()) return Failed(repo.status());
  std::unique_ptr<KeySource> keys;
  if (!a.private_key.empty()) {
    auto ring = PrivateKeyRing::Open((*repo)->storage(), a.private_key);
    if (!ring.ok()) return Failed(ring.status());
    keys = std::move(*ring);
  } else if (key) {
    keys = std::make_unique<EncryptionKey>(std::move(*key));
  }
  (*repo)->SetReadKeys(keys.get());
  o.key = keys.get();
  // Directories of drills whose process died (kill -9) are this run's to clean first.
  for (const auto& d : CleanOrphanDrills(o.scratch_dir).removed) log::Warn("removed the orphaned drill directory {}", d);
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty && a.output != "json") o.progress = [](const std::string& phase) { std::fprintf(stderr, "drill: %s\n", phase.c_str()); };
  DrillOutcome out = RunDrill(**repo, o);
  if (!out.record_status.ok()) log::Warn("the drill's record was not written: {}", out.record_status.message());
  Print(DrillRecordJson(out.record), a.output == "json");
  if (!out.status.ok()) return Failed(out.status);
  return 0;
}

int RunThroughAgent(const DrillVerbArgs& a) {
  auto endpoint = EndpointFromConfig(a.config);
  if (!endpoint.ok()) return Failed(endpoint.status());
  auto token = ReadToken(endpoint->token_path);
  if (!token.ok()) return Failed(token.status());
  auto api = SocketAgentApi(endpoint->socket, *token, std::chrono::seconds(10));
  json body = json::object();
  if (!a.time.empty()) body["time"] = a.time;
  if (!a.lsn.empty()) body["lsn"] = a.lsn;
  auto posted = api->Call("POST", "/v1/db/" + a.db_positional + "/drill", body.dump());
  if (!posted.ok()) return Failed(posted.status());
  auto job = ParseJobView(posted->body);
  if (!job.ok()) return Failed(job.status());
  auto progress = [&](const JobView& j, std::chrono::milliseconds elapsed) {
    if (::isatty(STDERR_FILENO) == 1 && a.output != "json") {
      std::fprintf(stderr, "\r\033[K%s", JobProgressLine(j, elapsed).c_str());
    }
  };
  auto done = WaitForJob(*api, Clock::Real(), *job, {.config_flag = " --config " + a.config}, progress);
  if (::isatty(STDERR_FILENO) == 1 && a.output != "json") std::fprintf(stderr, "\r\033[K");
  if (!done.ok()) {
    // A failed drill's job: the record is in the repository and in status; the cause is the error.
    return Failed(done.status());
  }
  Print(done->result, a.output == "json");
  return done->result.value("result", "") == "passed" ? 0 : 1;
}

}  // namespace

CLI::App* AddDrillVerb(CLI::App& app, DrillVerbArgs& a) {
  auto* d = app.add_subcommand("drill", "prove the backups restore: restore, start, check (pg_amcheck), measure, clean up");
  d->add_option("db", a.db_positional, "database name (with --config: the agent runs the drill)");
  d->add_option("--config", a.config, "the agent's configuration file");
  d->add_option("--repo", a.repo, "repository URL (standalone)");
  d->add_option("--db", a.db, "database name in the repository (standalone)");
  d->add_option("--scratch-dir", a.scratch_dir, std::string("where the copy is restored and removed again (default ") +
                                                    kDefaultScratch + ")");
  auto* latest = d->add_flag("--latest", a.latest, "the newest point (default)");
  auto* t = d->add_option("--time", a.time, "prove this point in time (RFC 3339)");
  auto* l = d->add_option("--lsn", a.lsn, "prove this LSN");
  latest->excludes(t)->excludes(l);
  t->excludes(l);
  d->add_option("--check-sql", a.check_sql, "a query that must return true on the restored copy");
  d->add_option("--key-file", a.key_file, "key for encrypted backups");
  d->add_option("--private-key", a.private_key, "RSA private key (PEM) for backups written with --public-key");
  d->add_option("--parallel", a.parallel, "restore workers")->check(CLI::Range(1, 64));
  d->add_option("--output", a.output, "output format")->check(CLI::IsMember({"text", "json"}));
  d->add_flag("-v,--verbose", a.verbose, "log progress to stderr");
  return d;
}

int RunDrillVerb(const DrillVerbArgs& a) {
  const bool managed = !a.config.empty();
  if (managed == !a.repo.empty() || (managed && a.db_positional.empty()) || (!managed && a.db.empty())) {
    std::fprintf(stderr,
                 "smartbackup: error: drill needs DB --config FILE (through the agent) or --repo URL --db NAME "
                 "(standalone); hint: see smartbackup drill --help\n");
    return 2;
  }
  if (managed && (!a.scratch_dir.empty() || !a.check_sql.empty() || !a.key_file.empty() || !a.private_key.empty())) {
    std::fprintf(stderr,
                 "smartbackup: error: --scratch-dir, --check-sql and key flags are standalone flags; the agent uses "
                 "its drill_* settings; hint: set them with set-db-backup\n");
    return 2;
  }
  return managed ? RunThroughAgent(a) : RunStandalone(a);
}

}  // namespace sb
