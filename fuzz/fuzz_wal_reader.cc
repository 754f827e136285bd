// Fuzzes the WAL record reader (LastTransactionTime). The input is raw WAL as
// a segment holds it, starting at a page boundary; the start LSN is taken
// from the first page header's own address (as a real segment's is) so
// mutations are not all rejected at the first page, and the end is cut short
// by a few input-derived bytes to exercise records cut at `end`.
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/logging.h"
#include "common/lsn.h"
#include "engine/wal/wal_reader.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view wal(reinterpret_cast<const char*>(data), size);
  uint64_t start = 0;
  if (size >= 16) std::memcpy(&start, data + 8, sizeof start);  // xlp_pageaddr
  uint64_t cut = size > 0 ? data[size - 1] % 64 : 0;             // bytes short of the end
  uint64_t end = start + (size > cut ? size - cut : 0);           // wraps only for a garbage start: also fine
  (void)sb::LastTransactionTime(wal, sb::Lsn{start}, sb::Lsn{end});
  // A start that is not page-aligned must be refused, not read.
  (void)sb::LastTransactionTime(wal, sb::Lsn{start | 1}, sb::Lsn{end});
  return 0;
}
