// LocalStorage never follows a symlink inside its root when listing or
// deleting: a link planted in a shared file:// repository must not make
// purge (List + Delete) remove files outside it.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/local/local_storage.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

class LocalSymlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sb-symlink-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    top_ = tmpl;
    fs::create_directories(top_ + "/repo");
    fs::create_directories(top_ + "/outside/main");
    std::ofstream(top_ + "/outside/victim") << "precious";
    std::ofstream(top_ + "/outside/main/victim") << "precious";
    auto s = LocalStorage::Open(top_ + "/repo");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    storage_ = std::move(s).value();
    ASSERT_TRUE(storage_->Put("db/main/backups/real", "mine").ok());
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(top_, ec);
  }
  std::vector<std::string> ListAllKeys(const std::string& prefix = "") {
    auto page = storage_->List(prefix, "", 1000);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::vector<std::string> keys;
    if (page.ok()) {
      for (const auto& o : page->objects) keys.push_back(o.key);
    }
    return keys;
  }

  std::string top_;
  std::unique_ptr<LocalStorage> storage_;
};

TEST_F(LocalSymlinkTest, ListDoesNotDescendIntoASymlinkedDirectory) {
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/main/backups/link");
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/other");
  fs::create_symlink(top_ + "/outside/victim", top_ + "/repo/db/main/backups/filelink");
  EXPECT_EQ(ListAllKeys(), std::vector<std::string>{"db/main/backups/real"});
  EXPECT_EQ(ListAllKeys("db/main/backups/link/"), std::vector<std::string>{});
  // A symlink as an intermediate directory of the prefix lists nothing either.
  EXPECT_EQ(ListAllKeys("db/other/main/"), std::vector<std::string>{});
}

TEST_F(LocalSymlinkTest, DeleteThroughASymlinkedDirectoryLeavesTheTargetAlone) {
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/main/backups/link");
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/other");
  EXPECT_TRUE(storage_->Delete("db/main/backups/link/victim").ok());
  EXPECT_TRUE(storage_->Delete("db/other/main/victim").ok());
  EXPECT_TRUE(fs::exists(top_ + "/outside/victim")) << "a delete followed a symlinked directory";
  EXPECT_TRUE(fs::exists(top_ + "/outside/main/victim")) << "a delete followed a symlinked parent";
  // Emptied parents are pruned beneath the root only: the link's target stays.
  EXPECT_TRUE(fs::is_directory(top_ + "/outside/main"));
  // The repository's own object is still deleted as before.
  EXPECT_TRUE(storage_->Delete("db/main/backups/real").ok());
  EXPECT_FALSE(fs::exists(top_ + "/repo/db/main/backups/real"));
}

TEST_F(LocalSymlinkTest, DeletingASymlinkObjectRemovesOnlyTheLink) {
  fs::create_symlink(top_ + "/outside/victim", top_ + "/repo/db/main/backups/filelink");
  EXPECT_TRUE(storage_->Delete("db/main/backups/filelink").ok());
  EXPECT_FALSE(fs::is_symlink(top_ + "/repo/db/main/backups/filelink"));
  EXPECT_TRUE(fs::exists(top_ + "/outside/victim"));
}

}  // namespace
}  // namespace sb
