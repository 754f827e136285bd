// The repository is untrusted input: through the CLI, a manifest copied
// under another backup id is not a backup, and with --key-file a manifest
// edited by someone without the key (checksum recomputed) is refused by
// verify and restore, while the genuine backup restores.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "repo/object_codec.h"
#include "support/pg_cluster.h"
#include "support/smartbackup_cli.h"

namespace sb::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RepoTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = PgCluster::Create();
    cluster_->Psql(
        "CREATE TABLE known(id int PRIMARY KEY, payload text);"
        "INSERT INTO known SELECT g, md5(g::text) FROM generate_series(1, 5000) g;");
    known_md5_ = TableMd5(*cluster_, "known", "id");
    work_ = MakeTempDirForPostgres("repotrust");
    key_ = work_ + "/key";
    WritePostgresFile(key_, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
  }
  void TearDown() override {
    cluster_.reset();
    RemoveTree(work_);
  }

  std::string Repo() const { return "file://" + work_ + "/repo"; }

  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }

  std::unique_ptr<PgCluster> cluster_;
  std::string work_, key_, known_md5_;
};

TEST_F(RepoTrustTest, CopiedManifestIsNotListedAndEditedManifestIsRefusedWithTheKey) {
  auto b = RunSmartbackup("backup --pg " + ShellQuote(cluster_->conninfo()) + " --repo " + Repo() +
                          " --db main --key-file " + key_);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string manifest_path;
  for (const auto& e : fs::recursive_directory_iterator(work_ + "/repo/db/main/backups")) {
    if (e.path().extension() == ".json") manifest_path = e.path();
  }
  ASSERT_FALSE(manifest_path.empty());
  const std::string genuine = Read(manifest_path);
  const std::string id = json::parse(genuine)["backup_id"];

  // 1. A byte-for-byte copy under another (later) backup id.
  std::string other_id = id;
  other_id[0] = '3';  // year 3xxx: the copy would be the newest backup
  const std::string copy_path = fs::path(manifest_path).parent_path() / (other_id + ".json");
  Write(copy_path, genuine);
  auto listed = RunSmartbackup("available-backups --repo " + Repo() + " --db main --output json");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  int fulls = 0;
  const json listed_dbs = json::parse(listed.out);  // kept: the loop reads into it
  for (const auto& row : listed_dbs[0]["backups"]) {
    if (row["type"] == "full") {
      ++fulls;
      EXPECT_EQ(row["backup_id"], id);
    }
  }
  EXPECT_EQ(fulls, 1) << "a copy of a manifest is not a second backup: " << listed.out;
  // Format 2 lists through the index, which never names the copy; verify reads every manifest key.
  auto copy_verified = RunSmartbackup("verify --repo " + Repo() + " --db main --key-file " + key_);
  EXPECT_EQ(copy_verified.exit_code, 1) << copy_verified.out << copy_verified.err;
  EXPECT_NE((copy_verified.out + copy_verified.err).find(other_id), std::string::npos)
      << "the copy is reported: " << copy_verified.out << copy_verified.err;
  fs::remove(copy_path);

  // 2. The genuine manifest edited without the key, its checksum recomputed.
  json edited = json::parse(genuine);
  edited["expiration_time"] = "2099-01-01T00:00:00Z";
  edited.erase("checksum");
  edited["checksum"] = Sha256Hex(edited.dump());
  Write(manifest_path, edited.dump(1));
  auto verify = RunSmartbackup("verify --repo " + Repo() + " --db main --key-file " + key_);
  EXPECT_EQ(verify.exit_code, 1) << verify.out << verify.err;
  EXPECT_NE((verify.out + verify.err).find("not authenticated"), std::string::npos) << verify.out << verify.err;
  auto refused = RunSmartbackup("restore --repo " + Repo() + " --db main --key-file " + key_ + " --target-dir " +
                                work_ + "/r-edited");
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_FALSE(fs::exists(work_ + "/r-edited"));

  // 3. The genuine manifest back: verified and restored with the key.
  Write(manifest_path, genuine);
  verify = RunSmartbackup("verify --repo " + Repo() + " --db main --key-file " + key_);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto r = RunSmartbackup("restore --repo " + Repo() + " --db main --key-file " + key_ + " --target-dir " + work_ +
                          "/r");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto restored = PgCluster::Adopt(work_ + "/r");
  ASSERT_TRUE(restored);
  EXPECT_EQ(TableMd5(*restored, "known", "id"), known_md5_);
}

}  // namespace
}  // namespace sb::test
