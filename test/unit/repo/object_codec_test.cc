// Tests for the object codec (round trips, tampering, key files) and for
// public-key wrapping of the data key.
#include "repo/object_codec.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "common/encoding.h"
#include "common/text.h"
#include "repo/key_store.h"
#include "repo/public_key.h"
#include "storage/memory/memory_storage.h"

namespace sb {
namespace {

constexpr size_t kHeader = kObjectHeaderSize;
constexpr size_t kTag = 16;
constexpr const char* kObj = "full/20261125T023328Z/0007.chunk";

std::string RandomBytes(size_t n, uint32_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

// Text-like data mixed with noise: compresses to roughly a third.
std::string SemiCompressible(size_t n) {
  static const char* kWords[] = {"relation ", "tuple ", "page ", "xid ", "commit ", "vacuum ", "index ", "heap ",
                                 "toast ",    "lsn ",   "wal ",  "0000 ", "NULL ",   "btree ",  "fsm ",   "vm "};
  std::mt19937 rng(42);
  std::string s;
  s.reserve(n + 16);
  while (s.size() < n) {
    uint32_t r = rng();
    if (r % 4 == 0) {
      for (int i = 0; i < 6; ++i) s.push_back(static_cast<char>(rng()));
    } else {
      s += kWords[r % 16];
    }
  }
  s.resize(n);
  return s;
}

EncryptionKey TestKey(uint8_t start = 0) {
  std::array<uint8_t, 32> b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(start + i);
  return EncryptionKey::FromBytes(b);
}

std::string Encode(std::string_view plain, const EncryptionKey* key, int level = 3,
                   std::string_view object_key = kObj) {
  auto r = EncodeObject(plain, object_key, EncodeOptions{.zstd_level = level, .key = key});
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return {};
  EXPECT_EQ(r->sha256, Sha256Hex(r->bytes));
  EXPECT_EQ(r->raw_size, plain.size());
  return r->bytes;
}

void ExpectCode(const Result<std::string>& r, StatusCode code, std::string_view needle = kObj) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().message();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

// ------------------------------------------------------------ round trips

TEST(ObjectCodec, RoundTripsWithAndWithoutKey) {
  EncryptionKey key = TestKey();
  std::string compressible(3 << 20, 'a');
  for (size_t i = 0; i < compressible.size(); i += 4096) compressible[i] = 'b';
  const std::vector<std::string> inputs = {"", "x", RandomBytes(10 << 20), compressible, SemiCompressible(100000)};
  for (const EncryptionKey* k : {static_cast<const EncryptionKey*>(nullptr), static_cast<const EncryptionKey*>(&key)}) {
    for (const auto& plain : inputs) {
      for (int level : {3, 1, -5, 0, 19}) {
        if (level == 19 && plain.size() > (1 << 20)) continue;  // keep the test fast
        std::string stored = Encode(plain, k, level);
        auto info = ParseObjectHeader(stored, kObj);
        ASSERT_TRUE(info.ok()) << info.status().message();
        EXPECT_EQ(info->encrypted, k != nullptr);
        EXPECT_EQ(info->compressed, level != 0);
        EXPECT_EQ(info->raw_size, plain.size());
        EXPECT_EQ(info->key_id, k ? k->key_id() : "");
        auto back = DecodeObject(stored, kObj, k);
        ASSERT_TRUE(back.ok()) << back.status().message();
        EXPECT_TRUE(*back == plain) << "size " << plain.size() << " level " << level;
      }
    }
  }
}

TEST(ObjectCodec, LayoutIsAsDocumented) {
  EncryptionKey key = TestKey();
  std::string plain(1000, 'z');
  std::string s = Encode(plain, &key, 3);
  ASSERT_GE(s.size(), kHeader + kTag);
  EXPECT_EQ(s.substr(0, 4), "SBKO");
  EXPECT_EQ(s[4], 1);     // version
  EXPECT_EQ(s[5], 0x03);  // zstd | aes-256-gcm
  EXPECT_EQ(s[6], 0);
  EXPECT_EQ(s[7], 0);
  uint64_t raw = 0, payload = 0;
  for (int i = 7; i >= 0; --i) raw = (raw << 8) | static_cast<uint8_t>(s[8 + i]);
  for (int i = 7; i >= 0; --i) payload = (payload << 8) | static_cast<uint8_t>(s[16 + i]);
  EXPECT_EQ(raw, 1000u);
  EXPECT_EQ(s.size(), kHeader + payload + kTag);
  EXPECT_EQ(HexEncode(s.substr(24, 8)), key.key_id());

  std::string stored = Encode("hello", nullptr, 0);
  EXPECT_EQ(stored.size(), kHeader + 5);
  EXPECT_EQ(stored[5], 0x00);
  EXPECT_EQ(stored.substr(kHeader), "hello");
  EXPECT_EQ(stored.substr(24, 20), std::string(20, '\0'));
}

TEST(ObjectCodec, FreshNonceEveryTime) {
  EncryptionKey key = TestKey();
  std::string a = Encode("same plaintext", &key);
  std::string b = Encode("same plaintext", &key);
  EXPECT_NE(a.substr(32, 12), b.substr(32, 12));
  EXPECT_NE(a, b);
}

// With a key, plain data is refused: anyone able to write to the storage
// could have planted it (manifest_trust_test.cc has the rest).
TEST(ObjectCodec, UnencryptedObjectIsRefusedWithKeyGiven) {
  EncryptionKey key = TestKey();
  std::string stored = Encode("plain data", nullptr);
  auto r = DecodeObject(stored, kObj, &key);
  ExpectCode(r, StatusCode::kCorruption);
  EXPECT_EQ(r.status().detail(), StatusDetail::kNotEncrypted);
  EXPECT_TRUE(DecodeObject(stored, kObj, nullptr).ok());
}

TEST(ObjectCodec, RefusesOversizedInput) {
  // Encode refuses before touching the data, so a fake view is enough.
  std::string_view huge(reinterpret_cast<const char*>(&kHeader), kMaxObjectRawSize + 1);
  auto r = EncodeObject(huge, kObj, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(ObjectCodec, ConcurrentEncodeDecode) {
  EncryptionKey key = TestKey();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 30; ++i) {
        std::string plain = RandomBytes(1000 + 3000 * i, t * 100 + i) + std::string(5000, 'q');
        std::string name = "obj/" + std::to_string(t) + "/" + std::to_string(i);
        const EncryptionKey* k = (i % 2) ? &key : nullptr;
        auto enc = EncodeObject(plain, name, EncodeOptions{.zstd_level = 1 + i % 5, .key = k});
        if (!enc.ok()) {
          ++failures;
          continue;
        }
        auto dec = DecodeObject(enc->bytes, name, k);
        if (!dec.ok() || *dec != plain) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// ------------------------------------------------------------ tampering

TEST(ObjectCodecTamper, EveryHeaderByteEncrypted) {
  EncryptionKey key = TestKey();
  std::string good = Encode(SemiCompressible(20000), &key);
  for (size_t i = 0; i < kHeader; ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      auto r = DecodeObject(bad, kObj, &key);
      SCOPED_TRACE("byte " + std::to_string(i) + " mask " + std::to_string(mask));
      // A changed key id cannot be told apart from an object written with
      // another key; everything else is corruption.
      bool key_id_byte = i >= 24 && i < 32;
      ExpectCode(r, key_id_byte ? StatusCode::kPermissionDenied : StatusCode::kCorruption);
    }
  }
}

TEST(ObjectCodecTamper, EveryHeaderByteUnencrypted) {
  for (int level : {3, 0}) {
    std::string good = Encode(SemiCompressible(20000), nullptr, level);
    for (size_t i = 0; i < kHeader; ++i) {
      for (uint8_t mask : {0x01, 0x80}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        SCOPED_TRACE("level " + std::to_string(level) + " byte " + std::to_string(i));
        ExpectCode(DecodeObject(bad, kObj, nullptr), StatusCode::kCorruption);
      }
    }
  }
}

TEST(ObjectCodecTamper, PayloadAndTag) {
  EncryptionKey key = TestKey();
  std::string good = Encode(SemiCompressible(50000), &key);
  const std::string auth = "authentication failed";
  for (size_t pos : {kHeader, kHeader + 1, good.size() / 2, good.size() - kTag - 1}) {
    std::string bad = good;
    bad[pos] ^= 0x04;
    auto r = DecodeObject(bad, kObj, &key);
    ExpectCode(r, StatusCode::kCorruption);
    EXPECT_NE(r.status().message().find(auth), std::string::npos);
    EXPECT_NE(r.status().message().find("hint: run verify"), std::string::npos);
  }
  for (size_t pos = good.size() - kTag; pos < good.size(); ++pos) {
    std::string bad = good;
    bad[pos] ^= 0x20;
    auto r = DecodeObject(bad, kObj, &key);
    ExpectCode(r, StatusCode::kCorruption);
    EXPECT_NE(r.status().message().find(auth), std::string::npos);
  }
  // Unencrypted zstd: the frame checksum catches a flipped payload byte.
  std::string plain_good = Encode(SemiCompressible(50000), nullptr);
  for (size_t pos : {plain_good.size() / 3, plain_good.size() / 2, plain_good.size() - 1}) {
    std::string bad = plain_good;
    bad[pos] ^= 0x04;
    ExpectCode(DecodeObject(bad, kObj, nullptr), StatusCode::kCorruption);
  }
}

TEST(ObjectCodecTamper, TruncatedOrExtended) {
  EncryptionKey key = TestKey();
  for (const EncryptionKey* k : {static_cast<const EncryptionKey*>(nullptr), static_cast<const EncryptionKey*>(&key)}) {
    std::string good = Encode(SemiCompressible(30000), k);
    for (size_t len : {size_t{0}, size_t{3}, kHeader - 1, kHeader, good.size() - 1, good.size() - kTag}) {
      ExpectCode(DecodeObject(std::string_view(good).substr(0, len), kObj, k), StatusCode::kCorruption);
    }
    ExpectCode(DecodeObject(good + "x", kObj, k), StatusCode::kCorruption);
  }
}

TEST(ObjectCodecTamper, ImpossibleSizesAreRefusedBeforeAllocating) {
  std::string good = Encode("abc", nullptr);
  std::string bad = good;
  bad[8 + 5] = 0x01;  // raw_size = 2^40 + 3
  auto r = DecodeObject(bad, kObj, nullptr);
  ExpectCode(r, StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("limit"), std::string::npos);
  bad = good;
  bad[16 + 7] = 0x7f;  // payload size absurd
  ExpectCode(DecodeObject(bad, kObj, nullptr), StatusCode::kCorruption);
}

TEST(ObjectCodecTamper, WrongKeyMissingKeySwappedObject) {
  EncryptionKey key = TestKey();
  EncryptionKey other = TestKey(7);
  std::string stored = Encode("secret content", &key);

  auto wrong = DecodeObject(stored, kObj, &other);
  ExpectCode(wrong, StatusCode::kPermissionDenied);
  EXPECT_NE(wrong.status().message().find("wrong encryption key"), std::string::npos);
  EXPECT_NE(wrong.status().message().find(other.key_id()), std::string::npos);
  EXPECT_NE(wrong.status().message().find(key.key_id()), std::string::npos);

  auto missing = DecodeObject(stored, kObj, nullptr);
  ExpectCode(missing, StatusCode::kPermissionDenied);
  EXPECT_EQ(missing.status().message(), std::string("object \"") + kObj + "\" is encrypted; hint: pass --key-file (or --private-key)");

  const std::string other_name = "full/20261125T023328Z/0008.chunk";
  auto swapped = DecodeObject(stored, other_name, &key);
  ExpectCode(swapped, StatusCode::kCorruption, other_name);
  EXPECT_EQ(swapped.status().message(),
            "object \"" + other_name + "\" is corrupt or tampered (authentication failed); hint: run verify");
}

TEST(ObjectCodec, MessagesNeverContainKeyBytes) {
  EncryptionKey key = TestKey();
  std::string hex = HexEncode(std::string_view(reinterpret_cast<const char*>(key.bytes().data()), 32));
  std::string stored = Encode("x", &key);
  stored[50] ^= 1;
  auto r = DecodeObject(stored, kObj, &key);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find(hex.substr(0, 16)), std::string::npos);
}

// ------------------------------------------------------------ keys

TEST(EncryptionKey, KeyIdIsPinned) {
  // HMAC-SHA256(00 01 .. 1f, "smartbackup key id")[:8], computed independently.
  EXPECT_EQ(TestKey().key_id(), "2dc9ba3e52d8c3f7");
  EXPECT_EQ(TestKey().key_id().size(), 16u);
}

TEST(EncryptionKey, GenerateGivesDistinctKeys) {
  EncryptionKey a = EncryptionKey::Generate();
  EncryptionKey b = EncryptionKey::Generate();
  EXPECT_NE(a.bytes(), b.bytes());
  EXPECT_NE(a.key_id(), b.key_id());
  EXPECT_EQ(EncryptionKey::FromBytes(a.bytes()).key_id(), a.key_id());
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sb_codec_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }
  std::string dir_;
};

TEST_F(KeyFileTest, AcceptedFormats) {
  const std::string id = TestKey().key_id();
  std::string raw;
  for (int i = 0; i < 32; ++i) raw.push_back(static_cast<char>(i));
  const std::pair<const char*, std::string> cases[] = {
      {"hex", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
      {"hex_nl", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"},
      {"hex_upper_crlf", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\r\n"},
      {"b64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
      {"b64_nl", "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"},
      {"raw", raw},
  };
  for (const auto& [name, content] : cases) {
    auto k = EncryptionKey::LoadFromFile(Write(name, content));
    ASSERT_TRUE(k.ok()) << name << ": " << k.status().message();
    EXPECT_EQ(k->key_id(), id) << name;
  }
  // A raw key whose last byte happens to be a newline stays a raw key.
  std::string raw_nl = RandomBytes(31, 9) + "\n";
  std::array<uint8_t, 32> want{};
  std::memcpy(want.data(), raw_nl.data(), 32);
  auto k = EncryptionKey::LoadFromFile(Write("raw_nl", raw_nl));
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->bytes(), want);
}

TEST_F(KeyFileTest, RejectedFormats) {
  const std::string hex64 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  const std::pair<const char*, std::string> cases[] = {
      {"empty", ""},
      {"hex63", hex64.substr(1)},
      {"hex66", hex64 + "00"},
      {"hex_bad_digit", "g" + hex64.substr(1)},
      {"hex_inner_space", hex64.substr(0, 32) + " " + hex64.substr(32)},
      {"raw31", RandomBytes(31)},
      {"raw33", RandomBytes(33)},
      {"b64_31_bytes", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="},
      {"b64_bad_char", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH*8="},
      {"long", std::string(1000, 'a')},
      {"hex_then_junk", hex64 + std::string(250, '\n') + "junk"},
      {"passphrase", "correct horse battery staple\n"},
  };
  for (const auto& [name, content] : cases) {
    std::string path = Write(name, content);
    auto k = EncryptionKey::LoadFromFile(path);
    ASSERT_FALSE(k.ok()) << name;
    EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(k.status().message(), "key file \"" + path +
                                         "\" must hold 32 bytes (64 hex characters); hint: create one with: "
                                         "openssl rand -hex 32 > " +
                                         path)
        << name;
  }
}

TEST_F(KeyFileTest, UnreadableFile) {
  auto k = EncryptionKey::LoadFromFile(dir_ + "/missing");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("No such file or directory"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("missing"), std::string::npos);

  auto d = EncryptionKey::LoadFromFile(dir_);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KeyFileTest, GroupReadableKeyStillLoads) {
  auto k = EncryptionKey::LoadFromFile(
      Write("loose", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 0644));
  ASSERT_TRUE(k.ok()) << k.status().message();
  EXPECT_EQ(k->key_id(), TestKey().key_id());
}

// ------------------------------------------------------------ sha256

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// ------------------------------------------------------------ throughput

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Not an assertion: prints single-thread MB/s (of plaintext) so regressions
// are visible. CPU time is printed besides wall time because test machines
// are often loaded.
TEST(ObjectCodec, ThroughputReport) {
  const std::string data = SemiCompressible(8 << 20);
  const EncryptionKey key = TestKey();
  for (int level : {1, 3}) {
    for (const EncryptionKey* k : {static_cast<const EncryptionKey*>(nullptr), &key}) {
      constexpr int kRounds = 4;
      double enc_wall = 0, dec_wall = 0, enc_cpu = 0, dec_cpu = 0;
      size_t stored_size = 0;
      for (int i = 0; i < kRounds; ++i) {
        auto w0 = std::chrono::steady_clock::now();
        double c0 = ThreadCpuSeconds();
        auto enc = EncodeObject(data, kObj, EncodeOptions{.zstd_level = level, .key = k});
        auto w1 = std::chrono::steady_clock::now();
        double c1 = ThreadCpuSeconds();
        ASSERT_TRUE(enc.ok());
        auto dec = DecodeObject(enc->bytes, kObj, k);
        auto w2 = std::chrono::steady_clock::now();
        double c2 = ThreadCpuSeconds();
        ASSERT_TRUE(dec.ok());
        ASSERT_EQ(dec->size(), data.size());
        stored_size = enc->bytes.size();
        enc_wall += std::chrono::duration<double>(w1 - w0).count();
        dec_wall += std::chrono::duration<double>(w2 - w1).count();
        enc_cpu += c1 - c0;
        dec_cpu += c2 - c1;
      }
      const double mb = kRounds * static_cast<double>(data.size()) / 1e6;
      std::cout << fmt::format(
          "[codec throughput] 8 MiB semi-compressible, zstd {}, {:13} ratio {:.3f}: encode {:4.0f} MB/s "
          "(cpu {:4.0f}), decode {:4.0f} MB/s (cpu {:4.0f})\n",
          level, k ? "aes-256-gcm," : "plain,", static_cast<double>(stored_size) / data.size(), mb / enc_wall,
          mb / enc_cpu, mb / dec_wall, mb / dec_cpu);
    }
  }
  std::cout << std::flush;
}

// ------------------------------------------------------------ public key

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

class PublicKeyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sb_pubkey_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new std::string(tmpl);
    std::unique_ptr<EVP_PKEY, PkeyFree> a(EVP_RSA_gen(2048));
    std::unique_ptr<EVP_PKEY, PkeyFree> b(EVP_RSA_gen(2048));
    std::unique_ptr<EVP_PKEY, PkeyFree> small(EVP_RSA_gen(1024));
    std::unique_ptr<EVP_PKEY, PkeyFree> ec(EVP_EC_gen("P-256"));
    ASSERT_TRUE(a && b && small && ec);
    WritePem(Path("a_pub.pem"), a.get(), false);
    WritePem(Path("a_priv.pem"), a.get(), true);
    WritePem(Path("b_priv.pem"), b.get(), true);
    WritePem(Path("small_pub.pem"), small.get(), false);
    WritePem(Path("ec_pub.pem"), ec.get(), false);
    WriteCert(Path("a_cert.pem"), a.get());
    FILE* f = std::fopen(Path("a_priv_enc.pem").c_str(), "w");
    ASSERT_NE(f, nullptr);
    static char pass[] = "hunter2";
    ASSERT_EQ(PEM_write_PrivateKey(f, a.get(), EVP_aes_256_cbc(), reinterpret_cast<unsigned char*>(pass), 7,
                                   nullptr, nullptr),
              1);
    std::fclose(f);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }
  static void WritePem(const std::string& path, EVP_PKEY* key, bool priv) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    int rc = priv ? PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) : PEM_write_PUBKEY(f, key);
    std::fclose(f);
    ASSERT_EQ(rc, 1);
  }
  static void WriteCert(const std::string& path, EVP_PKEY* key) {
    X509* x = X509_new();
    ASSERT_NE(x, nullptr);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("backup"), -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    ASSERT_GT(X509_sign(x, key, EVP_sha256()), 0);
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    PEM_write_X509(f, x);
    std::fclose(f);
    X509_free(x);
  }
  static std::string* dir_;
};
std::string* PublicKeyTest::dir_ = nullptr;

TEST_F(PublicKeyTest, WrapUnwrapRoundTrip) {
  EncryptionKey data = EncryptionKey::Generate();
  auto w1 = WrapDataKey(data, Path("a_pub.pem"));
  ASSERT_TRUE(w1.ok()) << w1.status().message();
  auto w2 = WrapDataKey(data, Path("a_pub.pem"));
  ASSERT_TRUE(w2.ok());
  EXPECT_NE(*w1, *w2);  // OAEP is randomised
  EXPECT_EQ(w1->rfind("sbwk1:rsa-oaep-sha256:" + data.key_id() + ":", 0), 0u) << *w1;
  EXPECT_EQ(w1->find('\n'), std::string::npos);
  auto u = UnwrapDataKey(*w1 + "\n", Path("a_priv.pem"));
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->bytes(), data.bytes());

  // An object written by the "agent" with the data key reads back after unwrap.
  std::string stored = Encode("agent wrote this", &data);
  auto back = DecodeObject(stored, kObj, &*u);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "agent wrote this");
}

TEST_F(PublicKeyTest, CertificateAndFingerprint) {
  EncryptionKey data = EncryptionKey::Generate();
  auto w = WrapDataKey(data, Path("a_cert.pem"));
  ASSERT_TRUE(w.ok()) << w.status().message();
  auto u = UnwrapDataKey(*w, Path("a_priv.pem"));
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->key_id(), data.key_id());
  auto f1 = PublicKeyFingerprint(Path("a_pub.pem"));
  auto f2 = PublicKeyFingerprint(Path("a_cert.pem"));
  auto f3 = PublicKeyFingerprint(Path("a_priv.pem"));
  ASSERT_TRUE(f1.ok() && f2.ok() && f3.ok());
  EXPECT_EQ(*f1, *f2);
  EXPECT_EQ(*f1, *f3);
  EXPECT_NE(w->find(*f1), std::string::npos);
}

TEST_F(PublicKeyTest, WrongPrivateKey) {
  EncryptionKey data = EncryptionKey::Generate();
  auto w = WrapDataKey(data, Path("a_pub.pem"));
  ASSERT_TRUE(w.ok());
  auto u = UnwrapDataKey(*w, Path("b_priv.pem"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(u.status().message().find("wrong private key"), std::string::npos) << u.status().message();
}

TEST_F(PublicKeyTest, DamagedWrappedKey) {
  EncryptionKey data = EncryptionKey::Generate();
  auto w = WrapDataKey(data, Path("a_pub.pem"));
  ASSERT_TRUE(w.ok());
  std::string bad = *w;
  size_t b64 = bad.rfind(':') + 10;
  bad[b64] = bad[b64] == 'A' ? 'B' : 'A';
  auto u = UnwrapDataKey(bad, Path("a_priv.pem"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kCorruption) << u.status().message();

  std::string wrong_id = *w;
  wrong_id[22] = wrong_id[22] == '0' ? '1' : '0';  // first hex digit of the key id
  u = UnwrapDataKey(wrong_id, Path("a_priv.pem"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kCorruption);

  for (std::string junk : {"", "sbwk1", "sbwk2:rsa-oaep-sha256:a:b:c", "sbwk1:rsa-oaep-sha256:00:00:AAAA"}) {
    u = UnwrapDataKey(junk, Path("a_priv.pem"));
    ASSERT_FALSE(u.ok()) << junk;
    EXPECT_EQ(u.status().code(), StatusCode::kCorruption) << junk;
  }
}

TEST_F(PublicKeyTest, BadKeyFiles) {
  EncryptionKey data = EncryptionKey::Generate();
  for (const char* f : {"ec_pub.pem", "small_pub.pem", "missing.pem"}) {
    auto w = WrapDataKey(data, Path(f));
    ASSERT_FALSE(w.ok()) << f;
    EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument) << f;
    EXPECT_NE(w.status().message().find(Path(f)), std::string::npos) << w.status().message();
  }
  auto w = WrapDataKey(data, Path("a_pub.pem"));
  ASSERT_TRUE(w.ok());
  auto u = UnwrapDataKey(*w, Path("a_priv_enc.pem"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find("passphrase-protected"), std::string::npos) << u.status().message();
  u = UnwrapDataKey(*w, Path("a_pub.pem"));  // a public key is not a private key
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
}

// The key store: a writer holding only the public key stores its data key
// wrapped; a reader holding the private key opens objects written with it.
TEST_F(PublicKeyTest, KeyStoreWriterAndPrivateKeyRing) {
  MemoryStorage storage;
  auto data_key = NewWrappedDataKey(storage, Path("a_pub.pem"));
  ASSERT_TRUE(data_key.ok()) << data_key.status().message();
  EXPECT_TRUE(storage.Stat(WrappedKeyObject(data_key->key_id())).ok());
  auto enc = EncodeObject("secret wal", "db/x/wal/1", {.key = &*data_key});
  ASSERT_TRUE(enc.ok());

  auto ring = PrivateKeyRing::Open(storage, Path("a_priv.pem"));
  ASSERT_TRUE(ring.ok()) << ring.status().message();
  auto plain = DecodeObject(enc->bytes, "db/x/wal/1", ring->get());
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(*plain, "secret wal");
  auto again = (*ring)->KeyFor(data_key->key_id());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *(*ring)->KeyFor(data_key->key_id())) << "opened once, then cached";

  // A key that was never stored wrapped (a --key-file key) is named as such.
  EncryptionKey symmetric = EncryptionKey::Generate();
  auto other = EncodeObject("x", "db/x/wal/2", {.key = &symmetric});
  ASSERT_TRUE(other.ok());
  auto missing = DecodeObject(other->bytes, "db/x/wal/2", ring->get());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(missing.status().message().find("not in the repository's key store"), std::string::npos)
      << missing.status().message();

  auto wrong = PrivateKeyRing::Open(storage, Path("b_priv.pem"));
  ASSERT_TRUE(wrong.ok());
  auto denied = DecodeObject(enc->bytes, "db/x/wal/1", wrong->get());
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(PrivateKeyRing::Open(storage, Path("missing.pem")).ok());
}

// A single-use key (wal-push) names the one object it encrypts; it opens like
// any other, and a writer's session key names none.
TEST_F(PublicKeyTest, SingleUseKeyNamesItsObject) {
  MemoryStorage storage;
  const std::string part = "db/x/wal/7000000000000000001-00000001/00000001/0000000001000000-0000000002000000";
  auto single = NewWrappedDataKey(storage, Path("a_pub.pem"), part);
  ASSERT_TRUE(single.ok()) << single.status().message();
  auto session = NewWrappedDataKey(storage, Path("a_pub.pem"));
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(*SingleUseKeyTarget(storage, single->key_id()), part);
  EXPECT_EQ(*SingleUseKeyTarget(storage, session->key_id()), "");
  EXPECT_TRUE(SingleUseKeyTarget(storage, "0000000000000000").status().IsNotFound());

  auto enc = EncodeObject("segment", part, {.key = &*single});
  ASSERT_TRUE(enc.ok());
  auto ring = PrivateKeyRing::Open(storage, Path("a_priv.pem"));
  ASSERT_TRUE(ring.ok());
  auto plain = DecodeObject(enc->bytes, part, ring->get());
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(*plain, "segment");
  // Its header alone (a ranged read) names the key.
  auto head = ParseObjectHeader(std::string_view(enc->bytes).substr(0, kObjectHeaderSize), part, false);
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->key_id, single->key_id());
  EXPECT_FALSE(ParseObjectHeader(std::string_view(enc->bytes).substr(0, kObjectHeaderSize), part).ok());
}

}  // namespace
}  // namespace sb
