#include "engine/restore/tar_extractor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include "common/text.h"
#include "common/beneath.h"

namespace sb {
namespace {

constexpr size_t kBlock = 512;

uint64_t ParseOctal(const char* p, size_t n) {
  // GNU base-256 for large sizes: high bit of the first byte set.
  if (static_cast<unsigned char>(p[0]) & 0x80) {
    uint64_t v = static_cast<unsigned char>(p[0]) & 0x7f;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n && p[i]; ++i) {
    if (p[i] == ' ') continue;
    if (p[i] < '0' || p[i] > '7') break;
    v = v * 8 + (p[i] - '0');
  }
  return v;
}

std::string Field(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

std::string Join(const std::vector<std::string>& parts, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out.push_back('/');
    out += parts[i];
  }
  return out;
}

// What a PostgreSQL data directory allows: group read at most, no
// setuid/setgid/sticky; the owner can always write (the server needs to).
mode_t FileMode(uint32_t m) { return static_cast<mode_t>((m & 0640) | 0600); }
mode_t DirMode(uint32_t m) { return static_cast<mode_t>((m & 0750) | 0700); }

// A tablespace oid as PostgreSQL names its pg_tblspc link: decimal, no
// leading zero, non-zero, fits 32 bits. 0 when it is not one.
uint32_t ParseOid(const std::string& s) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return 0;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v <= UINT32_MAX ? static_cast<uint32_t>(v) : 0;
}

Status ErrnoStatus(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = fmt::format("cannot {} \"{}\": {}", what, path, std::strerror(e));
  if (e == ENOSPC || e == EDQUOT) return Status::IoError(msg + "; hint: free disk space on the restore target");
  if (e == EACCES || e == EPERM) return Status::PermissionDenied(msg);
  return Status::IoError(msg);
}

}  // namespace

OutputFile::~OutputFile() {
  if (::close(fd_) != 0) errors_->Record(ErrnoStatus("close", path_));
}

Status OutputFile::WriteAt(uint64_t offset, std::string_view bytes) const {
  const char* data = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path_);
    }
    data += w;
    offset += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
  // Start writeback now, so the final sync does not write the whole restore
  // at the end; errors surface at that sync.
  (void)::sync_file_range(fd_, static_cast<off_t>(offset - bytes.size()), static_cast<off_t>(bytes.size()),
                          SYNC_FILE_RANGE_WRITE);
  return Status::Ok();
}

TarExtractor::TarExtractor(std::string dest_dir, std::string archive_name,
                           std::map<uint32_t, std::string> tablespace_links)
    : dest_(std::move(dest_dir)),
      archive_(std::move(archive_name)),
      tablespace_links_(std::move(tablespace_links)) {}

TarExtractor::~TarExtractor() {
  if (last_dir_fd_ >= 0) ::close(last_dir_fd_);
  if (root_fd_ >= 0) ::close(root_fd_);
}

Status TarExtractor::Fail(const std::string& why) {
  return Status::Corruption(fmt::format("archive \"{}\" is not a valid tar stream: {}", archive_, why));
}

Status TarExtractor::Feed(std::string_view bytes, std::vector<FileWrite>* deferred) {
  if (root_fd_ < 0) {
    // The operator's directory: following a symlink to it is the operator's choice.
    root_fd_ = ::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd_ < 0) return ErrnoStatus("open restore directory", dest_);
  }
  while (!bytes.empty()) {
    if (remaining_ > 0) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
      if (type_ == 'L' || type_ == 'x' || type_ == 'g') {
        meta_buffer_.append(bytes.data(), take);
      } else if (file_) {
        if (deferred) {
          deferred->push_back({file_, file_offset_, bytes.substr(0, take)});
        } else {
          RETURN_IF_ERROR(file_->WriteAt(file_offset_, bytes.substr(0, take)));
        }
        file_offset_ += take;
      }
      remaining_ -= take;
      bytes.remove_prefix(take);
      if (remaining_ == 0) RETURN_IF_ERROR(StartEntry());  // entry complete: finalize
      continue;
    }
    if (padding_ > 0) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(padding_, bytes.size()));
      padding_ -= take;
      bytes.remove_prefix(take);
      continue;
    }
    if (ended_) {  // trailing zero blocks / padding after the end marker
      bytes = {};
      break;
    }
    size_t take = std::min(kBlock - header_.size(), bytes.size());
    header_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (header_.size() == kBlock) {
      RETURN_IF_ERROR(ParseHeader(header_.data()));
      header_.clear();
    }
  }
  return Status::Ok();
}

Status TarExtractor::ParseHeader(const char* b) {
  bool all_zero = true;
  for (size_t i = 0; i < kBlock; ++i) {
    if (b[i] != 0) {
      all_zero = false;
      break;
    }
  }
  if (all_zero) {
    ended_ = true;
    return Status::Ok();
  }
  // Checksum: sum of header bytes with the checksum field taken as spaces.
  uint64_t expected = ParseOctal(b + 148, 8), sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(b[i]);
  if (sum != expected) return Fail("header checksum mismatch");

  type_ = b[156] ? b[156] : '0';
  uint64_t size = ParseOctal(b + 124, 12);
  mode_ = static_cast<uint32_t>(ParseOctal(b + 100, 8)) & 07777;
  std::string name = Field(b, 100);
  if (std::memcmp(b + 257, "ustar", 5) == 0) {
    std::string prefix = Field(b + 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  if (!long_name_.empty() && type_ != 'L' && type_ != 'x') {
    name = long_name_;
    long_name_.clear();
  }
  path_ = name;
  link_target_ = Field(b + 157, 100);
  remaining_ = size;
  padding_ = (kBlock - size % kBlock) % kBlock;

  if (type_ == 'L' || type_ == 'x' || type_ == 'g') {
    meta_buffer_.clear();
    if (size > (1 << 20)) return Fail("oversized extended header");
    if (size == 0) return StartEntry();
    return Status::Ok();
  }
  std::vector<std::string> parts;
  if (!SplitRelativePath(path_, &parts)) return Fail(fmt::format("unsafe entry path \"{}\"", Printable(path_)));
  if (parts.empty()) {
    if (type_ == '5') return Status::Ok();  // "./": the destination itself
    return Fail("entry with an empty name");
  }
  path_ = Join(parts, parts.size());
  if (parts.size() == 1 && parts[0] == "tablespace_map") {
    // PostgreSQL would make pg_tblspc links from it at startup, to whatever
    // places it names; smartbackup's backups hold pg_tblspc links instead.
    return Fail("entry \"tablespace_map\" is refused (smartbackup's base backups never hold one)");
  }
  return CreateEntry(parts, size);
}

Status TarExtractor::CreateEntry(const std::vector<std::string>& parts, uint64_t size) {
  const std::string shown = Printable(path_);
  switch (type_) {
    case '0':
    case '7':
    case '5':
    case '2':
      break;
    case '1':
      return Fail(fmt::format("hard link entry \"{}\" is refused (a base backup has none)", shown));
    case '3':
    case '4':
    case '6':
      return Fail(fmt::format("device or fifo entry \"{}\" is refused (a base backup has none)", shown));
    default:
      return Fail(fmt::format("unsupported entry type '{}' for \"{}\"", Printable(std::string(1, type_)), shown));
  }
  if ((type_ == '5' || type_ == '2') && size != 0) {
    return Fail(fmt::format("{} entry \"{}\" carries data", type_ == '5' ? "directory" : "symlink", shown));
  }
  if (type_ == '2') return MakeSymlink(parts);
  ASSIGN_OR_RETURN(int parent, ParentDir(parts));
  const std::string full = dest_ + "/" + shown;
  const char* name = parts.back().c_str();
  switch (type_) {
    case '5':
      if (::mkdirat(parent, name, DirMode(mode_)) != 0) {
        if (errno != EEXIST) return ErrnoStatus("create directory", full);
        // Made already as some entry's parent; anything but a directory is not fine.
        struct stat st;
        if (::fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoStatus("stat", full);
        if (!S_ISDIR(st.st_mode)) {
          return Fail(fmt::format("directory entry \"{}\" names a file or symlink made earlier", shown));
        }
      }
      return Status::Ok();
    default: {
      int fd = OpenBeneath(parent, parts.back(), O_WRONLY | O_CREAT | O_EXCL, FileMode(mode_));
      if (fd < 0) {
        if (errno == EEXIST) {
          return Fail(fmt::format("cannot create \"{}\": an entry of that name exists already", full));
        }
        return ErrnoStatus("create", full);
      }
      file_ = std::make_shared<OutputFile>(fd, full, errors_);
      file_offset_ = 0;
      ++files_;
      if (size == 0) return StartEntry();
      return Status::Ok();
    }
  }
}

Result<int> TarExtractor::ParentDir(const std::vector<std::string>& parts) {
  const std::string parent = parts.size() > 1 ? Join(parts, parts.size() - 1) : ".";
  if (last_dir_fd_ >= 0 && parent == last_dir_) return last_dir_fd_;
  if (last_dir_fd_ >= 0) ::close(last_dir_fd_);
  last_dir_fd_ = -1;
  last_dir_.clear();
  int fd = OpenDirBeneath(root_fd_, parent, /*create=*/true, 0700);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR || errno == EXDEV) {
      return Fail(fmt::format("entry \"{}\" lies under \"{}\", which is a symlink or not a directory",
                              Printable(path_), Printable(parent)));
    }
    return ErrnoStatus("create directory", dest_ + "/" + Printable(parent));
  }
  last_dir_fd_ = fd;
  last_dir_ = parent;
  return fd;
}

// Refused before anything is created for it, parent directories included.
Status TarExtractor::MakeSymlink(const std::vector<std::string>& parts) {
  uint32_t oid = parts.size() == 2 && parts[0] == "pg_tblspc" ? ParseOid(parts[1]) : 0;
  auto mapped = tablespace_links_.find(oid);
  if (oid == 0 || mapped == tablespace_links_.end()) {
    return Fail(fmt::format(
        "symlink entry \"{}\" -> \"{}\" is refused: a restore makes only the pg_tblspc/<oid> links of the "
        "tablespaces mapped with --tablespace-map",
        Printable(path_), Printable(link_target_)));
  }
  ASSIGN_OR_RETURN(int parent_fd, ParentDir(parts));
  // The archive's target is ignored: the link goes where the operator said.
  if (::symlinkat(mapped->second.c_str(), parent_fd, parts[1].c_str()) != 0) {
    if (errno == EEXIST) return Fail(fmt::format("symlink entry \"{}\" appears twice", Printable(path_)));
    return ErrnoStatus("create symlink", dest_ + "/" + Printable(path_));
  }
  return Status::Ok();
}

// Called when the current entry's data is complete.
Status TarExtractor::StartEntry() {
  if (type_ == 'L') {
    long_name_ = std::string(meta_buffer_.c_str());
  } else if (type_ == 'x') {
    // pax records: "<len> key=value\n"
    size_t pos = 0;
    while (pos < meta_buffer_.size()) {
      size_t sp = meta_buffer_.find(' ', pos);
      if (sp == std::string::npos) break;
      size_t len = std::strtoull(meta_buffer_.c_str() + pos, nullptr, 10);
      if (len == 0 || pos + len > meta_buffer_.size()) return Fail("bad pax record");
      std::string rec = meta_buffer_.substr(sp + 1, pos + len - sp - 2);
      if (StartsWith(rec, "path=")) long_name_ = rec.substr(5);
      pos += len;
    }
  } else if (file_) {
    // Closed here, or by the last deferred write still holding it.
    file_.reset();
    RETURN_IF_ERROR(errors_->Get());
  }
  meta_buffer_.clear();
  return Status::Ok();
}

Status TarExtractor::Finish() {
  if (remaining_ > 0 || file_) return Fail(fmt::format("entry \"{}\" is cut short", Printable(path_)));
  if (!header_.empty()) return Fail("archive ends inside a header");
  return errors_->Get();
}

}  // namespace sb
