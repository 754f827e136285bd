// TarExtractor: a streaming ustar reader that writes entries under a
// destination directory as bytes arrive (PostgreSQL's base backup archives:
// regular files, directories, tablespace symlinks; pax "path" and GNU long
// names are understood too).
//
// The archive comes from a repository that others can write, and a restore
// often runs as root, so nothing is written outside the destination: it is
// opened once and every entry is created relative to directory fds opened
// beneath it (beneath.h), never through a symlink. Files are created
// O_EXCL (an entry named twice, or a file where a symlink is, is a corrupt
// archive); modes are masked to what a data directory allows (files at most
// 0640, directories 0750, never setuid/setgid/sticky); hard links, devices
// and fifos are refused; the only symlinks made are pg_tblspc/<oid> of the
// tablespaces the operator mapped, and they point where the operator said.
// A top-level tablespace_map (which PostgreSQL would turn into links at
// startup) is refused too.
//
// File data can be written by Feed itself or handed back as FileWrite
// records, so a restore can parse headers on one thread and spread the
// writes (most of a restore's system time) over several.
// Thread-safety: one extractor per thread; FileWrite records may be carried
// out on any thread, in any order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sb {

// Keeps the first error reported by any thread.
class FirstError {
 public:
  void Record(const Status& s) {
    if (s.ok()) return;
    std::lock_guard<std::mutex> l(mu_);
    if (first_.ok()) first_ = s;
  }
  Status Get() const {
    std::lock_guard<std::mutex> l(mu_);
    return first_;
  }

 private:
  mutable std::mutex mu_;
  Status first_;
};

// A file being restored; closed when the last FileWrite for it is done.
// A failure to close is recorded in the extractor's FirstError.
class OutputFile {
 public:
  OutputFile(int fd, std::string path, std::shared_ptr<FirstError> errors)
      : fd_(fd), path_(std::move(path)), errors_(std::move(errors)) {}
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  Status WriteAt(uint64_t offset, std::string_view bytes) const;

 private:
  int fd_;
  std::string path_;
  std::shared_ptr<FirstError> errors_;
};

// `bytes` points into the buffer given to Feed: it must outlive the write.
struct FileWrite {
  std::shared_ptr<OutputFile> file;
  uint64_t offset = 0;
  std::string_view bytes;
};

class TarExtractor {
 public:
  // tablespace_links: for the main archive (tablespace 0), oid → the
  // directory the operator mapped that tablespace to. A `pg_tblspc/<oid>`
  // symlink entry for one of these oids is made pointing there, whatever
  // target the archive records; every other symlink entry is refused.
  // dest_dir must exist (it is opened on the first Feed).
  TarExtractor(std::string dest_dir, std::string archive_name,
               std::map<uint32_t, std::string> tablespace_links = {});
  ~TarExtractor();
  TarExtractor(const TarExtractor&) = delete;
  TarExtractor& operator=(const TarExtractor&) = delete;

  // Without `deferred`, file data is written before Feed returns; with it,
  // it is appended there for the caller to write (FileWrite::file->WriteAt).
  Status Feed(std::string_view bytes, std::vector<FileWrite>* deferred = nullptr);
  // Checks the archive ended cleanly (no entry cut short) and reports the
  // first failure to write or close a file seen so far.
  Status Finish();
  const std::shared_ptr<FirstError>& errors() const { return errors_; }

  uint64_t files_written() const { return files_; }

 private:
  Status ParseHeader(const char* block);
  Status StartEntry();
  Status Fail(const std::string& why);
  Status CreateEntry(const std::vector<std::string>& parts, uint64_t size);
  // The directory holding an entry, created (0700) where missing; the fd
  // stays owned by the extractor.
  Result<int> ParentDir(const std::vector<std::string>& parts);
  Status MakeSymlink(const std::vector<std::string>& parts);

  std::string dest_;
  std::string archive_;
  std::map<uint32_t, std::string> tablespace_links_;
  int root_fd_ = -1;         // dest_, opened once
  std::string header_;       // partial 512-byte block
  char type_ = 0;
  std::string path_;
  std::string link_target_;
  std::string long_name_;    // from a GNU 'L' or pax 'x' record, for the next entry
  std::string meta_buffer_;  // contents of 'L' / 'x' records
  uint32_t mode_ = 0600;
  uint64_t remaining_ = 0;   // data bytes left in the current entry
  uint64_t padding_ = 0;     // padding bytes left after it
  std::shared_ptr<OutputFile> file_;  // the regular file being written
  uint64_t file_offset_ = 0;
  std::string last_dir_;     // relative path of last_dir_fd_
  int last_dir_fd_ = -1;     // the last parent directory opened
  std::shared_ptr<FirstError> errors_ = std::make_shared<FirstError>();
  bool ended_ = false;       // saw the two zero blocks
  uint64_t files_ = 0;
};

}  // namespace sb
