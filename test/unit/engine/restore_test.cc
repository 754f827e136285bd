// RunRestore on an in-memory repository holding one full backup with a
// tablespace: the tablespace goes only where --tablespace-map puts it, never
// to the location the manifest records (storage others can write), and an
// unmapped tablespace is refused before anything is written.
#include "engine/restore/restore.h"

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/text.h"
#include "storage/memory/memory_storage.h"
#include "support/tar_builder.h"

namespace sb {
namespace {

namespace fs = std::filesystem;
using test::End;
using test::Entry;
using test::Header;

constexpr uint64_t kSysid = 7000000000000000001ull;
const SystemTime kT0 = std::chrono::system_clock::from_time_t(1'800'000'000);

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sb-restore-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    clock_ = std::make_unique<ManualClock>(kT0);
    auto repo = Repository::Open(std::make_unique<MemoryStorage>(clock_.get()), true, clock_.get());
    ASSERT_TRUE(repo.ok());
    repo_ = std::move(repo).value();
  }
  void TearDown() override { fs::remove_all(root_); }

  // One archive's stream as a single stored object.
  ArchiveRecord Archive(const BackupManifest& m, int index, const std::string& name, uint32_t oid,
                        const std::string& location, const std::string& tar) {
    ArchiveRecord a{.index = index, .name = name, .tablespace_oid = oid, .location = location};
    const std::string key = Repository::DataPrefix("main", m.container, m.backup_id) + fmt::format("{:02d}-000000", index);
    auto enc = EncodeObject(tar, key, {});
    EXPECT_TRUE(enc.ok());
    EXPECT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
    a.raw_bytes = tar.size();
    a.chunks.push_back({.key = key, .raw_size = tar.size(), .stored_size = enc->bytes.size(),
                        .sha256 = Sha256Hex(enc->bytes)});
    return a;
  }

  // A full backup whose tablespace 16384 was recorded at `location`.
  void PutBackup(const std::string& location) {
    auto c = repo_->EnsureContainer("main", kSysid, 1, "first backup");
    ASSERT_TRUE(c.ok());
    BackupManifest m;
    m.database = "main";
    m.system_identifier = kSysid;
    m.container = c->name;
    m.type = BackupType::kFull;
    m.timeline = 1;
    m.start_lsn = "0/2000028";
    m.end_lsn = "0/2000100";
    m.start_time = clock_->Now();
    m.backup_id = Repository::NewBackupId(m.start_time, m.type);
    m.wal_segment_size = 16 << 20;
    m.archives.push_back(Archive(m, 0, "base.tar", 0, "",
                                 Entry("PG_VERSION", "15\n") + Header("pg_tblspc/", '5', 0) +
                                     Header("pg_tblspc/16384", '2', 0, location) + End()));
    m.archives.push_back(Archive(m, 1, "16384.tar", 16384, location,
                                 Header("PG_15_202209061/", '5', 0) + Entry("PG_15_202209061/1259", "rel") + End()));
    clock_->Advance(std::chrono::minutes(1));
    m.finish_time = clock_->Now();
    ASSERT_TRUE(repo_->WriteManifest(m, nullptr).ok());
  }

  RestoreOptions Options() {
    RestoreOptions o;
    o.database = "main";
    o.repo_url = "file:///repo";
    o.smartbackup_path = "/usr/bin/smartbackup";
    o.target_dir = root_ + "/target";
    o.parallelism = 1;
    return o;
  }

  std::string root_;
  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(RestoreTest, AnUnmappedTablespaceIsRefusedBeforeAnythingIsWritten) {
  const std::string recorded = root_ + "/recorded";
  PutBackup(recorded);
  auto r = RunRestore(*repo_, Options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
  EXPECT_NE(r.status().message().find("hint: add --tablespace-map 16384=DIR"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("recorded at \"" + recorded + "\""), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(root_ + "/target"));
  EXPECT_FALSE(fs::exists(recorded)) << "the manifest's location was written to";
}

TEST_F(RestoreTest, ARecordedLocationIsShownOnlyWhenItIsAPlainPath) {
  for (const std::string& location : {std::string("/srv/x\nrestore_command = 'y'"), std::string("relative/dir"),
                                      std::string("/srv/../etc"), std::string("/srv/\x1b[2Jx")}) {
    auto repo = Repository::Open(std::make_unique<MemoryStorage>(clock_.get()), true, clock_.get());
    ASSERT_TRUE(repo.ok());
    repo_ = std::move(repo).value();
    PutBackup(location);
    auto r = RunRestore(*repo_, Options());
    ASSERT_FALSE(r.ok());
    // The manifest parser refuses such a location outright (the backup is not
    // offered); either way the text never reaches the message.
    EXPECT_EQ(r.status().message().find("recorded at"), std::string::npos) << r.status().message();
    EXPECT_FALSE(fs::exists(root_ + "/target"));
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  }
}

TEST_F(RestoreTest, TheTablespaceGoesWhereTheOperatorMappedIt) {
  const std::string recorded = root_ + "/recorded";
  PutBackup(recorded);
  RestoreOptions o = Options();
  o.tablespace_map[16384] = root_ + "/mapped";
  auto r = RunRestore(*repo_, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(fs::read_symlink(root_ + "/target/pg_tblspc/16384"), fs::path(root_ + "/mapped"));
  std::ifstream rel(root_ + "/mapped/PG_15_202209061/1259");
  std::stringstream got;
  got << rel.rdbuf();
  EXPECT_EQ(got.str(), "rel");
  EXPECT_FALSE(fs::exists(recorded));
}

TEST_F(RestoreTest, AMappedDirectoryMustBeAbsoluteAndApartFromTheTarget) {
  PutBackup("/srv/space");
  for (const std::string& dir : {std::string("relative"), root_ + "/target", root_ + "/target/ts", root_,
                                 root_ + "/sp\nace"}) {
    RestoreOptions o = Options();
    o.tablespace_map[16384] = dir;
    auto r = RunRestore(*repo_, o);
    ASSERT_FALSE(r.ok()) << dir;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().message();
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << r.status().message();
    EXPECT_FALSE(fs::exists(root_ + "/target")) << dir;
  }
}

}  // namespace
}  // namespace sb
