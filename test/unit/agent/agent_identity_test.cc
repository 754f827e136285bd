// The agent's stable identity (<state_dir>/agent.id): made once, read back
// the same on every start, private, refused when damaged, and agreed on by
// concurrent creators.
#include "agent/agent_identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "common/uuid.h"

namespace sb {
namespace {

class AgentIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sb-agent-id-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(AgentIdentityTest, CreatedOnceThenReadBackUnchanged) {
  auto first = LoadOrCreateAgentId(dir_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(IsUuid(*first));
  auto second = LoadOrCreateAgentId(dir_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, *first);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/agent.id").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Only agent.id is left: no temporary files.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1);
}

TEST_F(AgentIdentityTest, TwoStateDirectoriesAreTwoAgents) {
  std::string other = dir_ + "/other";
  std::filesystem::create_directory(other);
  auto a = LoadOrCreateAgentId(dir_);
  auto b = LoadOrCreateAgentId(other);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST_F(AgentIdentityTest, AnIdWrittenByHandIsAcceptedInLowerCase) {
  std::ofstream(dir_ + "/agent.id") << "  6F1C2A4E-0B7D-4E2A-9C3B-5D8E7F6A1B2C\n";
  auto id = LoadOrCreateAgentId(dir_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, "6f1c2a4e-0b7d-4e2a-9c3b-5d8e7f6a1b2c");
}

TEST_F(AgentIdentityTest, DamagedFileIsRefusedWithAHintAndKept) {
  std::ofstream(dir_ + "/agent.id") << "not-a-uuid";
  auto id = LoadOrCreateAgentId(dir_);
  EXPECT_EQ(id.status().code(), StatusCode::kCorruption);
  EXPECT_NE(id.status().message().find("hint:"), std::string::npos) << id.status().ToString();
  std::ifstream in(dir_ + "/agent.id");
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "not-a-uuid");  // never silently replaced: the old leases would be orphaned
}

TEST_F(AgentIdentityTest, ConcurrentCreatorsAgreeOnOneId) {
  constexpr int kThreads = 8;
  std::vector<std::string> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto id = LoadOrCreateAgentId(dir_);
      if (id.ok()) ids[t] = *id;
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> distinct(ids.begin(), ids.end());
  ASSERT_EQ(distinct.size(), 1u);
  EXPECT_TRUE(IsUuid(*distinct.begin()));
}

TEST_F(AgentIdentityTest, MissingStateDirectoryIsAnError) {
  auto id = LoadOrCreateAgentId(dir_ + "/missing");
  EXPECT_FALSE(id.ok());
}

}  // namespace
}  // namespace sb
