// LastTransactionTime on WAL laid out here as PostgreSQL 15 writes it: page
// headers, records crossing pages, a record continued from the previous
// segment, and stale bytes after the end of valid WAL.
#include "engine/wal/wal_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

namespace sb {
namespace {

constexpr uint64_t kPage = 8192;
constexpr int64_t kPgEpochUnix = 946684800;

template <typename T>
void Put(std::string& s, size_t at, T v) {
  std::memcpy(s.data() + at, &v, sizeof v);
}

// One record: rmid/info and main data (no block references).
struct Rec {
  uint8_t rmid;
  uint8_t info;
  std::string main;
};

std::string CommitData(int64_t pg_micros) {
  std::string d(12, '\0');  // xl_xact_commit: xact_time, xinfo
  Put(d, 0, pg_micros);
  return d;
}

// Lays `recs` out from `start` (a page boundary); the first page begins with
// `cont` bytes of a record continued from before it. Each record's xl_prev
// points at the one before it.
std::string Layout(uint64_t start, const std::vector<Rec>& recs, uint32_t cont = 0) {
  // The record stream without page headers.
  std::string stream(cont, 'c');
  std::vector<size_t> starts;
  for (const auto& r : recs) {
    stream.resize((stream.size() + 7) & ~size_t{7}, '\0');
    starts.push_back(stream.size());
    std::string rec(24, '\0');
    Put<uint32_t>(rec, 0, static_cast<uint32_t>(24 + 2 + r.main.size()));
    rec[16] = static_cast<char>(r.info);
    rec[17] = static_cast<char>(r.rmid);
    rec.push_back(static_cast<char>(255));
    rec.push_back(static_cast<char>(r.main.size()));
    rec += r.main;
    stream += rec;
  }
  // The LSN of a stream position: page headers are 40 bytes at a segment start, else 24.
  auto header_at = [](uint64_t page) -> size_t { return page % (16ull << 20) == 0 ? 40 : 24; };
  auto lsn = [&](size_t at) {
    uint64_t page = start;
    while (at >= kPage - header_at(page)) {
      at -= kPage - header_at(page);
      page += kPage;
    }
    return page + header_at(page) + at;
  };
  for (size_t i = 1; i < starts.size(); ++i) Put<uint64_t>(stream, starts[i] + 8, lsn(starts[i - 1]));
  std::string wal;
  size_t pos = 0;
  for (uint64_t page = start; pos < stream.size(); page += kPage) {
    const size_t header = header_at(page);
    std::string p(kPage, '\0');
    Put<uint16_t>(p, 0, 0xD110);
    Put<uint16_t>(p, 2, static_cast<uint16_t>((header == 40 ? 2 : 0) | (page == start && cont ? 1 : 0)));
    Put<uint64_t>(p, 8, page);
    if (page == start) Put<uint32_t>(p, 16, cont);
    size_t take = std::min(kPage - header, stream.size() - pos);
    std::memcpy(p.data() + header, stream.data() + pos, take);
    pos += take;
    wal += p;
  }
  return wal;
}

SystemTime PgTime(int64_t micros) {
  return SystemTime(std::chrono::seconds(kPgEpochUnix)) + std::chrono::microseconds(micros);
}

std::optional<SystemTime> Last(const std::string& wal, uint64_t start, uint64_t end = 0) {
  auto r = LastTransactionTime(wal, Lsn{start}, Lsn{end ? end : start + wal.size()});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : std::nullopt;
}

TEST(WalReaderTest, FindsTheLastCommitOrAbortAcrossPages) {
  const uint64_t start = 5ull << 24;  // a segment start: long page header
  std::vector<Rec> recs;
  recs.push_back({1, 0x00, CommitData(1000)});  // COMMIT
  for (int i = 0; i < 400; ++i) recs.push_back({10, 0x00, std::string(200, 'h')});  // heap-ish records over pages
  recs.push_back({1, 0x20, CommitData(2000)});  // ABORT
  recs.push_back({1, 0x10, CommitData(9999)});  // PREPARE: not a transaction end
  recs.push_back({0, 0x00, CommitData(8888)});  // XLOG rmgr: ignored
  const std::string wal = Layout(start, recs);
  ASSERT_GT(wal.size(), 8 * kPage);
  EXPECT_EQ(Last(wal, start), PgTime(2000));
}

TEST(WalReaderTest, SkipsARecordContinuedFromTheLastSegmentAndStopsAtStaleBytes) {
  const uint64_t start = (7ull << 24) + 3 * kPage;  // mid-segment: short page header
  std::vector<Rec> recs = {{1, 0x00, CommitData(1)}, {1, 0x30, CommitData(77)}};  // COMMIT_PREPARED last
  std::string wal = Layout(start, recs, /*cont=*/13);
  EXPECT_EQ(Last(wal, start), PgTime(77));

  // A page after the end of valid WAL with an old address (a recycled segment): not read.
  std::string stale = Layout(start + kPage, {{1, 0x00, CommitData(5000)}});
  Put<uint64_t>(stale, 8, start - (16ull << 24));
  EXPECT_EQ(Last(wal + stale, start), PgTime(77));
}

TEST(WalReaderTest, EndCutsRecordsAndNoTransactionIsNullopt) {
  const uint64_t start = 9ull << 24;
  std::string wal = Layout(start, {{1, 0x00, CommitData(10)}, {1, 0x00, CommitData(20)}});
  // Ending inside the second record: only the first counts.
  EXPECT_EQ(Last(wal, start, start + 80 + 24), PgTime(10));  // records at +40 (38 bytes) and +80
  EXPECT_EQ(Last(Layout(start, {{10, 0x00, "x"}}), start), std::nullopt);
  EXPECT_EQ(Last(std::string(kPage, '\0'), start), std::nullopt);
  EXPECT_FALSE(LastTransactionTime(wal, Lsn{start + 8}, Lsn{start + kPage}).ok());
}

// WAL is read from the repository: a commit time no clock can hold (found by
// fuzz_wal_reader as a signed overflow) is not counted, the real one before it is.
TEST(WalReaderTest, ACommitTimeOutOfRangeIsNotCounted) {
  const uint64_t start = 11ull << 24;
  for (int64_t bogus : {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                        int64_t{4252247385272823312}}) {
    std::string wal = Layout(start, {{1, 0x00, CommitData(10)}, {1, 0x00, CommitData(bogus)}});
    EXPECT_EQ(Last(wal, start), PgTime(10)) << bogus;
  }
}

}  // namespace
}  // namespace sb
