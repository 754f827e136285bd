// Object codec: turns plaintext into the bytes stored in the repository and
// back. Every stored object is: header (magic, format version, flags, sizes,
// nonce) + zstd frame + (optionally) AES-256-GCM ciphertext and tag. The
// object's repository key is bound in as GCM associated data so an encrypted
// object cannot be swapped for another one. Byte layout: doc/repository.md.
// Thread-safety: stateless functions; EncryptionKey is immutable after load.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sb {

class EncryptionKey;

// What a reader holds to open encrypted objects: one symmetric key, or a
// private key that opens the data keys stored wrapped in the repository
// (repo/key_store.h). Thread-safety: KeyFor may be called concurrently.
class KeySource {
 public:
  virtual ~KeySource() = default;
  // The key for objects encrypted under `key_id`, or kPermissionDenied.
  virtual Result<const EncryptionKey*> KeyFor(const std::string& key_id) const = 0;
};

// A 256-bit symmetric key. key_id is a non-secret fingerprint (hex of
// HMAC-SHA256(key, "smartbackup key id")[:8]) recorded in manifests so a
// wrong key is reported as such rather than as corruption.
// Key material lives in its own page, excluded from core dumps
// (MADV_DONTDUMP) and wiped (OPENSSL_cleanse) when the key is destroyed;
// the type is move-only so no stray copy of the bytes outlives it.
class EncryptionKey : public KeySource {
 public:
  // Key file: 64 hex characters, or 32 raw bytes, or base64 of 32 bytes
  // (whitespace around ignored). Refuses group/world-readable files? No:
  // only warns; refuses anything that is not exactly 32 bytes of key.
  static Result<EncryptionKey> LoadFromFile(const std::string& path);
  static EncryptionKey FromBytes(const std::array<uint8_t, 32>& bytes);
  static EncryptionKey Generate();  // from OpenSSL's RAND_bytes

  EncryptionKey(const EncryptionKey&) = delete;
  EncryptionKey& operator=(const EncryptionKey&) = delete;
  EncryptionKey(EncryptionKey&& other) noexcept;
  EncryptionKey& operator=(EncryptionKey&& other) noexcept;
  ~EncryptionKey() override;

  // Precondition: not moved from.
  const std::array<uint8_t, 32>& bytes() const { return *bytes_; }
  const std::string& key_id() const { return key_id_; }
  // Itself, whatever the id: DecodeObject then names a wrong key as such.
  Result<const EncryptionKey*> KeyFor(const std::string&) const override { return this; }

 private:
  EncryptionKey();  // allocates the (zeroed) key page
  void Release();   // wipes and unmaps it

  std::array<uint8_t, 32>* bytes_ = nullptr;  // in a private anonymous mapping
  std::string key_id_;
};

struct EncodeOptions {
  int zstd_level = 3;
  const EncryptionKey* key = nullptr;  // null: not encrypted
};

struct EncodedObject {
  std::string bytes;   // what goes to storage
  std::string sha256;  // hex SHA-256 of bytes (recorded in the manifest)
  uint64_t raw_size;   // plaintext size
};

Result<EncodedObject> EncodeObject(std::string_view plain, std::string_view object_key, const EncodeOptions& options);

// Checks the header, decrypts (key required iff the object is encrypted;
// a key with the wrong id gives kPermissionDenied "wrong encryption key"),
// authenticates, decompresses, and checks raw size. Tampering or bit rot
// gives kCorruption naming object_key. With keys, a plain object is refused
// (kCorruption, detail kNotEncrypted): anyone who can write to the storage
// could have put it there. expected_raw_size (what the manifest or the
// object's name says) is checked against the header before anything is
// allocated. Does not check sha256; callers that hold the manifest's
// checksum compare it with Sha256Hex(stored) first.
Result<std::string> DecodeObject(std::string_view stored, std::string_view object_key, const KeySource* keys,
                                 std::optional<uint64_t> expected_raw_size = std::nullopt);
// The same into `dest`, which has room for raw_size bytes (checked against
// the header first): a reader assembling a WAL segment decodes each part in
// place instead of through a buffer of its own. On failure dest holds no
// unauthenticated plaintext of an encrypted object.
Status DecodeObjectInto(std::string_view stored, std::string_view object_key, const KeySource* keys,
                        uint64_t raw_size, char* dest);

// Hex SHA-256 of data.
std::string Sha256Hex(std::string_view data);

// --- Additions beyond the agreed interface (object_codec.cc owner) ---

// Fixed header size of format version 1 (see doc/repository-object-format.md).
inline constexpr size_t kObjectHeaderSize = 44;
// Largest plaintext an object may hold (a 1 GiB WAL segment); decode
// refuses headers claiming more, and compressed objects claiming more than
// their zstd frame can possibly hold (each block of at most 128 KiB costs at
// least 3 bytes), so a small object can never drive a huge allocation.
inline constexpr uint64_t kMaxObjectRawSize = uint64_t{1} << 30;

// What an object's header says, for verify/inspection without a key.
struct ObjectHeaderInfo {
  uint8_t format_version = 0;
  bool compressed = false;
  bool encrypted = false;
  uint64_t raw_size = 0;
  uint64_t payload_size = 0;  // bytes between header and tag
  std::string key_id;         // hex; empty when not encrypted
};

// Validates the header and the total length (the same checks DecodeObject
// starts with); kCorruption naming object_key on any inconsistency. With
// whole_object false, `stored` may be just the first kObjectHeaderSize bytes
// (a ranged read) and the length is not checked.
Result<ObjectHeaderInfo> ParseObjectHeader(std::string_view stored, std::string_view object_key,
                                           bool whole_object = true);

}  // namespace sb
