// The operator's view without a server: the Prometheus families and values
// rendered from a fake state (ManualClock times, a hand-made catalog view,
// agent and storage counters), the figures read from a Cluster's typed state,
// the listener's address grammar and [agent] http_listen, and the listener's
// read-only contract (GET only) on a loopback port.
#include "agent/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "agent/agent_config.h"
#include "agent/http_listener.h"
#include "agent/monitor_page.h"
#include "agent/monitor_routes.h"

namespace sb {
namespace {

using namespace std::chrono_literals;

const SystemTime kNow = SystemTime{} + std::chrono::seconds(1'800'000'000);

// The value of the series whose line starts with `series` ("name{labels}" exactly as rendered).
std::optional<double> Value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

bool HasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

double Unix(SystemTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

MetricsSources FakeState() {
  MetricsSources s;
  s.now = kNow;
  ClusterFigures c;
  c.database = "main";
  c.enabled = true;
  c.condition = Condition::kOk;
  c.failing[Activity::kCapture] = true;
  c.capture_running = true;
  c.last_full = kNow - 2h;
  c.last_log = kNow - 10min;
  c.recovery_point = kNow - 30s;
  c.window = RestoreWindow{.base_backup_id = "F1", .start_time = kNow - 2h, .end_time = kNow - 30s};
  c.chain_broken = true;
  c.catalog.loaded = true;
  c.catalog.bases.push_back({.backup_id = "F1", .type = BackupType::kFull, .start_time = kNow - 2h - 90s,
                             .finish_time = kNow - 2h, .size_bytes = 1000, .stored_bytes = 400});
  c.catalog.logs.push_back({.backup_id = "L1", .type = BackupType::kLog, .start_time = kNow - 10min - 2s,
                            .finish_time = kNow - 10min, .size_bytes = 50, .stored_bytes = 20});
  c.catalog.log_count = 7;
  c.catalog.windows.push_back(*c.window);
  c.catalog.gaps.push_back({});
  c.catalog.full_stored_bytes = 400;
  c.catalog.wal_stored_bytes = 1234;
  s.clusters.push_back(c);

  AgentStats stats(kNow - 1h);
  stats.NoteEvent("main", HealthCategory::kStorageError, kNow - 5min);
  stats.NoteEvent("main", HealthCategory::kStorageError, kNow - 4min);
  stats.NoteEvent("main", HealthCategory::kChainBreak, kNow - 3min);
  stats.NoteEvent("", HealthCategory::kBackupLoop, kNow - 2s);
  stats.NoteEvent("", HealthCategory::kRetentionLoop, kNow - 9s);
  JobInfo full{.kind = JobKind::kFull, .cluster = "main", .state = JobState::kSucceeded,
               .started = kNow - 2h - 90s, .finished = kNow - 2h};
  stats.NoteJob(full);
  JobInfo failed{.kind = JobKind::kLog, .cluster = "main", .state = JobState::kFailed,
                 .started = kNow - 1min, .finished = kNow - 50s};
  stats.NoteJob(failed);
  stats.NoteDrill({.database = "main", .passed = false, .at = kNow - 3h});
  stats.NoteDrill({.database = "main", .passed = true, .at = kNow - 1h, .restore_seconds = 12.5,
                   .replay_seconds = 3, .bytes = 5000});
  s.agent = stats.Snapshot();

  StorageStats storage;
  storage.Record(StorageOp::kPut, StorageOutcome::kOk, 0.03, 0, 4096);
  storage.Record(StorageOp::kGet, StorageOutcome::kNotFound, 0.002, 0, 0);
  storage.NoteRetry(StorageOp::kPut);
  for (int i = 0; i < kStorageOpCount; ++i) s.storage[static_cast<size_t>(i)] = storage.Counts(static_cast<StorageOp>(i));
  s.jobs_queued = 3;
  s.jobs_running[JobKind::kFull] = 2;
  return s;
}

TEST(MetricsTest, PerClusterGaugesComeFromTheTypedState) {
  const std::string text = RenderMetrics(FakeState());
  const std::string db = "{database=\"main\"}";
  EXPECT_EQ(Value(text, "smartbackup_last_full_backup_timestamp_seconds" + db), Unix(kNow - 2h));
  EXPECT_EQ(Value(text, "smartbackup_last_log_backup_timestamp_seconds" + db), Unix(kNow - 10min));
  EXPECT_EQ(Value(text, "smartbackup_recovery_point_timestamp_seconds" + db), Unix(kNow - 30s));
  EXPECT_EQ(Value(text, "smartbackup_recovery_point_age_seconds" + db), 30);
  EXPECT_EQ(Value(text, "smartbackup_restore_window_start_timestamp_seconds" + db), Unix(kNow - 2h));
  EXPECT_EQ(Value(text, "smartbackup_restore_window_end_timestamp_seconds" + db), Unix(kNow - 30s));
  EXPECT_EQ(Value(text, "smartbackup_restore_windows" + db), 1);
  EXPECT_EQ(Value(text, "smartbackup_chain_broken" + db), 1);
  EXPECT_EQ(Value(text, "smartbackup_chain_gaps" + db), 1);
  EXPECT_EQ(Value(text, "smartbackup_cluster_enabled" + db), 1);
  EXPECT_EQ(Value(text, "smartbackup_wal_capture_running" + db), 1);
  EXPECT_EQ(Value(text, "smartbackup_cluster_condition{condition=\"ok\",database=\"main\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_cluster_condition{condition=\"failing\",database=\"main\"}"), 0);
  EXPECT_EQ(Value(text, "smartbackup_cluster_failing{activity=\"capture\",database=\"main\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_cluster_failing{activity=\"full_backup\",database=\"main\"}"), 0);
  EXPECT_EQ(Value(text, "smartbackup_backups{database=\"main\",type=\"full\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_backups{database=\"main\",type=\"log\"}"), 7);  // every log, not only the kept marks
  EXPECT_EQ(Value(text, "smartbackup_last_backup_duration_seconds{database=\"main\",type=\"full\"}"), 90);
  EXPECT_EQ(Value(text, "smartbackup_last_backup_duration_seconds{database=\"main\",type=\"log\"}"), 2);
  EXPECT_EQ(Value(text, "smartbackup_last_backup_size_bytes{database=\"main\",type=\"full\"}"), 1000);
  EXPECT_EQ(Value(text, "smartbackup_repository_stored_bytes{database=\"main\",type=\"full\"}"), 400);
  EXPECT_EQ(Value(text, "smartbackup_repository_stored_bytes{database=\"main\",type=\"wal\"}"), 1234);
  EXPECT_TRUE(HasLine(text, "# TYPE smartbackup_last_full_backup_timestamp_seconds gauge"));
}

TEST(MetricsTest, AgentCountersHeartbeatsAndJobs) {
  const std::string text = RenderMetrics(FakeState());
  EXPECT_EQ(Value(text, "smartbackup_agent_start_time_seconds"), Unix(kNow - 1h));
  EXPECT_EQ(Value(text, "smartbackup_loop_last_run_timestamp_seconds{loop=\"backup\"}"), Unix(kNow - 2s));
  EXPECT_EQ(Value(text, "smartbackup_loop_last_run_timestamp_seconds{loop=\"retention\"}"), Unix(kNow - 9s));
  EXPECT_EQ(Value(text, "smartbackup_loop_runs_total{loop=\"backup\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_health_events_total{category=\"storage_error\",database=\"main\"}"), 2);
  EXPECT_EQ(Value(text, "smartbackup_chain_breaks_total{database=\"main\"}"), 1);
  // Heartbeats are not health events.
  EXPECT_EQ(text.find("category=\"backup_loop\""), std::string::npos);
  EXPECT_EQ(Value(text, "smartbackup_jobs_queued"), 3);
  EXPECT_EQ(Value(text, "smartbackup_jobs_running{kind=\"full\"}"), 2);
  EXPECT_EQ(Value(text, "smartbackup_jobs_running{kind=\"log\"}"), 0);
  EXPECT_EQ(Value(text, "smartbackup_jobs_total{database=\"main\",kind=\"full\",result=\"succeeded\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_jobs_total{database=\"main\",kind=\"log\",result=\"failed\"}"), 1);
  // The succeeded full took 90 s: in the le=120 bucket, not in le=60; the histogram is cumulative.
  EXPECT_EQ(Value(text, "smartbackup_job_duration_seconds_bucket{database=\"main\",kind=\"full\",le=\"60\"}"), 0);
  EXPECT_EQ(Value(text, "smartbackup_job_duration_seconds_bucket{database=\"main\",kind=\"full\",le=\"120\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_job_duration_seconds_bucket{database=\"main\",kind=\"full\",le=\"+Inf\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_job_duration_seconds_sum{database=\"main\",kind=\"full\"}"), 90);
  EXPECT_TRUE(HasLine(text, "# TYPE smartbackup_job_duration_seconds histogram"));
  EXPECT_TRUE(HasLine(text, "# TYPE smartbackup_jobs_total counter"));
}

TEST(MetricsTest, DrillFiguresFromTheDrillHook) {
  const std::string text = RenderMetrics(FakeState());
  EXPECT_EQ(Value(text, "smartbackup_drills_total{database=\"main\",result=\"passed\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_drills_total{database=\"main\",result=\"failed\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_last_drill_timestamp_seconds{database=\"main\"}"), Unix(kNow - 1h));
  EXPECT_EQ(Value(text, "smartbackup_last_drill_passed{database=\"main\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_last_drill_restore_duration_seconds{database=\"main\"}"), 12.5);
  EXPECT_EQ(Value(text, "smartbackup_last_drill_replay_duration_seconds{database=\"main\"}"), 3);
  EXPECT_EQ(Value(text, "smartbackup_last_drill_restored_bytes{database=\"main\"}"), 5000);
}

TEST(MetricsTest, StorageCountersByOperation) {
  const std::string text = RenderMetrics(FakeState());
  EXPECT_EQ(Value(text, "smartbackup_storage_requests_total{operation=\"put\",outcome=\"ok\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_storage_requests_total{operation=\"get\",outcome=\"not_found\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_storage_retries_total{operation=\"put\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_storage_written_bytes_total{operation=\"put\"}"), 4096);
  EXPECT_EQ(Value(text, "smartbackup_storage_request_duration_seconds_bucket{operation=\"put\",le=\"0.025\"}"), 0);
  EXPECT_EQ(Value(text, "smartbackup_storage_request_duration_seconds_bucket{operation=\"put\",le=\"0.05\"}"), 1);
  EXPECT_EQ(Value(text, "smartbackup_storage_request_duration_seconds_count{operation=\"put\"}"), 1);
}

TEST(MetricsTest, EveryNameIsPrefixedAndCountersEndInTotal) {
  const std::string text = RenderMetrics(FakeState());
  std::istringstream in(text);
  std::string line;
  int types = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      ++types;
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      EXPECT_EQ(name.rfind("smartbackup_", 0), 0u) << line;
      if (type == "counter") {
        EXPECT_TRUE(name.ends_with("_total")) << line;
      }
      if (type == "gauge") {
        EXPECT_FALSE(name.ends_with("_total")) << line;
      }
      continue;
    }
    if (line[0] == '#') continue;
    EXPECT_EQ(line.rfind("smartbackup_", 0), 0u) << line;
  }
  EXPECT_GT(types, 25);
}

TEST(MetricsTest, FiguresAreReadFromTheCluster) {
  Cluster c("sales");
  c.settings.enabled = true;
  c.observed = true;
  c.observation.last_full_finish = kNow - 1h;
  c.observation.chain_broken = false;
  c.recovery_point = kNow - 5s;
  NoteFault(c, Activity::kFullBackup, FailingPart::kStorage, "disk full", kNow);
  const ClusterFigures f = FiguresOf(c);
  EXPECT_EQ(f.database, "sales");
  EXPECT_TRUE(f.enabled);
  EXPECT_EQ(f.condition, Condition::kFailing);
  EXPECT_TRUE(f.failing.at(Activity::kFullBackup));
  EXPECT_FALSE(f.failing.at(Activity::kCapture));
  EXPECT_EQ(f.last_full, kNow - 1h);
  EXPECT_FALSE(f.last_log.has_value());
  // A cluster whose repository was not read yet has no catalog gauges, and no made-up zeros.
  MetricsSources s;
  s.now = kNow;
  s.clusters.push_back(f);
  const std::string text = RenderMetrics(s);
  EXPECT_EQ(Value(text, "smartbackup_cluster_condition{condition=\"failing\",database=\"sales\"}"), 1);
  EXPECT_FALSE(Value(text, "smartbackup_backups{database=\"sales\",type=\"full\"}").has_value());
  EXPECT_FALSE(Value(text, "smartbackup_last_log_backup_timestamp_seconds{database=\"sales\"}").has_value());
}

TEST(MetricsTest, TimelineJsonListsTheCatalogView) {
  const MetricsSources s = FakeState();
  const nlohmann::json t = TimelineJson(s.clusters[0].catalog);
  ASSERT_EQ(t["bases"].size(), 1u);
  EXPECT_EQ(t["bases"][0]["backup_id"], "F1");
  EXPECT_EQ(t["bases"][0]["type"], "full");
  EXPECT_EQ(t["logs"][0]["backup_id"], "L1");
  EXPECT_EQ(t["log_count"], 7);
  EXPECT_EQ(t["windows"].size(), 1u);
  EXPECT_EQ(t["gaps"].size(), 1u);
  EXPECT_EQ(t["wal_stored_bytes"], 1234);
}

TEST(MetricsTest, PageIsSelfContained) {
  const std::string page(MonitorPageHtml());
  EXPECT_NE(page.find("overview.json"), std::string::npos);
  // No external resource: the page works offline and leaks nothing.
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find("innerHTML"), std::string::npos);  // data goes in as text only
}

TEST(ListenAddressTest, AcceptsIpLiteralsAndMarksLoopback) {
  auto a = ParseListenAddress("127.0.0.1:9187");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9187);
  EXPECT_TRUE(a->loopback);
  auto v6 = ParseListenAddress("[::1]:9187");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->loopback);
  EXPECT_EQ(v6->ToString(), "[::1]:9187");
  auto any = ParseListenAddress("0.0.0.0:9187");
  ASSERT_TRUE(any.ok());
  EXPECT_FALSE(any->loopback);
  auto local = ParseListenAddress("localhost:80");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->host, "127.0.0.1");
}

TEST(ListenAddressTest, RefusesWhatItCannotBindSafely) {
  for (const char* bad : {"9187", ":9187", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:x", "::1:9187", "[::1]9187", "example.com:9187", "127.0.0.1:91 87"}) {
    auto r = ParseListenAddress(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (r.ok()) continue;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("http_listen"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("hint:"), std::string::npos) << r.status().message();
  }
  EXPECT_TRUE(ParseListenAddress("127.0.0.1:0", /*allow_any_port=*/true).ok());
}

TEST(ListenAddressTest, ConfigKeyIsValidatedAndOffByDefault) {
  auto none = ParseAgentConfig("[agent]\nstate_dir = \"/tmp/x\"\n", "t.toml");
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_EQ(none->http_listen, "");
  auto on = ParseAgentConfig("[agent]\nhttp_listen = \"127.0.0.1:9187\"\n", "t.toml");
  ASSERT_TRUE(on.ok()) << on.status().message();
  EXPECT_EQ(on->http_listen, "127.0.0.1:9187");
  auto bad = ParseAgentConfig("[agent]\nhttp_listen = \"9187\"\n", "t.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("http_listen"), std::string::npos);
  EXPECT_FALSE(ParseAgentConfig("[agent]\nhttp_listen = 9187\n", "t.toml").ok());
}

// One raw HTTP/1.0 exchange with 127.0.0.1:port; the whole response.
std::string Exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  (void)!::write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(HttpListenerTest, ServesGetOnlyAndNothingElse) {
  auto address = ParseListenAddress("127.0.0.1:0", true);
  ASSERT_TRUE(address.ok());
  int calls = 0;
  auto listener = HttpListener::Start(*address, [&](const std::string& path) {
    ++calls;
    if (path == "/metrics") return PageResponse{200, "text/plain; version=0.0.4", "smartbackup_up 1\n"};
    return PageResponse{404, "text/plain", "not found\n"};
  });
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  const int port = (*listener)->port();
  ASSERT_GT(port, 0);
  const std::string ok = Exchange(port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
  EXPECT_NE(ok.find(" 200 "), std::string::npos) << ok;
  EXPECT_NE(ok.find("smartbackup_up 1"), std::string::npos) << ok;
  EXPECT_NE(Exchange(port, "GET /nothing HTTP/1.0\r\n\r\n").find(" 404 "), std::string::npos);
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
    const std::string r = Exchange(port, std::string(method) + " /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    EXPECT_NE(r.find(" 405 "), std::string::npos) << method << ": " << r;
  }
  EXPECT_EQ(calls, 2);  // the handler never saw the refused methods
  (*listener)->Stop();
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.0\r\n\r\n"), "connect failed");
}

}  // namespace
}  // namespace sb
