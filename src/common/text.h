// Small text conversions shared by every layer: byte sizes ("5MiB"),
// durations ("7d"), RFC 3339 UTC times, ASCII case. (Base64 and hex live in
// common/encoding.h.) Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace sb {

// Upper bounds of what the parsers accept. Far above any sensible setting,
// far below what overflows: a byte size fits in int64 arithmetic, and a
// duration can be added to or subtracted from any time point this century
// without leaving system_clock's nanosecond range (about +-292 years).
inline constexpr uint64_t kMaxByteSize = uint64_t{1} << 50;                     // 1 PiB
inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 3650);  // 3650d

// "1GiB", "5MiB", "512KiB", "100", "10MB" (decimal), case-insensitive units.
// Above kMaxByteSize: kInvalidArgument.
Result<uint64_t> ParseByteSize(std::string_view text);
std::string FormatByteSize(uint64_t bytes);  // "1.5 GiB"

// "10s", "5m", "2h", "7d", "1w", "500ms"; a bare number is seconds.
// Above kMaxDuration: kInvalidArgument.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
std::string FormatDuration(std::chrono::milliseconds d);  // "2h", "90s"

// RFC 3339 UTC with optional fraction: "2026-11-25T02:33:28Z". Parsing also
// accepts "+00:00"-style offsets and a space instead of 'T'. Dates that do
// not exist (2026-02-31) and out-of-range fields are refused.
std::string FormatRfc3339(SystemTime t);
Result<SystemTime> ParseRfc3339(std::string_view text);
// Compact form for ids and object names: "20261125T023328Z".
std::string FormatCompactTime(SystemTime t);

// ASCII lower case; other bytes unchanged (names, schemes, header names).
std::string Lower(std::string_view s);
std::string Trim(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);
// Text from outside (the repository, an archive, a flag) made safe to quote in
// a one-line message: control bytes, bytes above 0x7e, '"' and '\\' become
// \xNN, and it is cut at 200 characters.
std::string Printable(std::string_view text);
// True when `s` holds a control character (below 0x20, or 0x7f).
bool HasControlCharacter(std::string_view s);

}  // namespace sb
