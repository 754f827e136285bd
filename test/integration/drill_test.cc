// Restore drills against a real cluster: a standalone `smartbackup drill`
// proves the newest point and a point in time (the proven data compared by
// SQL with the source at that point), records the result in the repository
// and leaves nothing behind; a missing WAL part and a forged manifest (valid
// checksum, wrong object hash) fail the drill naming the object.
#include <gtest/gtest.h>
#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/lsn.h"
#include "repo/object_codec.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"
#include "support/wait.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

uint64_t LsnOf(const std::string& text) { return Lsn::Parse(text)->value; }

bool EmptyDir(const std::string& dir) {
  std::error_code ec;
  return !fs::exists(dir, ec) || fs::is_empty(dir, ec);
}

std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class DrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = MakeTempDirForPostgres("drill");
    const std::string push =
        std::string(SMARTBACKUP_BINARY) + " wal-push %p --repo " + Repo() + " --db main --log-max-wal 1MiB";
    PgClusterOptions o;
    o.extra_conf = {"archive_mode = on", "archive_command = '" + push + "'"};
    cluster_ = PgCluster::Create(o);
    cluster_->Pgbench("-i -s 1 -q");
    cluster_->Psql("CREATE TABLE marks(seq int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
  }
  void TearDown() override {
    cluster_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return "file://" + RepoDir(); }
  std::string RepoDir() const { return work_ + "/repo"; }
  std::string Scratch() const { return work_ + "/scratch"; }

  void FullBackup() {
    CommandResult b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() + " --db main");
    ASSERT_EQ(b.exit_code, 0) << b.err;
  }
  // Archives the current segment and waits for it.
  void ArchiveNow() {
    const std::string segment = cluster_->Psql("SELECT pg_walfile_name(pg_switch_wal())");
    ASSERT_TRUE(WaitFor(
        [&] {
          return cluster_->Psql("SELECT coalesce(last_archived_wal, '') >= '" + segment + "' FROM pg_stat_archiver") == "t";
        },
        60s));
  }
  void Marks(int from, int to) {
    cluster_->Psql(fmt::format("INSERT INTO marks(seq) SELECT g FROM generate_series({}, {}) g", from, to));
  }
  // The same expression runs in the drill's copy (--check-sql): equal means the same rows.
  static constexpr const char* kAccountsMd5 =
      "SELECT md5(string_agg(t::text, '|' ORDER BY aid)) FROM pgbench_accounts t";
  std::string AccountsMd5() { return cluster_->Psql(kAccountsMd5); }
  CommandResult Drill(const std::string& extra) {
    return RunSmartbackup("drill --repo " + Repo() + " --db main --scratch-dir " + Scratch() + " --output json " + extra);
  }
  std::vector<std::string> Records() {
    std::vector<std::string> out;
    for (const auto& f : FilesUnder(RepoDir())) {
      if (f.rfind("db/main/drills/", 0) == 0) out.push_back(f);
    }
    return out;
  }

  std::string work_;
  std::unique_ptr<PgCluster> cluster_;
};

TEST_F(DrillTest, ProvesTheNewestPointAndAPointInTimeAndLeavesNothing) {
  FullBackup();
  Marks(1, 100);
  const std::string md5 = AccountsMd5();
  const std::string mid_time = cluster_->Psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                                              "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  std::this_thread::sleep_for(20ms);
  cluster_->Pgbench("-n -t 200");
  Marks(101, 150);
  const std::string end_lsn = cluster_->Psql("SELECT pg_current_wal_lsn()");
  ArchiveNow();

  // The newest point: every mark, the pgbench tables as they are now (compared by SQL in the copy).
  const std::string latest_md5 = AccountsMd5();
  CommandResult latest = Drill(fmt::format(
      "--latest --check-sql \"SELECT count(*) = 150 AND (SELECT md5(string_agg(t::text, '|' ORDER BY aid)) FROM "
      "pgbench_accounts t) = '{}' FROM marks\"",
      latest_md5));
  ASSERT_EQ(latest.exit_code, 0) << latest.out << latest.err;
  json j = json::parse(latest.out);
  EXPECT_EQ(j["result"], "passed");
  EXPECT_GE(LsnOf(j["reached_lsn"].get<std::string>()), LsnOf(end_lsn));
  EXPECT_TRUE(j["reached_time"].is_string());
  EXPECT_GT(j["bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_GE(j["rto_seconds"].get<double>(), j["restore_seconds"].get<double>());
  EXPECT_TRUE(EmptyDir(Scratch())) << "the drill left files behind";

  // A point in time: the 100 marks and the accounts as they were then.
  CommandResult pit = Drill(fmt::format(
      "--time {} --check-sql \"SELECT count(*) = 100 AND (SELECT md5(string_agg(t::text, '|' ORDER BY aid)) FROM "
      "pgbench_accounts t) = '{}' FROM marks\"",
      mid_time, md5));
  ASSERT_EQ(pit.exit_code, 0) << pit.out << pit.err;
  EXPECT_EQ(json::parse(pit.out)["result"], "passed");
  EXPECT_TRUE(EmptyDir(Scratch()));

  // A check that does not hold fails the drill.
  CommandResult wrong = Drill("--check-sql \"SELECT count(*) = 1 FROM marks\"");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out;
  EXPECT_NE(wrong.err.find("did not return true"), std::string::npos) << wrong.err;
  EXPECT_TRUE(EmptyDir(Scratch()));

  // Each drill left one record in the repository, and available-backups shows the proof.
  EXPECT_EQ(Records().size(), 3u);
  CommandResult list = RunSmartbackup("available-backups --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  bool verified = false;
  const json listing = json::parse(list.out);  // one object per database
  for (const auto& row : listing.at(0).at("backups")) {
    if (row["type"] == "full") verified = verified || row.value("verified_at", json()).is_string();
  }
  EXPECT_TRUE(verified) << list.out;
}

TEST_F(DrillTest, AMissingWalPartFailsTheDrillNamingIt) {
  FullBackup();
  std::string hole;
  // Log backups (sealed at 1 MiB of WAL) past the full, then one WAL part of them removed.
  for (int i = 0; i < 4; ++i) {
    cluster_->Pgbench("-n -t 300");
    Marks(i * 10 + 1, i * 10 + 10);
    ArchiveNow();
  }
  std::vector<std::string> parts;
  for (const auto& f : FilesUnder(RepoDir())) {
    if (f.rfind("db/main/wal/", 0) == 0 && f.find("/history/") == std::string::npos) parts.push_back(f);
  }
  ASSERT_GE(parts.size(), 4u);
  hole = parts[parts.size() - 2];
  fs::remove(RepoDir() + "/" + hole);

  CommandResult r = Drill("--latest");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["result"], "failed");
  EXPECT_EQ(j["failed_object"], hole) << r.out;
  EXPECT_NE(r.err.find(hole), std::string::npos) << r.err;
  EXPECT_TRUE(EmptyDir(Scratch()));
  EXPECT_EQ(Records().size(), 1u);
}

TEST_F(DrillTest, AForgedManifestWithAValidChecksumFailsTheDrillNamingTheObject) {
  FullBackup();
  std::string manifest_path;
  for (const auto& f : FilesUnder(RepoDir())) {
    if (f.rfind("db/main/backups/", 0) == 0 && f.find("-F-") != std::string::npos) manifest_path = RepoDir() + "/" + f;
  }
  ASSERT_FALSE(manifest_path.empty());
  std::ifstream in(manifest_path);
  std::stringstream ss;
  ss << in.rdbuf();
  json m = json::parse(ss.str());
  json& chunk = m["archives"][0]["chunks"][0];
  const std::string object = chunk["key"];
  chunk["sha256"] = std::string(64, 'a');
  m.erase("checksum");
  m["checksum"] = Sha256Hex(m.dump());
  WritePostgresFile(manifest_path, m.dump(1));

  CommandResult r = Drill("--latest");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["result"], "failed");
  EXPECT_EQ(j["failed_object"], object) << r.out;
  EXPECT_NE(r.err.find(object), std::string::npos) << r.err;
  EXPECT_TRUE(EmptyDir(Scratch()));
}

}  // namespace
}  // namespace sb::test
