#include "agent/drill_routes.h"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "agent/drill_runner.h"
#include "agent/job_routes.h"
#include "common/text.h"

namespace sb {
namespace {

using nlohmann::json;

ApiResponse Answer(int status, const json& body) {
  return {.status = status, .body = body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

}  // namespace

ApiResponse PostDrillJob(const AgentContext& ctx, Cluster& c, const std::string& body) {
  json j = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (!j.is_object()) return Answer(400, {{"error", "the drill request must be a JSON object"}});
  std::optional<RecoveryTarget> target;
  if (j.contains("time") && j["time"].is_string()) {
    auto t = ParseRfc3339(j["time"].get<std::string>());
    if (!t.ok()) return Answer(400, {{"error", t.status().message()}});
    target = RecoveryTarget{.kind = RecoveryTarget::Kind::kTime, .time = *t};
  } else if (j.contains("lsn") && j["lsn"].is_string()) {
    auto l = Lsn::Parse(j["lsn"].get<std::string>());
    if (!l.ok()) return Answer(400, {{"error", l.status().message()}});
    target = RecoveryTarget{.kind = RecoveryTarget::Kind::kLsn, .lsn = *l};
  }
  auto id = DrillRunner(ctx).Start(c, ctx.Resolve(c.name), "on demand", target);
  if (!id.ok()) {
    return Answer(id.status().code() == StatusCode::kAlreadyExists ? 409 : 500, {{"error", id.status().message()}});
  }
  auto job = ctx.jobs->Get(*id);
  if (!job.ok()) return Answer(500, {{"error", job.status().message()}});
  json out = JobJson(*job);
  out["poll"] = fmt::format("/v1/jobs/{}", *id);
  return Answer(202, out);
}

}  // namespace sb
