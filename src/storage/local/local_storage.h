// LocalStorage: the Storage driver for a directory on a local (POSIX) file
// system. Key "a/b/c" is the file <root>/a/b/c; directories are created as
// needed and removed again when a Delete leaves them empty.
//
// Durability: Put writes a temp file (".tmp.<unique>") next to the target,
// fsyncs it, renames it over the target (or, with if_absent, link()s it so an
// existing key is never replaced) and fsyncs the directory; newly created
// directories are fsynced into their parents. A reader therefore sees the whole
// old or the whole new object. Temp files left by a crash are never listed.
//
// Keys: '/'-separated, no leading or trailing '/', no empty, "." or ".."
// components, no component starting with ".tmp." and no NUL byte; anything else
// is kInvalidArgument. A key cannot be both an object and the parent of other
// objects ("a" and "a/b"): the second Put fails with kFailedPrecondition.
//
// Leases: AcquireLease opens (creating if needed) the key's file and takes
// flock(LOCK_EX|LOCK_NB) on it; the Lease object owns that descriptor. The
// lock goes with the descriptor, so it is released by Release(), by destroying
// the Lease, or by the kernel when the process dies (crash-safe, no stale
// locks). flock is per open file description, so two Leases in one process
// exclude each other too. The owner and pid are written into the file for the
// "held by" message. ttl is not enforced (the holder's liveness is the ttl);
// Renew() only checks the lock is still held. Do not Put or Delete a key
// while a lease on it is held: the replacement file would not be locked.
//
// Symlinks: no operation follows a symlink inside the root (every file is
// reached through its directory opened beneath the root component by
// component with O_NOFOLLOW, and opened or stat'ed relative to that fd). A
// symlink is not an object: List skips it, Get and Stat of it or through a
// symlinked directory are kNotFound, deleting through one is a no-op, and Put
// or AcquireLease through a symlinked directory (or a lease on a symlink) is
// kCorruption. So a link planted in a shared repository can neither make a
// writer create files elsewhere, nor a reader read them, nor purge remove
// them. The root itself may be a symlink (the operator's choice).
//
// Errors: every errno is translated by ErrnoToStatus; messages quote the path.
// Thread-safety: all methods may be called from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "storage/storage.h"

namespace sb {

class LocalStorage final : public Storage {
 public:
  // root_dir: an existing directory; its trailing slashes are dropped.
  // Prefer Open(), which creates and checks the directory.
  explicit LocalStorage(std::string root_dir);

  // Creates root_dir (and its parents) if missing; fails if it cannot, or if
  // root_dir exists but is not a directory.
  static Result<std::unique_ptr<LocalStorage>> Open(const std::string& root_dir);

  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) override;
  Status Delete(std::string_view key) override;
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override;  // "file://" + root

  const std::string& root() const { return root_; }

  // OK when key is acceptable to this driver (see above), else kInvalidArgument.
  static Status ValidateKey(std::string_view key);

  // The one place errno becomes a Status. op is what failed ("open", "rename"…),
  // path the file concerned (quoted in the message).
  static Status ErrnoToStatus(int err, std::string_view op, const std::string& path);

 private:
  std::string PathOf(std::string_view key) const;
  void RemoveEmptyParents(std::string_view key);

  std::string root_;
};

}  // namespace sb
