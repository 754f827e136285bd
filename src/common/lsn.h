// Log sequence numbers and WAL file names as PostgreSQL prints them.
// Thread-safety: values.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sb {

struct Lsn {
  uint64_t value = 0;
  static Result<Lsn> Parse(std::string_view text);  // "0/3000028"
  std::string ToString() const;                     // "0/3000028"
  auto operator<=>(const Lsn&) const = default;
};

// "000000010000000000000003" for timeline 1, the segment holding lsn.
std::string WalSegmentName(uint32_t timeline, Lsn lsn, uint64_t segment_size);
// Inverse: timeline and first LSN of a segment file name; kInvalidArgument otherwise.
Result<std::pair<uint32_t, Lsn>> ParseWalSegmentName(std::string_view name, uint64_t segment_size);

}  // namespace sb
