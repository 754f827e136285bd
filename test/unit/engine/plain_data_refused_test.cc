// With a key, what wal-get and restore read must be encrypted and (for
// manifests) authenticated: a plain WAL part or manifest planted in an
// encrypted repository is refused, and the genuine backup is still chosen.
#include <gtest/gtest.h>

#include <fmt/core.h>

#include "engine/wal/wal_archive.h"
#include "engine/wal/wal_catalog.h"
#include "storage/memory/memory_storage.h"
#include "support/memory_repository.h"

namespace sb {
namespace {

constexpr uint64_t kSysid = 7000000000000000001ull;
constexpr uint64_t kSeg = 16ull << 20;

EncryptionKey TestKey() {
  std::array<uint8_t, 32> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(0x40 + i);
  return EncryptionKey::FromBytes(b);
}

class PlainDataRefusedTest : public test::MemoryRepositoryTest {
 protected:
  PlainDataRefusedTest() : MemoryRepositoryTest(kSysid) {}

  void PutPart(uint64_t start, uint64_t end, const EncryptionKey* key) {
    const std::string k = Repository::WalPartKey("main", c1_.name, 1, Lsn{start}, Lsn{end});
    auto enc = EncodeObject(std::string(end - start, 'w'), k, {.key = key});
    ASSERT_TRUE(enc.ok());
    ASSERT_TRUE(repo_->storage().Put(k, enc->bytes).ok());
  }

  BackupManifest PutFull(uint64_t start, const EncryptionKey* key) {
    BackupManifest m;
    m.database = "main";
    m.system_identifier = kSysid;
    m.container = c1_.name;
    m.type = BackupType::kFull;
    m.timeline = 1;
    m.start_lsn = Lsn{start}.ToString();
    m.end_lsn = Lsn{start + 0x100}.ToString();
    m.start_time = m.finish_time = clock_->Now();
    m.backup_id = Repository::NewBackupId(m.start_time, m.type);
    m.wal_segment_size = kSeg;
    m.encryption_key_id = key ? key->key_id() : "";
    EXPECT_TRUE(repo_->WriteManifest(m, key).ok());
    clock_->Advance(std::chrono::hours(1));
    return m;
  }

};

// The wal-get path: a segment assembled from a planted plain part is
// refused with a key (and served without one, as before).
TEST_F(PlainDataRefusedTest, PlainWalPartIsNotServedWithAKey) {
  EncryptionKey key = TestKey();
  PutFull(0x1000028, &key);
  PutPart(0x1000000, 0x2000000, &key);
  PutPart(0x2000000, 0x3000000, nullptr);  // planted
  repo_->SetReadKeys(&key);
  auto cat = WalCatalog::Load(*repo_, "main", std::nullopt);
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  auto genuine = cat->Assemble(repo_->storage(), 1, Lsn{0x1000000}, Lsn{0x2000000}, &key);
  ASSERT_TRUE(genuine.ok()) << genuine.status().message();
  EXPECT_EQ(genuine->size(), kSeg);
  auto planted = cat->Assemble(repo_->storage(), 1, Lsn{0x2000000}, Lsn{0x3000000}, &key);
  ASSERT_FALSE(planted.ok());
  EXPECT_EQ(planted.status().detail(), StatusDetail::kNotEncrypted) << planted.status().message();
}

// A plain manifest planted as the newest backup is not a base a keyed
// restore can choose: the genuine encrypted one stays the newest base.
TEST_F(PlainDataRefusedTest, PlainManifestIsNotABaseWithAKey) {
  EncryptionKey key = TestKey();
  BackupManifest genuine = PutFull(0x1000028, &key);
  PutPart(0x1000000, 0x2000000, &key);
  PutFull(0x1800028, nullptr);  // planted, newer
  repo_->SetReadKeys(&key);
  auto cat = WalCatalog::Load(*repo_, "main", std::nullopt);
  ASSERT_TRUE(cat.ok()) << cat.status().message();
  ASSERT_EQ(cat->bases().size(), 1u);
  EXPECT_EQ(cat->bases()[0].backup_id, genuine.backup_id);
}

}  // namespace
}  // namespace sb
