// WalGet's answer to restore_command: kAbsent only when the repository was
// read completely and lacks the file; anything it could not read is an
// error, so that recovery stops instead of ending early.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "storage/memory/memory_storage.h"
#include "support/memory_repository.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000002ull;
constexpr uint64_t kSeg = 16ull << 20;

class WalGetTest : public test::MemoryRepositoryTest {
 protected:
  WalGetTest() : MemoryRepositoryTest(kSysid) {}
  void SetUp() override {
    MemoryRepositoryTest::SetUp();
    if (HasFatalFailure()) return;
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb-walget-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void PutPart(uint64_t start, uint64_t end) {
    const std::string key = Repository::WalPartKey("main", c1_.name, 1, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(std::string(end - start, 'w'), key, {});
    ASSERT_TRUE(enc.ok());
    ASSERT_TRUE(repo_->storage().Put(key, enc->bytes).ok());
  }

  Result<WalGetOutcome> Get(const std::string& name) {
    return WalGet(*repo_, {.database = "main", .name = name, .dest = dir_ + "/" + name});
  }

  std::string dir_;
};

TEST_F(WalGetTest, PresentIsRestoredAndAbsentIsAbsent) {
  PutPart(kSeg, 2 * kSeg);
  auto present = Get("000000010000000000000001");
  ASSERT_TRUE(present.ok()) << present.status().ToString();
  EXPECT_EQ(*present, WalGetOutcome::kRestored);
  EXPECT_EQ(std::filesystem::file_size(dir_ + "/000000010000000000000001"), kSeg);
  auto absent = Get("000000010000000000000002");
  ASSERT_TRUE(absent.ok()) << absent.status().ToString();
  EXPECT_EQ(*absent, WalGetOutcome::kAbsent);
  auto history = Get("00000002.history");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(*history, WalGetOutcome::kAbsent);
}

// An unreadable manifest may be what makes a file present: not "absent".
TEST_F(WalGetTest, AnUnreadableManifestIsAnErrorNotAbsence) {
  PutPart(kSeg, 2 * kSeg);
  ASSERT_TRUE(repo_->storage().Put("db/main/backups/" + c1_.name + "/20270115T080000Z-F-0000.json", "{garbage").ok());
  auto r = Get("000000010000000000000002");
  EXPECT_FALSE(r.ok()) << "an unreadable manifest was answered with kAbsent, which ends recovery";
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/000000010000000000000002"));
}

// A part that was listed but cannot be fetched (removed meanwhile) is an error too.
TEST_F(WalGetTest, AListedPartThatVanishedIsAnErrorNotAbsence) {
  PutPart(kSeg, 2 * kSeg);
  auto catalog = WalCatalog::Load(*repo_, "main", std::nullopt);
  ASSERT_TRUE(catalog.ok());
  ASSERT_TRUE(repo_->storage().Delete(catalog->parts().front().key).ok());
  auto bytes = catalog->Assemble(repo_->storage(), 1, Lsn{kSeg}, Lsn{2 * kSeg}, nullptr);
  ASSERT_FALSE(bytes.ok());
  EXPECT_FALSE(bytes.status().IsNotFound()) << bytes.status().ToString();
}

}  // namespace
}  // namespace sb
