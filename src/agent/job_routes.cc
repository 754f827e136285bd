#include "agent/job_routes.h"

#include <fmt/core.h>

#include <charconv>

#include "agent/drill_runner.h"
#include "common/text.h"
#include "repo/repository.h"

namespace sb {
namespace {

using nlohmann::json;

// Paths may hold any bytes: replace invalid UTF-8 rather than throw from dump().
ApiResponse Answer(int status, const json& body) {
  return {.status = status, .body = body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

ApiResponse Error(int status, const std::string& message) { return Answer(status, json{{"error", message}}); }

int HttpStatusOf(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

json Time(const std::optional<SystemTime>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); }

std::optional<int64_t> ParseId(const std::string& text) {
  int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return id;
}

// "a=1&database=main" → the value of `key` ("" when absent).
std::string QueryValue(const std::string& query, const std::string& key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string::npos) end = query.size();
    std::string part = query.substr(pos, end - pos);
    if (StartsWith(part, key + "=")) return part.substr(key.size() + 1);
    pos = end + 1;
  }
  return "";
}

bool IsBackupKind(JobKind kind) {
  return kind == JobKind::kFull || kind == JobKind::kLog || kind == JobKind::kCopyOnly;
}

}  // namespace

json BackupResultJson(const BackupManifest& m) {
  return {{"backup_id", m.backup_id},
          {"type", BackupTypeName(m.type)},
          {"path", Repository::ManifestKey(m.database, m.container, m.backup_id)},
          {"start_lsn", m.start_lsn},
          {"end_lsn", m.end_lsn}};
}

json JobJson(const JobInfo& job) {
  json j = {{"job_id", job.id},
            {"database", job.cluster},
            {"type", JobKindName(job.kind)},
            {"reason", job.reason},
            {"state", JobStateName(job.state)},
            {"description", job.Describe()},
            {"created", FormatRfc3339(job.created)},
            {"started", Time(job.started)},
            {"finished", Time(job.finished)},
            {"cancel_requested", job.cancel_requested},
            {"progress",
             {{"phase", job.progress.phase},
              {"bytes_done", job.progress.bytes_done},
              {"bytes_total", job.progress.bytes_total},
              {"updated", Time(job.progress.updated)}}},
            {"result", nullptr}};
  if (job.state == JobState::kSucceeded && job.output) {
    if (job.output->backup) {
      j["result"] = BackupResultJson(*job.output->backup);
    } else if (job.output->drill) {
      j["result"] = DrillRecordJson(*job.output->drill);
    } else {
      j["result"] = {{"detail", job.output->detail}};
      // A backup job read back from the history keeps only its backup id.
      if (IsBackupKind(job.kind)) j["result"]["backup_id"] = job.output->detail;
    }
  }
  if (IsFinished(job.state) && job.state != JobState::kSucceeded) {
    j["error"] = job.error.message();
    j["error_code"] = StatusCodeName(job.error.code());
  }
  return j;
}

ApiResponse PostBackupJob(JobManager& jobs, const std::string& body,
                          const std::function<Result<int64_t>(JobKind)>& start) {
  json j = json::parse(body, nullptr, false);
  std::string type = j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
  if (type != "full" && type != "log") return Error(400, "backup type must be full or log");
  const JobKind kind = type == "full" ? JobKind::kFull : JobKind::kLog;
  auto id = start(kind);
  if (!id.ok()) return Error(HttpStatusOf(id.status()), id.status().message());
  auto job = jobs.Get(*id);
  if (!job.ok()) return Error(500, job.status().message());
  json out = JobJson(*job);
  out["poll"] = fmt::format("/v1/jobs/{}", *id);
  return Answer(202, out);
}

std::optional<ApiResponse> RouteJobs(JobManager& jobs, const ApiRequest& r) {
  const std::string prefix = "/v1/jobs";
  if (r.path == prefix) {
    if (r.method != "GET") return std::nullopt;
    int limit = 0;
    if (std::string l = QueryValue(r.query, "limit"); !l.empty()) {
      auto n = ParseId(l);
      if (!n || *n <= 0 || *n > 10000) return Error(400, fmt::format("limit \"{}\" is not a number from 1 to 10000", l));
      limit = static_cast<int>(*n);
    }
    json list = json::array();
    for (const JobInfo& job : jobs.List(QueryValue(r.query, "database"), limit)) list.push_back(JobJson(job));
    return Answer(200, json{{"jobs", list}});
  }
  if (!StartsWith(r.path, prefix + "/")) return std::nullopt;
  std::string rest = r.path.substr(prefix.size() + 1);
  bool cancel = false;
  if (EndsWith(rest, "/cancel")) {
    rest.resize(rest.size() - std::string("/cancel").size());
    cancel = true;
  }
  if ((cancel && r.method != "POST") || (!cancel && r.method != "GET")) return std::nullopt;
  auto id = ParseId(rest);
  if (!id) return Error(400, fmt::format("job id \"{}\" is not a number", Printable(rest)));
  if (cancel) {
    if (Status s = jobs.Cancel(*id); !s.ok()) return Error(HttpStatusOf(s), s.message());
  }
  auto job = jobs.Get(*id);
  if (!job.ok()) return Error(HttpStatusOf(job.status()), job.status().message());
  return Answer(200, JobJson(*job));
}

}  // namespace sb
