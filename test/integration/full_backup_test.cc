// Full backup and restore of a live PostgreSQL 15 cluster through the CLI,
// to a local repository and to Azure (Azurite), plain and encrypted. Restored
// data is compared with the source by SQL, never by file sizes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/azurite.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A cluster with pgbench data plus a table of known content, and the md5s
// of both taken after the load, before any backup.
class FullBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = PgCluster::Create();
    cluster_->Pgbench("-i -s 2 -q");
    cluster_->Psql(
        "CREATE TABLE known(id int PRIMARY KEY, payload text, at timestamptz);"
        "INSERT INTO known SELECT g, md5(g::text) || repeat(chr(65 + g % 26), g % 50), now() "
        "FROM generate_series(1, 20000) g;");
    known_md5_ = TableMd5(*cluster_, "known", "id");
    accounts_md5_ = TableMd5(*cluster_, "pgbench_accounts", "aid");
    work_ = MakeTempDirForPostgres("fullbackup");
  }
  void TearDown() override {
    restored_.reset();
    cluster_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return "file://" + work_ + "/repo"; }
  std::string Target(const std::string& name) const { return work_ + "/" + name; }

  // Starts the restored directory and checks it holds exactly the source's data.
  void ExpectRestoredEqualsSource(const std::string& dir) {
    restored_ = PgCluster::Adopt(dir);
    ASSERT_TRUE(restored_);
    EXPECT_EQ(TableMd5(*restored_, "known", "id"), known_md5_);
    EXPECT_EQ(TableMd5(*restored_, "pgbench_accounts", "aid"), accounts_md5_);
    EXPECT_EQ(restored_->Psql("SELECT count(*) FROM pgbench_branches"), "2");
    restored_.reset();
  }

  std::unique_ptr<PgCluster> cluster_;
  std::unique_ptr<PgCluster> restored_;
  std::string work_;
  std::string known_md5_, accounts_md5_;
};

TEST_F(FullBackupTest, LocalRepositoryRoundTrip) {
  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                          " --db main --output json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  json backup = json::parse(b.out);
  EXPECT_EQ(backup["type"], "full");

  // Writes after the backup must not appear in the restore.
  cluster_->Psql("INSERT INTO known VALUES (999999, 'after the backup', now())");

  auto list = RunSmartbackup("available-backups --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json rows = json::array();
  const json dbs = json::parse(list.out);
  for (const auto& r : dbs[0]["backups"]) {
    if (r["type"] == "full") rows.push_back(r);
  }
  ASSERT_EQ(rows.size(), 1u);
  const json& row = rows[0];
  for (const char* field : {"database", "system_identifier", "container", "backup_id", "type", "timeline", "start_lsn",
                            "end_lsn", "start_time", "finish_time", "expiration_time", "size_bytes", "stored_bytes"}) {
    EXPECT_TRUE(row.contains(field)) << field;
  }
  EXPECT_EQ(row["system_identifier"].get<std::string>(),
            cluster_->Psql("SELECT system_identifier FROM pg_control_system()"));
  EXPECT_EQ(row["backup_id"], backup["backup_id"]);
  EXPECT_LT(row["stored_bytes"].get<uint64_t>(), row["size_bytes"].get<uint64_t>());  // compressed

  auto verify = RunSmartbackup("verify --repo " + Repo());
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --latest --target-dir " + Target("restored"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoredEqualsSource(Target("restored"));
}

TEST_F(FullBackupTest, CopyOnlyIsRecordedAndRestores) {
  auto b = RunSmartbackup("backup --copy-only --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                          " --db main --output json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(json::parse(b.out)["type"], "copy_only");
  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + Target("restored"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoredEqualsSource(Target("restored"));
}

TEST_F(FullBackupTest, AzureEncryptedRoundTripAndKeyErrors) {
  auto azurite = AzuriteServer::Start();
  ASSERT_TRUE(azurite);
  std::map<std::string, std::string> env{{"AZURE_STORAGE_CONNECTION_STRING", azurite->connection_string()}};
  const std::string repo = "azure://backups/prod";
  const std::string key = work_ + "/key", wrong_key = work_ + "/wrong";
  WritePostgresFile(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
  WritePostgresFile(wrong_key, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n");

  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + repo +
                              " --db main --key-file " + key + " --chunk-size 1MiB",
                          env);
  ASSERT_EQ(b.exit_code, 0) << b.err;

  auto no_key = RunSmartbackup("restore --repo " + repo + " --db main --target-dir " + Target("a"), env);
  EXPECT_NE(no_key.exit_code, 0);
  EXPECT_NE(no_key.err.find("--key-file"), std::string::npos) << no_key.err;
  EXPECT_FALSE(fs::exists(Target("a"))) << "a refused restore must not leave a directory behind";

  auto bad_key =
      RunSmartbackup("restore --repo " + repo + " --db main --key-file " + wrong_key + " --target-dir " + Target("b"), env);
  EXPECT_NE(bad_key.exit_code, 0);
  EXPECT_NE(bad_key.err.find("wrong encryption key"), std::string::npos) << bad_key.err;

  auto verify = RunSmartbackup("verify --repo " + repo + " --key-file " + key, env);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  auto r = RunSmartbackup("restore --repo " + repo + " --db main --key-file " + key + " --target-dir " + Target("c"), env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoredEqualsSource(Target("c"));

  // Wrong storage credentials: one clear line, the key never echoed.
  std::string bad_conn = azurite->connection_string();
  auto pos = bad_conn.find("AccountKey=");
  ASSERT_NE(pos, std::string::npos);
  bad_conn.replace(pos + 11, 8, "AAAAAAAA");
  auto denied = RunSmartbackup("available-backups --repo " + repo, {{"AZURE_STORAGE_CONNECTION_STRING", bad_conn}});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_EQ(std::count(denied.err.begin(), denied.err.end(), '\n'), 1) << denied.err;
  EXPECT_EQ(denied.err.find(bad_conn.substr(pos + 11, 30)), std::string::npos) << "secret leaked: " << denied.err;

  auto no_creds = RunSmartbackup("available-backups --repo " + repo);
  EXPECT_NE(no_creds.exit_code, 0);
  EXPECT_NE(no_creds.err.find("AZURE_STORAGE"), std::string::npos) << no_creds.err;
}

TEST_F(FullBackupTest, AzurePlainRoundTrip) {
  auto azurite = AzuriteServer::Start();
  ASSERT_TRUE(azurite);
  std::map<std::string, std::string> env{{"AZURE_STORAGE_CONNECTION_STRING", azurite->connection_string()}};
  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo azure://plain --db main", env);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto r = RunSmartbackup("restore --repo azure://plain --db main --target-dir " + Target("r"), env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectRestoredEqualsSource(Target("r"));
}

TEST_F(FullBackupTest, TablespaceIsRestoredToAMappedDirectory) {
  const std::string space = work_ + "/space";
  RunAsPostgres("mkdir -m 700 " + space);
  cluster_->Psql("CREATE TABLESPACE extra LOCATION '" + space + "'");
  cluster_->Psql("CREATE TABLE spaced TABLESPACE extra AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g");
  const std::string spaced_md5 = TableMd5(*cluster_, "spaced", "id");
  const std::string oid = cluster_->Psql("SELECT oid FROM pg_tablespace WHERE spcname = 'extra'");

  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() + " --db main");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // The manifest's recorded location is never a destination: without a map the restore is
  // refused before anything is written, naming the flag to add and the recorded place.
  const auto space_before = fs::last_write_time(space);
  auto unmapped = RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + Target("r1"));
  EXPECT_NE(unmapped.exit_code, 0);
  EXPECT_NE(unmapped.err.find("hint: add --tablespace-map " + oid + "=DIR"), std::string::npos) << unmapped.err;
  EXPECT_NE(unmapped.err.find("recorded at \"" + space + "\""), std::string::npos) << unmapped.err;
  EXPECT_FALSE(fs::exists(Target("r1")));
  EXPECT_EQ(fs::last_write_time(space), space_before);

  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + Target("r2") +
                          " --tablespace-map " + oid + "=" + work_ + "/space2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::read_symlink(Target("r2") + "/pg_tblspc/" + oid), fs::path(work_ + "/space2"));
  restored_ = PgCluster::Adopt(Target("r2"));
  EXPECT_EQ(TableMd5(*restored_, "spaced", "id"), spaced_md5);
  EXPECT_EQ(TableMd5(*restored_, "known", "id"), known_md5_);
}

TEST_F(FullBackupTest, FlippedByteIsReportedByVerifyAndRestore) {
  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                          " --db main --chunk-size 1MiB");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  // Flip one byte in the middle of the third data object of base.tar.
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(work_ + "/repo/db/main/data")) {
    if (e.path().filename() == "00-000002") victim = e.path();
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    f.put(static_cast<char>(c ^ 0x01));
  }
  auto verify = RunSmartbackup("verify --repo " + Repo() + " --db main");
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("00-000002"), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("corrupt"), std::string::npos) << verify.out;

  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + Target("r"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("00-000002"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("corrupt"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(Target("r"))) << "a failed restore must not leave a half-written directory";

  // A deleted object is reported as missing.
  fs::remove(victim);
  verify = RunSmartbackup("verify --repo " + Repo() + " --db main");
  EXPECT_EQ(verify.exit_code, 1);
  EXPECT_NE(verify.out.find("missing"), std::string::npos) << verify.out;
}

TEST_F(FullBackupTest, BadInputGivesOneLineErrorsAndTouchesNothing) {
  auto good = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() + " --db main");
  ASSERT_EQ(good.exit_code, 0) << good.err;
  auto count_backups = [&] {
    auto l = RunSmartbackup("available-backups --all --repo " + Repo() + " --output json");
    EXPECT_EQ(l.exit_code, 0) << l.err;
    size_t n = 0;
    for (const auto& db : json::parse(l.out)) {
      for (const auto& r : db["backups"]) n += r["backup_id"].is_string();
    }
    return n;
  };
  auto expect_one_line_error = [](const CommandResult& r, const std::string& needle) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  };

  int closed_port = FindFreePort();
  expect_one_line_error(RunSmartbackup("backup --pg 'host=127.0.0.1 port=" + std::to_string(closed_port) +
                                       " user=postgres' --repo " + Repo() + " --db main"),
                        std::to_string(closed_port));
  cluster_->Psql("CREATE ROLE norepl LOGIN");
  expect_one_line_error(
      RunSmartbackup("backup --pg 'host=127.0.0.1 port=" + std::to_string(cluster_->port()) +
                     " user=norepl dbname=postgres' --repo " + Repo() + " --db main"),
      "REPLICATION");
  expect_one_line_error(RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) +
                                       " --repo s3://bucket --db main"),
                        "unsupported storage URL");
  expect_one_line_error(RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                                       " --db 'bad/name'"),
                        "invalid database name");
  expect_one_line_error(RunSmartbackup("backup --repo " + Repo()), "--pg");
  const std::string short_key = work_ + "/short.key";
  WritePostgresFile(short_key, "abcd\n");
  expect_one_line_error(RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                                       " --db main --key-file " + short_key),
                        "32 bytes");

  const std::string busy = Target("busy");
  RunAsPostgres("mkdir -p " + busy + " && touch " + busy + "/somefile");
  expect_one_line_error(RunSmartbackup("restore --repo " + Repo() + " --db main --target-dir " + busy), "not empty");
  EXPECT_TRUE(fs::exists(busy + "/somefile")) << "restore must not touch a non-empty directory";
  expect_one_line_error(RunSmartbackup("restore --repo " + Repo() + " --db nosuchdb --target-dir " + Target("x")),
                        "nosuchdb");
  expect_one_line_error(RunSmartbackup("available-backups --repo file://" + work_ + "/empty"), "no smartbackup repository");

  EXPECT_EQ(count_backups(), 1u);
  auto verify = RunSmartbackup("verify --repo " + Repo());
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
}

}  // namespace
}  // namespace sb::test
