#include "agent/job_wait.h"

#include <fmt/core.h>

#include <optional>

#include "common/text.h"

namespace sb {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class SocketApi final : public AgentApi {
 public:
  SocketApi(std::string socket, std::string token, std::chrono::seconds read_timeout)
      : socket_(std::move(socket)), token_(std::move(token)), read_timeout_(read_timeout) {}
  Result<ApiResponse> Call(const std::string& method, const std::string& path, const std::string& body) override {
    return CallAgent(socket_, token_, method, path, body, read_timeout_);
  }
  std::string Describe() const override { return "the agent at " + socket_; }

 private:
  std::string socket_, token_;
  std::chrono::seconds read_timeout_;
};

class HandlerApi final : public AgentApi {
 public:
  HandlerApi(ApiHandler handler, std::string description)
      : handler_(std::move(handler)), description_(std::move(description)) {}
  Result<ApiResponse> Call(const std::string& method, const std::string& path, const std::string& body) override {
    ApiRequest r{.method = method, .path = path, .body = body};
    if (auto q = path.find('?'); q != std::string::npos) {
      r.path = path.substr(0, q);
      r.query = path.substr(q + 1);
    }
    ApiResponse out = handler_(r);
    RETURN_IF_ERROR(StatusFromResponse(out));
    return out;
  }
  std::string Describe() const override { return description_; }

 private:
  ApiHandler handler_;
  std::string description_;
};

std::optional<StatusCode> CodeNamed(const std::string& name) {
  for (int c = static_cast<int>(StatusCode::kOk); c <= static_cast<int>(StatusCode::kInternal); ++c) {
    if (name == StatusCodeName(static_cast<StatusCode>(c))) return static_cast<StatusCode>(c);
  }
  return std::nullopt;
}

// "full backup" for "full": how messages name a job's kind.
std::string Noun(const std::string& type) {
  if (type == "full" || type == "log") return type + " backup";
  if (type == "copy_only") return "copy-only backup";
  return type + " job";
}

std::string Compact(milliseconds d) {
  const int64_t s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

// The agent is gone (or forgot the job) while it was unfinished: nothing can be said of the backup.
Status FateUnknown(const AgentApi& api, const JobView& job, const JobWaitOptions& options, const std::string& what) {
  return Status::Unavailable(
             fmt::format("{} {} while job {} ({} of \"{}\") was {}; the backup's fate is unknown; hint: once the "
                         "agent is back, smartbackup status{} shows whether it still runs and smartbackup "
                         "available-backups --repo URL --db {} whether it was written",
                         api.Describe(), what, job.id, Noun(job.type), job.database, JobStateName(job.state),
                         options.config_flag, job.database))
      .WithDetail(StatusDetail::kNoAnswer);
}

}  // namespace

std::unique_ptr<AgentApi> SocketAgentApi(std::string socket, std::string token, std::chrono::seconds read_timeout) {
  return std::make_unique<SocketApi>(std::move(socket), std::move(token), read_timeout);
}

std::unique_ptr<AgentApi> HandlerAgentApi(ApiHandler handler, std::string description) {
  return std::make_unique<HandlerApi>(std::move(handler), std::move(description));
}

Result<JobView> ParseJobView(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  auto bad = [](const std::string& why) {
    return Status::Internal("the agent's job answer is not understood: " + why +
                            "; hint: the CLI and the agent must be the same smartbackup version");
  };
  if (!j.is_object()) return bad("not a JSON object");
  if (!j.contains("job_id") || !j["job_id"].is_number_integer()) return bad("no job_id");
  if (!j.contains("state") || !j["state"].is_string()) return bad("no state");
  JobView v;
  v.id = j["job_id"].get<int64_t>();
  auto state = ParseJobState(j["state"].get<std::string>());
  if (!state) return bad("unknown state \"" + Printable(j["state"].get<std::string>()) + "\"");
  v.state = *state;
  v.database = j.value("database", "");
  v.type = j.value("type", "");
  if (j.contains("progress") && j["progress"].is_object()) {
    const json& p = j["progress"];
    v.phase = p.value("phase", "");
    v.bytes_done = p.value("bytes_done", uint64_t{0});
    v.bytes_total = p.value("bytes_total", uint64_t{0});
  }
  if (j.contains("result")) v.result = j["result"];
  v.error = j.value("error", "");
  v.error_code = CodeNamed(j.value("error_code", "")).value_or(StatusCode::kInternal);
  return v;
}

std::string JobProgressLine(const JobView& job, milliseconds elapsed) {
  std::string what = job.state == JobState::kRunning ? (job.phase.empty() ? "running" : job.phase)
                                                      : JobStateName(job.state);
  std::string bytes;
  if (job.bytes_total > 0) {
    // The server's estimate: the bytes may pass it (the WAL it adds), so the share stops at 99%.
    uint64_t pct = std::min<uint64_t>(99, job.bytes_done * 100 / job.bytes_total);
    bytes = fmt::format(", {} of ~{} ({}%)", FormatByteSize(job.bytes_done), FormatByteSize(job.bytes_total), pct);
  } else if (job.bytes_done > 0) {
    bytes = ", " + FormatByteSize(job.bytes_done);
  }
  return fmt::format("{} of \"{}\" (job {}): {}{}, {}", Noun(job.type), job.database, job.id, what, bytes,
                     Compact(elapsed));
}

Result<JobView> WaitForJob(AgentApi& api, Clock* clock, const JobView& started, const JobWaitOptions& options,
                           const JobProgressFn& on_progress) {
  const SteadyTime begin = clock->SteadyNow();
  bool unanswered = false;  // since unanswered_since (a plain pair: gcc's -Wmaybe-uninitialized trips on optional)
  SteadyTime unanswered_since = begin;
  JobView job = started;
  const std::string path = fmt::format("/v1/jobs/{}", job.id);
  while (!IsFinished(job.state)) {
    if (on_progress) on_progress(job, std::chrono::duration_cast<milliseconds>(clock->SteadyNow() - begin));
    clock->SleepFor(options.poll_interval);
    auto answer = api.Call("GET", path, "");
    if (answer.ok()) {
      ASSIGN_OR_RETURN(job, ParseJobView(answer->body));
      unanswered = false;
      continue;
    }
    switch (answer.status().code()) {
      case StatusCode::kUnavailable:  // not running, or not answering: it may be restarting
        if (!unanswered) unanswered_since = clock->SteadyNow();
        unanswered = true;
        if (clock->SteadyNow() - unanswered_since >= options.unanswered_limit) {
          return FateUnknown(api, job, options, "stopped answering");
        }
        continue;
      case StatusCode::kNotFound:  // a restarted agent that has no record of it
        return FateUnknown(api, job, options, "no longer knows the job it answered for");
      default:
        return answer.status();
    }
  }
  switch (job.state) {
    case JobState::kSucceeded: return job;
    case JobState::kInterrupted:
      return Status::Unavailable(fmt::format(
          "job {} ({} of \"{}\") was interrupted: {}; hint: smartbackup available-backups --repo URL --db {} shows "
          "whether a backup was written; run backup-on-demand again",
          job.id, Noun(job.type), job.database, job.error.empty() ? "the agent stopped" : job.error, job.database));
    default:
      return Status(job.error_code, job.error.empty() ? fmt::format("job {} {}", job.id, JobStateName(job.state))
                                                      : job.error);
  }
}

Result<json> BackupOnDemand(AgentApi& api, Clock* clock, const std::string& database, const std::string& type,
                            const JobWaitOptions& options, const JobProgressFn& on_progress) {
  auto posted = api.Call("POST", "/v1/db/" + database + "/backup", json{{"type", type}}.dump());
  if (!posted.ok()) {
    if (posted.status().detail() != StatusDetail::kNoAnswer) return posted.status();
    return Status::Unavailable(fmt::format("{} stopped answering as it was asked for a {} of \"{}\"; whether the "
                                           "backup started is unknown; hint: once the agent is back, smartbackup "
                                           "status{} shows whether it runs",
                                           api.Describe(), Noun(type), database, options.config_flag))
        .WithDetail(StatusDetail::kNoAnswer);
  }
  ASSIGN_OR_RETURN(JobView job, ParseJobView(posted->body));
  ASSIGN_OR_RETURN(JobView done, WaitForJob(api, clock, job, options, on_progress));
  return done.result;
}

}  // namespace sb
