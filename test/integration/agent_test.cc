// The managed agent against a real cluster: it takes the first full backup
// when enabled, keeps WAL capture and log backups going under load, takes a
// new full by age, purges by retention without losing the window, refuses bad
// settings keeping the old ones, honours the master switch, and applies
// instance defaults only to clusters that appear later.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "agent/agent.h"
#include "common/text.h"
#include "repo/repository.h"
#include "storage/storage_factory.h"
#include "support/azurite.h"
#include "support/background_process.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = MakeTempDirForPostgres("agent");
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 1 -q");
  }
  void TearDown() override {
    StopAgent();
    cluster_.reset();
    restored_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return repo_url_.empty() ? "file://" + work_ + "/repo" : repo_url_; }
  // The in-process agent writes as root (repository mode 0640/0750); restores run as postgres.
  void GiveRepoToPostgres() { RunCommand("chown -R postgres " + ShellQuote(work_ + "/repo")); }

  // Writes the config and creates the agent (not yet running).
  void MakeAgent(const std::string& cluster_extra, const std::string& defaults_extra = "",
                 const std::string& agent_extra = "discover = false") {
    const std::string path = work_ + "/agent.toml";
    std::ofstream f(path);
    f << "[agent]\nstate_dir = \"" << work_ << "/state\"\nsocket = \"" << work_ << "/state/agent.sock\"\n"
      << "loop_interval = \"1s\"\n" << agent_extra << "\n\n[defaults]\ndrill_enabled = false\nstorage_url = \"" << Repo() << "\"\n"
      << defaults_extra << "\n\n[[cluster]]\nname = \"main\"\nconninfo = \"" << cluster_->conninfo() << "\"\n"
      << cluster_extra << "\n";
    f.close();
    config_path_ = path;
    auto config = LoadAgentConfig(path);
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto agent = Agent::Create(*config);
    ASSERT_TRUE(agent.ok()) << agent.status().message();
    agent_ = std::move(agent).value();
  }

  void StartAgent() {
    stop_ = false;
    runner_ = std::thread([this] {
      Status s = agent_->Run(stop_);
      EXPECT_TRUE(s.ok()) << s.message();
    });
  }
  void StopAgent() {
    stop_ = true;
    if (runner_.joinable()) runner_.join();
    agent_.reset();
  }

  // Until the status' restore window reaches `lsn` (at most 30 s).
  bool WaitWindowReaches(const std::string& lsn) {
    return WaitFor(
        [&] {
          json s = Api("GET", "/v1/status");
          return s["clusters"][0].contains("restore_window") &&
                 Lsn::Parse(s["clusters"][0]["restore_window"]["end_lsn"].get<std::string>())->value >=
                     Lsn::Parse(lsn)->value;
        },
        30s);
  }

  json Api(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto r = agent_->HandleApi({.method = method, .path = path, .body = body.is_null() ? "" : body.dump()});
    last_status_ = r.status;
    return json::parse(r.body);
  }

  BackupListing Listing() {
    auto storage = OpenStorage(Repo());
    EXPECT_TRUE(storage.ok());
    auto repo = Repository::Open(std::move(storage).value(), true);
    EXPECT_TRUE(repo.ok());
    auto l = (*repo)->ListBackups("main");
    EXPECT_TRUE(l.ok());
    return l.ok() ? *l : BackupListing{};
  }
  int Count(BackupType type) {
    int n = 0;
    for (const auto& m : Listing().backups) n += m.type == type;
    return n;
  }

  std::string work_, config_path_;
  std::string repo_url_;  // empty: file:// under work_
  std::unique_ptr<PgCluster> cluster_, restored_;
  std::unique_ptr<Agent> agent_;
  std::atomic<bool> stop_{false};
  std::thread runner_;
  int last_status_ = 0;
};

TEST_F(AgentTest, SchedulesFullAndLogBackupsUnderLoadAndRestores) {
  MakeAgent("enabled = true",
            "mode = \"stream\"\nflush_interval = \"1s\"\nlog_max_wal = \"1MiB\"\nlog_max_age = \"4s\"\n"
            "full_max_age = \"15s\"");
  StartAgent();
  // Rule: managed backup just enabled → the first full backup.
  ASSERT_TRUE(WaitFor([&] { return Count(BackupType::kFull) >= 1; }, 60s));
  std::thread load([&] { cluster_->Pgbench("-c 2 -T 12 -n"); });
  // Rules: ≥ log_max_wal or ≥ log_max_age → log backups; ≥ full_max_age → a second full.
  bool enough = WaitFor([&] { return Count(BackupType::kLog) >= 3 && Count(BackupType::kFull) >= 2; }, 90s);
  load.join();
  EXPECT_TRUE(enough) << "fulls " << Count(BackupType::kFull) << ", logs " << Count(BackupType::kLog);

  json status = Api("GET", "/v1/status");
  ASSERT_EQ(status["clusters"].size(), 1u);
  const json& c = status["clusters"][0];
  EXPECT_EQ(c["role"], "primary");
  EXPECT_TRUE(c["streaming"].get<bool>());
  EXPECT_FALSE(c["next_full"]["reason"].get<std::string>().empty());
  EXPECT_FALSE(c["next_log"]["reason"].get<std::string>().empty());
  json health = Api("GET", "/v1/health");
  EXPECT_GT(health["counts"]["backup_loop"].get<int>(), 0);
  EXPECT_GT(health["counts"]["retention_loop"].get<int>(), 0);
  EXPECT_FALSE(health["stuck"].get<bool>());

  // Quiesced: what the source holds now must come back from a restore to the latest point.
  const std::string accounts = TableMd5(*cluster_, "pgbench_accounts", "aid");
  const std::string history = cluster_->Psql("SELECT count(*) FROM pgbench_history");
  const std::string lsn = cluster_->Psql("SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(WaitWindowReaches(lsn));
  StopAgent();  // flushes WAL capture
  GiveRepoToPostgres();
  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --latest --target-dir " + work_ + "/restored");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  restored_ = PgCluster::Adopt(work_ + "/restored");
  ASSERT_TRUE(WaitFor([&] { return restored_->Psql("SELECT pg_is_in_recovery()") == "f"; }, 60s));
  EXPECT_EQ(TableMd5(*restored_, "pgbench_accounts", "aid"), accounts);
  EXPECT_EQ(restored_->Psql("SELECT count(*) FROM pgbench_history"), history);
}

// public_key: the agent host holds only the public key. Its full backup,
// streamed WAL and log backups restore only with the private key.
TEST_F(AgentTest, PublicKeyAgentWritesWhatOnlyThePrivateKeyRestores) {
  const std::string keys = work_ + "/keys";
  ASSERT_TRUE(MakeRsaKeyPair(keys, "private"));
  MakeAgent("enabled = true\npublic_key = \"" + keys + "/private.pub.pem\"",
            "mode = \"stream\"\nflush_interval = \"1s\"\nlog_max_wal = \"1MiB\"\nlog_max_age = \"3s\"");
  StartAgent();
  ASSERT_TRUE(WaitFor([&] { return Count(BackupType::kFull) >= 1; }, 60s));
  cluster_->Pgbench("-c 1 -t 200 -n");
  ASSERT_TRUE(WaitFor([&] { return Count(BackupType::kLog) >= 1; }, 60s)) << "no log backup";
  const std::string accounts = TableMd5(*cluster_, "pgbench_accounts", "aid");
  const std::string lsn = cluster_->Psql("SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(WaitWindowReaches(lsn));
  StopAgent();
  GiveRepoToPostgres();
  for (const auto& m : Listing().backups) EXPECT_FALSE(m.encryption_key_id.empty()) << m.backup_id;
  auto denied = RunSmartbackup("restore --repo " + Repo() + " --db main --latest --target-dir " + work_ + "/nokey");
  EXPECT_EQ(denied.exit_code, 1) << denied.err;
  EXPECT_NE(denied.err.find("--private-key"), std::string::npos) << denied.err;
  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --latest --target-dir " + work_ +
                          "/restored --private-key " + keys + "/private.pem");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  restored_ = PgCluster::Adopt(work_ + "/restored");
  ASSERT_TRUE(WaitFor([&] { return restored_->Psql("SELECT pg_is_in_recovery()") == "f"; }, 60s));
  EXPECT_EQ(TableMd5(*restored_, "pgbench_accounts", "aid"), accounts);
}

TEST_F(AgentTest, RetentionPurgesOldBackupsAndKeepsTheWindowRestorable) {
  // retention_unit makes "retention_days = 6" mean six seconds.
  MakeAgent("enabled = true",
            "mode = \"stream\"\nflush_interval = \"1s\"\nlog_max_age = \"2s\"\nfull_max_age = \"3s\"\n"
            "retention_days = 6\nretention_unit = \"1s\"");
  StartAgent();
  std::thread load([&] { cluster_->Pgbench("-c 1 -T 20 -n -R 50"); });
  // Wait until fulls have been taken and some purged: the oldest full no longer exists.
  std::string first_full;
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& m : Listing().backups) {
      if (m.type == BackupType::kFull) {
        first_full = m.backup_id;
        return true;
      }
    }
    return false;
  }, 60s));
  bool purged = WaitFor([&] {
    for (const auto& m : Listing().backups) {
      if (m.backup_id == first_full) return false;
    }
    return true;
  }, 60s);
  load.join();
  EXPECT_TRUE(purged) << "the first full backup " << first_full << " was never purged";
  StopAgent();
  GiveRepoToPostgres();

  // The oldest point of what is left must still restore.
  auto list = RunSmartbackup("available-backups --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::string oldest_full_finish;
  const json dbs = json::parse(list.out);
  for (const auto& row : dbs[0]["backups"]) {
    if (row["type"] == "full" && oldest_full_finish.empty()) oldest_full_finish = row["finish_time"];
  }
  ASSERT_FALSE(oldest_full_finish.empty());
  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --time " + oldest_full_finish +
                          " --target-dir " + work_ + "/oldest");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  restored_ = PgCluster::Adopt(work_ + "/oldest");
  ASSERT_TRUE(WaitFor([&] { return restored_->Psql("SELECT pg_is_in_recovery()") == "f"; }, 60s));
  EXPECT_EQ(restored_->Psql("SELECT count(*) FROM pgbench_branches"), "1");
}

TEST_F(AgentTest, BadSettingsAreRefusedAndThePreviousOnesStay) {
  MakeAgent("enabled = false");
  agent_->BackupLoopOnce();
  json before = Api("GET", "/v1/db/main/config");
  ASSERT_EQ(last_status_, 200);
  struct Case {
    json body;
    std::string needle;
  } cases[] = {
      {{{"settings", {{"retention_days", "0"}}}}, "between 1 and 30"},
      {{{"settings", {{"retention_days", "31"}}}}, "between 1 and 30"},
      {{{"settings", {{"full_schedule", "sometimes"}}}}, "full_schedule"},
      {{{"settings", {{"mode", "telepathy"}}}}, "mode"},
      {{{"settings", {{"no_such_option", "1"}}}}, "no_such_option"},
      {{{"enable", true}, {"settings", {{"storage_url", "azure://nocreds"}}}}, "AZURE_STORAGE"},
  };
  for (const auto& c : cases) {
    json r = Api("POST", "/v1/db/main/config", c.body);
    EXPECT_EQ(last_status_, 400) << c.body.dump();
    EXPECT_NE(r["error"].get<std::string>().find(c.needle), std::string::npos) << r.dump();
    EXPECT_EQ(Api("GET", "/v1/db/main/config"), before) << "a refused change must leave the settings as they were";
  }
  json unknown = Api("POST", "/v1/db/nosuch/config", {{"enable", true}});
  EXPECT_EQ(last_status_, 404);
  EXPECT_NE(unknown["error"].get<std::string>().find("nosuch"), std::string::npos);

  // A good change is kept, and survives an agent restart.
  Api("POST", "/v1/db/main/config", {{"settings", {{"retention_days", "12"}}}});
  EXPECT_EQ(last_status_, 200);
  StopAgent();
  auto config = LoadAgentConfig(config_path_);
  ASSERT_TRUE(config.ok());
  agent_ = std::move(Agent::Create(*config)).value();
  agent_->BackupLoopOnce();
  EXPECT_EQ(Api("GET", "/v1/db/main/config")["retention_days"], "12");
}

// The set verbs' flags come from the option table: a flag reaches the running agent as the
// option, and a bad value is refused before the agent is called with the one-line message the
// config file and the API give (and exit 2, a usage error); the agent's settings stay.
TEST_F(AgentTest, SetVerbFlagsGoThroughTheOptionTable) {
  MakeAgent("enabled = false");
  StartAgent();
  // The agent runs in this process as root: its socket is root's, so the verbs run as root too.
  auto sb = [&](const std::string& args) {
    return RunCommand(ShellQuote(SMARTBACKUP_BINARY) + " " + args + " --config " + config_path_);
  };
  ASSERT_TRUE(WaitFor([&] { return sb("db-config main").exit_code == 0; }, 30s));
  CommandResult set = sb("set-db-backup main --retention-days 12 --mode Archive --full-max-age 45m "
                         "--set log_frequency=15m --output json");
  ASSERT_EQ(set.exit_code, 0) << set.err;
  json after = json::parse(set.out);
  EXPECT_EQ(after["retention_days"], "12");
  EXPECT_EQ(after["mode"], "archive");
  EXPECT_EQ(after["full_max_age"], "45m");
  EXPECT_EQ(after["log_frequency"], "15m");
  EXPECT_EQ(after["enabled"], "false");

  const std::string expected = "retention_days must be between 1 and 30, got 31";
  for (const std::string& args : {std::string("set-db-backup main --retention-days 31"),
                                  std::string("set-db-backup main --set retention_days=31"),
                                  std::string("set-instance-backup --retention-days 31")}) {
    CommandResult bad = sb(args);
    EXPECT_EQ(bad.exit_code, 2) << args << "\n" << bad.err;
    EXPECT_NE(bad.err.find(expected), std::string::npos) << args << "\n" << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  }
  json api = Api("POST", "/v1/db/main/config", {{"settings", {{"retention_days", "31"}}}});
  EXPECT_EQ(api["error"], expected);
  EXPECT_EQ(Api("GET", "/v1/db/main/config")["retention_days"], "12") << "a refused value must change nothing";

  // purge's --retention-days takes the option's range.
  CommandResult purge = RunSmartbackup("purge --repo " + Repo() + " --db main --retention-days 31");
  EXPECT_EQ(purge.exit_code, 2) << purge.err;
  EXPECT_NE(purge.err.find(expected), std::string::npos) << purge.err;
  StopAgent();
}

TEST_F(AgentTest, MasterSwitchOffPausesSchedulingAndKeepsConfig) {
  MakeAgent("enabled = true", "mode = \"stream\"");
  Api("POST", "/v1/master-switch", {{"on", false}});
  ASSERT_EQ(last_status_, 200);
  agent_->BackupLoopOnce();
  json s = Api("GET", "/v1/status");
  EXPECT_EQ(s["master_switch"], false);
  EXPECT_NE(s["clusters"][0]["state"].get<std::string>().find("master switch is off"), std::string::npos)
      << s.dump();
  EXPECT_FALSE(s["clusters"][0]["streaming"].get<bool>());
  EXPECT_EQ(Count(BackupType::kFull), 0);
  EXPECT_EQ(Api("GET", "/v1/db/main/config")["enabled"], "true");

  Api("POST", "/v1/master-switch", {{"on", true}});
  agent_->BackupLoopOnce();
  EXPECT_TRUE(WaitFor([&] { return Count(BackupType::kFull) == 1; }, 60s));
}

TEST_F(AgentTest, InstanceDefaultsApplyOnlyToClustersThatAppearLater) {
  // Discovery reads a Debian-style /etc/postgresql tree; ours is a temp dir.
  const std::string etc = work_ + "/etc";
  auto add = [&](const std::string& name, PgCluster& c) {
    fs::create_directories(etc + "/15/" + name);
    std::ofstream(etc + "/15/" + name + "/postgresql.conf")
        << "port = " << c.port() << "\nunix_socket_directories = '" << fs::path(c.data_dir()).parent_path().string()
        << "'\n";
  };
  auto early = PgCluster::Create();
  add("early", *early);
  MakeAgent("enabled = false", "", "discover = true\ndiscover_root = \"" + etc + "\"");
  agent_->BackupLoopOnce();
  Api("POST", "/v1/instance-config", {{"enable", true}, {"settings", {{"storage_url", Repo()}}}});
  ASSERT_EQ(last_status_, 200);
  auto late = PgCluster::Create();
  add("late", *late);
  agent_->BackupLoopOnce();
  EXPECT_EQ(Api("GET", "/v1/db/15-early/config")["enabled"], "false") << "already known: not enabled by defaults";
  EXPECT_EQ(Api("GET", "/v1/db/15-late/config")["enabled"], "true") << "appeared later: gets the defaults";
  StopAgent();
}

TEST_F(AgentTest, KilledMidBackupLeavesNoPartialBackupAndResumes) {
  cluster_->Pgbench("-i -s 8 -q");  // a full backup that takes a moment
  MakeAgent("enabled = true", "mode = \"archive\"");  // archive mode without wal-push: fulls only, no streamer
  agent_.reset();  // this test runs the agent as its own process, to kill it
  RunCommand("chown -R postgres " + ShellQuote(work_));
  auto status = [&] {
    auto r = RunSmartbackup("status --output json --config " + config_path_);
    return r.exit_code == 0 ? json::parse(r.out) : json();
  };
  auto start = [&] {
    return BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "agent", "--config", config_path_, "-v"},
                                              work_ + "/agent.log");
  };
  // archive mode refuses a foreign archive_command and archive_mode = off; make it look like ours so backups run.
  cluster_->Psql("ALTER SYSTEM SET archive_command = '/bin/true smartbackup wal-push %p'");
  cluster_->Psql("ALTER SYSTEM SET archive_mode = on");
  cluster_->Stop();
  cluster_->Start();
  auto agent = start();
  bool seen_running = WaitFor([&] {
    json s = status();
    return !s.is_null() && !s["clusters"].empty() && !s["clusters"][0]["running"].empty();
  }, 60s);
  ASSERT_TRUE(seen_running) << agent->Log();
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(10s).has_value());
  // Nothing partial is listed, and what is listed verifies.
  // Backups listed (not the per-window WAL rows): every full and log backup with --all.
  auto backups = [](const CommandResult& l) {
    size_t n = 0;
    const json dbs = json::parse(l.out);
    for (const auto& r : dbs[0]["backups"]) n += r["backup_id"].is_string();
    return n;
  };
  auto list = RunSmartbackup("available-backups --all --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  size_t listed_before = backups(list);
  auto verify = RunSmartbackup("verify --repo " + Repo());
  // An empty repository proves nothing, and verify says so (exit 1).
  EXPECT_EQ(verify.exit_code, listed_before > 0 ? 0 : 1) << verify.out << verify.err;

  // Restarted, the agent picks up where it was: the full backup it owed is taken.
  agent = start();
  ASSERT_TRUE(WaitFor([&] {
    auto l = RunSmartbackup("available-backups --all --repo " + Repo() + " --db main --output json");
    return l.exit_code == 0 && backups(l) > listed_before;
  }, 120s)) << agent->Log();
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(60s), std::optional<int>(0)) << agent->Log();
  EXPECT_EQ(RunSmartbackup("verify --repo " + Repo()).exit_code, 0);
}

// backup-on-demand through the CLI: the agent answers with a job at once and the CLI waits on it,
// printing the path as before (or clean JSON); when the agent dies mid-way the CLI says so in one
// line — the agent, the job, the backup's fate unknown, what to run — and fails, without naming a
// library's error.
TEST_F(AgentTest, BackupOnDemandWaitsForItsJobAndSaysSoWhenTheAgentDies) {
  cluster_->Pgbench("-i -s 8 -q");  // a full backup that takes a moment
  MakeAgent("enabled = false");      // nothing scheduled: only the on-demand backups run
  agent_.reset();                    // the agent runs as its own process, to kill it
  RunCommand("chown -R postgres " + ShellQuote(work_));
  auto agent = BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "agent", "--config", config_path_, "-v"},
                                                  work_ + "/agent.log");
  ASSERT_TRUE(WaitFor([&] { return RunSmartbackup("status --config " + config_path_).exit_code == 0; }, 30s))
      << agent->Log();

  auto text = RunSmartbackup("backup-on-demand main --type full --config " + config_path_);
  ASSERT_EQ(text.exit_code, 0) << text.out << text.err;
  const std::string path = Trim(text.out);
  EXPECT_TRUE(fs::exists(work_ + "/repo/" + path)) << text.out;
  EXPECT_EQ(text.out.find('\n'), text.out.size() - 1) << "one line: the path";
  auto as_json = RunSmartbackup("backup-on-demand main --type full --output json --config " + config_path_);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  json j = json::parse(as_json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is clean JSON: " << as_json.out;
  EXPECT_EQ(j["type"], "full");
  EXPECT_FALSE(j["backup_id"].get<std::string>().empty());
  EXPECT_EQ(Count(BackupType::kFull), 2);
  // Status is fresh right after: the job publishes what it took (this cluster is not enabled, so no
  // observe pass would ever read its catalogue), every window shown, times unquoted in text.
  {
    auto r = RunSmartbackup("status --output json --config " + config_path_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json st = json::parse(r.out);
    const json& c = st["clusters"][0];
    ASSERT_TRUE(c["last_full"].is_string()) << r.out;
    EXPECT_EQ(c["restore_windows"].size(), 2u) << r.out;
    auto t = RunSmartbackup("status --config " + config_path_);
    EXPECT_NE(t.out.find("last full: " + c["last_full"].get<std::string>()), std::string::npos) << t.out;
    EXPECT_EQ(t.out.find("\"20"), std::string::npos) << "no quoted times: " << t.out;
  }

  auto cli = BackgroundProcess::StartAsPostgres(
      {SMARTBACKUP_BINARY, "backup-on-demand", "main", "--type", "full", "--config", config_path_},
      work_ + "/cli.log");
  ASSERT_TRUE(WaitFor([&] {
    auto r = RunSmartbackup("status --output json --config " + config_path_);
    json s = r.exit_code == 0 ? json::parse(r.out) : json();
    return !s.is_null() && !s["clusters"].empty() && !s["clusters"][0]["running"].empty();
  }, 60s)) << agent->Log();
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(10s).has_value());
  auto code = cli->Wait(90s);
  ASSERT_TRUE(code.has_value()) << "the CLI must give up on a dead agent: " << cli->Log();
  EXPECT_NE(*code, 0);
  const std::string said = cli->Log();
  EXPECT_NE(said.find("stopped answering while job "), std::string::npos) << said;
  EXPECT_NE(said.find("(full backup of \"main\") was running; the backup's fate is unknown"), std::string::npos)
      << said;
  EXPECT_NE(said.find("smartbackup status --config " + config_path_), std::string::npos) << said;
  EXPECT_EQ(said.find(": Read"), std::string::npos) << said;
}

// Issue 11: after a kill -9 the restarted agent takes back its own Azure lease at once (its
// identity in state_dir/agent.id names the lease), instead of waiting 48-58 s for the dead
// process's lease to expire while status says another agent holds it.
TEST_F(AgentTest, KilledAgentOnAzureResumesCaptureWithinSeconds) {
  auto azurite = AzuriteServer::Start();
  ASSERT_TRUE(azurite);
  const char* saved = std::getenv("AZURE_STORAGE_CONNECTION_STRING");
  const std::string saved_value = saved == nullptr ? "" : saved;
  ::setenv("AZURE_STORAGE_CONNECTION_STRING", azurite->connection_string().c_str(), 1);  // the agents inherit it
  struct RestoreEnv {
    bool had;
    std::string value;
    ~RestoreEnv() {
      if (had) {
        ::setenv("AZURE_STORAGE_CONNECTION_STRING", value.c_str(), 1);
      } else {
        ::unsetenv("AZURE_STORAGE_CONNECTION_STRING");
      }
    }
  } restore_env{saved != nullptr, saved_value};
  repo_url_ = "azure://leases/prod";
  MakeAgent("enabled = true", "mode = \"stream\"\nflush_interval = \"1s\"");
  agent_.reset();  // run as its own process, to kill it
  RunCommand("chown -R postgres " + ShellQuote(work_));
  auto status = [&] {
    auto r = RunSmartbackup("status --output json --config " + config_path_);
    return r.exit_code == 0 ? json::parse(r.out) : json();
  };
  // Capture is running in this process when a WAL flush has been made durable by it.
  auto capturing = [&] {
    json s = status();
    return !s.is_null() && !s["clusters"].empty() && s["clusters"][0]["streaming"].get<bool>() &&
           s["clusters"][0].contains("recovery_point_age_seconds");
  };
  auto start = [&] {
    return BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "agent", "--config", config_path_, "-v"},
                                              work_ + "/agent.log");
  };
  auto agent = start();
  ASSERT_TRUE(WaitFor(capturing, 120s)) << agent->Log() << status().dump();
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(10s).has_value());

  agent = start();
  const auto restarted = std::chrono::steady_clock::now();
  std::thread wal([&] {
    for (int i = 0; i < 20; ++i) cluster_->Psql("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t VALUES (1)");
  });
  const bool resumed = WaitFor(capturing, 60s, 250ms);
  wal.join();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restarted);
  ASSERT_TRUE(resumed) << agent->Log() << status().dump();
  std::cout << "capture resumed " << took.count() << " ms after the restart\n";
  EXPECT_EQ(status()["clusters"][0]["state"].get<std::string>().find("held by"), std::string::npos);
  // Bound generous for a loaded machine, far below the 48-58 s of a lease left to expire.
  EXPECT_LT(took, 30s);
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(60s), std::optional<int>(0)) << agent->Log();
}

// The primary's disk: smartbackup's replication slot keeps WAL for as long as it exists. While
// capture is only paused (master switch off) the unread slot is reported in status and health with
// the WAL it retains and the SQL to drop it; once capture ends for good (archive mode, then
// managed backup disabled) the agent drops the slot itself.
TEST_F(AgentTest, UnreadSlotIsReportedWithItsBytesAndDroppedWhenCaptureEndsForGood) {
  MakeAgent("enabled = true", "mode = \"stream\"\nflush_interval = \"1s\"");
  auto slots = [&] { return cluster_->Psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'smartbackup_main'"); };
  auto loop_until = [&](auto pred) {
    return WaitFor([&] { agent_->BackupLoopOnce(); return pred(); }, 90s);
  };
  auto status = [&] { return Api("GET", "/v1/status")["clusters"][0]; };
  ASSERT_TRUE(loop_until([&] { return slots() == "1" && status()["running"].empty() && Count(BackupType::kFull) >= 1; }))
      << status().dump();

  // Paused: reported, with the bytes it pins, not dropped.
  Api("POST", "/v1/master-switch", {{"on", false}});
  ASSERT_EQ(last_status_, 200);
  agent_->BackupLoopOnce();  // stops WAL capture
  const std::string before = cluster_->Psql("SELECT pg_current_wal_lsn()");
  cluster_->Pgbench("-c 1 -t 500 -n");  // WAL that only the slot keeps now
  const uint64_t written = std::stoull(
      cluster_->Psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '" + before + "')::bigint"));
  ASSERT_GT(written, 0u);
  ASSERT_TRUE(loop_until([&] {
    json c = status();
    return c.contains("slot") && c["slot"]["idle"].get<bool>() && c["slot"]["retained_bytes"].is_number() &&
           c["slot"]["retained_bytes"].get<uint64_t>() >= written;
  })) << status().dump();
  json c = status();
  EXPECT_EQ(c["slot"]["name"], "smartbackup_main");
  EXPECT_EQ(c["slot"]["drop_sql"], "SELECT pg_drop_replication_slot('smartbackup_main');");
  const std::string state = c["state"].get<std::string>();
  EXPECT_NE(state.find("warning: replication slot smartbackup_main is not read while the master switch is off and "
                       "retains "),
            std::string::npos)
      << state;
  EXPECT_NE(state.find("SELECT pg_drop_replication_slot('smartbackup_main');"), std::string::npos) << state;
  json health = Api("GET", "/v1/health");
  int warned = 0;
  for (const auto& e : health["events"]) {
    warned += e["category"] == "warning" &&
              e["message"].get<std::string>().find("replication slot smartbackup_main is not read") != std::string::npos;
  }
  EXPECT_EQ(warned, 1) << health.dump(1);
  EXPECT_TRUE(health["clusters"][0]["slot"]["idle"].get<bool>());
  EXPECT_EQ(slots(), "1") << "a paused capture keeps its slot";

  // Switched to archive mode: capture by this slot is over; the agent drops it.
  Api("POST", "/v1/master-switch", {{"on", true}});
  cluster_->Psql("ALTER SYSTEM SET archive_command = '/bin/true smartbackup wal-push %p'");
  cluster_->Psql("SELECT pg_reload_conf()");
  json set = Api("POST", "/v1/db/main/config", {{"settings", {{"mode", "archive"}}}});
  ASSERT_EQ(last_status_, 200) << set.dump();
  ASSERT_TRUE(loop_until([&] { return slots() == "0"; })) << status().dump();
  EXPECT_FALSE(status().contains("slot")) << status().dump();

  // Back to stream: the slot returns; disabled: dropped again.
  Api("POST", "/v1/db/main/config", {{"settings", {{"mode", "stream"}}}});
  ASSERT_EQ(last_status_, 200);
  ASSERT_TRUE(loop_until([&] { return slots() == "1"; })) << status().dump();
  Api("POST", "/v1/db/main/config", {{"enable", false}});
  ASSERT_EQ(last_status_, 200);
  ASSERT_TRUE(loop_until([&] { return slots() == "0"; })) << status().dump();
  health = Api("GET", "/v1/health");
  int dropped = 0;
  for (const auto& e : health["events"]) {
    dropped += e["message"].get<std::string>().find("dropped replication slot smartbackup_main: smartbackup no "
                                                    "longer reads it") != std::string::npos;
  }
  EXPECT_EQ(dropped, 2) << health.dump(1);
  // Waiting for running jobs before the fixture stops the cluster.
  ASSERT_TRUE(WaitFor([&] { return status()["running"].empty(); }, 60s));
}

// A slot with smartbackup's name that this agent did not stream through (e.g. `smartbackup stream`
// run by hand, or left from before the agent restarted) is not dropped on a guess: with capture
// disabled it is reported in status and health with its retained bytes and the exact SQL.
TEST_F(AgentTest, UnreadSlotThisAgentDidNotUseIsReportedWithTheSql) {
  cluster_->Psql("SELECT pg_create_physical_replication_slot('smartbackup_main', true)");
  cluster_->Pgbench("-c 1 -t 200 -n");
  MakeAgent("enabled = false");
  agent_->BackupLoopOnce();
  json c = Api("GET", "/v1/status")["clusters"][0];
  ASSERT_TRUE(c.contains("slot")) << c.dump();
  EXPECT_TRUE(c["slot"]["idle"].get<bool>());
  ASSERT_TRUE(c["slot"]["retained_bytes"].is_number()) << c.dump();
  EXPECT_GT(c["slot"]["retained_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(c["slot"]["drop_sql"], "SELECT pg_drop_replication_slot('smartbackup_main');");
  const std::string warning = c["slot"]["warning"].get<std::string>();
  EXPECT_EQ(warning.rfind("warning: replication slot smartbackup_main is no longer read by smartbackup (managed "
                          "backup is disabled) and retains ",
                          0),
            0u)
      << warning;
  EXPECT_NE(warning.find("not dropped: this agent has not streamed through it since it started"), std::string::npos)
      << warning;
  EXPECT_NE(c["state"].get<std::string>().find(warning), std::string::npos) << c.dump();
  json health = Api("GET", "/v1/health");
  int warned = 0;
  for (const auto& e : health["events"]) warned += e["message"] == warning;
  EXPECT_EQ(warned, 1) << health.dump(1);
  agent_->BackupLoopOnce();
  EXPECT_EQ(cluster_->Psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'smartbackup_main'"), "1");
}

}  // namespace
}  // namespace sb::test
