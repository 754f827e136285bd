// The managed options through the agent's API: every row of the option table
// is accepted and refused by POST /v1/instance-config exactly as ValidateOption
// (and so the config file and the CLI flags) accept and refuse it.
#include "agent/agent.h"
#include "agent/settings.h"
#include "support/option_samples.h"
#include "support/testing_env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace sb {
namespace {

// The API (the agent's POST /v1/instance-config, as set-instance-backup sends it) takes every
// option with the same checks: the value is stored canonical, a bad one is a 400 whose error is
// ValidateOption's message, and the previous settings stay.
TEST(OptionsApiTest, EveryOptionWithTheTablesChecks) {
  using nlohmann::json;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("sb_agent_options_api_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  AgentConfig config;
  config.state_dir = dir.string();
  config.discover = false;
  auto agent = Agent::Create(config);
  ASSERT_TRUE(agent.ok()) << agent.status().message();
  auto post = [&](const std::string& name, const std::string& value) {
    return (*agent)->HandleApi(
        {.method = "POST", .path = "/v1/instance-config", .body = json{{"settings", {{name, value}}}}.dump()});
  };
  for (const auto& o : ManagedOptions()) {
    if (o.name == "enabled") continue;  // enabling checks the storage, which is not what this test is about
    const std::string sample = test::SampleValue(o);
    ApiResponse ok = post(o.name, sample);
    ASSERT_EQ(ok.status, 200) << o.name << ": " << ok.body;
    EXPECT_EQ(json::parse(ok.body).at(o.name), sample) << o.name;
    for (const auto& bad : test::BadValues(o)) {
      ApiResponse r = post(o.name, bad);
      EXPECT_EQ(r.status, 400) << o.name << "=" << bad;
      EXPECT_EQ(json::parse(r.body).at("error"), ValidateOption(o.name, bad).status().message());
    }
    ApiResponse now = (*agent)->HandleApi({.method = "GET", .path = "/v1/instance-config"});
    EXPECT_EQ(json::parse(now.body).at(o.name), sample) << o.name << ": a refused value replaced it";
  }
  agent->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sb
