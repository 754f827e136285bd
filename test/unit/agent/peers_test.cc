// The beacon names agents give their connection to the primary (coexistence
// rules 1 and 2): what one agent writes, another must read back.
#include "agent/peers.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

TEST(BeaconTest, NameRoundTripsAndIsCutToPostgresLimit) {
  const std::string repo_id = "0123456789abcdef0123456789abcdef";
  std::string name = BeaconName("standby", repo_id, "main");
  EXPECT_EQ(name, "smartbackup:standby:0123456789abcdef:main");
  auto b = ParseBeacon(name, "10.0.0.2");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->role, "standby");
  EXPECT_EQ(b->repo_id, "0123456789abcdef");
  EXPECT_EQ(b->db, "main");
  EXPECT_EQ(b->from, "10.0.0.2");

  std::string long_name = BeaconName("primary", repo_id, std::string(80, 'd'));
  EXPECT_EQ(long_name.size(), 63u);
  ASSERT_TRUE(ParseBeacon(long_name, "").has_value());
}

TEST(BeaconTest, OtherApplicationNamesAreNotBeacons) {
  for (const char* app : {"", "psql", "smartbackup", "smartbackup_main", "smartbackup:witness:abc:main",
                          "smartbackup:primary:abc", "pg_receivewal"}) {
    EXPECT_FALSE(ParseBeacon(app, "").has_value()) << app;
  }
}

TEST(HybridConflictTest, OnlyAPrimaryAgentOnAnotherRepositoryConflicts) {
  const std::string mine = "aaaaaaaaaaaaaaaa-rest";
  PrimaryView view;
  view.agents.push_back({.role = "standby", .repo_id = "bbbbbbbbbbbbbbbb", .db = "main", .from = "x"});
  view.agents.push_back({.role = "primary", .repo_id = "aaaaaaaaaaaaaaaa", .db = "main", .from = "y"});
  EXPECT_FALSE(HybridConflict(view, "h:1", mine, "file:///b").has_value());
  view.agents.push_back({.role = "primary", .repo_id = "cccccccccccccccc", .db = "main", .from = "z"});
  auto conflict = HybridConflict(view, "h:1", mine, "file:///b");
  ASSERT_TRUE(conflict.has_value());
  EXPECT_NE(conflict->find("repository cccccccccccccccc"), std::string::npos) << *conflict;
  EXPECT_NE(conflict->find("file:///b"), std::string::npos) << *conflict;
}

}  // namespace
}  // namespace sb
