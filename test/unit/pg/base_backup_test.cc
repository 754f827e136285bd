// RunBaseBackup against a real PostgreSQL 15: archive layout, manifest, WAL
// included, restore of the result, tablespaces and error paths.
#include "pg/base_backup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "common/text.h"
#include "pg/connection.h"
#include "support/pg_cluster.h"

namespace sb {
namespace {

using test::PgCluster;
using test::RunAsPostgres;
using test::ShellQuote;

bool Has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Writes each archive to dir/<archive name> and keeps the manifest in memory.
class TarDirSink : public BaseBackupSink {
 public:
  explicit TarDirSink(std::string dir) : dir_(std::move(dir)) {}

  Status OnArchiveStart(const std::string& archive_name, const TablespaceInfo& tablespace) override {
    if (out_.is_open()) return Status::Internal("archive started while another is open");
    if (manifest_started_) return Status::Internal("archive after manifest");
    current_ = archive_name;
    archives_.push_back(archive_name);
    locations_[archive_name] = tablespace;
    out_.open(dir_ + "/" + archive_name, std::ios::binary | std::ios::trunc);
    if (!out_) return Status::IoError("cannot create " + dir_ + "/" + archive_name);
    return Status::Ok();
  }
  Status OnArchiveData(std::string_view bytes) override {
    if (!out_.is_open()) return Status::Internal("data outside an archive");
    out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes_[current_] += bytes.size();
    total_bytes_ += bytes.size();
    return out_ ? Status::Ok() : Status::IoError("write failed");
  }
  Status OnArchiveEnd() override {
    if (!out_.is_open()) return Status::Internal("end without start");
    out_.close();
    ++ended_;
    return out_ ? Status::Ok() : Status::IoError("close failed");
  }
  Status OnManifestData(std::string_view bytes) override {
    if (out_.is_open()) return Status::Internal("manifest while an archive is open");
    manifest_started_ = true;
    manifest_.append(bytes);
    return Status::Ok();
  }
  void OnProgress(uint64_t done, uint64_t total) override {
    if (done < last_progress_) progress_went_backwards_ = true;
    last_progress_ = done;
    last_total_ = total;
    ++progress_calls_;
  }

  std::string dir_;
  std::ofstream out_;
  std::string current_;
  std::vector<std::string> archives_;
  std::map<std::string, TablespaceInfo> locations_;
  std::map<std::string, uint64_t> bytes_;
  uint64_t total_bytes_ = 0;
  int ended_ = 0;
  bool manifest_started_ = false;
  std::string manifest_;
  uint64_t last_progress_ = 0;
  uint64_t last_total_ = 0;
  int progress_calls_ = 0;
  bool progress_went_backwards_ = false;
};

// Fails on the nth data call, like a full disk or a dead upload.
class FailingSink : public BaseBackupSink {
 public:
  Status OnArchiveStart(const std::string&, const TablespaceInfo&) override { return Status::Ok(); }
  Status OnArchiveData(std::string_view) override {
    if (++calls_ == 3) return Status::IoError("disk full (injected)");
    return Status::Ok();
  }
  Status OnArchiveEnd() override { return Status::Ok(); }
  Status OnManifestData(std::string_view) override { return Status::Ok(); }
  int calls_ = 0;
};

class DiscardSink : public BaseBackupSink {
 public:
  Status OnArchiveStart(const std::string&, const TablespaceInfo&) override { return Status::Ok(); }
  Status OnArchiveData(std::string_view b) override {
    bytes_ += b.size();
    return Status::Ok();
  }
  Status OnArchiveEnd() override { return Status::Ok(); }
  Status OnManifestData(std::string_view) override { return Status::Ok(); }
  uint64_t bytes_ = 0;
};

// A directory owned by postgres, removed at scope end.
struct TempDir {
  explicit TempDir(const std::string& tag) : path(test::MakeTempDirForPostgres(tag)) {}
  ~TempDir() { test::RemoveTree(path); }
  std::string path;
};

std::vector<std::string> TarMembers(const std::string& tar_path) {
  test::CommandResult r = test::RunCommand("tar tf " + ShellQuote(tar_path));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class BaseBackupTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = PgCluster::Create().release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  // Temporary slots go away when the walsender notices the client left.
  static void ExpectNoSlotsEventually() {
    std::string n;
    for (int i = 0; i < 100; ++i) {
      n = cluster_->Psql("SELECT count(*) FROM pg_replication_slots");
      if (n == "0") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "replication slots left behind: " << n;
  }
  static PgCluster* cluster_;
};
PgCluster* BaseBackupTest::cluster_ = nullptr;

TEST_F(BaseBackupTest, FullBackupWithWalRestores) {
  cluster_->Psql("CREATE TABLE kept AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g");
  TempDir out("bb-out");
  TarDirSink sink(out.path);
  BaseBackupOptions options;
  options.label = "unit test's backup";
  auto r = RunBaseBackup(cluster_->conninfo(), options, sink);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Rows written after the backup must not appear in the restored copy.
  cluster_->Psql("INSERT INTO kept SELECT g, 'late' FROM generate_series(5001, 5100) g");

  EXPECT_EQ(std::to_string(r->system_identifier), cluster_->Psql("SELECT system_identifier FROM pg_control_system()"));
  EXPECT_LT(r->start_lsn, r->end_lsn);
  EXPECT_EQ(r->start_timeline, 1u);
  EXPECT_EQ(r->end_timeline, 1u);
  ASSERT_EQ(r->tablespaces.size(), 1u);
  EXPECT_EQ(r->tablespaces[0].oid, 0u);
  EXPECT_EQ(r->tablespaces[0].location, "");
  EXPECT_GT(r->tablespaces[0].size_kb, 0);

  ASSERT_EQ(sink.archives_, std::vector<std::string>{"base.tar"});
  EXPECT_EQ(sink.ended_, 1);
  EXPECT_GT(sink.bytes_["base.tar"], 1000000u);
  EXPECT_GT(sink.progress_calls_, 0);
  EXPECT_FALSE(sink.progress_went_backwards_);
  EXPECT_GT(sink.last_total_, 0u);

  std::vector<std::string> members = TarMembers(out.path + "/base.tar");
  EXPECT_TRUE(Contains(members, "PG_VERSION"));
  EXPECT_TRUE(Contains(members, "global/pg_control"));
  EXPECT_TRUE(Contains(members, "backup_label"));
  // The WAL from start to end is inside, so the archive alone restores.
  std::string first_segment = "pg_wal/" + WalSegmentName(r->start_timeline, r->start_lsn, 16 * 1024 * 1024);
  std::string last_segment = "pg_wal/" + WalSegmentName(r->end_timeline, Lsn{r->end_lsn.value - 1}, 16 * 1024 * 1024);
  EXPECT_TRUE(Contains(members, first_segment)) << first_segment;
  EXPECT_TRUE(Contains(members, last_segment)) << last_segment;

  EXPECT_TRUE(Has(sink.manifest_, "\"PostgreSQL-Backup-Manifest-Version\"")) << sink.manifest_.substr(0, 200);
  EXPECT_TRUE(Has(sink.manifest_, "\"Checksum-Algorithm\": \"CRC32C\""));
  EXPECT_TRUE(Has(sink.manifest_, "\"Start-LSN\": \"" + r->start_lsn.ToString() + "\""));

  // Restore: extract as postgres, verify against the manifest, start it.
  TempDir restore("bb-restore");
  test::CommandResult x =
      RunAsPostgres("tar xf " + ShellQuote(out.path + "/base.tar") + " -C " + ShellQuote(restore.path));
  ASSERT_EQ(x.exit_code, 0) << x.err;
  {
    std::ofstream m(restore.path + "/backup_manifest", std::ios::binary);
    m << sink.manifest_;
  }
  test::CommandResult v =
      RunAsPostgres(test::PgBinDir() + "/pg_verifybackup " + ShellQuote(restore.path));
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  auto restored = PgCluster::Adopt(restore.path);
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(restored->Psql("SELECT count(*) FROM kept"), "5000");
  EXPECT_EQ(restored->Psql("SELECT count(*) FROM kept WHERE v = 'late'"), "0");
  EXPECT_EQ(restored->Psql("SELECT system_identifier FROM pg_control_system()"),
            std::to_string(r->system_identifier));
  restored.reset();  // stop before TempDir removes the data directory
  ExpectNoSlotsEventually();
}

TEST_F(BaseBackupTest, TablespaceArrivesAsItsOwnArchive) {
  TempDir ts("bb-ts");
  cluster_->Psql("CREATE TABLESPACE extra LOCATION '" + ts.path + "'");
  cluster_->Psql("CREATE TABLE in_ts TABLESPACE extra AS SELECT generate_series(1, 1000) AS id");
  std::string oid = cluster_->Psql("SELECT oid FROM pg_tablespace WHERE spcname = 'extra'");

  TempDir out("bb-out-ts");
  TarDirSink sink(out.path);
  auto r = RunBaseBackup(cluster_->conninfo(), {}, sink);
  ASSERT_TRUE(r.ok()) << r.status().message();

  ASSERT_EQ(sink.archives_.size(), 2u);
  EXPECT_TRUE(Contains(sink.archives_, "base.tar"));
  const std::string ts_archive = oid + ".tar";
  ASSERT_TRUE(Contains(sink.archives_, ts_archive)) << sink.archives_[0] << "," << sink.archives_[1];
  EXPECT_EQ(sink.locations_[ts_archive].oid, static_cast<uint32_t>(std::stoul(oid)));
  EXPECT_EQ(sink.locations_[ts_archive].location, ts.path);
  EXPECT_EQ(sink.locations_["base.tar"].oid, 0u);
  EXPECT_EQ(sink.locations_["base.tar"].location, "");
  EXPECT_EQ(r->tablespaces.size(), 2u);

  std::vector<std::string> ts_members = TarMembers(out.path + "/" + ts_archive);
  bool has_pg_dir = false;
  for (const auto& m : ts_members) has_pg_dir |= StartsWith(m, "PG_15_");
  EXPECT_TRUE(has_pg_dir) << "no PG_15_* directory in " << ts_archive;
  // tar-format backups carry tablespace_map instead of pg_tblspc symlinks.
  std::vector<std::string> base_members = TarMembers(out.path + "/base.tar");
  EXPECT_TRUE(Contains(base_members, "tablespace_map"));
  EXPECT_TRUE(Has(sink.manifest_, "pg_tblspc/" + oid + "/PG_15_"));

  cluster_->Psql("DROP TABLE in_ts");
  cluster_->Psql("DROP TABLESPACE extra");
  ExpectNoSlotsEventually();
}

TEST_F(BaseBackupTest, SinkErrorAbortsAndIsReturnedAsIs) {
  FailingSink sink;
  auto r = RunBaseBackup(cluster_->conninfo(), {}, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_EQ(r.status().message(), "disk full (injected)");
  ExpectNoSlotsEventually();
  // The server is not left in backup mode: the next backup works.
  TempDir out("bb-out-again");
  TarDirSink ok_sink(out.path);
  auto again = RunBaseBackup(cluster_->conninfo(), {.fast_checkpoint = true, .include_wal = false}, ok_sink);
  ASSERT_TRUE(again.ok()) << again.status().message();
  bool has_wal_segment = false;
  for (const auto& m : TarMembers(out.path + "/base.tar")) {
    has_wal_segment |= StartsWith(m, "pg_wal/") && m.size() == 7 + 24;
  }
  EXPECT_FALSE(has_wal_segment);
}

TEST_F(BaseBackupTest, UnreachableServer) {
  int port = test::FindFreePort();
  TarDirSink sink("/nonexistent");
  auto r = RunBaseBackup("host=127.0.0.1 port=" + std::to_string(port) + " user=postgres", {}, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().message();
  EXPECT_TRUE(Has(r.status().message(), "127.0.0.1:" + std::to_string(port))) << r.status().message();
  EXPECT_TRUE(sink.archives_.empty());
}

TEST_F(BaseBackupTest, RoleWithoutReplicationIsPermissionDenied) {
  cluster_->Psql("DO $$BEGIN CREATE ROLE nrep LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$");
  TarDirSink sink("/nonexistent");
  auto r = RunBaseBackup("host=127.0.0.1 port=" + std::to_string(cluster_->port()) + " user=nrep dbname=postgres",
                         {}, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().message();
  EXPECT_TRUE(Has(r.status().message(), "REPLICATION")) << r.status().message();
  EXPECT_TRUE(Has(r.status().message(), "nrep")) << r.status().message();
}

TEST_F(BaseBackupTest, ChecksumFailureIsCorruption) {
  cluster_->Psql("CREATE TABLE corrupt_me AS SELECT g FROM generate_series(1, 1000) g");
  cluster_->Psql("CHECKPOINT");
  std::string file = cluster_->data_dir() + "/" + cluster_->Psql("SELECT pg_relation_filepath('corrupt_me')");
  // Garbage in the middle of block 0: its checksum no longer matches.
  test::CommandResult dd = RunAsPostgres("printf 'garbage-garbage-' | dd of=" + ShellQuote(file) +
                                         " bs=1 seek=4000 conv=notrunc status=none");
  ASSERT_EQ(dd.exit_code, 0) << dd.err;

  DiscardSink sink;
  auto r = RunBaseBackup(cluster_->conninfo(), {}, sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().message();
  EXPECT_TRUE(Has(r.status().message(), "checksum")) << r.status().message();

  DiscardSink unverified;
  auto skip = RunBaseBackup(cluster_->conninfo(), {.verify_checksums = false}, unverified);
  EXPECT_TRUE(skip.ok()) << skip.status().message();
  cluster_->Psql("DROP TABLE corrupt_me");
  ExpectNoSlotsEventually();
}

// Our own backup, extracted and started with standby.signal, becomes a
// streaming standby; server info and a backup taken from it work too.
TEST_F(BaseBackupTest, StandbyFromOwnBackupAndBackupFromStandby) {
  TempDir out("bb-out-sb");
  TarDirSink sink(out.path);
  auto r = RunBaseBackup(cluster_->conninfo(), {}, sink);
  ASSERT_TRUE(r.ok()) << r.status().message();
  TempDir standby_dir("bb-standby");
  test::CommandResult x =
      RunAsPostgres("tar xf " + ShellQuote(out.path + "/base.tar") + " -C " + ShellQuote(standby_dir.path) +
                    " && touch " + ShellQuote(standby_dir.path + "/standby.signal") + " && echo " +
                    ShellQuote("primary_conninfo = '" + cluster_->conninfo() + "'") + " >> " +
                    ShellQuote(standby_dir.path + "/postgresql.auto.conf"));
  ASSERT_EQ(x.exit_code, 0) << x.err;
  auto standby = PgCluster::Adopt(standby_dir.path);
  ASSERT_NE(standby, nullptr);

  auto conn = PgConnection::Connect(standby->conninfo(), false);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto info = ReadServerInfo(**conn);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_TRUE(info->in_recovery);
  EXPECT_EQ(info->system_identifier, r->system_identifier);
  EXPECT_EQ(info->timeline, 1u);
  EXPECT_GE(info->current_lsn, r->end_lsn);

  cluster_->Psql("CREATE TABLE on_standby AS SELECT generate_series(1, 100) AS id; CHECKPOINT");
  TempDir out2("bb-out-from-sb");
  TarDirSink sink2(out2.path);
  auto from_standby = RunBaseBackup(standby->conninfo(), {}, sink2);
  ASSERT_TRUE(from_standby.ok()) << from_standby.status().message();
  EXPECT_EQ(from_standby->system_identifier, r->system_identifier);
  EXPECT_LE(from_standby->start_lsn, from_standby->end_lsn);
  EXPECT_TRUE(Has(sink2.manifest_, "PostgreSQL-Backup-Manifest-Version"));
  EXPECT_TRUE(Contains(TarMembers(out2.path + "/base.tar"), "global/pg_control"));
  standby.reset();
  cluster_->Psql("DROP TABLE on_standby");
  ExpectNoSlotsEventually();
}

TEST_F(BaseBackupTest, LabelMustBeOneLine) {
  TarDirSink sink("/nonexistent");
  auto r = RunBaseBackup(cluster_->conninfo(), {.label = "two\nlines"}, sink);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sb
