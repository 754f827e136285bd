#include "engine/wal/wal_reader.h"

#include <cstring>
#include <vector>

#include <fmt/core.h>

namespace sb {
namespace {

// PostgreSQL 15's WAL layout (access/xlog_internal.h, access/xlogrecord.h, access/xact.h).
constexpr uint64_t kPageSize = 8192;
constexpr uint16_t kPageMagic = 0xD110;
constexpr uint16_t kFirstIsContRecord = 0x0001;
constexpr uint16_t kLongHeader = 0x0002;
constexpr size_t kShortPageHeader = 24;
constexpr size_t kLongPageHeader = 40;
constexpr size_t kRecordHeader = 24;
constexpr uint8_t kRmXact = 1;
constexpr uint8_t kXactOpMask = 0x70;
constexpr uint8_t kBlockIdDataShort = 255, kBlockIdDataLong = 254, kBlockIdOrigin = 253, kBlockIdToplevelXid = 252;
// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
constexpr int64_t kPostgresEpochUnix = 946684800;

template <typename T>
T Read(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // WAL is in the server's byte order: little-endian on every platform we run on
  return v;
}

uint64_t MaxAlign(uint64_t x) { return (x + 7) & ~uint64_t{7}; }

bool IsTransactionEnd(uint8_t info) {
  switch (info & kXactOpMask) {
    case 0x00:  // COMMIT
    case 0x20:  // ABORT
    case 0x30:  // COMMIT_PREPARED
    case 0x40:  // ABORT_PREPARED
      return true;
    default:
      return false;
  }
}

// The main data of a record without block references (what transaction
// records are); nullopt for any other shape.
std::optional<std::string_view> MainData(std::string_view record) {
  size_t q = kRecordHeader;
  while (q < record.size()) {
    uint8_t id = static_cast<uint8_t>(record[q]);
    uint32_t len = 0;
    if (id == kBlockIdDataShort) {
      if (q + 2 > record.size()) return std::nullopt;
      len = static_cast<uint8_t>(record[q + 1]);
    } else if (id == kBlockIdDataLong) {
      if (q + 5 > record.size()) return std::nullopt;
      len = Read<uint32_t>(record.data() + q + 1);
    } else if (id == kBlockIdOrigin) {
      q += 3;
      continue;
    } else if (id == kBlockIdToplevelXid) {
      q += 5;
      continue;
    } else {
      return std::nullopt;  // a block reference
    }
    if (len > record.size()) return std::nullopt;
    return record.substr(record.size() - len);  // main data comes last
  }
  return std::nullopt;
}

}  // namespace

Result<std::optional<SystemTime>> LastTransactionTime(std::string_view wal, Lsn start, Lsn end) {
  if (start.value % kPageSize != 0) {
    return Status::Corruption(fmt::format("WAL read from {} does not start at a page boundary", start.ToString()));
  }
  // The record stream without page headers, and where each page's data begins in it.
  std::string stream;
  std::vector<std::pair<uint64_t, uint64_t>> pages;  // (stream offset, LSN of that byte)
  uint64_t skip = 0;                                  // a record continued from before `start`
  const uint64_t limit = std::min<uint64_t>(wal.size(), end.value > start.value ? end.value - start.value : 0);
  for (uint64_t off = 0; off < limit; off += kPageSize) {
    if (off + kShortPageHeader > limit) break;
    const char* page = wal.data() + off;
    const uint16_t info = Read<uint16_t>(page + 2);
    if (Read<uint16_t>(page) != kPageMagic || Read<uint64_t>(page + 8) != start.value + off) break;
    const size_t header = (info & kLongHeader) ? kLongPageHeader : kShortPageHeader;
    if (off == 0 && (info & kFirstIsContRecord)) skip = MaxAlign(Read<uint32_t>(page + 16));
    const uint64_t page_end = std::min<uint64_t>(off + kPageSize, limit);
    if (off + header >= page_end) break;
    pages.emplace_back(stream.size(), start.value + off + header);
    stream.append(page + header, page_end - off - header);
  }
  if (pages.empty()) return std::optional<SystemTime>();
  size_t page = 0;  // records only move forward, and so does their page
  auto lsn_of = [&](uint64_t pos) {
    while (page + 1 < pages.size() && pages[page + 1].first <= pos) ++page;
    return pages[page].second + (pos - pages[page].first);
  };

  std::optional<SystemTime> last;
  std::optional<uint64_t> prev_lsn;
  uint64_t pos = skip;
  while (true) {
    pos = MaxAlign(pos);
    if (pos + kRecordHeader > stream.size()) break;
    const char* h = stream.data() + pos;
    const uint32_t total = Read<uint32_t>(h);
    if (total < kRecordHeader || pos + total > stream.size()) break;  // end of WAL, or cut at `end`
    const uint64_t lsn = lsn_of(pos);
    if (prev_lsn && Read<uint64_t>(h + 8) != *prev_lsn) break;  // not the next record: stale bytes
    const uint8_t info = static_cast<uint8_t>(h[16]);
    const uint8_t rmid = static_cast<uint8_t>(h[17]);
    if (rmid == kRmXact && IsTransactionEnd(info)) {
      auto main = MainData(std::string_view(h, total));
      if (main && main->size() >= sizeof(int64_t)) {
        const int64_t micros = Read<int64_t>(main->data());  // xl_xact_commit/abort.xact_time
        // WAL comes from the repository: a time SystemTime cannot hold is not
        // one PostgreSQL wrote, and converting it would overflow (found by
        // fuzz_wal_reader). Such a record is not counted.
        constexpr int64_t kMaxMicros =
            std::chrono::duration_cast<std::chrono::microseconds>(SystemTime::duration::max()).count() -
            kPostgresEpochUnix * 1000000;
        if (micros >= -kMaxMicros && micros <= kMaxMicros) {
          last = SystemTime(std::chrono::seconds(kPostgresEpochUnix)) +
                 std::chrono::duration_cast<SystemTime::duration>(std::chrono::microseconds(micros));
        }
      }
    }
    prev_lsn = lsn;
    pos += total;
  }
  return last;
}

}  // namespace sb
