// The API handler answers requests whose path holds any bytes with a JSON
// error, as it does for any unknown route: fuzz_api found that a path with
// invalid UTF-8 made the error body's JSON encoding throw out of the handler.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/agent_config.h"

namespace sb {
namespace {

TEST(ApiBytesTest, InvalidUtf8InAPathGetsAJsonError) {
  char templ[] = "/tmp/sb-api-bytes-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const std::string dir = templ;
  {
    auto config = ParseAgentConfig("[agent]\nstate_dir = \"" + dir + "/state\"\nsocket = \"" + dir +
                                       "/agent.sock\"\ndiscover = false\n",
                                   "test.toml");
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto agent = Agent::Create(*config);
    ASSERT_TRUE(agent.ok()) << agent.status().message();
    for (const char* path : {"/v1/db/\xff\xfe/config", "/v1/\xd0", "/v1/db/ok\xc3/backup"}) {
      ApiResponse r;
      ASSERT_NO_THROW(r = (*agent)->HandleApi({.method = "GET", .path = path}));
      EXPECT_EQ(r.status, 404);
      auto body = nlohmann::json::parse(r.body, nullptr, false);
      ASSERT_TRUE(body.is_object()) << r.body;
      EXPECT_TRUE(body["error"].is_string()) << r.body;
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sb
