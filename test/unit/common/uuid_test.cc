#include "common/uuid.h"

#include <gtest/gtest.h>

#include <set>

namespace sb {
namespace {

TEST(UuidTest, RandomUuidsAreVersion4AndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = RandomUuid();
    EXPECT_TRUE(IsUuid(u)) << u;
    EXPECT_EQ(u[14], '4') << u;
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(UuidTest, NameUuidsAreStablePerName) {
  EXPECT_EQ(NameUuid("holder\nkey"), NameUuid("holder\nkey"));
  EXPECT_NE(NameUuid("holder\nkey"), NameUuid("holder\nkey2"));
  EXPECT_TRUE(IsUuid(NameUuid("x")));
  EXPECT_EQ(NameUuid("x")[14], '5');
}

TEST(UuidTest, IsUuidIsStrict) {
  EXPECT_TRUE(IsUuid("6F1C2A4E-0B7D-4E2A-9C3B-5D8E7F6A1B2C"));
  for (const char* bad : {"", "6f1c2a4e0b7d4e2a9c3b5d8e7f6a1b2c", "6f1c2a4e-0b7d-4e2a-9c3b-5d8e7f6a1b2",
                          "6f1c2a4e-0b7d-4e2a-9c3b-5d8e7f6a1b2g", "6f1c2a4e-0b7d-4e2a-9c3b-5d8e7f6a1b2c\n"}) {
    EXPECT_FALSE(IsUuid(bad)) << bad;
  }
}

}  // namespace
}  // namespace sb
