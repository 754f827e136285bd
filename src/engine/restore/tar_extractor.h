// TarExtractor: a streaming ustar reader that writes entries under a
// destination directory as bytes arrive (PostgreSQL's base backup archives:
// regular files, directories, symlinks; pax "path" and GNU long names are
// understood too). Refuses absolute paths and ".." components.
// Thread-safety: one extractor per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sb {

class TarExtractor {
 public:
  // rewrite_symlink may change a symlink's target (tablespace relocation):
  // called with (entry path, original target), returns the target to write.
  using SymlinkRewriter = std::function<std::string(const std::string&, const std::string&)>;

  TarExtractor(std::string dest_dir, std::string archive_name, SymlinkRewriter rewrite_symlink = nullptr);
  ~TarExtractor();

  Status Feed(std::string_view bytes);
  // Checks the archive ended cleanly (no entry cut short).
  Status Finish();

  uint64_t files_written() const { return files_; }

 private:
  Status ParseHeader(const char* block);
  Status StartEntry();
  Status Fail(const std::string& why);

  std::string dest_;
  std::string archive_;
  SymlinkRewriter rewrite_symlink_;
  std::string header_;       // partial 512-byte block
  char type_ = 0;
  std::string path_;
  std::string link_target_;
  std::string long_name_;    // from a GNU 'L' or pax 'x' record, for the next entry
  std::string meta_buffer_;  // contents of 'L' / 'x' records
  uint32_t mode_ = 0600;
  uint64_t remaining_ = 0;   // data bytes left in the current entry
  uint64_t padding_ = 0;     // padding bytes left after it
  int fd_ = -1;
  bool ended_ = false;       // saw the two zero blocks
  uint64_t files_ = 0;
};

}  // namespace sb
