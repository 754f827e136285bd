// Verbs by database name: DB --config F takes the storage URL and keys from the agent's settings,
// resolved as the agent does (defaults < [[cluster]] < changes saved through set-db-backup);
// --repo stays; a command line that names neither, or both, is a usage error.
#include "cli/repo_target.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "agent/state_store.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

class RepoTargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sb_repo_target_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_ = (dir_ / "agent.toml").string();
    std::ofstream(config_) << "[agent]\nstate_dir = \"" << (dir_ / "state").string()
                           << "\"\ndiscover = false\n\n[defaults]\nstorage_url = \"file:///srv/default\"\n"
                              "key_file = \"/etc/sb/default.key\"\n\n[[cluster]]\nname = \"main\"\n"
                              "conninfo = \"host=/tmp port=5432\"\nstorage_url = \"file:///srv/main\"\n\n"
                              "[[cluster]]\nname = \"other\"\nconninfo = \"port=5433\"\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string config_;
};

TEST_F(RepoTargetTest, ConfigGivesTheClusterOverrideOverTheDefaults) {
  auto t = ResolveRepoTarget({.database = "main", .config = config_});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->storage_url, "file:///srv/main");
  EXPECT_EQ(t->key_file, "/etc/sb/default.key");
  EXPECT_EQ(t->conninfo, "host=/tmp port=5432");
  EXPECT_TRUE(t->from_config);
  auto o = ResolveRepoTarget({.database = "other", .config = config_});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->storage_url, "file:///srv/default");
}

TEST_F(RepoTargetTest, ChangesSavedThroughVerbsWinAndExplicitKeysWinOverSettings) {
  {
    auto store = StateStore::Open((dir_ / "state" / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.status().message();
    ASSERT_TRUE((*store)->SaveClusterOverrides("main", {{"storage_url", "file:///srv/moved"}}).ok());
  }
  auto t = ResolveRepoTarget({.database = "main", .config = config_});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->storage_url, "file:///srv/moved");
  auto k = ResolveRepoTarget({.database = "main", .config = config_, .key_file = "/elsewhere.key"});
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->key_file, "/elsewhere.key");
}

TEST_F(RepoTargetTest, RepoFormStaysAndBadCombinationsAreUsageErrors) {
  auto r = ResolveRepoTarget({.database = "main", .repo = "file:///srv/x"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->storage_url, "file:///srv/x");
  EXPECT_FALSE(r->from_config);
  auto listing = ResolveRepoTarget({.repo = "file:///srv/x", .database_required = false});
  EXPECT_TRUE(listing.ok());
  for (const RepoTargetFlags& bad : {RepoTargetFlags{.database = "main"},
                                     RepoTargetFlags{.database = "main", .repo = "file:///x", .config = config_},
                                     RepoTargetFlags{.config = config_, .database_required = false}}) {
    auto s = ResolveRepoTarget(bad);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().detail(), StatusDetail::kUsage) << s.status().message();
  }
}

TEST_F(RepoTargetTest, UnknownDatabaseIsNamedWithAHint) {
  auto t = ResolveRepoTarget({.database = "nosuch", .config = config_});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("\"nosuch\" is not known to the agent"), std::string::npos);
  EXPECT_NE(t.status().message().find("hint:"), std::string::npos);
}

}  // namespace
}  // namespace sb
