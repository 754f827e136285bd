// Fuzzes the agent's API request handling: Agent::HandleApi, the handler the
// unix-socket server hands every authenticated request to. An input is
//   METHOD SP PATH[?QUERY] LF BODY
// (fuzz/corpus/api holds real requests of every route).
//
// The backend is a real agent on a scratch state directory with one
// configured cluster whose server cannot be reached (a socket path that does
// not exist: connecting fails at once) and a manual clock (retries do not
// sleep). One agent serves the whole run, so settings saved by one input are
// seen by the next, as in a real agent.
//
// Safety: a request may name any storage_url, and enabling a cluster opens
// (creates) the repository there. The harness replaces "@SCRATCH@" in the
// body with its scratch directory and lets through only file:// URLs below
// it, so fuzzing never writes a repository elsewhere or contacts a network
// endpoint; [defaults] points below it too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/agent_config.h"
#include "common/clock.h"
#include "common/logging.h"
#include "fuzz_util.h"

namespace {

using nlohmann::json;

std::string g_state_dir;
std::unique_ptr<sb::ManualClock> g_clock;
std::unique_ptr<sb::Agent> g_agent;

void Cleanup() {
  g_agent.reset();
  if (!g_state_dir.empty()) sb::fuzz::RemoveTree(g_state_dir);
}

bool SafeStorageUrl(const json& settings) {
  if (!settings.is_object() || !settings.contains("storage_url")) return true;
  const json& v = settings["storage_url"];
  if (!v.is_string()) return true;  // refused by validation before any use
  std::string url = v.get<std::string>();
  const auto first = url.find_first_not_of(" \t\r\n\f\v");
  const auto last = url.find_last_not_of(" \t\r\n\f\v");
  url = first == std::string::npos ? "" : url.substr(first, last - first + 1);
  const std::string mine = "file://" + g_state_dir + "/";
  return url.rfind(mine, 0) == 0 && url.find("..") == std::string::npos && url.find('%') == std::string::npos;
}

void ReplaceAll(std::string* s, const std::string& from, const std::string& to) {
  for (size_t at = s->find(from); at != std::string::npos; at = s->find(from, at + to.size())) {
    s->replace(at, from.size(), to);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  g_state_dir = sb::fuzz::MakeTempDir("sb-fuzz-api");
  const std::string toml = "[agent]\nstate_dir = \"" + g_state_dir + "/state\"\nsocket = \"" + g_state_dir +
                           "/agent.sock\"\ndiscover = false\n\n[defaults]\nenabled = false\n"
                           "storage_url = \"file://" + g_state_dir + "/repo\"\n\n[[cluster]]\nname = \"main\"\n"
                           "conninfo = \"host=" + g_state_dir + "/no-server port=1 connect_timeout=1\"\n";
  auto config = sb::ParseAgentConfig(toml, "fuzz-api.toml");
  if (!config.ok()) {
    std::fprintf(stderr, "fuzz_api: %s\n", config.status().message().c_str());
    std::abort();
  }
  g_clock = std::make_unique<sb::ManualClock>(sb::SystemTime(std::chrono::seconds(1790000000)));
  auto agent = sb::Agent::Create(std::move(config).value(), g_clock.get());
  if (!agent.ok()) {
    std::fprintf(stderr, "fuzz_api: %s\n", agent.status().message().c_str());
    std::abort();
  }
  g_agent = std::move(agent).value();
  g_agent->BackupLoopOnce();  // registers the configured cluster
  std::atexit(Cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto eol = input.find('\n');
  const std::string line = input.substr(0, eol);
  sb::ApiRequest r;
  const auto sp = line.find(' ');
  if (sp == std::string::npos) return 0;
  r.method = line.substr(0, sp);
  std::string target = line.substr(sp + 1);
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  if (eol != std::string::npos) r.body = input.substr(eol + 1);
  ReplaceAll(&r.body, "@SCRATCH@", g_state_dir);

  json body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("settings") && !SafeStorageUrl(body["settings"])) return 0;

  sb::ApiResponse resp = g_agent->HandleApi(r);
  // The server sends the body as JSON with this status: both must be sane.
  if (resp.status < 200 || resp.status > 599 || json::parse(resp.body, nullptr, false).is_discarded()) {
    std::fprintf(stderr, "bad response %d: %s\n", resp.status, resp.body.c_str());
    std::abort();
  }
  return 0;
}
