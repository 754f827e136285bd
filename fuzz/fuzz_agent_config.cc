// Fuzzes the agent's TOML configuration parser (ParseAgentConfig). Besides
// crashes and UB it checks the style rule the operator relies on: a refused
// config is reported in one line (a multi-line message breaks log parsing
// and hides the file:line that comes first).
//
// toml++ 3.3.0 (Debian's) reaches __builtin_unreachable for some non-ASCII
// code points in whitespace positions (upstream #190/#295): ParseAgentConfig
// refuses non-ASCII bytes outside strings and comments before toml++ sees
// them, and this target runs unfiltered to keep that guard honest.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/agent_config.h"
#include "common/logging.h"


extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sb::log::SetLevel(sb::log::Level::kOff);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = sb::ParseAgentConfig(text, "/etc/smartbackup/agent.toml");
  if (!config.ok() && config.status().message().find('\n') != std::string::npos) {
    std::fprintf(stderr, "config error is not one line: %s\n", config.status().message().c_str());
    std::abort();
  }
  return 0;
}
