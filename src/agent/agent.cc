#include "agent/agent.h"

#include <fmt/core.h>

#include <filesystem>

#include "agent/agent_context.h"
#include "agent/agent_identity.h"
#include "agent/api_routes.h"
#include "agent/backup_runner.h"
#include "agent/cluster_controller.h"
#include "agent/cluster_registry.h"
#include "agent/http_listener.h"
#include "agent/monitor_routes.h"
#include "agent/drill_runner.h"
#include "agent/job_actions.h"
#include "agent/peer_monitor.h"
#include "agent/retention_pass.h"
#include "agent/server_probe.h"
#include "agent/wal_capture.h"
#include "common/logging.h"

namespace sb {

// The parts, wired once; each has one job (see its header).
struct Agent::Impl {
  explicit Impl(AgentContext context)
      : ctx(std::move(context)),
        clusters(ctx),
        runner(ctx),
        capture(ctx, runner),
        actions(ctx, runner, capture),
        peers(ctx),
        controller(ctx, *ServerProbe::Real(), actions, &peers),
        retention(ctx),
        routes(ctx, clusters, runner, peers),
        monitor(ctx, clusters) {}

  void BackupLoop() {
    clusters.Refresh();
    const bool master_on = ctx.MasterSwitchOn();
    for (Cluster* c : clusters.Snapshot()) controller.Step(*c, master_on);
    ctx.Event("", HealthCategory::kBackupLoop, "backup loop");
  }

  void RetentionLoop() {
    if (!ctx.MasterSwitchOn()) return;  // the master switch pauses purging and checks too
    for (Cluster* c : clusters.Snapshot()) retention.Run(*c);
    ctx.Event("", HealthCategory::kRetentionLoop, "retention loop");
  }

  void Shutdown() {
    for (Cluster* c : clusters.Snapshot()) {
      actions.Shutdown(*c);
      // A drill proves nothing once asked to stop: cancelled, it cleans up and writes no record.
      if (auto drill = ctx.jobs->Active(c->name, JobKind::kDrill)) (void)ctx.jobs->Cancel(drill->id);
    }
    ctx.jobs->Shutdown();  // waits for running backups; queued ones are cancelled
  }

  AgentContext ctx;
  std::string token;
  std::unique_ptr<ApiServer> api;
  ClusterRegistry clusters;
  BackupRunner runner;
  WalCapture capture;
  JobActions actions;
  PeerMonitor peers;
  ClusterController controller;
  RetentionPass retention;
  ApiRoutes routes;
  MonitorRoutes monitor;                  // GET /metrics, / and /overview.json
  std::unique_ptr<HttpListener> listener;  // [agent] http_listen; null when off
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Agent::~Agent() {
  if (impl_) impl_->Shutdown();
}

Result<std::unique_ptr<Agent>> Agent::Create(AgentConfig config, Clock* clock) {
  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  if (ec) return Status::IoError(fmt::format("cannot create state_dir \"{}\": {}", config.state_dir, ec.message()));
  AgentContext ctx;
  ctx.clock = clock;
  ASSIGN_OR_RETURN(ctx.store, StateStore::Open(config.state_dir + "/state.db"));
  RETURN_IF_ERROR(ctx.store->MarkInterruptedJobs(clock->Now()));
  ctx.jobs = std::make_unique<JobManager>(ctx.store.get(), clock,
                                          JobManagerOptions{.max_running = {{JobKind::kFull, config.max_parallel_fulls}}});
  ctx.stats->SetStarted(clock->Now());
  ctx.jobs->SetFinishObserver([stats = ctx.stats](const JobInfo& job) { stats->NoteJob(job); });
  ASSIGN_OR_RETURN(ctx.agent_id, LoadOrCreateAgentId(config.state_dir));
  ctx.config = std::move(config);
  auto impl = std::make_unique<Impl>(std::move(ctx));
  ASSIGN_OR_RETURN(impl->token, LoadOrCreateToken(impl->ctx.config.state_dir + "/api.token"));
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Status Agent::Run(const std::atomic<bool>& stop) {
  AgentContext& ctx = impl_->ctx;
  ASSIGN_OR_RETURN(impl_->api, ApiServer::Start(ctx.config.socket, impl_->token,
                                                [this](const ApiRequest& r) { return impl_->routes.Handle(r); }));
  if (!ctx.config.http_listen.empty()) {
    ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress(ctx.config.http_listen));
    auto listener = HttpListener::Start(address, [this](const std::string& path) { return impl_->monitor.Handle(path); });
    if (!listener.ok()) {
      impl_->api->Stop();
      return listener.status();
    }
    impl_->listener = std::move(listener).value();
  }
  log::Info("agent started: socket {}, state {}", ctx.config.socket, ctx.config.state_dir);
  {  // Drills a killed agent left behind: their servers stopped, their directories removed.
    std::vector<std::string> scratch = {DrillRunner::ScratchDir(ctx, ctx.Resolve(""))};
    for (const auto& entry : ctx.config.clusters) scratch.push_back(DrillRunner::ScratchDir(ctx, ctx.Resolve(entry.name)));
    DrillRunner(ctx).CleanOrphans(scratch);
  }
  SteadyTime next_retention = ctx.clock->SteadyNow();
  while (!stop) {
    impl_->BackupLoop();
    if (ctx.clock->SteadyNow() >= next_retention) {
      impl_->RetentionLoop();
      next_retention = ctx.clock->SteadyNow() + ctx.config.loop_interval;
    }
    const SteadyTime wake = ctx.clock->SteadyNow() + ctx.config.loop_interval;
    while (!stop && ctx.clock->SteadyNow() < wake) ctx.clock->SleepFor(std::chrono::milliseconds(100));
  }
  log::Info("agent stopping: flushing WAL capture and waiting for running backups");
  if (impl_->listener) impl_->listener->Stop();
  impl_->api->Stop();
  impl_->Shutdown();
  return Status::Ok();
}

void Agent::BackupLoopOnce() { impl_->BackupLoop(); }
void Agent::RetentionLoopOnce() { impl_->RetentionLoop(); }
ApiResponse Agent::HandleApi(const ApiRequest& request) { return impl_->routes.Handle(request); }

Result<AgentEndpoint> EndpointFromConfig(const std::string& config_path) {
  ASSIGN_OR_RETURN(AgentConfig config, LoadAgentConfig(config_path));
  return AgentEndpoint{.socket = config.socket, .token_path = config.state_dir + "/api.token"};
}

}  // namespace sb
