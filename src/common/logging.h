// Logging to stderr through spdlog, behind a small facade so only logging.cc
// pays for spdlog's headers. Callers must never pass secrets: storage drivers
// describe themselves with credential-free strings (Storage::Describe).
// Thread-safety: all functions may be called from any thread.
#pragma once

#include <fmt/core.h>

#include <string_view>
#include <utility>

namespace sb::log {

enum class Level { kDebug, kInfo, kWarn, kError, kOff };

void SetLevel(Level level);
void Write(Level level, std::string_view message);

// log::Info("…{}…", x): one formatting front for every level.
template <Level kLevel>
struct LevelLogger {
  template <typename... Args>
  void operator()(fmt::format_string<Args...> f, Args&&... args) const {
    Write(kLevel, fmt::format(f, std::forward<Args>(args)...));
  }
};
inline constexpr LevelLogger<Level::kDebug> Debug;
inline constexpr LevelLogger<Level::kInfo> Info;
inline constexpr LevelLogger<Level::kWarn> Warn;
inline constexpr LevelLogger<Level::kError> Error;

}  // namespace sb::log
