#include "agent/api_routes.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "agent/competing_tools.h"
#include "agent/job_actions.h"
#include "agent/drill_routes.h"
#include "agent/job_routes.h"
#include "agent/status_view.h"
#include "common/logging.h"
#include "common/text.h"
#include "engine/wal/wal_archive.h"
#include "pg/connection.h"
#include "repo/public_key.h"

namespace sb {
namespace {

using nlohmann::json;

// Messages quote request paths, which may be any bytes: replace invalid UTF-8 rather than let
// dump() throw out of the handler (found by fuzz_api).
ApiResponse Error(int status, const std::string& message) {
  return {.status = status, .body = json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// Archive mode: PostgreSQL's archive_command must be smartbackup's.
std::optional<std::string> ForeignArchiveCommand(const std::string& conninfo) {
  auto conn = PgConnection::Connect(conninfo, false);
  if (!conn.ok()) return std::nullopt;
  auto info = ReadServerInfo(**conn);
  if (!info.ok() || IsSmartbackupArchiveCommand(info->archive_command)) return std::nullopt;
  return info->archive_command;
}

bool Enabled(const PartialSettings& p) { return p.count("enabled") && p.at("enabled") == "true"; }

}  // namespace

Result<PartialSettings> MergeSettingsRequest(const PartialSettings& current, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument("request body is not a JSON object");
  PartialSettings next = current;
  if (j.contains("settings") && j["settings"].is_object()) {
    for (auto& [k, v] : j["settings"].items()) {
      std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      ASSIGN_OR_RETURN(std::string canonical, ValidateOption(k, text));
      next[k] = canonical;
    }
  }
  if (j.contains("enable") && j["enable"].is_boolean()) next["enabled"] = j["enable"].get<bool>() ? "true" : "false";
  RETURN_IF_ERROR(ValidateSettings(next));
  return next;
}

Status ApiRoutes::CheckUsable(const ClusterSettings& s, const std::string& conninfo) {
  if (!s.enabled) return Status::Ok();
  auto repo = ctx_.OpenRepo(s.storage_url);
  if (!repo.ok()) return repo.status().WithContext(fmt::format("storage {} is not usable", s.storage_url));
  if (!s.key_file.empty() && !s.public_key.empty()) {
    return Status::InvalidArgument("key_file and public_key exclude each other: set one");
  }
  if (!s.key_file.empty()) RETURN_IF_ERROR(EncryptionKey::LoadFromFile(s.key_file).status());
  if (!s.public_key.empty()) RETURN_IF_ERROR(PublicKeyFingerprint(s.public_key).status());
  if (!conninfo.empty()) RETURN_IF_ERROR(peers_.CheckSameStorageAsPrimary(s, conninfo));
  if (!conninfo.empty() && s.mode == WalMode::kArchive) {
    if (auto foreign = ForeignArchiveCommand(conninfo)) {
      return Status::FailedPrecondition(fmt::format(
          "cannot enable archive mode: {}, not smartbackup wal-push; log shipping or another "
          "tool owns the WAL; hint: use mode = stream, which coexists through its own replication slot",
          DescribeForeignArchiveCommand(*foreign)));
    }
  }
  return Status::Ok();
}

ApiResponse ApiRoutes::Handle(const ApiRequest& r) {
  if (r.method == "GET" && r.path == "/v1/status") return Status_();
  if (r.method == "GET" && r.path == "/v1/health") return Health(r);
  if (r.path == "/v1/master-switch" && r.method == "POST") return MasterSwitch(r);
  if (r.path == "/v1/instance-config") return InstanceConfig(r);
  if (StartsWith(r.path, "/v1/db/")) return DatabaseRoute(r);
  if (auto answer = RouteJobs(*ctx_.jobs, r)) return *answer;
  return Error(404, fmt::format("no such API route {} {}", r.method, r.path));
}

ApiResponse ApiRoutes::Status_() {
  json j = {{"master_switch", ctx_.MasterSwitchOn()}, {"clusters", json::array()}};
  for (Cluster* c : clusters_.Snapshot()) j["clusters"].push_back(StatusJson(*c, *ctx_.clock));
  return {.body = j.dump()};
}

ApiResponse ApiRoutes::Health(const ApiRequest& r) {
  SystemTime since = ctx_.clock->Now() - std::chrono::minutes(30);
  if (StartsWith(r.query, "since=")) {
    // A since= that is not a time is refused, not replaced by the default.
    auto t = ParseRfc3339(r.query.substr(6));
    if (!t.ok()) {
      return Error(400, fmt::format("since \"{}\" is not an RFC 3339 time such as 2026-11-30T08:00:00Z",
                                    r.query.substr(6)));
    }
    since = *t;
  }
  return {.body = HealthJson(ctx_, since, clusters_.Snapshot()).dump()};
}

ApiResponse ApiRoutes::MasterSwitch(const ApiRequest& r) {
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("on") || !j["on"].is_boolean()) return Error(400, "expected {\"on\": true|false}");
  const bool on = j["on"].get<bool>();
  Status s = ctx_.store->SetMasterSwitch(on);
  if (!s.ok()) return Error(500, s.message());
  log::Info("master switch {}", on ? "on: scheduling resumed" : "off: scheduling paused");
  return {.body = json{{"master_switch", on}}.dump()};
}

ApiResponse ApiRoutes::InstanceConfig(const ApiRequest& r) {
  if (r.method == "POST") {
    auto saved = ctx_.store->LoadInstanceDefaults();
    PartialSettings current = saved.ok() && *saved ? **saved : PartialSettings{};
    auto next = MergeSettingsRequest(current, r.body);
    if (!next.ok()) return Error(400, next.status().message());
    PartialSettings effective = ctx_.config.defaults;
    for (const auto& [k, v] : *next) effective[k] = v;
    Status usable = CheckUsable(ResolveSettings(effective, {}), "");
    if (!usable.ok()) return Error(400, usable.message());
    Status s = ctx_.store->SaveInstanceDefaults(*next);
    if (!s.ok()) return Error(500, s.message());
    if (Enabled(current) != Enabled(*next)) {
      log::Info("{}", Enabled(*next) ? "instance defaults enabled: clusters found from now on are managed with them"
                                     : "instance defaults disabled: clusters found from now on are not managed "
                                       "(settings kept; clusters already known are unchanged)");
    }
  }
  return {.body = SettingsJson(ResolveSettings(ctx_.InstanceDefaults(), {})).dump()};
}

ApiResponse ApiRoutes::DatabaseRoute(const ApiRequest& r) {
  const std::string rest = r.path.substr(std::string_view("/v1/db/").size());
  const auto slash = rest.find('/');
  const std::string name = rest.substr(0, slash);
  const std::string what = slash == std::string::npos ? "" : rest.substr(slash + 1);
  Cluster* c = clusters_.Find(name);
  if (!c) return Error(404, fmt::format("unknown database \"{}\"; hint: add it as a [[cluster]] in the config", name));
  if (what == "config") return DatabaseConfig(r, *c);
  if (what == "backup" && r.method == "POST") return BackupOnDemand(*c, r.body);
  if (what == "drill" && r.method == "POST") return PostDrillJob(ctx_, *c, r.body);  // drill_routes.h
  return Error(404, fmt::format("no such API route {} {}", r.method, r.path));
}

ApiResponse ApiRoutes::DatabaseConfig(const ApiRequest& r, Cluster& c) {
  if (r.method == "POST") {
    auto saved = ctx_.store->LoadClusterOverrides();
    PartialSettings current = saved.ok() && saved->count(c.name) ? saved->at(c.name) : PartialSettings{};
    auto next = MergeSettingsRequest(current, r.body);
    if (!next.ok()) return Error(400, next.status().message());
    PartialSettings cfg = ctx_.ConfigOverrides(c.name);
    for (const auto& [k, v] : *next) cfg[k] = v;
    Status usable = CheckUsable(ResolveSettings(ctx_.config.defaults, cfg), c.conninfo);
    if (!usable.ok()) return Error(400, usable.message());
    Status s = ctx_.store->SaveClusterOverrides(c.name, *next);
    if (!s.ok()) return Error(500, s.message());
  }
  json j = SettingsJson(ctx_.Resolve(c.name));
  j["database"] = c.name;
  return {.body = j.dump()};
}

// Answers at once with the job (202); backup-on-demand waits on GET /v1/jobs/ID.
ApiResponse ApiRoutes::BackupOnDemand(Cluster& c, const std::string& body) {
  return PostBackupJob(*ctx_.jobs, body, [this, &c](JobKind kind) {
    const ClusterSettings s = ctx_.Resolve(c.name);
    if (kind == JobKind::kFull) {
      return StartBackupJob(ctx_, c, kind, "on demand", [this, &c, s](JobContext& job) {
        return runner_.RunFull(c, s, {.reason = "on demand", .job = &job});
      });
    }
    return StartBackupJob(ctx_, c, kind, "on demand", [this, &c, s](JobContext& job) {
      job.SetPhase("sealing captured WAL");
      return runner_.RunLog(c, s, "on demand");
    });
  });
}

}  // namespace sb
