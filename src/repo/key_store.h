// Public-key encryption (spec sections 2 and 7): a host given only an RSA
// public key (or certificate) writes backups it cannot read. Each writing
// process makes a random data key, stores it sealed to the public key at
// keys/<data key id>.wrapped (repo/public_key.h; before any object uses it)
// and keeps the plain key in memory only. A reader holding the private key
// opens the wrapped keys it meets, once each. wal-push makes a single-use key
// per segment and records which object it is for, so that retention deletes
// the key with that object instead of keeping one key per segment forever.
// Thread-safety: PrivateKeyRing::KeyFor may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "repo/object_codec.h"
#include "storage/storage.h"

namespace sb {

// Where a data key's wrapped form is stored.
std::string WrappedKeyObject(const std::string& key_id);

// A new data key for a writer, its wrapped form stored in `storage` first.
// `only_for`: the one object the key will encrypt (a single-use key), or ""
// for a key a writer uses for everything it writes.
Result<EncryptionKey> NewWrappedDataKey(Storage& storage, const std::string& public_key_path,
                                        const std::string& only_for = "");

// The object a single-use data key was made for; "" for any other key.
Result<std::string> SingleUseKeyTarget(Storage& storage, const std::string& key_id);

class PrivateKeyRing : public KeySource {
 public:
  // Checks the private key file can be read now, so a bad path fails early.
  static Result<std::unique_ptr<PrivateKeyRing>> Open(Storage& storage, const std::string& private_key_path);
  Result<const EncryptionKey*> KeyFor(const std::string& key_id) const override;

 private:
  PrivateKeyRing(Storage& storage, std::string path) : storage_(storage), path_(std::move(path)) {}
  Storage& storage_;
  std::string path_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::unique_ptr<EncryptionKey>> opened_;
};

}  // namespace sb
