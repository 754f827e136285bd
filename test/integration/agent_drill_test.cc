// The agent's restore drills, with the agent run as an operator runs it (the
// `smartbackup agent` process, as postgres): it drills by itself under load
// after its first full backup (pgbench's invariants and the marks checked by SQL
// in the copy; on demand, the copy's data equal to the source's), the figures in
// status and health; a forged manifest fails the drill naming the object,
// records it and triggers a full backup; kill -9 mid-drill leaves a server
// that the next agent start stops, removing the directory.
#include <gtest/gtest.h>
#include <fmt/core.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/lsn.h"
#include "repo/object_codec.h"
#include "support/background_process.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// pgbench's tpcb invariant (every balance change is one history row) and the marks' (no gaps).
constexpr const char* kConsistent =
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history) "
    "AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history) "
    "AND (SELECT count(*) = coalesce(max(seq), 0) FROM marks)";

std::vector<std::string> DrillDirs(const std::string& scratch) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(scratch, ec)) out.push_back(e.path().string());
  return out;
}

bool Alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

class AgentDrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = MakeTempDirForPostgres("agentdrill");
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 1 -q");
    cluster_->Psql("CREATE TABLE marks(seq int PRIMARY KEY)");
  }
  void TearDown() override {
    StopAgent();
    for (const auto& d : DrillDirs(Scratch())) {  // a failed test's drill server must not outlive it
      std::ifstream pidfile(d + "/data/postmaster.pid");
      long pid = 0;
      if (pidfile >> pid && pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    cluster_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return "file://" + work_ + "/repo"; }
  std::string Scratch() const { return work_ + "/scratch"; }
  std::string Config() const { return work_ + "/agent.toml"; }

  void WriteConfig(const std::string& extra) {
    std::ostringstream f;
    f << "[agent]\nstate_dir = \"" << work_ << "/state\"\nsocket = \"" << work_ << "/state/agent.sock\"\n"
      << "loop_interval = \"1s\"\ndiscover = false\n\n[defaults]\nstorage_url = \"" << Repo() << "\"\n"
      << "mode = \"stream\"\nflush_interval = \"1s\"\nlog_max_wal = \"1MiB\"\nlog_max_age = \"5s\"\n"
      << "drill_scratch_dir = \"" << Scratch() << "\"\ndrill_interval = \"1h\"\n"
      << "drill_check_sql = \"" << kConsistent << "\"\n"
      << extra << "\n[[cluster]]\nname = \"main\"\nconninfo = \"" << cluster_->conninfo() << "\"\nenabled = true\n";
    WritePostgresFile(Config(), f.str());
  }
  void StartAgent() {
    agent_ = BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "agent", "--config", Config(), "-v"},
                                                work_ + "/agent-" + std::to_string(++runs_) + ".log");
    ASSERT_TRUE(agent_);
    ASSERT_TRUE(WaitFor([&] { return RunSmartbackup("status --config " + Config()).exit_code == 0 || !agent_->running(); }, 60s));
    ASSERT_TRUE(agent_->running()) << agent_->Log();
  }
  void StopAgent() {
    if (!agent_) return;
    agent_->Signal(SIGTERM);
    agent_->Wait(120s);
    agent_.reset();
  }
  json Status() {
    CommandResult r = RunSmartbackup("status --config " + Config() + " --output json");
    if (r.exit_code != 0) return json();
    json j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json() : j;
  }
  json Cluster() {
    json s = Status();
    return s.is_object() && s.contains("clusters") && !s["clusters"].empty() ? s["clusters"][0] : json();
  }
  json Health() {
    CommandResult r = RunSmartbackup("health --config " + Config() + " --since 2000-01-01T00:00:00Z --output json");
    return r.exit_code == 0 ? json::parse(r.out) : json();
  }
  json LastDrill() {
    json c = Cluster();
    return c.is_object() && c.contains("last_drill") ? c["last_drill"] : json();
  }
  int Fulls() {
    int n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(work_ + "/repo/db/main/backups", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      n += it->path().filename().string().find("-F-") != std::string::npos;
    }
    return n;
  }
  void Marks(int from, int to) {
    cluster_->Psql(fmt::format("INSERT INTO marks SELECT g FROM generate_series({}, {}) g", from, to));
  }

  std::string work_;
  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<BackgroundProcess> agent_;
  int runs_ = 0;
};

TEST_F(AgentDrillTest, DrillsByItselfUnderLoadAndReportsTheFigures) {
  WriteConfig("");
  StartAgent();
  std::atomic<bool> stop{false};
  std::thread load([&] {
    for (int k = 1; !stop; k += 10) {
      cluster_->Pgbench("-n -t 50");
      Marks(k, k + 9);
    }
  });
  // After the first full backup the agent drills it, under the load.
  const bool drilled = WaitFor([&] { return LastDrill().is_object(); }, 240s, 1s);
  stop = true;
  load.join();
  ASSERT_TRUE(drilled) << agent_->Log();
  json d = LastDrill();
  ASSERT_EQ(d["result"], "passed") << d.dump(2) << agent_->Log();
  EXPECT_TRUE(d["reached_lsn"].is_string());
  EXPECT_GT(d["rto_seconds"].get<double>(), 0);
  EXPECT_GT(d["bytes"].get<uint64_t>(), 1u << 20);
  json c = Cluster();
  EXPECT_EQ(c["verified_window"]["end_lsn"], d["reached_lsn"]) << c.dump(2);
  EXPECT_EQ(c["next_drill"]["action"], "none") << c.dump(2);
  json h = Health();
  EXPECT_GE(h["counts"]["drill"].get<int>(), 1) << h.dump(2);
  EXPECT_EQ(h["counts"]["drill_failed"].get<int>(), 0) << h.dump(2);
  EXPECT_TRUE(DrillDirs(Scratch()).empty());

  // On demand, quiet: the copy's accounts are the source's (compared by SQL in the copy).
  const std::string md5 = cluster_->Psql("SELECT md5(string_agg(t::text, '|' ORDER BY aid)) FROM pgbench_accounts t");
  const std::string marks = cluster_->Psql("SELECT count(*) FROM marks");
  cluster_->Psql("SELECT pg_switch_wal()");
  const std::string lsn = cluster_->Psql("SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(WaitFor([&] {
    json w = Cluster();
    return w.is_object() && w.contains("restore_window") &&
           Lsn::Parse(w["restore_window"]["end_lsn"].get<std::string>())->value >= Lsn::Parse(lsn)->value;
  }, 60s));
  CommandResult set = RunSmartbackup(fmt::format(
      "set-db-backup main --config {} --drill-check-sql \"SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY aid)) "
      "FROM pgbench_accounts t) = '{}' AND (SELECT count(*) FROM marks) = {}\"",
      Config(), md5, marks));
  ASSERT_EQ(set.exit_code, 0) << set.err;
  CommandResult now = RunSmartbackup("drill main --config " + Config() + " --output json");
  ASSERT_EQ(now.exit_code, 0) << now.out << now.err << agent_->Log();
  json j = json::parse(now.out);
  EXPECT_EQ(j["result"], "passed");
  EXPECT_GE(Lsn::Parse(j["reached_lsn"].get<std::string>())->value, Lsn::Parse(lsn)->value);
  EXPECT_TRUE(DrillDirs(Scratch()).empty());
  // Both records are in the repository: available-backups shows the full as verified.
  CommandResult list = RunSmartbackup("available-backups --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  bool verified = false;
  const json listing = json::parse(list.out);  // one object per database
  for (const auto& row : listing.at(0).at("backups")) verified = verified || row.value("verified_at", json()).is_string();
  EXPECT_TRUE(verified) << list.out;
}

TEST_F(AgentDrillTest, AForgedManifestFailsTheDrillRecordsItAndTriggersAFull) {
  WriteConfig("drill_enabled = false\n");  // only the drill asked for below
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return Fulls() >= 1; }, 120s)) << agent_->Log();
  ASSERT_TRUE(WaitFor([&] { return Cluster().value("running", json::array()).empty(); }, 60s));
  std::string manifest;
  for (auto it = fs::recursive_directory_iterator(work_ + "/repo/db/main/backups"); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path().filename().string().find("-F-") != std::string::npos) manifest = it->path().string();
  }
  std::ifstream in(manifest);
  std::stringstream ss;
  ss << in.rdbuf();
  json m = json::parse(ss.str());
  const std::string object = m["archives"][0]["chunks"][0]["key"];
  m["archives"][0]["chunks"][0]["sha256"] = std::string(64, 'b');
  m.erase("checksum");
  m["checksum"] = Sha256Hex(m.dump());
  WritePostgresFile(manifest, m.dump(1));

  CommandResult r = RunSmartbackup("drill main --config " + Config() + " --output json");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(object), std::string::npos) << r.err;
  json d = LastDrill();
  ASSERT_TRUE(d.is_object()) << Cluster().dump(2);
  EXPECT_EQ(d["result"], "failed");
  EXPECT_EQ(d["failed_object"], object);
  EXPECT_EQ(d["stage"], "restore");
  // A new full backup, because the drill failed.
  EXPECT_TRUE(WaitFor([&] { return Fulls() >= 2; }, 120s)) << agent_->Log();
  json h = Health();
  EXPECT_GE(h["counts"]["drill_failed"].get<int>(), 1) << h.dump(2);
  bool named = false;
  for (const auto& e : h["events"]) named = named || e["message"].get<std::string>().find(object) != std::string::npos;
  EXPECT_TRUE(named) << h.dump(2);
  EXPECT_TRUE(DrillDirs(Scratch()).empty());
  // The record is in the repository.
  bool recorded = false;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(work_ + "/repo/db/main/drills", ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    recorded = recorded || it->is_regular_file();
  }
  EXPECT_TRUE(recorded);
}

TEST_F(AgentDrillTest, KilledMidDrillTheNextStartStopsTheOrphanedServerAndRemovesTheDirectory) {
  // The check holds the drill's server up long enough to kill the agent under it.
  WriteConfig("");
  {
    std::ifstream in(Config());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const std::string from = std::string("drill_check_sql = \"") + kConsistent + "\"";
    text.replace(text.find(from), from.size(), "drill_check_sql = \"SELECT true FROM pg_sleep(600)\"");
    WritePostgresFile(Config(), text);
  }
  StartAgent();
  pid_t server = 0;
  std::string dir;
  const bool running = WaitFor(
      [&] {
        for (const auto& d : DrillDirs(Scratch())) {
          std::ifstream pidfile(d + "/data/postmaster.pid");
          long pid = 0;
          if (pidfile >> pid && Alive(static_cast<pid_t>(pid))) {
            server = static_cast<pid_t>(pid);
            dir = d;
          }
        }
        return server != 0;
      },
      240s, 1s);
  ASSERT_TRUE(running) << agent_->Log();
  agent_->Signal(SIGKILL);
  agent_->Wait(30s);
  agent_.reset();
  ASSERT_TRUE(Alive(server)) << "the drill's server should outlive the killed agent";
  ASSERT_TRUE(fs::exists(dir));

  WriteConfig("drill_enabled = false\n");
  StartAgent();
  EXPECT_TRUE(WaitFor([&] { return !Alive(server) && !fs::exists(dir); }, 60s)) << agent_->Log();
  json h = Health();
  bool said = false;
  for (const auto& e : h["events"]) said = said || e["message"].get<std::string>().find(dir) != std::string::npos;
  EXPECT_TRUE(said) << h.dump(2);
}

}  // namespace
}  // namespace sb::test
