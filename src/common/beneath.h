// Opening paths beneath a directory file descriptor without ever leaving it:
// the guard of the restore (a repository, or anyone writing into the target
// while it is restored, must not steer a write elsewhere through a symlink or
// "..") and of the file:// storage driver (a symlink planted in a shared
// repository must not make it read, write or delete files elsewhere).
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) does
// the resolution in the kernel, so it cannot be raced; where the kernel lacks
// openat2 (ENOSYS) the path is walked one component at a time with
// O_NOFOLLOW, which refuses a symlink at every step just the same.
// Thread-safety: stateless; fds are owned by the caller.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sb {

// Splits a relative path into its components; false when it is absolute,
// empty, or holds "..". Empty and "." components are dropped.
bool SplitRelativePath(std::string_view path, std::vector<std::string>* parts);

// Opens `rel` (relative, no "..") beneath `dirfd`; `flags` are open(2) flags
// (O_CLOEXEC and O_NOFOLLOW are added), `mode` is used with O_CREAT. Returns
// the new fd, or -1 with errno set: ELOOP when a component is a symlink,
// EXDEV/EINVAL when the path would leave `dirfd`.
int OpenBeneath(int dirfd, const std::string& rel, int flags, mode_t mode = 0);

// Opens the directory `rel` beneath `dirfd`, creating missing components
// with `mode` when `create` is set. Same errno conventions as OpenBeneath;
// ENOTDIR when a component is not a directory.
int OpenDirBeneath(int dirfd, const std::string& rel, bool create, mode_t mode);

// Makes OpenBeneath walk component by component as if the kernel had no
// openat2, so tests cover the fallback too.
void SetOpenat2DisabledForTesting(bool disabled);

}  // namespace sb
