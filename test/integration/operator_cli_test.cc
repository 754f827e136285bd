// The operator's view from the command line (issue 14): verbs by database name through the
// agent's config file restore exactly, progress on a pseudo-terminal (script) and one summary line
// otherwise, available-backups' per-database JSON, `check` proving capture end to end (and
// failing critical when capture stops), and usage errors exiting 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <set>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/background_process.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

int CountLines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

class OperatorCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 2 -q");
    accounts_md5_ = TableMd5(*cluster_, "pgbench_accounts", "aid");
    work_ = MakeTempDirForPostgres("operatorcli");
    config_ = work_ + "/agent.toml";
    // The agent's config: the CLI reads the storage URL from it (no agent needs to run).
    WritePostgresFile(config_, "[agent]\nstate_dir = \"" + work_ + "/state\"\nsocket = \"" + work_ +
                                   "/state/agent.sock\"\ndiscover = false\n\n[defaults]\ndrill_enabled = false\nstorage_url = \"file://" +
                                   work_ + "/elsewhere\"\n\n[[cluster]]\nname = \"main\"\nconninfo = \"" +
                                   cluster_->conninfo() + "\"\nstorage_url = \"" + Repo() + "\"\n");
  }
  void TearDown() override {
    stream_.reset();
    restored_.reset();
    cluster_.reset();
    RemoveTree(work_);
  }
  std::string Repo() const { return "file://" + work_ + "/repo"; }
  std::string Backup() const {
    return "backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() + " --db main";
  }
  // Runs the smartbackup command line under a pseudo-terminal (as postgres): what it wrote to the terminal.
  CommandResult UnderTerminal(const std::string& args) {
    return RunAsPostgres("script -qefc " + ShellQuote(ShellQuote(SMARTBACKUP_BINARY) + " " + args) + " /dev/null");
  }

  std::unique_ptr<PgCluster> cluster_, restored_;
  std::unique_ptr<BackgroundProcess> stream_;
  std::string work_, config_, accounts_md5_;
};

TEST_F(OperatorCliTest, VerbsByDatabaseNameTakeTheRepositoryFromTheAgentsConfigAndRestoreExactly) {
  ASSERT_EQ(RunSmartbackup(Backup()).exit_code, 0);
  CommandResult list = RunSmartbackup("available-backups main --config " + config_ + " --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json dbs = json::parse(list.out);
  ASSERT_EQ(dbs.size(), 1u) << list.out;
  EXPECT_EQ(dbs[0]["database"], "main");
  EXPECT_EQ(dbs[0]["status"], "ok") << list.out;
  EXPECT_EQ(dbs[0]["windows"].size(), 1u) << list.out;
  int fulls = 0;
  for (const auto& row : dbs[0]["backups"]) fulls += row["type"] == "full";
  EXPECT_EQ(fulls, 1) << list.out;

  CommandResult verify = RunSmartbackup("verify main --config " + config_);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  CommandResult r = RunSmartbackup("restore main --config " + config_ + " --target-dir " + work_ + "/restored");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  restored_ = PgCluster::Adopt(work_ + "/restored");
  ASSERT_TRUE(restored_);
  EXPECT_EQ(TableMd5(*restored_, "pgbench_accounts", "aid"), accounts_md5_);

  CommandResult unknown = RunSmartbackup("available-backups nosuch --config " + config_);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("\"nosuch\" is not known to the agent"), std::string::npos) << unknown.err;
}

TEST_F(OperatorCliTest, ProgressIsDrawnOnATerminalAndOneSummaryLineOtherwise) {
  CommandResult tty = UnderTerminal(Backup());
  ASSERT_EQ(tty.exit_code, 0) << tty.out << tty.err;
  EXPECT_NE(tty.out.find("\r\033[Kbackup: "), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("%)"), std::string::npos) << "the server's size estimate gives a percentage: " << tty.out;

  CommandResult plain = RunSmartbackup(Backup());
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(CountLines(plain.err), 1) << plain.err;
  EXPECT_EQ(plain.err.rfind("backup done: ", 0), 0u) << plain.err;
  EXPECT_EQ(plain.err.find('\r'), std::string::npos) << plain.err;

  CommandResult restore = UnderTerminal("restore --repo " + Repo() + " --db main --target-dir " + work_ + "/r1");
  ASSERT_EQ(restore.exit_code, 0) << restore.out;
  EXPECT_NE(restore.out.find("\r\033[Krestore: "), std::string::npos) << restore.out;
  EXPECT_NE(restore.out.find("(100%)"), std::string::npos) << restore.out;

  CommandResult verify = RunSmartbackup("verify --repo " + Repo());
  ASSERT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_EQ(CountLines(verify.err), 1) << verify.err;
  EXPECT_EQ(verify.err.rfind("verify done: ", 0), 0u) << verify.err;
}

TEST_F(OperatorCliTest, CheckProvesCaptureEndToEndAndIsCriticalWhenCaptureStops) {
  ASSERT_EQ(RunSmartbackup(Backup()).exit_code, 0);
  stream_ = BackgroundProcess::StartAsPostgres({SMARTBACKUP_BINARY, "stream", "--pg", cluster_->conninfo(), "--repo",
                                                Repo(), "--db", "main", "--flush-interval", "1s"},
                                               work_ + "/stream.log");
  ASSERT_TRUE(WaitFor([&] {
    return cluster_->Psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'smartbackup_main' AND active") ==
           "1";
  }, 30s)) << stream_->Log();
  const std::string check = "check main --config " + config_ + " --output json";
  CommandResult ok = RunSmartbackup(check);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  json j = json::parse(ok.out);
  EXPECT_EQ(j["status"], "ok") << ok.out;
  std::set<std::string> names;
  for (const auto& c : j["checks"]) names.insert(c["check"].get<std::string>());
  for (const char* n : {"connection", "grants", "replication", "slot", "repository", "keys", "capture"}) {
    EXPECT_TRUE(names.count(n)) << n << " missing: " << ok.out;
  }
  EXPECT_TRUE(!fs::exists(work_ + "/repo/check") || fs::is_empty(work_ + "/repo/check")) << "the probe is removed";

  stream_->Signal(SIGTERM);
  ASSERT_TRUE(stream_->Wait(30s).has_value());
  CommandResult stopped = RunSmartbackup("check --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                                         " --db main --timeout 3s");
  EXPECT_EQ(stopped.exit_code, 2) << stopped.out << stopped.err;
  EXPECT_NE(stopped.out.find("critical capture"), std::string::npos) << stopped.out;
  EXPECT_NE(stopped.out.find("warning  slot"), std::string::npos) << stopped.out;
}

TEST_F(OperatorCliTest, UsageErrorsExitTwoWithOneLine) {
  const std::string repo = " --repo " + Repo();
  const std::vector<std::string> cases = {
      "restore --target-dir " + work_ + "/x",                                    // neither --repo nor --config
      "restore main --config " + config_ + repo + " --target-dir " + work_ + "/x",  // both
      "available-backups --config " + config_,                                 // --config without a database
      "restore" + repo + " --db main --target-dir " + work_ + "/x --time yesterday",
      "restore" + repo + " --db main --target-dir " + work_ + "/x --lsn 12",
      "purge" + repo + " --db main",
      Backup() + " --key-file /k --public-key /p",
      "check" + repo + " --db main",                                           // no --pg
      "health --since yesterday --config " + config_,
      "set-db-backup main --retention-days 0 --config " + config_,
      "bakup" + repo,
  };
  for (const auto& args : cases) {
    CommandResult r = RunSmartbackup(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(CountLines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("hint:"), std::string::npos) << args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(work_ + "/repo")) << "nothing may be done with a bad command line";
  // A duration is a valid --since: the verb runs (and fails only because no agent listens).
  CommandResult since = RunSmartbackup("health --since 2h --config " + config_);
  EXPECT_EQ(since.exit_code, 1) << since.err;
}

}  // namespace
}  // namespace sb::test
