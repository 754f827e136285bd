// Fuzzes the tar reader (TarExtractor) writing into a fresh directory per
// input, removed afterwards. The directory is <scratch>/dest; anything that
// appears in <scratch> beside dest was written outside the target: abort.
//
// The extractor's confinement is under test here too: the one symlink it may
// make is pg_tblspc/16384, pointing at <scratch>/ts (the operator's mapped
// directory), and nothing may ever be written into ts from the main archive,
// nor anywhere else in <scratch>.
//
// The input is fed in two pieces split at an input-derived point, as a
// restore feeds chunks, so header and data boundaries land mid-block too.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/logging.h"
#include "engine/restore/tar_extractor.h"
#include "fuzz_util.h"

namespace {

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) ++n;
    }
    ::closedir(d);
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string scratch = sb::fuzz::MakeTempDir("sb-fuzz-tar");
  const std::string dest = scratch + "/dest";
  const std::string ts = scratch + "/ts";
  if (::mkdir(dest.c_str(), 0700) != 0 || ::mkdir(ts.c_str(), 0700) != 0) std::abort();
  {
    sb::TarExtractor tar(dest, "base.tar", {{16384, ts}});
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    const size_t split = size > 0 ? (static_cast<size_t>(data[0]) * 37) % (size + 1) : 0;
    std::vector<sb::FileWrite> deferred;
    sb::Status s = tar.Feed(all.substr(0, split));
    if (s.ok()) s = tar.Feed(all.substr(split), &deferred);
    for (const auto& w : deferred) (void)w.file->WriteAt(w.offset, w.bytes);
    deferred.clear();  // closes the files before Finish reports close failures
    if (s.ok()) (void)tar.Finish();
  }
  if (CountEntries(scratch) != 2 || CountEntries(ts) != 0) {
    std::fprintf(stderr, "the extractor wrote outside its target %s\n", dest.c_str());
    std::abort();
  }
  sb::fuzz::RemoveTree(scratch);
  return 0;
}
