#include "engine/restore/tar_extractor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/core.h>

#include "common/text.h"

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

bool SafeRelative(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  std::filesystem::path p(path);
  for (const auto& part : p) {
    if (part == "..") return false;
  }
  return true;
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

TarExtractor::TarExtractor(std::string dest_dir, std::string archive_name, SymlinkRewriter rewrite_symlink)
    : dest_(std::move(dest_dir)), archive_(std::move(archive_name)), rewrite_symlink_(std::move(rewrite_symlink)) {}

TarExtractor::~TarExtractor() = default;

Status TarExtractor::Fail(const std::string& why) {
  return Status::Corruption(fmt::format("archive \"{}\" is not a valid tar stream: {}", archive_, why));
}

Status TarExtractor::Feed(std::string_view bytes, std::vector<FileWrite>* deferred) {
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
  while (!path_.empty() && path_.back() == '/') path_.pop_back();
  if (path_ == "." || path_.empty()) {
    if (type_ == '5') return Status::Ok();
    return Fail("entry with an empty name");
  }
  if (StartsWith(path_, "./")) path_ = path_.substr(2);
  if (!SafeRelative(path_)) return Fail(fmt::format("unsafe entry path \"{}\"", path_));

  const std::string full = dest_ + "/" + path_;
  RETURN_IF_ERROR(MakeParentDirs(full));
  switch (type_) {
    case '0':
    case '7': {
      int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_ ? mode_ : 0600);
      if (fd < 0) return ErrnoStatus("create", full);
      file_ = std::make_shared<OutputFile>(fd, full, errors_);
      file_offset_ = 0;
      ++files_;
      if (size == 0) return StartEntry();
      return Status::Ok();
    }
    case '5':
      if (::mkdir(full.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoStatus("create directory", full);
      remaining_ = 0;
      return Status::Ok();
    case '2': {
      std::string target = rewrite_symlink_ ? rewrite_symlink_(path_, link_target_) : link_target_;
      if (::symlink(target.c_str(), full.c_str()) != 0) return ErrnoStatus("create symlink", full);
      remaining_ = 0;
      return Status::Ok();
    }
    default:
      return Fail(fmt::format("unsupported entry type '{}' for \"{}\"", type_, path_));
  }
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

// Base backups list a directory before its contents, so the parent nearly
// always exists already; remembering the last one saves a stat per file.
Status TarExtractor::MakeParentDirs(const std::string& full) {
  std::string parent = std::filesystem::path(full).parent_path().string();
  if (parent == last_dir_) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return Status::IoError(fmt::format("cannot create directory \"{}\": {}", parent, ec.message()));
  }
  last_dir_ = parent;
  return Status::Ok();
}

Status TarExtractor::Finish() {
  if (remaining_ > 0 || file_) return Fail(fmt::format("entry \"{}\" is cut short", path_));
  if (!header_.empty()) return Fail("archive ends inside a header");
  return errors_->Get();
}

}  // namespace sb
