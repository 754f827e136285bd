// LocalStorage never follows a symlink inside its root, whatever the
// operation: a link planted in a shared file:// repository must not make
// purge (List + Delete) remove files outside it, a writer (Put, AcquireLease;
// often root or postgres) create or overwrite files outside it, or a reader
// (Get, Stat) read them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

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

  // Replaces the repository's directory rel (holding "real") by a symlink to target.
  void SwapDirForSymlink(const std::string& rel, const std::string& target) {
    fs::remove_all(top_ + "/repo/" + rel);
    fs::create_directory_symlink(target, top_ + "/repo/" + rel);
  }
  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Every path under outside/, to show nothing was created there.
  std::vector<std::string> OutsideTree() {
    std::vector<std::string> paths;
    for (const auto& e : fs::recursive_directory_iterator(top_ + "/outside")) {
      paths.push_back(fs::relative(e.path(), top_ + "/outside").string());
    }
    std::sort(paths.begin(), paths.end());
    return paths;
  }
  const std::vector<std::string> kOutsideTree{"main", "main/victim", "victim"};

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

TEST_F(LocalSymlinkTest, PutThroughASymlinkedDirectoryRefusesAndWritesNothingOutside) {
  ASSERT_EQ(OutsideTree(), kOutsideTree);
  // db/main (an intermediate directory) and db/main/backups (the object's own
  // directory) each replaced by a link to a directory outside the repository.
  SwapDirForSymlink("db/main", top_ + "/outside");
  for (const char* key : {"db/main/victim", "db/main/main/victim", "db/main/backups/new", "db/main/main/new/x"}) {
    for (bool if_absent : {false, true}) {
      Status s = storage_->Put(key, "evil", PutOptions{.if_absent = if_absent});
      EXPECT_EQ(s.code(), StatusCode::kCorruption) << key << ": " << s.ToString();
      EXPECT_NE(s.message().find("is a symlink inside the repository; refusing to follow it; hint:"),
                std::string::npos)
          << s.ToString();
    }
  }
  fs::create_directories(top_ + "/repo/db/other");
  SwapDirForSymlink("db/other", top_ + "/outside/main");
  EXPECT_EQ(storage_->Put("db/other/victim", "evil").code(), StatusCode::kCorruption);
  EXPECT_EQ(storage_->Put("db/other/sub/new", "evil").code(), StatusCode::kCorruption);
  EXPECT_EQ(OutsideTree(), kOutsideTree) << "a Put created a file through a symlinked directory";
  EXPECT_EQ(ReadFile(top_ + "/outside/victim"), "precious");
  EXPECT_EQ(ReadFile(top_ + "/outside/main/victim"), "precious");
  // Writes beside the links still work.
  EXPECT_TRUE(storage_->Put("db/fine/new", "ok").ok());
  EXPECT_EQ(ReadFile(top_ + "/repo/db/fine/new"), "ok");
}

TEST_F(LocalSymlinkTest, PutOverASymlinkObjectReplacesTheLinkNotItsTarget) {
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/other");
  EXPECT_EQ(storage_->Put("db/other/main/victim", "evil").code(), StatusCode::kCorruption);
  fs::create_symlink(top_ + "/outside/victim", top_ + "/repo/db/main/backups/filelink");
  // if_absent: the link is not an object, so not "already exists" either.
  EXPECT_EQ(storage_->Put("db/main/backups/filelink", "new", PutOptions{.if_absent = true}).code(),
            StatusCode::kCorruption);
  EXPECT_TRUE(storage_->Put("db/main/backups/filelink", "new").ok());
  EXPECT_FALSE(fs::is_symlink(top_ + "/repo/db/main/backups/filelink"));
  EXPECT_EQ(ReadFile(top_ + "/repo/db/main/backups/filelink"), "new");
  EXPECT_EQ(ReadFile(top_ + "/outside/victim"), "precious");
  EXPECT_EQ(ReadFile(top_ + "/outside/main/victim"), "precious");
}

TEST_F(LocalSymlinkTest, GetAndStatDoNotFollowASymlink) {
  // Through a symlinked directory (the object's own, and an intermediate one).
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/main/backups/link");
  fs::create_directory_symlink(top_ + "/outside", top_ + "/repo/db/other");
  // A symlink leaf pointing at an outside file.
  fs::create_symlink(top_ + "/outside/victim", top_ + "/repo/db/main/backups/filelink");
  for (const char* key : {"db/main/backups/link/victim", "db/other/victim", "db/other/main/victim",
                          "db/main/backups/filelink"}) {
    auto got = storage_->Get(key);
    EXPECT_TRUE(got.status().IsNotFound()) << key << ": " << (got.ok() ? "read " + *got : got.status().ToString());
    auto range = storage_->GetRange(key, 1, 3);
    EXPECT_TRUE(range.status().IsNotFound()) << key << ": " << (range.ok() ? "read " + *range : range.status().ToString());
    auto info = storage_->Stat(key);
    EXPECT_TRUE(info.status().IsNotFound()) << key << ": " << (info.ok() ? "stat'ed a file" : info.status().ToString());
  }
  EXPECT_EQ(ReadFile(top_ + "/outside/victim"), "precious");
  EXPECT_EQ(OutsideTree(), kOutsideTree);
  // Consistent with List, which sees none of them.
  EXPECT_EQ(ListAllKeys(), std::vector<std::string>{"db/main/backups/real"});
  auto real = storage_->Get("db/main/backups/real");
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  EXPECT_EQ(*real, "mine");
  EXPECT_TRUE(storage_->Stat("db/main/backups/real").ok());
}

TEST_F(LocalSymlinkTest, AcquireLeaseThroughASymlinkRefusesAndCreatesNothingOutside) {
  SwapDirForSymlink("db/main", top_ + "/outside");
  for (const char* key : {"db/main/lock", "db/main/main/lock", "db/main/main/sub/lock", "db/main/victim"}) {
    auto lease = storage_->AcquireLease(key, LeaseOptions{.owner = "intruder"});
    EXPECT_EQ(lease.status().code(), StatusCode::kCorruption)
        << key << ": " << (lease.ok() ? "leased" : lease.status().ToString());
  }
  // A lease file that is itself a link to an outside file: opening it with
  // O_CREAT and writing the holder into it would clobber the target.
  fs::create_directories(top_ + "/repo/db/locks");
  fs::create_symlink(top_ + "/outside/main/victim", top_ + "/repo/db/locks/lock");
  auto lease = storage_->AcquireLease("db/locks/lock", LeaseOptions{.owner = "intruder"});
  EXPECT_EQ(lease.status().code(), StatusCode::kCorruption) << (lease.ok() ? "leased" : lease.status().ToString());
  EXPECT_EQ(OutsideTree(), kOutsideTree) << "a lease file was created through a symlinked directory";
  EXPECT_EQ(ReadFile(top_ + "/outside/victim"), "precious");
  EXPECT_EQ(ReadFile(top_ + "/outside/main/victim"), "precious");
  // A lease beside the links still works, and renews.
  auto ok = storage_->AcquireLease("db/locks/real", LeaseOptions{.owner = "me"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE((*ok)->Renew().ok());
}

}  // namespace
// A fifo planted where an object belongs blocked Get in open() forever (a
// restore or wal-get hung without a word); it is not an object.
TEST_F(LocalSymlinkTest, AFifoInPlaceOfAnObjectIsNotFoundAndDoesNotBlock) {
  ASSERT_EQ(::mkfifo((top_ + "/repo/db/main/backups/fifo").c_str(), 0600), 0);
  auto got = storage_->Get("db/main/backups/fifo");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(got.status().IsNotFound()) << got.status().ToString();
}

}  // namespace sb
