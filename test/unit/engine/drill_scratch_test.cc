// The drill scratch directory: an orphan (its owner's pid gone) is removed at the next start,
// together with the server still running from it; a drill that runs now is left alone.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/drill/drill_scratch.h"
#include "support/pg_cluster.h"

namespace sb {
namespace {

namespace fs = std::filesystem;

class DrillScratchTest : public ::testing::Test {
 protected:
  void SetUp() override { scratch_ = test::MakeTempDirForPostgres("scratch") + "/drills"; }
  void TearDown() override { test::RemoveTree(fs::path(scratch_).parent_path().string()); }
  std::string scratch_;
};

// A pid that surely is not running: a child that has exited and been reaped.
pid_t DeadPid() {
  const pid_t pid = ::fork();
  if (pid == 0) _exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST_F(DrillScratchTest, CleansAnOrphanAndItsServerButNotALiveDrill) {
  auto orphan = CreateDrillDir(scratch_, "20261130T120000Z-D-0001");
  ASSERT_TRUE(orphan.ok()) << orphan.status().message();
  { std::ofstream(orphan->marker()) << "smartbackup-drill " << DeadPid() << "\n"; }
  // A "postmaster" running from the orphan's data directory: a process whose cwd is it.
  const pid_t server = ::fork();
  if (server == 0) {
    if (::chdir(orphan->data().c_str()) != 0) _exit(1);
    ::pause();
    _exit(0);
  }
  { std::ofstream(orphan->data() + "/postmaster.pid") << server << "\n" << orphan->data() << "\n"; }
  for (int i = 0; i < 100; ++i) {  // until the child has changed directory
    std::error_code ec;
    if (fs::read_symlink("/proc/" + std::to_string(server) + "/cwd", ec) == fs::path(orphan->data())) break;
    ::usleep(10000);
  }
  auto live = CreateDrillDir(scratch_, "20261130T120000Z-D-0002");  // owned by this process: running
  ASSERT_TRUE(live.ok());
  fs::create_directories(scratch_ + "/not-a-drill");

  // The cleanup runs "at the next start": a process other than the live drill's owner.
  const pid_t cleaner = ::fork();
  if (cleaner == 0) {
    OrphanCleanup c = CleanOrphanDrills(scratch_);
    _exit(c.removed.size() == 1 && c.servers_stopped == 1 && c.errors.empty() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(cleaner, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  int server_status = 0;
  EXPECT_EQ(::waitpid(server, &server_status, 0), server) << "the orphaned server was not stopped";
  EXPECT_TRUE(WIFSIGNALED(server_status));
  EXPECT_FALSE(fs::exists(orphan->root));
  EXPECT_TRUE(fs::exists(live->root)) << "a running drill's directory was removed";
  EXPECT_TRUE(fs::exists(scratch_ + "/not-a-drill"));
  EXPECT_TRUE(RemoveDrillDir(*live).ok());
  EXPECT_FALSE(fs::exists(live->root));
}

TEST_F(DrillScratchTest, MissingScratchIsNothingToClean) {
  OrphanCleanup c = CleanOrphanDrills(scratch_ + "/none");
  EXPECT_TRUE(c.removed.empty());
  EXPECT_TRUE(c.errors.empty());
  EXPECT_FALSE(CreateDrillDir(scratch_, "../x").ok());
  EXPECT_FALSE(CreateDrillDir("relative", "20261130T120000Z-D-0001").ok());
}

}  // namespace
}  // namespace sb
