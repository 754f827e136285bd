#include "storage/local/local_storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

#include "common/beneath.h"

namespace sb {

namespace {

constexpr std::string_view kTempPrefix = ".tmp.";
constexpr int kDirRaceAttempts = 5;  // Put vs a concurrent Delete removing the parent dir

std::string ErrText(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Closes fd on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd = -1) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  FdGuard(FdGuard&& other) noexcept : fd_(other.release()) {}
  FdGuard& operator=(FdGuard&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string UniqueTempName() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::string(kTempPrefix) + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1)) + "." +
         std::to_string(rng() % 1000000007ULL);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return LocalStorage::ErrnoToStatus(errno, "write", path);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads [offset, offset+length) of an open file, stopping early at end of file.
Status PreadAll(int fd, uint64_t offset, uint64_t length, const std::string& path, std::string* out) {
  out->resize(length);
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, out->data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return LocalStorage::ErrnoToStatus(errno, "read", path);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  return Status::Ok();
}

// Opens the directory `rel` ("" or "a/b", components already validated)
// beneath `root` without following a symlink (common/beneath.h): a symlink
// inside the repository (planted by anyone who can write to it) is never
// followed, so no operation reads, writes or deletes files elsewhere through
// it. -1 with errno set on failure (ELOOP or ENOTDIR for a symlink).
int OpenDirUnderRoot(const std::string& root, std::string_view rel) {
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || rel.empty()) return fd;
  int dir = OpenBeneath(fd, std::string(rel), O_RDONLY | O_DIRECTORY);
  const int err = errno;
  ::close(fd);
  errno = err;
  return dir;
}

// EINVAL: the file system cannot sync directories (some FUSE and network ones).
Status FsyncDirFd(int dfd, const std::string& dir) {
  if (::fsync(dfd) != 0 && errno != EINVAL) return LocalStorage::ErrnoToStatus(errno, "fsync directory", dir);
  return Status::Ok();
}

// root joined with a relative path, for messages.
std::string JoinPath(const std::string& root, std::string_view rel) {
  if (rel.empty()) return root;
  if (root == "/") return "/" + std::string(rel);
  return root + "/" + std::string(rel);
}

// A key split into the directory holding it ("" at the top) and its last component.
struct KeyParts {
  std::string_view dir;
  std::string leaf;
};
KeyParts SplitKey(std::string_view key) {
  size_t slash = key.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), std::string(key)};
  return {key.substr(0, slash), std::string(key.substr(slash + 1))};
}

// What a writer reports when the repository holds a symlink where it must
// write: following it would create files wherever the link points.
Status SymlinkRefused(const std::string& path) {
  return Status::Corruption(Quote(path) +
                            " is a symlink inside the repository; refusing to follow it; hint: a file:// repository "
                            "holds only plain directories and files, replace the link with a real directory (or "
                            "remove it) after checking who planted it");
}

// Whether dfd's entry `name` is itself a symlink (not followed).
bool IsSymlinkAt(int dfd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

// Opens the directory `rel` ("" or "a/b", validated) beneath root for a writer,
// creating missing directories (0750) and never following a symlink: each
// component is opened relative to its parent's fd with O_NOFOLLOW, so a
// directory of the repository swapped for a link cannot redirect the write.
// Each new directory is fsynced into its parent, or a crash could lose the
// entry and with it the object's own fsync. On success *out holds the
// directory. kNotFound when a directory vanished meanwhile (a Delete pruning
// it; callers retry), kCorruption for a symlink, kFailedPrecondition for a file.
Status MakeDirsBeneath(const std::string& root, std::string_view rel, FdGuard* out) {
  FdGuard dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return LocalStorage::ErrnoToStatus(errno, "open directory", root);
  size_t pos = 0;
  while (pos < rel.size()) {
    size_t slash = rel.find('/', pos);
    if (slash == std::string_view::npos) slash = rel.size();
    std::string part(rel.substr(pos, slash - pos));
    std::string path = JoinPath(root, rel.substr(0, slash));
    constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int next = ::openat(dir.get(), part.c_str(), kDirFlags);
    if (next < 0 && errno == ENOENT) {
      if (::mkdirat(dir.get(), part.c_str(), 0750) == 0) {
        RETURN_IF_ERROR(FsyncDirFd(dir.get(), JoinPath(root, rel.substr(0, pos == 0 ? 0 : pos - 1))));
      } else if (errno != EEXIST) {  // EEXIST: a concurrent Put made it; ENOENT: our parent was pruned
        return LocalStorage::ErrnoToStatus(errno, "create directory", path);
      }
      next = ::openat(dir.get(), part.c_str(), kDirFlags);
    }
    if (next < 0) {
      int err = errno;
      // O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR or ELOOP depending on the kernel.
      if ((err == ENOTDIR || err == ELOOP) && IsSymlinkAt(dir.get(), part)) return SymlinkRefused(path);
      return LocalStorage::ErrnoToStatus(err == ELOOP ? ENOTDIR : err, "create directory", path);
    }
    dir = FdGuard(next);
    pos = slash + 1;
  }
  *out = std::move(dir);
  return Status::Ok();
}

// Opens the directory holding key beneath root for a reader. A missing
// directory, a file or a symlink on the way all mean "no such object", as
// List (which skips symlinks) sees it.
Status OpenKeyDirForRead(const std::string& root, std::string_view key, const KeyParts& parts, FdGuard* out) {
  int dfd = OpenDirUnderRoot(root, parts.dir);
  if (dfd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
      return Status::NotFound("object " + Quote(key) + " not found: " + Quote(JoinPath(root, parts.dir)) +
                              " is not a directory of the repository (missing, a file, or a symlink, which is "
                              "never followed)");
    }
    return LocalStorage::ErrnoToStatus(err, "open directory", JoinPath(root, parts.dir));
  }
  *out = FdGuard(dfd);
  return Status::Ok();
}

std::chrono::system_clock::time_point MtimeOf(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                                      std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

// Reads the "owner=…\npid=…\nhost=…" a lease holder wrote, for the busy message.
std::string DescribeHolder(int fd) {
  std::string content;
  if (!PreadAll(fd, 0, 4096, "", &content).ok()) return "another process";
  std::string owner, pid, host;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view line(content.data() + pos, eol - pos);
    if (line.starts_with("owner=")) owner = line.substr(6);
    if (line.starts_with("pid=")) pid = line.substr(4);
    if (line.starts_with("host=")) host = line.substr(5);
    pos = eol + 1;
  }
  if (owner.empty() && pid.empty()) return "another process";
  std::string s = owner.empty() ? "an unnamed owner" : owner;
  if (!pid.empty()) s += " (pid " + pid + (host.empty() ? "" : " on " + host) + ")";
  return s;
}

// Whether the key (its directory opened beneath root, without following
// symlinks) still names the inode fd holds.
bool StillNamesInode(const std::string& root, std::string_view key, int fd) {
  struct stat held {}, now {};
  if (::fstat(fd, &held) != 0) return false;
  KeyParts parts = SplitKey(key);
  FdGuard dir(OpenDirUnderRoot(root, parts.dir));
  if (dir.get() < 0) return false;
  return ::fstatat(dir.get(), parts.leaf.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == held.st_ino &&
         now.st_dev == held.st_dev;
}

class LocalLease final : public Lease {
 public:
  LocalLease(int fd, std::string root, std::string key, std::string path)
      : fd_(fd), root_(std::move(root)), key_(std::move(key)), path_(std::move(path)) {}
  ~LocalLease() override { (void)Release(); }

  Status Renew() override {
    std::lock_guard lock(mu_);
    if (fd_ < 0) return Status::FailedPrecondition("lease on " + Quote(key_) + " was already released");
    // The lock cannot expire; check that nobody replaced or removed the file under us.
    if (!StillNamesInode(root_, key_, fd_)) {
      return Status::FailedPrecondition("lease on " + Quote(key_) + " was lost: " + Quote(path_) +
                                        " was replaced or removed while locked");
    }
    return Status::Ok();
  }

  Status Release() override {
    std::lock_guard lock(mu_);
    if (fd_ < 0) return Status::Ok();
    // Closing the last descriptor of the open file description drops the flock.
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return LocalStorage::ErrnoToStatus(errno, "close", path_);
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  int fd_;
  std::string root_;
  std::string key_;
  std::string path_;
};

}  // namespace

Status LocalStorage::ErrnoToStatus(int err, std::string_view op, const std::string& path) {
  std::string msg = std::string(op) + " " + Quote(path) + " failed: " + ErrText(err);
  switch (err) {
    case ENOENT:
      return Status::NotFound(std::move(msg));
    case EEXIST:
      return Status::AlreadyExists(std::move(msg));
    case EACCES:
    case EPERM:
      return Status::PermissionDenied(msg + "; hint: check the owner and mode of the directory and the user smartbackup runs as");
    case EROFS:  // not a matter of permissions: the storage cannot be written at all
      return Status::IoError(msg + "; hint: the file system is mounted read-only");
    case ENOSPC:
    case EDQUOT:
      return Status::IoError(msg + "; hint: disk full, free space (or raise the quota) on the file system holding " +
                             Quote(path));
    case ENOTDIR:
    case EISDIR:
    case ENOTEMPTY:
      return Status::FailedPrecondition(
          msg + "; hint: a key cannot be both an object and the parent of other objects in file storage");
    case ENAMETOOLONG:
    case ELOOP:
      return Status::InvalidArgument(std::move(msg));
    case EINTR:
    case EAGAIN:
    case ETIMEDOUT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return Status::Unavailable(std::move(msg));
    default:  // EIO, ESTALE, …
      return Status::IoError(std::move(msg));
  }
}

Status LocalStorage::ValidateKey(std::string_view key) {
  auto bad = [&](const char* why) { return Status::InvalidArgument("invalid object key " + Quote(key) + ": " + why); };
  if (key.empty()) return bad("must not be empty");
  if (key.front() == '/') return bad("must be relative (no leading '/')");
  if (key.back() == '/') return bad("must not end with '/'");
  if (key.find('\0') != std::string_view::npos) return bad("must not contain NUL bytes");
  size_t pos = 0;
  while (pos <= key.size()) {
    size_t slash = key.find('/', pos);
    if (slash == std::string_view::npos) slash = key.size();
    std::string_view part = key.substr(pos, slash - pos);
    if (part.empty()) return bad("must not contain empty components (\"//\")");
    if (part == "." || part == "..") return bad("must not contain \".\" or \"..\" components");
    if (part.starts_with(kTempPrefix)) return bad("components must not start with \".tmp.\" (reserved for temp files)");
    pos = slash + 1;
  }
  return Status::Ok();
}

LocalStorage::LocalStorage(std::string root_dir) : root_(std::move(root_dir)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

Result<std::unique_ptr<LocalStorage>> LocalStorage::Open(const std::string& root_dir) {
  if (root_dir.empty()) return Status::InvalidArgument("local storage root directory must not be empty");
  std::error_code ec;
  std::filesystem::create_directories(root_dir, ec);
  if (ec) {
    return ErrnoToStatus(ec.value(), "create directory", root_dir)
        .WithContext("cannot create the storage root directory");
  }
  struct stat st {};
  if (::stat(root_dir.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat", root_dir);
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("storage root " + Quote(root_dir) + " exists but is not a directory");
  }
  return std::make_unique<LocalStorage>(root_dir);
}

std::string LocalStorage::PathOf(std::string_view key) const {
  if (root_ == "/") return "/" + std::string(key);
  return root_ + "/" + std::string(key);
}

Status LocalStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  const KeyParts parts = SplitKey(key);
  const std::string dir = JoinPath(root_, parts.dir);

  // Everything below happens relative to the directory fd, opened beneath the
  // root without following symlinks: a directory of the repository replaced by
  // a link must not make a writer (often root or postgres) create files elsewhere.
  FdGuard dfd;
  std::string tmp_name;
  int fd = -1;
  for (int attempt = 1;; ++attempt) {
    Status s = MakeDirsBeneath(root_, parts.dir, &dfd);
    if (s.IsNotFound() && attempt < kDirRaceAttempts) continue;  // a Delete pruned a parent meanwhile
    RETURN_IF_ERROR(s);
    tmp_name = UniqueTempName();
    fd = ::openat(dfd.get(), tmp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd >= 0) break;
    if (errno == ENOENT && attempt < kDirRaceAttempts) continue;  // our directory was pruned after we opened it
    return ErrnoToStatus(errno, "create", dir + "/" + tmp_name);
  }
  const std::string tmp = dir + "/" + tmp_name;

  // From here on the temp file exists; remove it on every failure path.
  bool tmp_exists = true;
  struct TmpCleanup {
    int dfd;
    const std::string& name;
    bool& exists;
    ~TmpCleanup() {
      if (exists) ::unlinkat(dfd, name.c_str(), 0);
    }
  } cleanup{dfd.get(), tmp_name, tmp_exists};

  {
    FdGuard guard(fd);
    RETURN_IF_ERROR(WriteAll(fd, data, tmp));
    if (::fsync(fd) != 0) return ErrnoToStatus(errno, "fsync", tmp);
    if (::close(guard.release()) != 0) return ErrnoToStatus(errno, "close", tmp);
  }

  if (options.if_absent) {
    // linkat() never replaces an existing name, which makes the check-and-create atomic.
    if (::linkat(dfd.get(), tmp_name.c_str(), dfd.get(), parts.leaf.c_str(), 0) != 0) {
      int err = errno;
      // A planted link is not an object (Stat and List do not see it): say so
      // rather than "already exists", which a caller would then fail to read.
      if (err == EEXIST && IsSymlinkAt(dfd.get(), parts.leaf)) return SymlinkRefused(path);
      if (err == EEXIST) return Status::AlreadyExists("object " + Quote(key) + " already exists in " + Describe());
      return ErrnoToStatus(err, "link", path);
    }
    ::unlinkat(dfd.get(), tmp_name.c_str(), 0);
    tmp_exists = false;
  } else {
    // renameat replaces a symlink leaf itself, never its target.
    if (::renameat(dfd.get(), tmp_name.c_str(), dfd.get(), parts.leaf.c_str()) != 0) {
      return ErrnoToStatus(errno, "rename to", path);
    }
    tmp_exists = false;
  }
  return FsyncDirFd(dfd.get(), dir);
}

Result<std::string> LocalStorage::Get(std::string_view key) {
  return GetRange(key, 0, UINT64_MAX);
}

Result<std::string> LocalStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  const KeyParts parts = SplitKey(key);
  FdGuard dir;
  RETURN_IF_ERROR(OpenKeyDirForRead(root_, key, parts, &dir));
  // O_NONBLOCK: a fifo planted where an object belongs would block the open
  // forever; it opens at once and is refused below as not a file (no effect
  // on regular files).
  int fd = ::openat(dir.get(), parts.leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    // ELOOP: the leaf is a symlink, which is not an object (List skips it too).
    if (errno == ELOOP) return Status::NotFound("object " + Quote(key) + " not found: " + Quote(path) + " is a symlink");
    return ErrnoToStatus(errno == ENOTDIR ? ENOENT : errno, "open", path);
  }
  FdGuard guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return Status::NotFound("object " + Quote(key) + " not found: " + Quote(path) + " is not a file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (offset >= size) return std::string();
  std::string out;
  // A file is never modified in place (Put renames a new one over it), so the size holds.
  RETURN_IF_ERROR(PreadAll(fd, offset, std::min(length, size - offset), path, &out));
  return out;
}

Result<ObjectInfo> LocalStorage::Stat(std::string_view key) {
  RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  const KeyParts parts = SplitKey(key);
  FdGuard dir;
  RETURN_IF_ERROR(OpenKeyDirForRead(root_, key, parts, &dir));
  struct stat st {};
  if (::fstatat(dir.get(), parts.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoToStatus(errno == ENOTDIR ? ENOENT : errno, "stat", path);
  }
  // A symlink leaf lands here too: not an object, as List sees it.
  if (!S_ISREG(st.st_mode)) return Status::NotFound("object " + Quote(key) + " not found: " + Quote(path) + " is not a file");
  return ObjectInfo{std::string(key), static_cast<uint64_t>(st.st_size), MtimeOf(st)};
}

namespace {

struct ListWalk {
  std::string_view prefix;
  std::string_view token;
  size_t want;  // max_results + 1, to learn whether another page exists
  std::vector<ObjectInfo> out;
};

// Visits the open directory dfd (taken over; dir_path names it in errors),
// holding keys that start with key_dir ("" or "x/y/"), in lexicographic key
// order. Entries sort by name, with "/" appended to directory names, so
// "a/x-y" < "a/x/z" < "a/x0" come out as the keys compare. Entries are
// examined without following symlinks: a symlink is neither an object nor a
// directory of the repository.
Status WalkDir(int dfd, const std::string& dir_path, const std::string& key_dir, ListWalk& walk) {
  DIR* d = ::fdopendir(dfd);
  if (d == nullptr) {
    int err = errno;
    ::close(dfd);
    return LocalStorage::ErrnoToStatus(err, "open directory", dir_path);
  }
  // Names first, stat later: a page wants `walk.want` keys of a directory that
  // may hold 100k+ WAL parts, so only entries that can be on this page (after
  // the token, under the prefix) are kept, and only those taken are stat'ed;
  // a heap yields them in order without sorting the rest.
  struct Entry {
    std::string sort_name;
    bool is_dir;
  };
  std::vector<Entry> entries;
  // The prefix below this directory, checked on a file's name before its
  // key is built: a WAL directory of 100k entries is mostly names a block
  // listing skips.
  const std::string_view rest =
      walk.prefix.size() > key_dir.size() ? walk.prefix.substr(key_dir.size()) : std::string_view();
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == ".." || name.starts_with(kTempPrefix)) {
      errno = 0;
      continue;
    }
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {  // file systems without d_type
      struct stat st {};
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        errno = 0;
        continue;  // vanished meanwhile
      }
      if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        errno = 0;
        continue;
      }
      is_dir = S_ISDIR(st.st_mode);
    } else if (e->d_type != DT_DIR && e->d_type != DT_REG) {
      errno = 0;
      continue;  // symlinks and the like are neither objects nor directories of the repository
    }
    if (!is_dir && !name.starts_with(rest)) {
      errno = 0;
      continue;
    }
    const std::string full = key_dir + std::string(name) + (is_dir ? "/" : "");
    const std::string_view f = full;
    const bool wanted = is_dir ? (f.starts_with(walk.prefix) || walk.prefix.starts_with(f)) &&
                                     (walk.token.empty() || f >= walk.token || walk.token.starts_with(f))
                               : f.starts_with(walk.prefix) && (walk.token.empty() || f > walk.token);
    if (wanted) entries.push_back({std::string(name) + (is_dir ? "/" : ""), is_dir});
    errno = 0;
  }
  int read_err = errno;
  if (read_err != 0) {
    ::closedir(d);
    return LocalStorage::ErrnoToStatus(read_err, "read directory", dir_path);
  }
  auto after = [](const Entry& a, const Entry& b) { return a.sort_name > b.sort_name; };  // min-heap
  std::make_heap(entries.begin(), entries.end(), after);

  Status result = Status::Ok();
  while (!entries.empty() && walk.out.size() < walk.want) {
    std::pop_heap(entries.begin(), entries.end(), after);
    const Entry e = std::move(entries.back());
    entries.pop_back();
    std::string full = key_dir + e.sort_name;
    if (e.is_dir) {
      std::string name = e.sort_name.substr(0, e.sort_name.size() - 1);
      std::string sub = dir_path + "/" + name;
      // O_NOFOLLOW: the entry may have been swapped for a symlink since readdir.
      int sub_fd = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub_fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;  // removed or replaced meanwhile
        result = LocalStorage::ErrnoToStatus(errno, "open directory", sub);
        break;
      }
      result = WalkDir(sub_fd, sub, full, walk);
      if (!result.ok()) break;
    } else {
      struct stat st {};
      if (::fstatat(dfd, e.sort_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished meanwhile
      if (!S_ISREG(st.st_mode)) continue;  // replaced meanwhile
      walk.out.push_back(ObjectInfo{std::move(full), static_cast<uint64_t>(st.st_size), MtimeOf(st)});
    }
  }
  ::closedir(d);
  return result;
}

}  // namespace

Result<ListPage> LocalStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  if (max_results <= 0) return Status::InvalidArgument("list max_results must be positive");
  size_t slash = prefix.rfind('/');
  std::string key_dir = slash == std::string_view::npos ? "" : std::string(prefix.substr(0, slash + 1));
  if (!key_dir.empty()) {
    Status s = ValidateKey(std::string_view(key_dir).substr(0, key_dir.size() - 1));
    if (!s.ok()) return Status::InvalidArgument("invalid list prefix " + Quote(prefix) + ": " + s.message());
  }
  ListWalk walk{prefix, page_token, static_cast<size_t>(max_results) + 1, {}};
  std::string_view rel = std::string_view(key_dir).substr(0, key_dir.empty() ? 0 : key_dir.size() - 1);
  std::string dir_path = key_dir.empty() ? root_ : PathOf(rel);
  int dfd = OpenDirUnderRoot(root_, rel);
  if (dfd < 0) {
    // Nothing there (or removed meanwhile), or a symlink where a directory should be: no keys.
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return ListPage{};
    return ErrnoToStatus(errno, "open directory", dir_path);
  }
  RETURN_IF_ERROR(WalkDir(dfd, dir_path, key_dir, walk));
  ListPage page;
  if (walk.out.size() > static_cast<size_t>(max_results)) {
    walk.out.resize(max_results);
    page.next_token = walk.out.back().key;
  }
  page.objects = std::move(walk.out);
  return page;
}

void LocalStorage::RemoveEmptyParents(std::string_view key) {
  // Best effort: rmdir fails harmlessly (ENOTEMPTY) as soon as a directory is
  // in use. Each directory is removed relative to its parent opened beneath
  // the root, so a symlinked parent never leads outside the repository.
  size_t last = key.rfind('/');
  while (last != std::string_view::npos) {
    key = key.substr(0, last);
    size_t up = key.rfind('/');
    std::string_view parent = up == std::string_view::npos ? std::string_view() : key.substr(0, up);
    std::string name(up == std::string_view::npos ? key : key.substr(up + 1));
    int pfd = OpenDirUnderRoot(root_, parent);
    if (pfd < 0) return;
    FdGuard guard(pfd);
    if (::unlinkat(pfd, name.c_str(), AT_REMOVEDIR) != 0) return;
    last = up;
  }
}

Status LocalStorage::Delete(std::string_view key) {
  RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  // The object is unlinked from its directory opened beneath the root without
  // following symlinks: a symlinked directory in the repository must not make
  // a Delete (purge) remove a file outside it. A symlink as the leaf itself is
  // just a name, removed without touching its target.
  size_t slash = key.rfind('/');
  std::string_view parent = slash == std::string_view::npos ? std::string_view() : key.substr(0, slash);
  std::string leaf(slash == std::string_view::npos ? key : key.substr(slash + 1));
  int pfd = OpenDirUnderRoot(root_, parent);
  if (pfd < 0) {
    // Missing, a parent is a file or a symlink: no such object in this repository.
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return Status::Ok();
    return ErrnoToStatus(errno, "delete", path);
  }
  FdGuard guard(pfd);
  if (::unlinkat(pfd, leaf.c_str(), 0) != 0) {
    // Missing, or the key names a directory: no such object.
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) return Status::Ok();
    return ErrnoToStatus(errno, "delete", path);
  }
  if (::fsync(pfd) != 0 && errno != EINVAL) return ErrnoToStatus(errno, "fsync directory", DirName(path));
  RemoveEmptyParents(key);
  return Status::Ok();
}

Result<std::unique_ptr<Lease>> LocalStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  const KeyParts parts = SplitKey(key);
  for (int attempt = 1;; ++attempt) {
    // Like Put: the lease file is created relative to its directory opened
    // beneath the root, so a symlinked directory cannot place it elsewhere.
    FdGuard dir;
    Status s = MakeDirsBeneath(root_, parts.dir, &dir);
    if (s.IsNotFound() && attempt < kDirRaceAttempts) continue;
    RETURN_IF_ERROR(s);
    int fd = ::openat(dir.get(), parts.leaf.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0) {
      if (errno == ENOENT && attempt < kDirRaceAttempts) continue;
      if (errno == ELOOP) return SymlinkRefused(path);
      return ErrnoToStatus(errno, "open lease file", path);
    }
    FdGuard guard(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status::AlreadyExists("lease on " + Quote(key) + " is held by " + DescribeHolder(fd));
      }
      return ErrnoToStatus(errno, "lock", path);
    }
    // We locked an inode; make sure the name still refers to it (a Delete may
    // have unlinked it between our open and flock, and a new file may be there now).
    struct stat held {}, now {};
    if (::fstat(fd, &held) != 0) return ErrnoToStatus(errno, "stat", path);
    if (::fstatat(dir.get(), parts.leaf.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != held.st_ino ||
        now.st_dev != held.st_dev) {
      if (attempt < kDirRaceAttempts) continue;
      return Status::Unavailable("lease file " + Quote(path) + " keeps being replaced; try again");
    }
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    // flock dies with its process, so a restarted holder (same holder_id)
    // finds the lock free at once; the id is recorded for the operator.
    std::string info = "owner=" + options.owner + "\nholder=" + options.holder_id + "\npid=" + std::to_string(::getpid()) + "\nhost=" + host + "\n";
    if (::ftruncate(fd, 0) != 0) return ErrnoToStatus(errno, "truncate", path);
    RETURN_IF_ERROR(WriteAll(fd, info, path));
    return std::unique_ptr<Lease>(std::make_unique<LocalLease>(guard.release(), root_, std::string(key), path));
  }
}

std::string LocalStorage::Describe() const { return "file://" + root_; }

}  // namespace sb
