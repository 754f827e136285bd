#include "repo/key_store.h"

#include <fmt/core.h>

#include "common/text.h"
#include "repo/public_key.h"
#include "repo/repository.h"

namespace sb {

namespace {

constexpr std::string_view kOnlyFor = "only-for ";

// A wrapped key object: the wrapped key on its first line, then for a
// single-use key "only-for <object key>".
struct WrappedKeyLines {
  std::string wrapped, only_for;
};

WrappedKeyLines SplitWrappedKeyObject(std::string_view content) {
  WrappedKeyLines out;
  size_t nl = content.find('\n');
  out.wrapped = std::string(content.substr(0, nl));
  if (!out.wrapped.empty() && out.wrapped.back() == '\r') out.wrapped.pop_back();
  if (nl == std::string_view::npos) return out;
  std::string_view rest = content.substr(nl + 1);
  if (rest.starts_with(kOnlyFor)) {
    rest.remove_prefix(kOnlyFor.size());
    out.only_for = std::string(rest.substr(0, rest.find('\n')));
  }
  return out;
}

// Key ids name objects under keys/: 16 lower-case hex digits, nothing else.
bool ValidKeyId(std::string_view id) {
  if (id.size() != 16) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string WrappedKeyObject(const std::string& key_id) { return "keys/" + key_id + ".wrapped"; }

Result<EncryptionKey> NewWrappedDataKey(Storage& storage, const std::string& public_key_path,
                                        const std::string& only_for) {
  EncryptionKey data_key = EncryptionKey::Generate();
  ASSIGN_OR_RETURN(std::string wrapped, WrapDataKey(data_key, public_key_path));
  std::string content = wrapped + "\n";
  if (!only_for.empty()) content += std::string(kOnlyFor) + only_for + "\n";
  RETURN_IF_ERROR(storage.Put(WrappedKeyObject(data_key.key_id()), content, {.if_absent = true})
                      .WithContext("cannot store the wrapped data key"));
  return data_key;
}

Result<std::string> SingleUseKeyTarget(Storage& storage, const std::string& key_id) {
  if (!ValidKeyId(key_id)) {
    return Status::InvalidArgument(fmt::format("invalid data key id \"{}\"", Printable(key_id)));
  }
  ASSIGN_OR_RETURN(std::string content, storage.Get(WrappedKeyObject(key_id)));
  std::string target = SplitWrappedKeyObject(content).only_for;
  // Retention deletes the key when this object is gone: only a WAL part key
  // (what wal-push writes) may be named, never a path of another shape.
  if (!target.empty() && !Repository::ParseWalPartKey(target)) {
    return Status::Corruption(fmt::format("wrapped data key \"{}\" names an invalid object \"{}\"; hint: run verify",
                                          WrappedKeyObject(key_id), Printable(target)));
  }
  return target;
}

Result<std::unique_ptr<PrivateKeyRing>> PrivateKeyRing::Open(Storage& storage, const std::string& private_key_path) {
  RETURN_IF_ERROR(PublicKeyFingerprint(private_key_path).status());
  return std::unique_ptr<PrivateKeyRing>(new PrivateKeyRing(storage, private_key_path));
}

Result<const EncryptionKey*> PrivateKeyRing::KeyFor(const std::string& key_id) const {
  if (!ValidKeyId(key_id)) {
    return Status::PermissionDenied(fmt::format("invalid data key id \"{}\"", Printable(key_id)));
  }
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
  ASSIGN_OR_RETURN(EncryptionKey key, UnwrapDataKey(SplitWrappedKeyObject(*wrapped).wrapped, path_));
  if (key.key_id() != key_id) {
    return Status::Corruption(fmt::format("wrapped data key \"{}\" holds key {}, not {}", WrappedKeyObject(key_id),
                                          key.key_id(), key_id));
  }
  auto& slot = opened_[key_id];
  slot = std::make_unique<EncryptionKey>(std::move(key));
  return slot.get();
}

}  // namespace sb
