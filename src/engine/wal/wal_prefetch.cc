#include "engine/wal/wal_prefetch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/core.h>

#include "common/logging.h"
#include "common/text.h"
#include "engine/wal/wal_archive.h"

namespace sb {
namespace {

constexpr size_t kSegmentNameLength = 24;
constexpr size_t kHashDigits = 16;

bool IsUpperHexString(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789ABCDEF") == std::string_view::npos;
}
bool IsSegmentName(std::string_view s) { return s.size() == kSegmentNameLength && IsUpperHexString(s); }
bool IsLowerHexString(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}
// "<segment>.<16 lowercase hex>"
bool IsSpoolFileName(std::string_view s) {
  return s.size() == kSegmentNameLength + 1 + kHashDigits && IsSegmentName(s.substr(0, kSegmentNameLength)) &&
         s[kSegmentNameLength] == '.' && IsLowerHexString(s.substr(kSegmentNameLength + 1));
}

std::string Errno(int e) { return std::strerror(e); }

Status WriteAllFd(int fd, std::string_view data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(fmt::format("cannot write \"{}\": {}", what, Errno(errno)));
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Writes `name` beneath dirfd through "<tmp>" and a rename.
Status WriteBeneath(int dirfd, const std::string& tmp, const std::string& name, std::string_view data) {
  int fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(fmt::format("cannot create spool file \"{}\": {}", tmp, Errno(errno)));
  Status s = WriteAllFd(fd, data, tmp);
  if (::close(fd) != 0 && s.ok()) s = Status::IoError(fmt::format("cannot write spool file \"{}\"", tmp));
  if (s.ok() && ::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0) {
    s = Status::IoError(fmt::format("cannot rename spool file \"{}\": {}", tmp, Errno(errno)));
  }
  if (!s.ok()) ::unlinkat(dirfd, tmp.c_str(), 0);
  return s;
}

Result<std::string> ReadBeneath(int dirfd, const std::string& name, uint64_t max_size) {
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return Status::NotFound(fmt::format("spool file \"{}\" is gone", name));
    return Status::IoError(fmt::format("cannot open spool file \"{}\": {}", name, Errno(e)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > max_size) {
    ::close(fd);
    return Status::Corruption(fmt::format("spool file \"{}\" is not a regular file of at most {} bytes", name, max_size));
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = ::read(fd, data.data() + done, data.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  data.resize(done);
  return data;
}

std::vector<std::string> Entries(int dirfd) {
  std::vector<std::string> out;
  int fd = ::dup(dirfd);
  if (fd < 0) return out;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return out;
  }
  ::rewinddir(d);
  while (struct dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Writes `data` to `dest` (a path PostgreSQL gave) through a temp file and a rename.
Status WriteDest(const std::string& dest, std::string_view data) {
  const std::string tmp = dest + ".sbtmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(fmt::format("cannot create \"{}\": {}", tmp, Errno(errno)));
  Status s = WriteAllFd(fd, data, tmp);
  if (::close(fd) != 0 && s.ok()) s = Status::IoError(fmt::format("cannot write \"{}\"", tmp));
  if (s.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    s = Status::IoError(fmt::format("cannot rename to \"{}\": {}", dest, Errno(errno)));
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace

std::string SpoolFileName(const std::string& segment, std::string_view bytes) {
  return segment + "." + Sha256Hex(bytes).substr(0, kHashDigits);
}

Result<Spool> Spool::Open(const std::string& dir, bool create) {
  if (create && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::IoError(fmt::format("cannot create the prefetch spool \"{}\": {}", dir, Errno(errno)));
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return Status::IoError(fmt::format("cannot open the prefetch spool \"{}\" (a symlink is refused): {}", dir,
                                       Errno(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    ::close(fd);
    return Status::PermissionDenied(fmt::format(
        "the prefetch spool \"{}\" is not a directory of this user with mode 0700; hint: remove it", dir));
  }
  return Spool(fd);
}

Spool::Spool(Spool&& other) noexcept : dirfd_(other.dirfd_) { other.dirfd_ = -1; }

Spool::~Spool() {
  if (dirfd_ >= 0) ::close(dirfd_);
}

std::vector<std::string> Spool::Files() const {
  std::vector<std::string> out;
  for (auto& e : Entries(dirfd_)) {
    if (IsSpoolFileName(e)) out.push_back(std::move(e));
  }
  return out;
}

Result<bool> Spool::Take(const std::string& name, const std::string& dest, uint64_t system_identifier,
                         uint64_t segment_size) {
  if (!IsSegmentName(name)) return false;
  ASSIGN_OR_RETURN(auto parsed, ParseWalSegmentName(name, segment_size));
  for (const auto& file : Files()) {
    if (file.compare(0, kSegmentNameLength, name) != 0) continue;
    auto bytes = ReadBeneath(dirfd_, file, segment_size);
    if (!bytes.ok()) {
      if (bytes.status().IsNotFound()) continue;
      log::Warn("prefetch: {}; fetching {} directly", bytes.status().message(), name);
      ::unlinkat(dirfd_, file.c_str(), 0);
      continue;
    }
    std::string why;
    if (bytes->size() != segment_size) {
      why = fmt::format("{} bytes, not {}", bytes->size(), segment_size);
    } else if (SpoolFileName(name, *bytes) != file) {
      why = "its SHA-256 does not match its name";
    } else {
      auto header = ParseWalSegmentHeader(*bytes, file);
      if (!header.ok()) {
        why = header.status().message();
      } else if (header->system_identifier != system_identifier || header->page_address != parsed.second) {
        why = "its WAL header names another cluster or position";
      }
    }
    if (!why.empty()) {
      log::Warn("prefetch: spooled \"{}\" refused ({}); fetching {} directly", file, why, name);
      ::unlinkat(dirfd_, file.c_str(), 0);
      continue;
    }
    if (::renameat(dirfd_, file.c_str(), AT_FDCWD, dest.c_str()) != 0) {
      // Another file system (a spool elsewhere): write it instead.
      RETURN_IF_ERROR(WriteDest(dest, *bytes));
      ::unlinkat(dirfd_, file.c_str(), 0);
    }
    return true;
  }
  return false;
}

Status Spool::SetPosition(const std::string& name) {
  if (!IsSegmentName(name)) return Status::InvalidArgument(fmt::format("\"{}\" is not a WAL segment name", name));
  return WriteBeneath(dirfd_, "position.tmp", "position", name + "\n");
}

std::optional<std::string> Spool::Position() const {
  auto text = ReadBeneath(dirfd_, "position", 64);
  if (!text.ok()) return std::nullopt;
  std::string name = Trim(*text);
  if (!IsSegmentName(name)) return std::nullopt;
  return name;
}

bool Spool::WorkerAlive() const {
  int fd = ::openat(dirfd_, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool alive = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the lock if we took it
  return alive;
}

Status SpawnDetached(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return Status::InvalidArgument("the prefetch worker needs an absolute program path");
  }
  // Everything the child needs is prepared before fork: after it only
  // async-signal-safe calls (the parent may have threads).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return Status::IoError(fmt::format("cannot start the prefetch worker: {}", Errno(errno)));
  if (pid == 0) {
    ::setsid();
    pid_t grandchild = ::fork();
    if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return Status::Ok();
}

namespace {

// One worker's state: where recovery is and what is spooled ahead of it.
class Worker {
 public:
  Worker(Storage& storage, const WalSource& source, const PrefetchOptions& options, Spool& spool)
      : storage_(storage), source_(source), o_(options), spool_(spool) {}

  Status Run() {
    const uint64_t seg = source_.segment_size;
    auto last_move = std::chrono::steady_clock::now();
    std::optional<std::string> seen;
    while (true) {
      auto position = spool_.Position();
      if (!position) return Status::Ok();
      if (position != seen) {
        seen = position;
        last_move = std::chrono::steady_clock::now();
        ASSIGN_OR_RETURN(auto parsed, ParseWalSegmentName(*position, seg));
        auto [tli, start] = parsed;
        if (tli != tli_ || start < at_ || !started_) {
          // A new timeline, or recovery went back: start over from here.
          tli_ = tli;
          next_ = Lsn{start.value + seg};
          ended_ = false;
          started_ = true;
        }
        at_ = start;
        if (next_ <= at_) next_ = Lsn{at_.value + seg};
      }
      // Spooled files recovery moved past (or of another timeline) go.
      size_t ahead = 0;
      for (const auto& f : spool_.Files()) {
        auto p = ParseWalSegmentName(f.substr(0, kSegmentNameLength), seg);
        if (!p.ok() || p->first != tli_ || p->second <= at_) {
          ::unlinkat(spool_.fd(), f.c_str(), 0);
        } else {
          ++ahead;
        }
      }
      if (ended_ && ahead == 0) break;  // end of WAL reached and consumed
      if (std::chrono::steady_clock::now() - last_move > o_.idle_exit) break;
      const size_t room = static_cast<size_t>(std::max(o_.depth, 1)) - std::min<size_t>(ahead, o_.depth);
      if (!ended_ && room > 0) {
        FetchBatch(std::min<size_t>(room, static_cast<size_t>(std::max(o_.threads, 1))));
      } else {
        std::this_thread::sleep_for(o_.poll);
      }
    }
    for (const auto& e : Entries(spool_.fd())) {
      if (IsSpoolFileName(e) || EndsWith(e, ".tmp")) ::unlinkat(spool_.fd(), e.c_str(), 0);
    }
    return Status::Ok();
  }

 private:
  // Fetches n segments from next_ in parallel; spools the complete ones up
  // to the first that is not (the end of WAL, or an error: wal-get then
  // meets it directly and reports it).
  void FetchBatch(size_t n) {
    const uint64_t seg = source_.segment_size;
    std::vector<Result<std::optional<SegmentBytes>>> results(n, Status::Internal("not fetched"));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        WalLookup lookup(storage_, source_);
        results[i] = lookup.Segment(tli_, Lsn{next_.value + i * seg});
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < n; ++i) {
      auto& r = results[i];
      if (!r.ok() || !r->has_value() || (*r)->covered != seg) {
        if (!r.ok()) log::Warn("prefetch: {}", r.status().message());
        ended_ = true;
        return;
      }
      const std::string name = WalSegmentName(tli_, next_, seg);
      Status s = WriteBeneath(spool_.fd(), name + ".tmp", SpoolFileName(name, (*r)->bytes), (*r)->bytes);
      if (!s.ok()) {
        log::Warn("prefetch: {}", s.message());
        ended_ = true;
        return;
      }
      next_ = Lsn{next_.value + seg};
    }
  }

  Storage& storage_;
  const WalSource& source_;
  const PrefetchOptions& o_;
  Spool& spool_;
  bool started_ = false;
  bool ended_ = false;
  uint32_t tli_ = 0;
  Lsn at_, next_;
};

}  // namespace

bool TakePrefetched(const WalGetOptions& options, const PrefetchOptions& prefetch,
                    const std::vector<std::string>& worker_argv) {
  if (!options.system_identifier || options.wal_segment_size == 0 || !IsSegmentName(options.name) ||
      prefetch.depth <= 0) {
    return false;
  }
  auto spool = Spool::Open(prefetch.spool_dir, /*create=*/true);
  if (!spool.ok()) {
    log::Warn("prefetch off: {}", spool.status().message());
    return false;
  }
  auto taken = spool->Take(options.name, options.dest, *options.system_identifier, options.wal_segment_size);
  if (!taken.ok()) log::Warn("prefetch: {}", taken.status().message());
  if (Status s = spool->SetPosition(options.name); !s.ok()) log::Warn("prefetch: {}", s.message());
  if (!worker_argv.empty() && !spool->WorkerAlive()) {
    if (Status s = SpawnDetached(worker_argv); !s.ok()) log::Warn("prefetch: {}", s.message());
  }
  return taken.ok() && *taken;
}

Result<WalGetOutcome> WalGetPrefetched(Repository& repo, const WalGetOptions& options,
                                       const PrefetchOptions& prefetch, const std::vector<std::string>& worker_argv) {
  if (TakePrefetched(options, prefetch, worker_argv)) return WalGetOutcome::kRestored;
  return WalGet(repo, options);
}

Status RunPrefetchWorker(Storage& storage, const WalSource& source, const PrefetchOptions& options) {
  ASSIGN_OR_RETURN(Spool spool, Spool::Open(options.spool_dir, /*create=*/false));
  int lock = ::openat(spool.fd(), "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock < 0) return Status::IoError(fmt::format("cannot open the prefetch lock: {}", Errno(errno)));
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock);
    return Status::Ok();  // another worker runs
  }
  Worker worker(storage, source, options, spool);
  Status s = worker.Run();
  ::close(lock);
  return s;
}

}  // namespace sb
