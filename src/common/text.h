// Small text conversions shared by every layer: byte sizes ("5MiB"),
// durations ("7d"), RFC 3339 UTC times, hex. Pure functions, thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace sb {

// "1GiB", "5MiB", "512KiB", "100", "10MB" (decimal), case-insensitive units.
Result<uint64_t> ParseByteSize(std::string_view text);
std::string FormatByteSize(uint64_t bytes);  // "1.5 GiB"

// "10s", "5m", "2h", "7d", "1w", "500ms"; a bare number is seconds.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
std::string FormatDuration(std::chrono::milliseconds d);  // "2h", "90s"

// RFC 3339 UTC with optional fraction: "2026-11-25T02:33:28Z". Parsing also
// accepts "+00:00"-style offsets and a space instead of 'T'.
std::string FormatRfc3339(SystemTime t);
Result<SystemTime> ParseRfc3339(std::string_view text);
// Compact form for ids and object names: "20261125T023328Z".
std::string FormatCompactTime(SystemTime t);

std::string HexEncode(std::string_view bytes);
Result<std::string> HexDecode(std::string_view hex);

std::string Trim(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);

}  // namespace sb
