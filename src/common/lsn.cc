#include "common/lsn.h"

#include <fmt/core.h>

#include <utility>

namespace sb {
namespace {

// Value of one hex digit, -1 if c is not one. Uppercase only when strict.
int HexDigit(char c, bool uppercase_only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (!uppercase_only && c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Parses 1..8 hex digits into a 32-bit value.
bool ParseHex32(std::string_view s, bool uppercase_only, uint32_t* out) {
  if (s.empty() || s.size() > 8) return false;
  uint32_t v = 0;
  for (char c : s) {
    int d = HexDigit(c, uppercase_only);
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  *out = v;
  return true;
}

// PostgreSQL allows power-of-two segment sizes from 1 MiB to 1 GiB.
bool ValidSegmentSize(uint64_t size) {
  return size >= (uint64_t{1} << 20) && size <= (uint64_t{1} << 30) && (size & (size - 1)) == 0;
}

}  // namespace

Result<Lsn> Lsn::Parse(std::string_view text) {
  size_t slash = text.find('/');
  uint32_t hi = 0;
  uint32_t lo = 0;
  if (slash == std::string_view::npos || !ParseHex32(text.substr(0, slash), false, &hi) ||
      !ParseHex32(text.substr(slash + 1), false, &lo)) {
    return Status::InvalidArgument(
        fmt::format("invalid LSN \"{}\"; hint: an LSN looks like 0/3000028 (two hex numbers)", text));
  }
  return Lsn{(uint64_t{hi} << 32) | lo};
}

std::string Lsn::ToString() const {
  return fmt::format("{:X}/{:X}", static_cast<uint32_t>(value >> 32), static_cast<uint32_t>(value));
}

std::string WalSegmentName(uint32_t timeline, Lsn lsn, uint64_t segment_size) {
  if (!ValidSegmentSize(segment_size)) segment_size = 16 * 1024 * 1024;
  const uint64_t segments_per_id = (uint64_t{1} << 32) / segment_size;
  const uint64_t segno = lsn.value / segment_size;
  return fmt::format("{:08X}{:08X}{:08X}", timeline, static_cast<uint32_t>(segno / segments_per_id),
                     static_cast<uint32_t>(segno % segments_per_id));
}

Result<std::pair<uint32_t, Lsn>> ParseWalSegmentName(std::string_view name, uint64_t segment_size) {
  auto invalid = [&](const char* why) {
    return Status::InvalidArgument(fmt::format("invalid WAL segment name \"{}\": {}", name, why));
  };
  if (!ValidSegmentSize(segment_size)) {
    return Status::InvalidArgument(
        fmt::format("invalid WAL segment size {}; hint: it must be a power of two from 1MiB to 1GiB", segment_size));
  }
  if (name.size() != 24) return invalid("expected 24 uppercase hex digits");
  uint32_t tli = 0;
  uint32_t log = 0;
  uint32_t seg = 0;
  if (!ParseHex32(name.substr(0, 8), true, &tli) || !ParseHex32(name.substr(8, 8), true, &log) ||
      !ParseHex32(name.substr(16, 8), true, &seg)) {
    return invalid("expected 24 uppercase hex digits");
  }
  if (tli == 0) return invalid("timeline 0 does not exist");
  const uint64_t segments_per_id = (uint64_t{1} << 32) / segment_size;
  if (seg >= segments_per_id) return invalid("segment number out of range for this segment size");
  const uint64_t segno = uint64_t{log} * segments_per_id + seg;
  return std::make_pair(tli, Lsn{segno * segment_size});
}

}  // namespace sb
