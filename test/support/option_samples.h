// Values for each managed option chosen by its type alone, so that tests
// which walk the option table (config file, API, CLI flags) cover a new row
// without being edited: a valid value other than the default, in canonical
// text that survives a round trip through ClusterSettings, and values the
// option refuses. Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "agent/settings.h"

namespace sb::test {

inline std::string SampleValue(const OptionDef& d) {
  using T = OptionDef::Type;
  switch (d.type) {
    case T::kBool: return d.default_text == "true" ? "false" : "true";
    case T::kInt: {
      const std::string max = std::to_string(d.max_value);
      return max != d.default_text ? max : std::to_string(d.min_value);
    }
    case T::kChoice:
      for (const auto& c : d.choices) {
        if (c != d.default_text) return c;
      }
      return d.choices.front();
    case T::kStorageUrl: return "azure://sample/prefix";
    case T::kAbsolutePath: return "/etc/smartbackup/sample";
    case T::kDuration: return "45m";
    case T::kByteSize: return "3MiB";
    case T::kSchedule: return "weekly fri 23:00 4h";
    case T::kText: return "SELECT true";
  }
  return "";
}

// Values of the option's type that it refuses (for an integer: one each side of its range).
inline std::vector<std::string> BadValues(const OptionDef& d) {
  using T = OptionDef::Type;
  switch (d.type) {
    case T::kBool: return {"maybe"};
    case T::kInt: return {std::to_string(d.min_value - 1), std::to_string(d.max_value + 1), "7x"};
    case T::kChoice: return {"nope"};
    case T::kStorageUrl: return {"s3://bucket", "azure://"};
    case T::kAbsolutePath: return {"relative/key"};
    case T::kDuration: return {"0s", "soon", "99999d"};
    case T::kByteSize: return {"0", "lots"};
    case T::kSchedule: return {"monthly 01:00 2h"};
    case T::kText: return {std::string(1001, 'x')};  // too long (a control character is TOML's error first)
  }
  return {};
}

}  // namespace sb::test
