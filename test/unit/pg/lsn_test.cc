#include "pg/lsn.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

constexpr uint64_t k16M = 16 * 1024 * 1024;

TEST(LsnTest, ParsesAndFormatsLikePostgres) {
  auto lsn = Lsn::Parse("0/3000028");
  ASSERT_TRUE(lsn.ok()) << lsn.status().message();
  EXPECT_EQ(lsn->value, 0x3000028u);
  EXPECT_EQ(lsn->ToString(), "0/3000028");

  auto big = Lsn::Parse("16/B374D848");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->value, (uint64_t{0x16} << 32) | 0xB374D848u);
  EXPECT_EQ(big->ToString(), "16/B374D848");

  auto lower = Lsn::Parse("a/ff");
  ASSERT_TRUE(lower.ok());
  EXPECT_EQ(lower->ToString(), "A/FF");  // uppercase, as PostgreSQL prints

  EXPECT_EQ(Lsn{0}.ToString(), "0/0");
  EXPECT_EQ(Lsn{~uint64_t{0}}.ToString(), "FFFFFFFF/FFFFFFFF");
  EXPECT_EQ(Lsn::Parse("FFFFFFFF/FFFFFFFF")->value, ~uint64_t{0});
}

TEST(LsnTest, RejectsMalformed) {
  for (const char* bad : {"", "/", "0/", "/1", "0x0/1", "1/2/3", "G/1", "123456789/0", "0/123456789", " 0/1",
                          "0/1 ", "-1/0"}) {
    auto r = Lsn::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status().message().find("invalid LSN"), std::string::npos);
    }
  }
}

TEST(LsnTest, Orders) {
  EXPECT_LT(*Lsn::Parse("0/FFFFFFFF"), *Lsn::Parse("1/0"));
  EXPECT_EQ(*Lsn::Parse("1/10"), *Lsn::Parse("1/010"));
}

TEST(WalSegmentNameTest, MatchesPostgres) {
  EXPECT_EQ(WalSegmentName(1, *Lsn::Parse("0/3000028"), k16M), "000000010000000000000003");
  EXPECT_EQ(WalSegmentName(1, *Lsn::Parse("0/2FFFFFF"), k16M), "000000010000000000000002");
  EXPECT_EQ(WalSegmentName(2, *Lsn::Parse("16/B374D848"), k16M), "0000000200000016000000B3");
  EXPECT_EQ(WalSegmentName(0x1A, *Lsn::Parse("1/FF000000"), k16M), "0000001A00000001000000FF");
  // 1 GiB segments: 4 per "log id".
  EXPECT_EQ(WalSegmentName(1, *Lsn::Parse("5/C0000000"), uint64_t{1} << 30), "000000010000000500000003");
  // 1 MiB segments.
  EXPECT_EQ(WalSegmentName(3, *Lsn::Parse("0/3500000"), uint64_t{1} << 20), "000000030000000000000035");
}

TEST(WalSegmentNameTest, ParsesBack) {
  auto r = ParseWalSegmentName("0000000200000016000000B3", k16M);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->first, 2u);
  EXPECT_EQ(r->second.ToString(), "16/B3000000");

  for (uint64_t seg_size : {uint64_t{1} << 20, k16M, uint64_t{64} << 20, uint64_t{1} << 30}) {
    for (const char* text : {"0/0", "0/3000028", "7/12345678", "FF/FFFFFFFF"}) {
      Lsn lsn = *Lsn::Parse(text);
      std::string name = WalSegmentName(9, lsn, seg_size);
      auto back = ParseWalSegmentName(name, seg_size);
      ASSERT_TRUE(back.ok()) << name << ": " << back.status().message();
      EXPECT_EQ(back->first, 9u);
      EXPECT_EQ(back->second.value, lsn.value / seg_size * seg_size) << name;
    }
  }
}

TEST(WalSegmentNameTest, RejectsNonSegments) {
  for (const char* bad : {"", "00000001000000000000003", "0000000100000000000000030", "000000010000000000000003.partial",
                          "00000001.history", "0000000100000000000000g3", "0000000100000000000000a3",
                          "000000000000000000000003",  // timeline 0
                          "000000010000000000000100"}) {  // segment 0x100 does not exist at 16 MiB
    auto r = ParseWalSegmentName(bad, k16M);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ParseWalSegmentName("000000010000000000000003", 12345).ok());
  EXPECT_FALSE(ParseWalSegmentName("000000010000000000000003", 0).ok());
}

}  // namespace
}  // namespace sb
