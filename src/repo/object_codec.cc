// Object codec implementation. Byte layout and rationale:
// doc/repository-object-format.md ("Object format").
#include "repo/object_codec.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include <fmt/core.h>

#include "common/encoding.h"
#include "common/logging.h"
#include "common/text.h"

namespace sb {

namespace {

constexpr char kMagic[4] = {'S', 'B', 'K', 'O'};
constexpr uint8_t kFormatVersion = 1;
constexpr uint8_t kFlagZstd = 0x01;
constexpr uint8_t kFlagAes256Gcm = 0x02;
constexpr uint8_t kKnownFlags = kFlagZstd | kFlagAes256Gcm;
constexpr size_t kKeyIdBytes = 8;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Header field offsets (all integers little-endian).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 4;
constexpr size_t kOffFlags = 5;
constexpr size_t kOffReserved = 6;
constexpr size_t kOffRawSize = 8;
constexpr size_t kOffPayloadSize = 16;
constexpr size_t kOffKeyId = 24;
constexpr size_t kOffNonce = 32;
static_assert(kOffNonce + kNonceBytes == kObjectHeaderSize);
static_assert(kOffKeyId + kKeyIdBytes == kOffNonce);

void PutU16(char* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint16_t GetU16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// One compression and one decompression context per worker thread: creating
// them costs far more than compressing a small object, and a context must
// never be shared between threads.
struct ZstdCctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
ZSTD_CCtx* ThreadCctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdCctxDeleter> cctx(ZSTD_createCCtx());
  return cctx.get();
}
ZSTD_DCtx* ThreadDctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, ZstdDctxDeleter> dctx(ZSTD_createDCtx());
  return dctx.get();
}

// Per-thread scratch buffer for the compressed frame (encode) and the
// decrypted frame (decode). Reusing it avoids zero-filling and page-faulting
// a fresh multi-MiB buffer per object, which dominated the profile. Not
// zero-initialised; kept across calls unless it grew beyond kScratchKeep.
constexpr size_t kScratchKeep = size_t{64} << 20;
struct Scratch {
  std::unique_ptr<char[]> data;
  size_t size = 0;
};
Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}
char* ScratchBuffer(size_t n) {
  Scratch& s = ThreadScratch();
  if (s.size < n) {
    s.data.reset();  // free before allocating: never hold two
    s.data.reset(new char[n]);
    s.size = n;
  }
  return s.data.get();
}
// Scoped to each use of the buffer. Plaintext frames may have been in it, so
// a released buffer is cleansed; a kept one is overwritten by the next use.
struct ScratchRelease {
  ~ScratchRelease() {
    Scratch& s = ThreadScratch();
    if (s.size > kScratchKeep) {
      OPENSSL_cleanse(s.data.get(), s.size);
      s.data.reset();
      s.size = 0;
    }
  }
};

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

std::string Quote(std::string_view object_key) { return fmt::format("\"{}\"", object_key); }

Status Corrupt(std::string_view object_key, std::string_view what) {
  return Status::Corruption(fmt::format("object {} is corrupt ({}); hint: run verify", Quote(object_key), what));
}

// The key id as stored in the header: the 8 bytes behind key_id()'s hex.
std::array<char, kKeyIdBytes> KeyIdBytes(const EncryptionKey& key) {
  std::array<char, kKeyIdBytes> out{};
  auto raw = HexDecode(key.key_id());
  if (raw.ok() && raw->size() == kKeyIdBytes) std::memcpy(out.data(), raw->data(), kKeyIdBytes);
  return out;
}

// AES-256-GCM in place over [data, data+len), AAD = aad1 || aad2.
// Encrypt: writes the tag to tag. Decrypt: checks tag; false on mismatch.
bool Gcm(bool encrypt, const EncryptionKey& key, const char* nonce, std::string_view aad1, std::string_view aad2,
         const char* in, char* out, size_t len, char* tag) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return false;
  auto* c = ctx.get();
  const auto* k = key.bytes().data();
  const auto* iv = reinterpret_cast<const unsigned char*>(nonce);
  int init = encrypt ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr)
                     : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
  if (init != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes), nullptr) != 1) return false;
  init = encrypt ? EVP_EncryptInit_ex(c, nullptr, nullptr, k, iv) : EVP_DecryptInit_ex(c, nullptr, nullptr, k, iv);
  if (init != 1) return false;
  auto update = [&](unsigned char* o, const unsigned char* i, size_t n) {
    // EVP takes int lengths; feed in slices well under INT_MAX.
    constexpr size_t kSlice = size_t{1} << 30;
    while (n > 0) {
      int step = static_cast<int>(n < kSlice ? n : kSlice);
      int outl = 0;
      int rc = encrypt ? EVP_EncryptUpdate(c, o, &outl, i, step) : EVP_DecryptUpdate(c, o, &outl, i, step);
      if (rc != 1 || (o != nullptr && outl != step)) return false;
      if (o != nullptr) o += step;
      i += step;
      n -= static_cast<size_t>(step);
    }
    return true;
  };
  if (!update(nullptr, reinterpret_cast<const unsigned char*>(aad1.data()), aad1.size())) return false;
  if (!update(nullptr, reinterpret_cast<const unsigned char*>(aad2.data()), aad2.size())) return false;
  if (!update(reinterpret_cast<unsigned char*>(out), reinterpret_cast<const unsigned char*>(in), len)) return false;
  int outl = 0;
  if (encrypt) {
    if (EVP_EncryptFinal_ex(c, nullptr, &outl) != 1) return false;
    return EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag) == 1;
  }
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag) != 1) return false;
  unsigned char dummy[16];
  return EVP_DecryptFinal_ex(c, dummy, &outl) == 1;
}

bool IsHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Strict base64 (standard alphabet, '=' padding) of exactly 32 bytes: 44
// characters ending in a single '='.
bool DecodeBase64Key(std::string_view text, std::array<uint8_t, 32>* out) {
  if (text.size() != 44 || text[43] != '=' || text[42] == '=') return false;
  auto decoded = Base64Decode(text, Base64Padding::kRequired);
  if (!decoded.ok()) return false;
  std::string bytes = std::move(decoded).value();
  const bool ok = bytes.size() == 32;
  if (ok) std::memcpy(out->data(), bytes.data(), 32);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return ok;
}

}  // namespace

// ---------------------------------------------------------------- keys

// One anonymous page per key: a page of its own is the unit madvise works
// on, so the key can be kept out of core dumps without touching whatever
// else the heap would have put next to it. Keys are few (one per process,
// plus one per data key a private-key ring opens).
EncryptionKey::EncryptionKey() {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* p = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::fputs("smartbackup: fatal: cannot map memory for an encryption key\n", stderr);
    std::abort();
  }
  // Best effort: a kernel without MADV_DONTDUMP still gets a working key.
  (void)::madvise(p, page, MADV_DONTDUMP);
  bytes_ = new (p) std::array<uint8_t, 32>{};
}

void EncryptionKey::Release() {
  if (bytes_ == nullptr) return;
  OPENSSL_cleanse(bytes_->data(), bytes_->size());
  ::munmap(bytes_, static_cast<size_t>(::sysconf(_SC_PAGESIZE)));
  bytes_ = nullptr;
}

EncryptionKey::~EncryptionKey() { Release(); }

EncryptionKey::EncryptionKey(EncryptionKey&& other) noexcept
    : bytes_(std::exchange(other.bytes_, nullptr)), key_id_(std::move(other.key_id_)) {}

EncryptionKey& EncryptionKey::operator=(EncryptionKey&& other) noexcept {
  if (this != &other) {
    Release();
    bytes_ = std::exchange(other.bytes_, nullptr);
    key_id_ = std::move(other.key_id_);
  }
  return *this;
}

EncryptionKey EncryptionKey::FromBytes(const std::array<uint8_t, 32>& bytes) {
  EncryptionKey key;
  *key.bytes_ = bytes;
  static constexpr std::string_view kLabel = "smartbackup key id";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), bytes.data(), static_cast<int>(bytes.size()),
           reinterpret_cast<const unsigned char*>(kLabel.data()), kLabel.size(), mac, &mac_len) == nullptr ||
      mac_len < kKeyIdBytes) {
    // Only fails if the crypto library is unusable; nothing sensible to do.
    std::fputs("smartbackup: fatal: HMAC-SHA256 unavailable\n", stderr);
    std::abort();
  }
  key.key_id_ = HexEncode(std::string_view(reinterpret_cast<const char*>(mac), kKeyIdBytes));
  OPENSSL_cleanse(mac, sizeof mac);
  return key;
}

EncryptionKey EncryptionKey::Generate() {
  std::array<uint8_t, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    std::fputs("smartbackup: fatal: random number generator failed\n", stderr);
    std::abort();
  }
  EncryptionKey key = FromBytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

Result<EncryptionKey> EncryptionKey::LoadFromFile(const std::string& path) {
  auto bad_format = [&] {
    return Status::InvalidArgument(fmt::format(
        "key file \"{}\" must hold 32 bytes (64 hex characters); hint: create one with: openssl rand -hex 32 > {}",
        path, path));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::InvalidArgument(fmt::format("cannot read key file \"{}\": {}", path, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::InvalidArgument(fmt::format("key file \"{}\" is not a regular file", path));
    }
    if ((st.st_mode & 077) != 0) {
      log::Warn("key file \"{}\" is readable by group or others (mode {:o}); hint: chmod 600 {}", path,
                st.st_mode & 0777, path);
    }
  }
  // Every accepted format is under 128 bytes; read a little more to see
  // whether the file is too long, and never more than that.
  char buf[256];
  size_t len = 0;
  while (len < sizeof buf) {
    ssize_t n = ::read(fd, buf + len, sizeof buf - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      OPENSSL_cleanse(buf, sizeof buf);
      return Status::InvalidArgument(fmt::format("cannot read key file \"{}\": {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  ::close(fd);

  std::array<uint8_t, 32> bytes{};
  bool parsed = false;
  std::string_view content(buf, len);
  if (len == sizeof buf) {
    // Too long to be any accepted form (nothing beyond buf was read).
  } else if (content.size() == 32) {
    // Raw key. Checked first: a 32-byte file cannot be one of the text forms.
    std::memcpy(bytes.data(), content.data(), 32);
    parsed = true;
  } else {
    // Text forms: surrounding whitespace (a trailing newline) is ignored.
    size_t b = 0, e = content.size();
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (b < e && space(content[b])) ++b;
    while (e > b && space(content[e - 1])) --e;
    std::string_view text = content.substr(b, e - b);
    if (text.size() == 64) {
      bool all_hex = true;
      for (char c : text) all_hex = all_hex && IsHexDigit(c);
      if (all_hex) {
        auto nibble = [](char c) -> uint8_t {
          if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
          if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
          return static_cast<uint8_t>(c - 'A' + 10);
        };
        for (size_t i = 0; i < 32; ++i) {
          bytes[i] = static_cast<uint8_t>((nibble(text[2 * i]) << 4) | nibble(text[2 * i + 1]));
        }
        parsed = true;
      }
    } else if (text.size() == 44) {
      parsed = DecodeBase64Key(text, &bytes);
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  if (!parsed) return bad_format();
  EncryptionKey key = FromBytes(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

// ---------------------------------------------------------------- codec

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &md_len, EVP_sha256(), nullptr) != 1) {
    std::fputs("smartbackup: fatal: SHA-256 unavailable\n", stderr);
    std::abort();
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), md_len));
}

Result<EncodedObject> EncodeObject(std::string_view plain, std::string_view object_key,
                                   const EncodeOptions& options) {
  if (plain.size() > kMaxObjectRawSize) {
    return Status::InvalidArgument(fmt::format("object {} is too large ({} bytes; the limit is {})",
                                               Quote(object_key), plain.size(), kMaxObjectRawSize));
  }
  const bool compress = options.zstd_level != 0;
  const bool encrypt = options.key != nullptr;
  const size_t bound = compress ? ZSTD_compressBound(plain.size()) : plain.size();

  const size_t capacity = kObjectHeaderSize + bound + (encrypt ? kTagBytes : 0);
  ScratchRelease release_scratch;
  char* h = ScratchBuffer(capacity);
  std::memcpy(h + kOffMagic, kMagic, sizeof kMagic);
  h[kOffVersion] = static_cast<char>(kFormatVersion);
  h[kOffFlags] = static_cast<char>((compress ? kFlagZstd : 0) | (encrypt ? kFlagAes256Gcm : 0));
  PutU16(h + kOffReserved, 0);
  PutU64(h + kOffRawSize, plain.size());

  char* payload = h + kObjectHeaderSize;
  size_t payload_size = 0;
  if (compress) {
    ZSTD_CCtx* cctx = ThreadCctx();
    if (cctx == nullptr) return Status::Internal("cannot create a zstd compression context");
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.zstd_level);
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    // Unencrypted objects get zstd's frame checksum so bit rot is caught on
    // decode even without the manifest; GCM's tag covers encrypted ones.
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, encrypt ? 0 : 1);
    if (ZSTD_isError(rc)) {
      return Status::InvalidArgument(
          fmt::format("zstd level {} rejected: {}", options.zstd_level, ZSTD_getErrorName(rc)));
    }
    size_t n = ZSTD_compress2(cctx, payload, bound, plain.data(), plain.size());
    if (ZSTD_isError(n)) {
      return Status::Internal(
          fmt::format("compressing object {} failed: {}", Quote(object_key), ZSTD_getErrorName(n)));
    }
    payload_size = n;
  } else {
    if (!plain.empty()) std::memcpy(payload, plain.data(), plain.size());
    payload_size = plain.size();
  }
  PutU64(h + kOffPayloadSize, payload_size);

  size_t total = kObjectHeaderSize + payload_size;
  if (encrypt) {
    auto key_id = KeyIdBytes(*options.key);
    std::memcpy(h + kOffKeyId, key_id.data(), kKeyIdBytes);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(h + kOffNonce), static_cast<int>(kNonceBytes)) != 1) {
      return Status::Internal("random number generator failed while encrypting object " + Quote(object_key));
    }
    char* tag = payload + payload_size;
    // In place: OpenSSL allows out == in for GCM.
    if (!Gcm(true, *options.key, h + kOffNonce, std::string_view(h, kObjectHeaderSize), object_key, payload, payload,
             payload_size, tag)) {
      return Status::Internal("aes-256-gcm encryption of object " + Quote(object_key) + " failed");
    }
    total += kTagBytes;
  } else {
    std::memset(h + kOffKeyId, 0, kKeyIdBytes + kNonceBytes);
  }
  std::string out(h, total);

  EncodedObject result;
  result.sha256 = Sha256Hex(out);
  result.bytes = std::move(out);
  result.raw_size = plain.size();
  return result;
}

Result<ObjectHeaderInfo> ParseObjectHeader(std::string_view stored, std::string_view object_key, bool whole_object) {
  if (stored.size() < kObjectHeaderSize) {
    return Corrupt(object_key, fmt::format("{} bytes, shorter than the {}-byte header", stored.size(),
                                           kObjectHeaderSize));
  }
  const char* h = stored.data();
  if (std::memcmp(h + kOffMagic, kMagic, sizeof kMagic) != 0) return Corrupt(object_key, "bad magic");
  uint8_t version = static_cast<uint8_t>(h[kOffVersion]);
  if (version != kFormatVersion) {
    return Status::Corruption(fmt::format(
        "object {} has unknown format version {} (this build reads version {}); hint: if a newer smartbackup "
        "wrote it, upgrade; otherwise run verify",
        Quote(object_key), version, kFormatVersion));
  }
  uint8_t flags = static_cast<uint8_t>(h[kOffFlags]);
  if ((flags & ~kKnownFlags) != 0) return Corrupt(object_key, fmt::format("unknown flags 0x{:02x}", flags));
  if (GetU16(h + kOffReserved) != 0) return Corrupt(object_key, "reserved header field is not zero");

  ObjectHeaderInfo info;
  info.format_version = version;
  info.compressed = (flags & kFlagZstd) != 0;
  info.encrypted = (flags & kFlagAes256Gcm) != 0;
  info.raw_size = GetU64(h + kOffRawSize);
  info.payload_size = GetU64(h + kOffPayloadSize);
  if (info.raw_size > kMaxObjectRawSize) {
    return Corrupt(object_key, fmt::format("header claims {} bytes of content, over the {}-byte limit", info.raw_size,
                                           kMaxObjectRawSize));
  }
  // zstd blocks regenerate at most 128 KiB each and take at least 3 bytes
  // (a header; an RLE block one more): a payload of n bytes cannot hold
  // more than (n / 3 + 1) blocks' worth. Checked here, before any caller
  // sizes a buffer from the header.
  constexpr uint64_t kZstdBlockMax = uint64_t{1} << 17;
  if (info.compressed && info.raw_size > (info.payload_size / 3 + 1) * kZstdBlockMax) {
    return Corrupt(object_key, fmt::format("header claims {} bytes of content from a {}-byte zstd frame",
                                           info.raw_size, info.payload_size));
  }
  const uint64_t max_payload = info.compressed ? ZSTD_compressBound(info.raw_size) : info.raw_size;
  if (info.payload_size > max_payload || (!info.compressed && info.payload_size != info.raw_size)) {
    return Corrupt(object_key, fmt::format("payload size {} impossible for content size {}", info.payload_size,
                                           info.raw_size));
  }
  const uint64_t expect = kObjectHeaderSize + info.payload_size + (info.encrypted ? kTagBytes : 0);
  if (whole_object && stored.size() != expect) {
    return Corrupt(object_key, fmt::format("{} bytes stored, header implies {}", stored.size(), expect));
  }
  if (info.encrypted) {
    info.key_id = HexEncode(stored.substr(kOffKeyId, kKeyIdBytes));
  } else if (!AllZero(h + kOffKeyId, kKeyIdBytes + kNonceBytes)) {
    return Corrupt(object_key, "key id or nonce set on an unencrypted object");
  }
  return info;
}

Status DecodeObjectInto(std::string_view stored, std::string_view object_key, const KeySource* keys,
                        uint64_t raw_size, char* dest) {
  ASSIGN_OR_RETURN(ObjectHeaderInfo info, ParseObjectHeader(stored, object_key));
  if (info.raw_size != raw_size) {
    return Corrupt(object_key, fmt::format("header claims {} bytes of content, the manifest {}", info.raw_size,
                                           raw_size));
  }
  if (keys != nullptr && !info.encrypted) {
    return Status::Corruption(fmt::format("object {} is not encrypted, but a key was given: anyone able to write to "
                                          "the storage could have put it there; hint: run verify",
                                          Quote(object_key)))
        .WithDetail(StatusDetail::kNotEncrypted);
  }
  std::string_view payload = stored.substr(kObjectHeaderSize, info.payload_size);
  if (!info.compressed && payload.size() != raw_size) {
    return Corrupt(object_key, fmt::format("{} bytes of content, header says {}", payload.size(), raw_size));
  }

  ScratchRelease release_scratch;
  if (info.encrypted) {
    if (keys == nullptr) {
      return Status::PermissionDenied(
          fmt::format("object {} is encrypted; hint: pass --key-file (or --private-key)", Quote(object_key)));
    }
    ASSIGN_OR_RETURN(const EncryptionKey* key, keys->KeyFor(info.key_id));
    if (key->key_id() != info.key_id) {
      return Status::PermissionDenied(fmt::format("wrong encryption key for object {} (key id {}, object needs {})",
                                                  Quote(object_key), key->key_id(), info.key_id));
    }
    char* target = info.compressed ? ScratchBuffer(payload.size()) : dest;
    char tag[kTagBytes];
    std::memcpy(tag, stored.data() + kObjectHeaderSize + payload.size(), kTagBytes);
    if (!Gcm(false, *key, stored.data() + kOffNonce, stored.substr(0, kObjectHeaderSize), object_key,
             payload.data(), target, payload.size(), tag)) {
      // Never hand out unauthenticated plaintext.
      OPENSSL_cleanse(target, payload.size());
      return Status::Corruption(fmt::format(
          "object {} is corrupt or tampered (authentication failed); hint: run verify", Quote(object_key)));
    }
    if (info.compressed) payload = std::string_view(target, payload.size());
  } else if (!info.compressed) {
    std::memcpy(dest, payload.data(), payload.size());
  }

  if (info.compressed) {
    // The payload must be exactly one zstd frame that declares our size.
    size_t frame = ZSTD_findFrameCompressedSize(payload.data(), payload.size());
    if (ZSTD_isError(frame) || frame != payload.size()) {
      return Corrupt(object_key, "payload is not a single zstd frame");
    }
    unsigned long long content = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (content != info.raw_size) {
      return Corrupt(object_key, fmt::format("zstd frame size does not match header size {}", info.raw_size));
    }
    ZSTD_DCtx* dctx = ThreadDctx();
    if (dctx == nullptr) return Status::Internal("cannot create a zstd decompression context");
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
    size_t n = ZSTD_decompressDCtx(dctx, dest, raw_size, payload.data(), payload.size());
    if (ZSTD_isError(n)) {
      return Corrupt(object_key, fmt::format("zstd: {}", ZSTD_getErrorName(n)));
    }
    if (n != info.raw_size) {
      return Corrupt(object_key, fmt::format("decompressed to {} bytes, header says {}", n, info.raw_size));
    }
  }
  return Status::Ok();
}

Result<std::string> DecodeObject(std::string_view stored, std::string_view object_key, const KeySource* keys,
                                 std::optional<uint64_t> expected_raw_size) {
  // The header first: its size is checked (against kMaxRawSize, and the
  // caller's expectation) before anything is allocated.
  ASSIGN_OR_RETURN(ObjectHeaderInfo info, ParseObjectHeader(stored, object_key));
  if (expected_raw_size && info.raw_size != *expected_raw_size) {
    return Corrupt(object_key, fmt::format("header claims {} bytes of content, the manifest {}", info.raw_size,
                                           *expected_raw_size));
  }
  std::string out;
  out.resize(info.raw_size);
  RETURN_IF_ERROR(DecodeObjectInto(stored, object_key, keys, info.raw_size, out.data()));
  return out;
}

}  // namespace sb
