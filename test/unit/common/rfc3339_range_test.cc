// ParseRfc3339 reads storage-controlled text (manifests, container
// descriptors): a time SystemTime cannot hold must be refused, not overflow
// (fuzz_manifest found "1013-09-21T14:13:20Z" in a container descriptor).
#include <gtest/gtest.h>

#include "common/text.h"

namespace sb {
namespace {

TEST(Rfc3339RangeTest, RefusesTimesSystemTimeCannotHold) {
  for (const char* text : {"1013-09-21T14:13:20Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                           "2300-01-01T00:00:00Z", "1600-01-01T00:00:00Z"}) {
    auto t = ParseRfc3339(text);
    EXPECT_FALSE(t.ok()) << text;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << text;
    }
  }
}

TEST(Rfc3339RangeTest, RefusesNegativeFieldsAndNotANumber) {
  for (const char* text : {"2026-11-30T-1:00:00Z", "2026-11-30T01:-5:00Z", "2026-11-30T01:00:-3Z",
                           "2026-11-30T01:00:nanZ", "2026-11-30T01:00:00+-1:00", "2026-11-30T01:00:00+99:00"}) {
    EXPECT_FALSE(ParseRfc3339(text).ok()) << text;
  }
}

TEST(Rfc3339RangeTest, StillReadsTheTimesItWrites) {
  for (const char* text : {"2026-11-30T06:52:00Z", "1970-01-01T00:00:00Z", "2261-12-31T23:59:59.5Z",
                           "2026-11-30T08:52:00+02:00"}) {
    auto t = ParseRfc3339(text);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status().message();
  }
  EXPECT_EQ(FormatRfc3339(*ParseRfc3339("2026-11-30T08:52:00+02:00")), "2026-11-30T06:52:00Z");
}

}  // namespace
}  // namespace sb
