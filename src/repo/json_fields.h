// Typed reads of JSON members from repository documents (manifests,
// descriptors): storage-controlled text. nlohmann's get<T>() converts any
// number to any arithmetic type, and a float out of the target's range
// (e.g. "timeline": 8e98) is undefined behaviour in that conversion (found by
// fuzz_manifest), so integers are taken only from JSON integers in range.
// Failures throw std::runtime_error: the parsers catch it and report the
// document as corrupt.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace sb {

template <typename T>
T IntegerMember(const nlohmann::json& j, const char* name) {
  static_assert(std::is_integral_v<T>);
  const nlohmann::json& v = j.at(name);
  auto out_of_range = [&] { return std::runtime_error(std::string("member \"") + name + "\" is out of range"); };
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw out_of_range();
    return static_cast<T>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0 ? (!std::is_signed_v<T> || i < static_cast<int64_t>(std::numeric_limits<T>::min()))
              : static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      throw out_of_range();
    }
    return static_cast<T>(i);
  }
  throw std::runtime_error(std::string("member \"") + name + "\" is not an integer");
}

}  // namespace sb
