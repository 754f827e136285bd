#include "common/beneath.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>


namespace sb {
namespace {

// Set once openat2 is found missing (old kernel, or a test forcing the walk).
std::atomic<bool> g_no_openat2{false};

int Openat2(int dirfd, const char* path, int flags, mode_t mode) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags);
  how.mode = (flags & O_CREAT) ? mode : 0;  // openat2 rejects a mode without O_CREAT
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
  } while (fd < 0 && errno == EINTR);
  return static_cast<int>(fd);
}

// Closes fd without disturbing errno (the caller reports the earlier error).
void CloseKeepErrno(int fd) {
  int e = errno;
  ::close(fd);
  errno = e;
}

// The same guarantees without openat2: every component is opened on its own
// with O_NOFOLLOW, relative to the one before, so no symlink is followed and
// ".." never appears (SplitRelativePath refuses it).
int WalkOpen(int dirfd, const std::string& rel, int flags, mode_t mode) {
  std::vector<std::string> parts;
  if (!SplitRelativePath(rel, &parts)) {
    errno = EXDEV;
    return -1;
  }
  if (parts.empty()) return ::openat(dirfd, ".", flags, mode);
  int cur = dirfd;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    int next = ::openat(cur, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cur != dirfd) CloseKeepErrno(cur);
    if (next < 0) return -1;
    cur = next;
  }
  int fd;
  do {
    fd = ::openat(cur, parts.back().c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  if (cur != dirfd) CloseKeepErrno(cur);
  return fd;
}

}  // namespace

void SetOpenat2DisabledForTesting(bool disabled) { g_no_openat2.store(disabled); }

bool SplitRelativePath(std::string_view path, std::vector<std::string>* parts) {
  parts->clear();
  if (path.empty() || path[0] == '/') return false;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(pos, slash - pos);
    if (part == "..") return false;
    if (!part.empty() && part != ".") parts->emplace_back(part);
    pos = slash + 1;
  }
  return true;
}

int OpenBeneath(int dirfd, const std::string& rel, int flags, mode_t mode) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    int fd = Openat2(dirfd, rel.c_str(), flags, mode);
    if (fd >= 0 || errno != ENOSYS) return fd;
    g_no_openat2.store(true);
  }
  return WalkOpen(dirfd, rel, flags, mode);
}

int OpenDirBeneath(int dirfd, const std::string& rel, bool create, mode_t mode) {
  int fd = OpenBeneath(dirfd, rel, O_RDONLY | O_DIRECTORY);
  if (fd >= 0 || !create || errno != ENOENT) return fd;
  std::vector<std::string> parts;
  if (!SplitRelativePath(rel, &parts)) {
    errno = EXDEV;
    return -1;
  }
  // mkdirat never follows a symlink in its last component (EEXIST), and the
  // open after it refuses one, so each step stays beneath dirfd.
  int cur = dirfd;
  for (const auto& part : parts) {
    if (::mkdirat(cur, part.c_str(), mode) != 0 && errno != EEXIST) {
      if (cur != dirfd) CloseKeepErrno(cur);
      return -1;
    }
    int next = OpenBeneath(cur, part, O_RDONLY | O_DIRECTORY);
    if (cur != dirfd) CloseKeepErrno(cur);
    if (next < 0) return -1;
    cur = next;
  }
  if (cur == dirfd) return OpenBeneath(dirfd, ".", O_RDONLY | O_DIRECTORY);
  return cur;
}

}  // namespace sb
