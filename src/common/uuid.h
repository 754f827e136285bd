// RFC 4122 UUIDs in their 36-character lower-case text form: random ones
// (version 4, e.g. the agent's identity, one-off lease ids) and name-based
// ones (version 5 layout over SHA-256, e.g. a lease id derived from a holder
// and a key). Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace sb {

std::string RandomUuid();
// The same name always gives the same UUID.
std::string NameUuid(std::string_view name);
// 8-4-4-4-12 hex digits (either case) with hyphens; nothing else.
bool IsUuid(std::string_view text);

}  // namespace sb
