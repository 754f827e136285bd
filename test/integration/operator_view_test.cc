// The operator's view against a live agent (the smartbackup binary, run as an
// operator would, without -v) managing a real PostgreSQL cluster, with the
// read-only listener on a loopback port:
// - a real Prometheus server (Debian's /usr/bin/prometheus) scrapes /metrics
//   every second and answers a query for the last full backup's timestamp
//   with the value the agent's status shows;
// - `promtool check metrics` finds nothing to say about the scraped text;
// - headless Chromium renders the web page: the cluster's section and its
//   full-backup mark are in the DOM the page's script built; a screenshot is
//   saved as a test artifact (<build dir>/artifacts/operator_page.png);
// - the agent's log has its decision and the backup at info level.
// Every process started here is stopped by pid, and checked gone.
#include <gtest/gtest.h>

#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "support/background_process.h"
#include "support/pg_cluster.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr char kChromium[] = "/usr/bin/chromium";

// GET through curl (the test's own HTTP client); stdout, or "" on failure.
std::string HttpGet(const std::string& url, const std::string& extra = "") {
  CommandResult r = RunCommand("curl -sf --max-time 10 " + extra + " " + ShellQuote(url));
  return r.exit_code == 0 ? r.out : "";
}

// Stops a background process by its pid (TERM, then KILL) and checks it is gone.
void StopProcess(std::unique_ptr<BackgroundProcess>& p) {
  if (!p) return;
  if (p->running()) {
    p->Signal(SIGTERM);
    if (!p->Wait(60s)) {
      p->Signal(SIGKILL);
      p->Wait(10s);
    }
  }
  EXPECT_FALSE(p->running());
  EXPECT_NE(::kill(p->pid(), 0), 0) << "process " << p->pid() << " is still there";
  p.reset();
}

// The directory the test binary is in (the build directory): where artifacts go.
fs::path BuildDir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

class OperatorViewTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(SMARTBACKUP_BINARY)) return;
    work_ = new std::string(MakeTempDirForPostgres("opview"));
    cluster_ = PgCluster::Create().release();
    cluster_->Pgbench("-i -s 1 -q");
    http_port_ = FindFreePort();
    const std::string config = *work_ + "/agent.toml";
    std::ofstream f(config);
    f << "[agent]\nstate_dir = \"" << *work_ << "/state\"\nsocket = \"" << *work_ << "/state/agent.sock\"\n"
      << "discover = false\nloop_interval = \"1s\"\nhttp_listen = \"127.0.0.1:" << http_port_ << "\"\n\n"
      << "[defaults]\ndrill_enabled = false\nstorage_url = \"file://" << *work_ << "/repo\"\nflush_interval = \"1s\"\n"
      << "log_max_age = \"3s\"\n\n[[cluster]]\nname = \"main\"\nconninfo = \"" << cluster_->conninfo()
      << "\"\nenabled = true\n";
    f.close();
    RunCommand("chown postgres " + ShellQuote(config));
    agent_ = BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "agent", "--config", config},
                                                *work_ + "/agent.log")
                 .release();
  }
  static void TearDownTestSuite() {
    if (agent_) {
      std::unique_ptr<BackgroundProcess> a(agent_);
      StopProcess(a);
      agent_ = nullptr;
    }
    delete cluster_;
    cluster_ = nullptr;
    if (work_) RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
  }
  void SetUp() override {
    if (!fs::exists(SMARTBACKUP_BINARY)) GTEST_SKIP() << "smartbackup binary missing: " << SMARTBACKUP_BINARY;
    ASSERT_NE(agent_, nullptr);
    // The first full backup, and a log backup after it, as the overview shows them.
    ASSERT_TRUE(WaitFor(
        [&] {
          json o = Overview();
          return o.is_object() && !o["clusters"].empty() && !o["clusters"][0]["status"]["last_full"].is_null() &&
                 !o["clusters"][0]["timeline"]["logs"].empty();
        },
        120s))
        << "no full and log backup seen; agent log:\n" << agent_->Log();
  }

  static std::string Url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(http_port_) + path; }
  static json Overview() { return json::parse(HttpGet(Url("/overview.json")), nullptr, false); }

  static inline std::string* work_ = nullptr;
  static inline PgCluster* cluster_ = nullptr;
  static inline BackgroundProcess* agent_ = nullptr;
  static inline int http_port_ = 0;
};

TEST_F(OperatorViewTest, PrometheusScrapesTheAgentAndAnswersAQuery) {
  if (!fs::exists(kPrometheus)) GTEST_SKIP() << kPrometheus << " missing";
  const std::string dir = *work_ + "/prometheus";
  const int prom_port = FindFreePort();
  RunAsPostgres("mkdir -p " + ShellQuote(dir + "/data"));
  {
    std::ofstream f(dir + "/prometheus.yml");
    f << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: smartbackup\n    static_configs:\n      - targets: ['127.0.0.1:" << http_port_
      << "']\n";
  }
  auto prom = BackgroundProcess::StartAsPostgres(
      {kPrometheus, "--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
       "--web.listen-address=127.0.0.1:" + std::to_string(prom_port), "--log.level=warn"},
      dir + "/prometheus.log");
  ASSERT_NE(prom, nullptr);

  const std::string api = "http://127.0.0.1:" + std::to_string(prom_port) + "/api/v1/query";
  auto query = [&](const std::string& q) {
    return json::parse(HttpGet(api, "-G --data-urlencode " + ShellQuote("query=" + q)), nullptr, false);
  };
  const std::string series = "smartbackup_last_full_backup_timestamp_seconds{database=\"main\"}";
  json answer;
  const bool answered = WaitFor(
      [&] {
        answer = query(series);
        return answer.is_object() && answer["status"] == "success" && !answer["data"]["result"].empty();
      },
      60s, 500ms);
  ASSERT_TRUE(answered) << "Prometheus has no " << series << "; its log:\n" << prom->Log();

  // The value Prometheus stored is the last full backup the agent's status names.
  const json& sample = answer["data"]["result"][0];
  EXPECT_EQ(sample["metric"]["database"], "main");
  EXPECT_EQ(sample["metric"]["job"], "smartbackup");
  const double value = std::stod(sample["value"][1].get<std::string>());
  const json status = Overview()["clusters"][0]["status"];
  auto last_full = ParseRfc3339(status["last_full"].get<std::string>());
  ASSERT_TRUE(last_full.ok());
  const double expected = std::chrono::duration<double>(last_full->time_since_epoch()).count();
  EXPECT_NEAR(value, expected, 1.0) << "status says " << status["last_full"];

  // The target is up, and the agent's heartbeat is recent by Prometheus' own clock.
  json up = query("up{job=\"smartbackup\"}");
  ASSERT_FALSE(up["data"]["result"].empty());
  EXPECT_EQ(up["data"]["result"][0]["value"][1], "1");
  json beat = query("time() - smartbackup_loop_last_run_timestamp_seconds{loop=\"backup\"} < 60");
  EXPECT_FALSE(beat["data"]["result"].empty()) << beat.dump();
  json recovery = query("smartbackup_recovery_point_age_seconds{database=\"main\"}");
  EXPECT_FALSE(recovery["data"]["result"].empty()) << recovery.dump();

  StopProcess(prom);
}

TEST_F(OperatorViewTest, PromtoolFindsTheScrapedTextClean) {
  if (!fs::exists(kPromtool)) GTEST_SKIP() << kPromtool << " missing";
  const std::string text = HttpGet(Url("/metrics"));
  ASSERT_FALSE(text.empty());
  EXPECT_NE(text.find("smartbackup_storage_requests_total{operation=\"put\",outcome=\"ok\"}"), std::string::npos);
  const std::string path = *work_ + "/metrics.txt";
  std::ofstream(path) << text;
  CommandResult r = RunCommand(std::string(kPromtool) + " check metrics < " + ShellQuote(path));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Trim(r.out + r.err), "") << "promtool: " << r.out << r.err;
}

TEST_F(OperatorViewTest, ChromiumRendersThePageAndTakesAScreenshot) {
  if (!fs::exists(kChromium)) GTEST_SKIP() << kChromium << " missing";
  const std::string profile = *work_ + "/chromium";
  const std::string flags = "--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" +
                            ShellQuote(profile) + " --virtual-time-budget=8000 ";
  // The DOM after the page's script fetched /overview.json and drew the clusters.
  CommandResult dom = RunCommand("timeout -k 5 90 " + std::string(kChromium) + " " + flags + "--dump-dom " +
                                 ShellQuote(Url("/")) + " 2>/dev/null");
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_NE(dom.out.find("data-database=\"main\""), std::string::npos) << dom.out.substr(0, 2000);
  EXPECT_NE(dom.out.find("class=\"mark-full\""), std::string::npos) << "no full-backup mark";
  EXPECT_NE(dom.out.find("class=\"window\""), std::string::npos) << "no restore window";
  EXPECT_NE(dom.out.find("data-category=\"storage_error\""), std::string::npos) << "no health counts";

  const fs::path artifacts = BuildDir() / "artifacts";
  fs::create_directories(artifacts);
  const fs::path shot = artifacts / "operator_page.png";
  fs::remove(shot);
  CommandResult png = RunCommand("timeout -k 5 90 " + std::string(kChromium) + " " + flags +
                                 "--window-size=1280,720 --screenshot=" + ShellQuote(shot.string()) + " " +
                                 ShellQuote(Url("/")) + " 2>/dev/null");
  EXPECT_EQ(png.exit_code, 0);
  ASSERT_TRUE(fs::exists(shot));
  EXPECT_GT(fs::file_size(shot), 10000u);
  std::cout << "screenshot: " << shot << "\n";
}

TEST_F(OperatorViewTest, AgentLogsDecisionsAndBackupsWithoutVerbose) {
  const std::string log = agent_->Log();
  EXPECT_NE(log.find("metrics and web page on http://127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("[main] managed backup"), std::string::npos) << log;  // the first full's decision
  EXPECT_NE(log.find("full backup"), std::string::npos) << log;
  EXPECT_NE(log.find("complete"), std::string::npos) << log;
  // A log backup: sealed by the stream ("log backup … sealed") or taken by the agent ("[main] log backup").
  EXPECT_NE(log.find("log backup"), std::string::npos) << log;
}

}  // namespace
}  // namespace sb::test
