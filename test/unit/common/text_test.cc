// common/text: the parsers every flag and setting goes through refuse what
// they cannot represent (overflow, dates that do not exist) instead of
// wrapping around or aborting.
#include "common/text.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

TEST(ParseByteSizeTest, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("8MiB"), 8ull << 20);
  EXPECT_EQ(*ParseByteSize("10MB"), 10'000'000ull);
  EXPECT_EQ(*ParseByteSize("1.5KiB"), 1536ull);
  EXPECT_EQ(*ParseByteSize("100"), 100ull);
  EXPECT_EQ(*ParseByteSize("1024TiB"), kMaxByteSize);
}

TEST(ParseByteSizeTest, RefusesWhatWouldOverflowInsteadOfWrapping) {
  for (const char* text : {"1025TiB", "99999999999999999999999", "18446744073709551616", "1000000000000TB"}) {
    auto r = ParseByteSize(text);
    ASSERT_FALSE(r.ok()) << text << " gave " << *r;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
  }
}

TEST(ParseByteSizeTest, RefusesGarbage) {
  for (const char* text : {"", "abc", "-5MiB", "5 parsecs", "1.2.3MiB"}) {
    EXPECT_FALSE(ParseByteSize(text).ok()) << text;
  }
}

TEST(ParseDurationTest, ParsesUnits) {
  EXPECT_EQ(*ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(*ParseDuration("10"), milliseconds(10'000));
  EXPECT_EQ(*ParseDuration("36h"), hours(36));
  EXPECT_EQ(*ParseDuration("7d"), hours(24 * 7));
  EXPECT_EQ(*ParseDuration("3650d"), kMaxDuration);
}

TEST(ParseDurationTest, CapsHugeDurationsInsteadOfOverflowing) {
  // 99999d is 273 years: subtracted from now it leaves system_clock's range.
  for (const char* text : {"3651d", "99999d", "99999999999999999999w", "1e400d"}) {
    auto r = ParseDuration(text);
    ASSERT_FALSE(r.ok()) << text << " gave " << r->count() << " ms";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  // What is accepted can be subtracted from the current time without overflow.
  const auto now = std::chrono::system_clock::now();
  EXPECT_LT(now - kMaxDuration, now);
  EXPECT_GT(now + kMaxDuration, now);
}

TEST(ParseRfc3339Test, RoundTripsValidTimes) {
  for (const char* text : {"2026-11-25T02:33:28Z", "2024-02-29T00:00:00Z", "2026-12-31T23:59:59.250Z"}) {
    auto t = ParseRfc3339(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status().message();
    EXPECT_EQ(FormatRfc3339(*t), text);
  }
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-25T04:33:28+02:00")), "2026-11-25T02:33:28Z");
}

TEST(ParseRfc3339Test, RefusesDatesThatDoNotExist) {
  for (const char* text : {"2026-02-31T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29", "2026-04-31",
                           "2026-13-01", "2026-00-10", "2026-01-32", "2026-01-01T24:00:00Z",
                           "2026-01-01T10:60:00Z", "2026-01-01T10:00:00+25:00", "2026-01-01T10:00:00+01:75"}) {
    auto t = ParseRfc3339(text);
    EXPECT_FALSE(t.ok()) << text << " parsed as " << FormatRfc3339(*t);
  }
}

TEST(ParseRfc3339Test, FollowsTheGregorianLeapYearRules) {
  for (const char* text : {"2000-02-29", "2024-02-29", "2026-01-31", "2026-03-31", "2026-04-30", "2026-12-31"}) {
    EXPECT_TRUE(ParseRfc3339(text).ok()) << text;
  }
  for (const char* text : {"2100-02-29", "2025-02-29", "2026-06-31", "2026-09-31", "2026-11-31", "2000-02-30"}) {
    EXPECT_FALSE(ParseRfc3339(text).ok()) << text;
  }
}

TEST(LowerTest, LowersAsciiOnly) {
  EXPECT_EQ(Lower("HTTPS://Host-1"), "https://host-1");
  EXPECT_EQ(Lower("caf\xc3\x89"), "caf\xc3\x89");  // bytes above ASCII unchanged
  EXPECT_EQ(Lower(""), "");
}

}  // namespace
}  // namespace sb
