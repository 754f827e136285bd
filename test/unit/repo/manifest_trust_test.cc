// Nothing read from the repository is trusted unvalidated: manifest grammar,
// manifest names, the manifest MAC, plain data refused with a key, object
// header sizes, and key material kept out of copies and core dumps.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <type_traits>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "repo/key_store.h"
#include "repo/manifest.h"
#include "repo/object_codec.h"
#include "repo/repository.h"
#include "storage/memory/memory_storage.h"

// These tests edit manifests in place after they were written: they list with
// ListBackupsFromStorage (what verify reads), since the index of format 2
// keeps the text each manifest was written with (restore re-reads the real
// manifest, which these checks refuse).
namespace sb {
namespace {

using nlohmann::json;

constexpr uint64_t kSysid = 7000000000000000001ull;
const std::string kContainer = fmt::format("{}-00000001", kSysid);
const SystemTime kT0 = SystemTime(std::chrono::seconds(1795000000));

EncryptionKey TestKey(uint8_t start = 0) {
  std::array<uint8_t, 32> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(start + i);
  return EncryptionKey::FromBytes(b);
}

// A well-formed full backup manifest: a base archive, a tablespace archive
// and PostgreSQL's backup_manifest, each object at its documented key.
BackupManifest ValidManifest(SystemTime start, const EncryptionKey* key) {
  BackupManifest m;
  m.database = "main";
  m.system_identifier = kSysid;
  m.container = kContainer;
  m.type = BackupType::kFull;
  m.start_time = start;
  m.finish_time = start + std::chrono::minutes(1);
  m.backup_id = Repository::NewBackupId(start, m.type);
  m.timeline = 1;
  m.start_lsn = "0/2000028";
  m.end_lsn = "0/2000138";
  m.server_version_num = 150010;
  m.wal_segment_size = 16 << 20;
  m.encryption_key_id = key ? key->key_id() : "";
  const std::string prefix = Repository::DataPrefix(m.database, m.container, m.backup_id);
  auto ref = [&](const std::string& name) {
    return ObjectRef{.key = prefix + name, .raw_size = 5, .stored_size = 80, .sha256 = Sha256Hex(name)};
  };
  m.archives.push_back({.index = 0, .name = "base.tar", .raw_bytes = 5, .chunks = {ref("00-000000")}});
  m.archives.push_back({.index = 1,
                        .name = "16384.tar",
                        .tablespace_oid = 16384,
                        .location = "/srv/ts1",
                        .raw_bytes = 5,
                        .chunks = {ref("01-000000")}});
  m.pg_manifest = ref("backup_manifest");
  return m;
}

std::string ManifestKeyOf(const BackupManifest& m) {
  return Repository::ManifestKey(m.database, m.container, m.backup_id);
}

// What a storage writer without the key can do: edit the JSON and
// recompute the unkeyed checksum.
std::string EditWithChecksum(const std::string& text, const std::function<void(json&)>& edit) {
  json j = json::parse(text);
  edit(j);
  j.erase("checksum");
  j["checksum"] = Sha256Hex(j.dump());
  return j.dump(1);
}

class ManifestTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto repo = Repository::Open(std::make_unique<MemoryStorage>(), true);
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    repo_ = std::move(repo).value();
  }
  std::unique_ptr<Repository> repo_;
};

// ------------------------------------------------------------ plain data with a key

TEST_F(ManifestTrustTest, PlainManifestIsRefusedWithAKey) {
  EncryptionKey key = TestKey();
  BackupManifest encrypted = ValidManifest(kT0, &key);
  BackupManifest planted = ValidManifest(kT0 + std::chrono::hours(1), nullptr);
  ASSERT_TRUE(repo_->WriteManifest(encrypted, &key).ok());
  ASSERT_TRUE(repo_->WriteManifest(planted, nullptr).ok());

  // Without a key both are backups (an unencrypted repository is legitimate).
  auto open = repo_->ListBackupsFromStorage("main");
  ASSERT_TRUE(open.ok()) << open.status().message();
  EXPECT_EQ(open->backups.size(), 2u);

  repo_->SetReadKeys(&key);
  auto plain = repo_->ReadManifest(ManifestKeyOf(planted));
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(plain.status().detail(), StatusDetail::kNotEncrypted) << plain.status().message();

  auto listing = repo_->ListBackupsFromStorage("main");
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  ASSERT_EQ(listing->backups.size(), 1u);
  EXPECT_EQ(listing->backups[0].backup_id, encrypted.backup_id) << "the plain newer one must not be chosen";
  ASSERT_EQ(listing->unreadable.size(), 1u);
  EXPECT_EQ(listing->unreadable[0].detail(), StatusDetail::kNotEncrypted);
}

TEST(PlainData, PlainObjectIsRefusedWithAKey) {
  EncryptionKey key = TestKey();
  const std::string chunk_key = Repository::DataPrefix("main", kContainer, "20261125T023328Z-F-1a2b") + "00-000000";
  auto enc = EncodeObject("planted file contents", chunk_key, {});
  ASSERT_TRUE(enc.ok());
  auto without = DecodeObject(enc->bytes, chunk_key, nullptr);
  ASSERT_TRUE(without.ok()) << without.status().message();
  auto with = DecodeObject(enc->bytes, chunk_key, &key);
  ASSERT_FALSE(with.ok());
  EXPECT_EQ(with.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(with.status().detail(), StatusDetail::kNotEncrypted) << with.status().message();
  // The detail survives added context (callers add what they were doing).
  EXPECT_EQ(with.status().WithContext("restore failed").detail(), StatusDetail::kNotEncrypted);
}

TEST(PlainData, PlainWalPartIsRefusedWithAKey) {
  EncryptionKey key = TestKey();
  const std::string part = Repository::WalPartKey("main", kContainer, 1, Lsn{0x1000000}, Lsn{0x2000000});
  auto enc = EncodeObject(std::string(0x1000000, 'w'), part, {});
  ASSERT_TRUE(enc.ok());
  auto with = DecodeObject(enc->bytes, part, &key, 0x1000000);
  ASSERT_FALSE(with.ok());
  EXPECT_EQ(with.status().detail(), StatusDetail::kNotEncrypted) << with.status().message();
  auto encrypted = EncodeObject(std::string(0x1000000, 'w'), part, {.key = &key});
  ASSERT_TRUE(encrypted.ok());
  EXPECT_TRUE(DecodeObject(encrypted->bytes, part, &key, 0x1000000).ok());
}

// ------------------------------------------------------------ MAC

TEST_F(ManifestTrustTest, EditedManifestWithRecomputedChecksumIsRefused) {
  EncryptionKey key = TestKey();
  BackupManifest m = ValidManifest(kT0, &key);
  ASSERT_TRUE(repo_->WriteManifest(m, &key).ok());
  const std::string key_name = ManifestKeyOf(m);
  auto text = repo_->storage().Get(key_name);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("\"mac\""), std::string::npos);
  EXPECT_NE(text->find("\"version\": 2"), std::string::npos);

  repo_->SetReadKeys(&key);
  ASSERT_TRUE(repo_->ReadManifest(key_name).ok());

  // A restore target moved forward: the checksum is right, the MAC is not.
  std::string edited = EditWithChecksum(*text, [](json& j) { j["end_lsn"] = "0/9000000"; });
  ASSERT_TRUE(repo_->storage().Put(key_name, edited).ok());
  auto r = repo_->ReadManifest(key_name);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(r.status().detail(), StatusDetail::kNotAuthenticated) << r.status().message();
  auto listing = repo_->ListBackupsFromStorage("main");
  ASSERT_TRUE(listing.ok());
  EXPECT_TRUE(listing->backups.empty());
  EXPECT_EQ(listing->unreadable.size(), 1u);

  // Dropping the MAC (a version-1 look-alike) does not help either.
  std::string stripped = EditWithChecksum(*text, [](json& j) {
    j.erase("mac");
    j["version"] = 1;
  });
  ASSERT_TRUE(repo_->storage().Put(key_name, stripped).ok());
  r = repo_->ReadManifest(key_name);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().detail(), StatusDetail::kNotAuthenticated) << r.status().message();

  // Another key is named as a wrong key, not as tampering.
  ASSERT_TRUE(repo_->storage().Put(key_name, *text).ok());
  EncryptionKey other = TestKey(9);
  repo_->SetReadKeys(&other);
  r = repo_->ReadManifest(key_name);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().message();
  // ... and a listing of nothing but such manifests says so instead of "no backups".
  auto wrong = repo_->ListBackupsFromStorage("main");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ManifestTrustTest, EncryptedManifestIsNotWrittenWithoutItsKey) {
  EncryptionKey key = TestKey();
  EncryptionKey other = TestKey(3);
  BackupManifest m = ValidManifest(kT0, &key);
  EXPECT_EQ(repo_->WriteManifest(m, nullptr).code(), StatusCode::kInternal);
  EXPECT_EQ(repo_->WriteManifest(m, &other).code(), StatusCode::kInternal);
  EXPECT_TRUE(repo_->storage().Get(ManifestKeyOf(m)).status().IsNotFound());
}

// ------------------------------------------------------------ names

// A copy of the newest manifest under another backup id: purge would delete
// what the copy describes (the real newest backup). It is not a backup.
TEST_F(ManifestTrustTest, ManifestCopiedUnderAnotherIdIsNotListed) {
  BackupManifest older = ValidManifest(kT0, nullptr);
  BackupManifest newest = ValidManifest(kT0 + std::chrono::hours(24), nullptr);
  ASSERT_TRUE(repo_->WriteManifest(older, nullptr).ok());
  ASSERT_TRUE(repo_->WriteManifest(newest, nullptr).ok());
  auto text = repo_->storage().Get(ManifestKeyOf(newest));
  ASSERT_TRUE(text.ok());
  const std::string copy_key =
      Repository::ManifestKey("main", kContainer, Repository::NewBackupId(kT0 + std::chrono::hours(1), BackupType::kFull));
  ASSERT_TRUE(repo_->storage().Put(copy_key, *text).ok());

  auto copy = repo_->ReadManifest(copy_key);
  ASSERT_FALSE(copy.ok());
  EXPECT_EQ(copy.status().code(), StatusCode::kCorruption) << copy.status().message();

  auto listing = repo_->ListBackupsFromStorage("main");
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  ASSERT_EQ(listing->backups.size(), 2u);
  EXPECT_EQ(listing->backups[0].backup_id, older.backup_id);
  EXPECT_EQ(listing->backups[1].backup_id, newest.backup_id) << "the real newest backup is still listed";
  ASSERT_EQ(listing->unreadable.size(), 1u);
  EXPECT_NE(listing->unreadable[0].message().find(copy_key), std::string::npos);
}

// Every identifier and key a manifest holds is checked against its grammar
// at parse: a newline could reach a config line, "../" a path or a delete.
TEST(ManifestGrammar, InjectedIdentifiersAndKeysAreRefusedAtParse) {
  const BackupManifest good = ValidManifest(kT0, nullptr);
  ASSERT_TRUE(BackupManifest::FromJson(good.ToJson(), "good").ok())
      << BackupManifest::FromJson(good.ToJson(), "good").status().message();
  const std::string prefix = Repository::DataPrefix(good.database, good.container, good.backup_id);
  struct Case {
    const char* what;
    std::function<void(BackupManifest&)> edit;
  };
  const std::vector<Case> cases = {
      {"newline in database", [](BackupManifest& m) { m.database = "main\nrestore_command = 'sh -c x'"; }},
      {"dotdot database", [](BackupManifest& m) { m.database = ".."; }},
      {"container path", [](BackupManifest& m) { m.container = "../../etc"; }},
      {"container of another sysid", [](BackupManifest& m) { m.container = "7000000000000000002-00000001"; }},
      {"newline in backup id", [](BackupManifest& m) { m.backup_id += "\nx"; }},
      {"backup id type letter", [](BackupManifest& m) { m.backup_id[17] = 'L'; }},
      {"timeline 0", [](BackupManifest& m) { m.timeline = 0; }},
      {"lsn with newline", [](BackupManifest& m) { m.end_lsn = "0/2000138\nrecovery_target_action = 'promote'"; }},
      {"lsn lower case", [](BackupManifest& m) { m.start_lsn = "0/2000a28"; }},
      {"end before start", [](BackupManifest& m) { m.end_lsn = "0/1000000"; }},
      {"compression", [](BackupManifest& m) { m.compression = "none"; }},
      {"key id", [](BackupManifest& m) { m.encryption_key_id = "../../keys/x"; }},
      {"chunk key dotdot", [&](BackupManifest& m) { m.archives[0].chunks[0].key = prefix + "../../../../x"; }},
      {"chunk key elsewhere",
       [](BackupManifest& m) { m.archives[0].chunks[0].key = "db/main/data/" + kContainer + "/other/00-000000"; }},
      {"chunk key with newline", [&](BackupManifest& m) { m.archives[0].chunks[0].key = prefix + "00-000000\n"; }},
      {"chunk out of sequence", [&](BackupManifest& m) { m.archives[0].chunks[0].key = prefix + "00-000001"; }},
      {"pg_manifest key", [&](BackupManifest& m) { m.pg_manifest->key = prefix + "../backup_manifest"; }},
      {"sha256 upper case", [](BackupManifest& m) { m.archives[0].chunks[0].sha256 = std::string(64, 'A'); }},
      {"sha256 short", [](BackupManifest& m) { m.archives[0].chunks[0].sha256 = "abc"; }},
      {"raw size over cap", [](BackupManifest& m) { m.archives[0].chunks[0].raw_size = kMaxObjectRawSize + 1; }},
      {"stored size impossible", [](BackupManifest& m) { m.archives[0].chunks[0].stored_size = uint64_t{1} << 40; }},
      {"archive name", [](BackupManifest& m) { m.archives[1].name = "../16384.tar"; }},
      {"archive name vs oid", [](BackupManifest& m) { m.archives[1].name = "16385.tar"; }},
      {"archive index", [](BackupManifest& m) { m.archives[1].index = 5; }},
      {"location relative", [](BackupManifest& m) { m.archives[1].location = "srv/ts1"; }},
      {"location dotdot", [](BackupManifest& m) { m.archives[1].location = "/srv/../root/.ssh"; }},
      {"location newline", [](BackupManifest& m) { m.archives[1].location = "/srv/ts1\n"; }},
      {"base with location", [](BackupManifest& m) { m.archives[0].location = "/etc"; }},
  };
  for (const auto& c : cases) {
    BackupManifest m = good;
    c.edit(m);
    auto r = BackupManifest::FromJson(m.ToJson(), "case");
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << c.what;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << c.what << ": " << r.status().message();
  }
  // The system identifier is digits only, and fits 64 bits.
  for (const char* sysid : {"7000000000000000001\n", "-1", "99999999999999999999", "0x10"}) {
    std::string text = EditWithChecksum(good.ToJson(), [&](json& j) { j["system_identifier"] = sysid; });
    EXPECT_FALSE(BackupManifest::FromJson(text, "sysid").ok()) << sysid;
  }
}

TEST(ManifestGrammar, LogBackupObjectsAreWalPartsOfTheirContainer) {
  BackupManifest m = ValidManifest(kT0, nullptr);
  m.type = BackupType::kLog;
  m.backup_id = Repository::NewBackupId(kT0, BackupType::kLog);
  m.pg_manifest.reset();
  const std::string part = Repository::WalPartKey("main", kContainer, 1, Lsn{0x1000000}, Lsn{0x2000000});
  m.archives = {{.index = 0,
                 .name = "wal",
                 .raw_bytes = 0x1000000,
                 .chunks = {{.key = part, .raw_size = 0x1000000, .stored_size = 100, .sha256 = Sha256Hex("p")}}}};
  ASSERT_TRUE(BackupManifest::FromJson(m.ToJson(), "log").ok())
      << BackupManifest::FromJson(m.ToJson(), "log").status().message();
  BackupManifest other = m;
  other.archives[0].chunks[0].key =
      Repository::WalPartKey("other", kContainer, 1, Lsn{0x1000000}, Lsn{0x2000000});
  EXPECT_FALSE(BackupManifest::FromJson(other.ToJson(), "log").ok());
  other = m;
  other.archives[0].chunks[0].raw_size = 5;
  EXPECT_FALSE(BackupManifest::FromJson(other.ToJson(), "log").ok());
}

TEST(RepositoryGrammar, WalPartKeysAndContainerNames) {
  const std::string good = Repository::WalPartKey("main", kContainer, 1, Lsn{0x1000000}, Lsn{0x2000000});
  ASSERT_TRUE(Repository::ParseWalPartKey(good));
  EXPECT_FALSE(Repository::ParseWalPartKey("db/../wal/" + kContainer + "/00000001/0000000001000000-0000000002000000"));
  EXPECT_FALSE(Repository::ParseWalPartKey("db/main/wal/../../x/00000001/0000000001000000-0000000002000000"));
  EXPECT_FALSE(Repository::ParseWalPartKey("db/main/wal/" + kContainer + "/00000001/0000000001000000-000000000200000a"));
  EXPECT_FALSE(Repository::ParseWalPartKey("db/main/wal/" + kContainer + "/00000000/0000000001000000-0000000002000000"));
  EXPECT_TRUE(Repository::ValidateContainerName(kContainer).ok());
  EXPECT_TRUE(Repository::ValidateContainerName(kContainer + "-2").ok());
  for (const std::string& bad : {kContainer + "-1", kContainer + "-02", kContainer + "\n", std::string("x-00000001"),
                                fmt::format("{}-0000000a", kSysid), fmt::format("{}-00000000", kSysid)}) {
    EXPECT_FALSE(Repository::ValidateContainerName(bad).ok()) << bad;
  }
}

TEST_F(ManifestTrustTest, DatabaseNamesOutsideTheGrammarAreNotListed) {
  ASSERT_TRUE(repo_->EnsureContainer("main", kSysid, 1, "first backup").ok());
  ASSERT_TRUE(repo_->storage().Put("db/ma in\n/containers/" + kContainer + ".json", "{}").ok());
  auto dbs = repo_->ListDatabases();
  ASSERT_TRUE(dbs.ok()) << dbs.status().message();
  EXPECT_EQ(*dbs, std::vector<std::string>{"main"});
}

TEST_F(ManifestTrustTest, ContainerDescriptorWithInjectedNameIsRefused) {
  ASSERT_TRUE(repo_->EnsureContainer("main", kSysid, 1, "first backup").ok());
  ASSERT_TRUE(repo_->ListContainers("main").ok());
  const std::string key = Repository::ContainerKey("main", "7000000000000000001-00000002");
  json j = {{"name", "../../etc"}, {"system_identifier", "7000000000000000001"}, {"timeline", 2},
            {"created", "2026-11-25T02:33:28Z"}, {"reason", "x"}};
  ASSERT_TRUE(repo_->storage().Put(key, j.dump()).ok());
  auto r = repo_->ListContainers("main");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().message();
}

// ------------------------------------------------------------ object sizes

// A 13-byte zstd frame that declares 1 GiB of content (one RLE block of one
// byte): structurally a single frame, so only a size check stops a decoder
// from allocating what it declares.
std::string HugeClaimObject() {
  const unsigned char frame[] = {0x28, 0xB5, 0x2F, 0xFD,  // magic
                                 0xA0,                    // FCS 4 bytes, single segment
                                 0x00, 0x00, 0x00, 0x40,  // content size 2^30
                                 0x0B, 0x00, 0x00,        // last block, RLE, size 1
                                 'x'};
  std::string obj(kObjectHeaderSize, '\0');
  std::memcpy(obj.data(), "SBKO", 4);
  obj[4] = 1;     // format version
  obj[5] = 0x01;  // zstd
  const uint64_t raw = uint64_t{1} << 30, payload = sizeof frame;
  for (int i = 0; i < 8; ++i) {
    obj[8 + i] = static_cast<char>((raw >> (8 * i)) & 0xff);
    obj[16 + i] = static_cast<char>((payload >> (8 * i)) & 0xff);
  }
  obj.append(reinterpret_cast<const char*>(frame), sizeof frame);
  return obj;
}

TEST(ObjectSizes, HeaderDemandingAHugeSizeIsRefusedWithoutAllocating) {
  const std::string obj = HugeClaimObject();
  const std::string name = "db/main/data/x/00-000000";
  // In a child with little address space to spare: allocating the declared
  // gigabyte there fails (std::bad_alloc, exit 4); refusing it first exits 0.
  std::ifstream statm("/proc/self/statm");
  uint64_t vm_pages = 0;
  statm >> vm_pages;
  ASSERT_GT(vm_pages, 0u);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const rlim_t limit = vm_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) + (rlim_t{256} << 20);
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
    try {
      auto r = DecodeObject(obj, name, nullptr);
      _exit(r.ok() ? 1 : r.status().code() == StatusCode::kCorruption ? 0 : 2);
    } catch (...) {  // std::bad_alloc: it tried to allocate what the header claimed
      _exit(4);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the decoder died (signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0)
                                 << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "4: it tried to allocate what the header claimed";
}

TEST(ObjectSizes, HeaderSizeMustMatchTheManifest) {
  EncryptionKey key = TestKey();
  const std::string name = "db/main/data/x/00-000000";
  auto enc = EncodeObject("twelve bytes", name, {.key = &key});
  ASSERT_TRUE(enc.ok());
  EXPECT_TRUE(DecodeObject(enc->bytes, name, &key, 12).ok());
  auto r = DecodeObject(enc->bytes, name, &key, 11);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().message();
}

// ------------------------------------------------------------ key material

static_assert(!std::is_copy_constructible_v<EncryptionKey>, "key material must not be copied");
static_assert(!std::is_copy_assignable_v<EncryptionKey>, "key material must not be copied");
static_assert(std::is_nothrow_move_constructible_v<EncryptionKey>);

// The page holding a key is marked "dd" (MADV_DONTDUMP) in /proc/self/smaps.
TEST(KeyMaterial, KeyBytesAreExcludedFromCoreDumps) {
  EncryptionKey key = EncryptionKey::Generate();
  const auto addr = reinterpret_cast<uintptr_t>(key.bytes().data());
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_mapping = false, found = false, dontdump = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    // Mapping lines start "lo-hi "; field lines ("Rss:", "VmFlags:") never parse as two numbers.
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
      in_mapping = lo <= addr && addr < hi;
      found = found || in_mapping;
    } else if (in_mapping && line.rfind("VmFlags:", 0) == 0) {
      dontdump = (line + " ").find(" dd ") != std::string::npos;
      break;
    }
  }
  ASSERT_TRUE(found);
  EXPECT_TRUE(dontdump) << "the key's page may end up in a core dump";
  // Moving hands the same page over; the moved-to key still works.
  EncryptionKey moved = std::move(key);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(moved.bytes().data()), addr);
  EXPECT_EQ(EncryptionKey::FromBytes(moved.bytes()).key_id(), moved.key_id());
}

// ------------------------------------------------------------ public-key mode

class PublicKeyManifestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() / ("sb_pkmac_" + std::to_string(getpid())));
    std::filesystem::create_directories(*dir_);
    struct PkeyFree {
      void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
    };
    std::unique_ptr<EVP_PKEY, PkeyFree> a(EVP_RSA_gen(2048));
    ASSERT_TRUE(a);
    for (bool priv : {false, true}) {
      FILE* f = std::fopen((*dir_ + (priv ? "/priv.pem" : "/pub.pem")).c_str(), "w");
      ASSERT_NE(f, nullptr);
      int rc = priv ? PEM_write_PrivateKey(f, a.get(), nullptr, nullptr, 0, nullptr, nullptr)
                    : PEM_write_PUBKEY(f, a.get());
      std::fclose(f);
      ASSERT_EQ(rc, 1);
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string* dir_;
};
std::string* PublicKeyManifestTest::dir_ = nullptr;

// The writer holds only the public key and MACs with its data key; the
// reader with the private key authenticates the manifest.
TEST_F(PublicKeyManifestTest, RoundTripWithMac) {
  auto repo = Repository::Open(std::make_unique<MemoryStorage>(), true);
  ASSERT_TRUE(repo.ok());
  auto data_key = NewWrappedDataKey((*repo)->storage(), *dir_ + "/pub.pem");
  ASSERT_TRUE(data_key.ok()) << data_key.status().message();
  BackupManifest m = ValidManifest(kT0, &*data_key);
  ASSERT_TRUE((*repo)->WriteManifest(m, &*data_key).ok());
  const std::string key_name = ManifestKeyOf(m);

  auto ring = PrivateKeyRing::Open((*repo)->storage(), *dir_ + "/priv.pem");
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  (*repo)->SetReadKeys(ring->get());
  auto read = (*repo)->ReadManifest(key_name);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->end_lsn, m.end_lsn);
  EXPECT_EQ(read->encryption_key_id, data_key->key_id());

  auto text = (*repo)->storage().Get(key_name);
  ASSERT_TRUE(text.ok());
  ASSERT_TRUE(
      (*repo)->storage().Put(key_name, EditWithChecksum(*text, [](json& j) { j["end_lsn"] = "0/9000000"; })).ok());
  auto edited = (*repo)->ReadManifest(key_name);
  ASSERT_FALSE(edited.ok());
  EXPECT_EQ(edited.status().detail(), StatusDetail::kNotAuthenticated) << edited.status().message();

  // A manifest naming a key id absent from keys/ cannot be authenticated:
  // unreadable, and it does not hide the real backups.
  BackupManifest second = ValidManifest(kT0 + std::chrono::hours(2), &*data_key);
  ASSERT_TRUE((*repo)->WriteManifest(second, &*data_key).ok());
  std::string forged = EditWithChecksum(*text, [](json& j) { j["encryption"]["key_id"] = "00112233445566ff"; });
  ASSERT_TRUE((*repo)->storage().Put(key_name, forged).ok());
  auto listing = (*repo)->ListBackupsFromStorage("main");
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  ASSERT_EQ(listing->backups.size(), 1u);
  EXPECT_EQ(listing->backups[0].backup_id, second.backup_id);
  EXPECT_EQ(listing->unreadable.size(), 1u);
}

// A member of another type than expected (e.g. "format": {}) made
// json::value() throw out of the parser and end the reading process (found by
// fuzz_manifest): storage-controlled text is refused as corrupt instead.
TEST(ManifestTypes, MembersOfAnotherTypeAreCorruptNotAnException) {
  for (const std::string& text : {std::string(R"({"format": {"k": 1}, "version": 2})"),
                                  std::string(R"({"format": 7})"), std::string(R"({"format": null})")}) {
    auto m = BackupManifest::FromJson(text, "db/main/backups/c/x.json");
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kCorruption) << m.status().message();
  }
  // A float where an integer belongs: converting 8e98 to uint32_t was
  // undefined behaviour (found by fuzz_manifest in a container descriptor).
  {
    auto storage = std::make_unique<MemoryStorage>();
    Storage& raw = *storage;
    auto repo = Repository::Open(std::move(storage), /*create=*/true);
    ASSERT_TRUE(repo.ok());
    ASSERT_TRUE(raw.Put("db/main/containers/7312345678901234567-00000001.json",
                        R"({"created": "2026-09-21T14:13:20Z", "name": "7312345678901234567-00000001",
                            "reason": "first backup", "system_identifier": "7312345678901234567", "timeline": 8e98})")
                    .ok());
    auto containers = (*repo)->ListContainers("main");
    ASSERT_FALSE(containers.ok());
    EXPECT_EQ(containers.status().code(), StatusCode::kCorruption) << containers.status().message();
  }
  for (const std::string& descriptor : {std::string(R"({"format": ["smartbackup-repository"], "version": 1})"),
                                        std::string(R"({"format": "smartbackup-repository", "version": "1"})")}) {
    auto storage = std::make_unique<MemoryStorage>();
    ASSERT_TRUE(storage->Put("smartbackup-repo.json", descriptor).ok());
    auto repo = Repository::Open(std::move(storage), /*create=*/false);
    ASSERT_FALSE(repo.ok()) << descriptor;
    EXPECT_EQ(repo.status().code(), StatusCode::kFailedPrecondition) << repo.status().message();
  }
}

}  // namespace
}  // namespace sb
