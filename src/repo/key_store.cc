#include "repo/key_store.h"

#include <fmt/core.h>

#include "repo/public_key.h"

namespace sb {

std::string WrappedKeyObject(const std::string& key_id) { return "keys/" + key_id + ".wrapped"; }

Result<EncryptionKey> NewWrappedDataKey(Storage& storage, const std::string& public_key_path) {
  EncryptionKey data_key = EncryptionKey::Generate();
  ASSIGN_OR_RETURN(std::string wrapped, WrapDataKey(data_key, public_key_path));
  RETURN_IF_ERROR(storage.Put(WrappedKeyObject(data_key.key_id()), wrapped + "\n", {.if_absent = true})
                      .WithContext("cannot store the wrapped data key"));
  return data_key;
}

Result<std::unique_ptr<PrivateKeyRing>> PrivateKeyRing::Open(Storage& storage, const std::string& private_key_path) {
  RETURN_IF_ERROR(PublicKeyFingerprint(private_key_path).status());
  return std::unique_ptr<PrivateKeyRing>(new PrivateKeyRing(storage, private_key_path));
}

Result<const EncryptionKey*> PrivateKeyRing::KeyFor(const std::string& key_id) const {
  std::lock_guard lock(mu_);
  auto it = opened_.find(key_id);
  if (it != opened_.end()) return it->second.get();
  auto wrapped = storage_.Get(WrappedKeyObject(key_id));
  if (!wrapped.ok()) {
    if (wrapped.status().IsNotFound()) {
      return Status::PermissionDenied(fmt::format(
          "data key {} is not in the repository's key store (\"{}\"): the object was encrypted with a key file, not "
          "a public key; hint: pass --key-file",
          key_id, WrappedKeyObject(key_id)));
    }
    return wrapped.status();
  }
  std::string line = *wrapped;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  ASSIGN_OR_RETURN(EncryptionKey key, UnwrapDataKey(line, path_));
  if (key.key_id() != key_id) {
    return Status::Corruption(fmt::format("wrapped data key \"{}\" holds key {}, not {}", WrappedKeyObject(key_id),
                                          key.key_id(), key_id));
  }
  auto& slot = opened_[key_id];
  slot = std::make_unique<EncryptionKey>(key);
  return slot.get();
}

}  // namespace sb
