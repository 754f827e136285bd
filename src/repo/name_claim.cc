#include "repo/name_claim.h"

#include <fmt/core.h>

#include <charconv>
#include <map>
#include <optional>

#include "repo/repository.h"

namespace sb {
namespace {

using SystemTime = std::chrono::system_clock::time_point;

struct Claim {
  std::optional<SystemTime> since, alive;
};

std::string Prefix(const std::string& db) { return fmt::format("names/{}/", db); }
std::string Key(const std::string& db, uint64_t sysid, const char* what) {
  return fmt::format("names/{}/{}.{}", db, sysid, what);
}

// "names/<db>/<sysid>.<what>" → (sysid, what); anything else (not ours, a temp file) is skipped.
std::optional<std::pair<uint64_t, std::string>> ParseKey(const std::string& prefix, const std::string& key) {
  if (key.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string rest = key.substr(prefix.size());
  const auto dot = rest.find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  uint64_t sysid = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + dot, sysid);
  if (ec != std::errc() || end != rest.data() + dot) return std::nullopt;
  return std::make_pair(sysid, rest.substr(dot + 1));
}

}  // namespace

Result<NameClaimResult> ClaimDatabaseName(Storage& storage, const std::string& db, uint64_t system_identifier,
                                          const NameClaimOptions& options) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(db));
  if (system_identifier == 0) {
    return Status::InvalidArgument(fmt::format("cannot claim database name \"{}\" without a system identifier", db));
  }
  const std::string prefix = Prefix(db);
  ASSIGN_OR_RETURN(auto objects, ListAll(storage, prefix));
  std::map<uint64_t, Claim> claims;
  for (const auto& o : objects) {
    auto parsed = ParseKey(prefix, o.key);
    if (!parsed) continue;
    if (parsed->second == "since") claims[parsed->first].since = o.mtime;
    if (parsed->second == "alive") claims[parsed->first].alive = o.mtime;
  }
  const Claim mine = claims[system_identifier];
  bool others = false;
  for (const auto& [sysid, claim] : claims) {
    if (sysid != system_identifier && !options.earlier_systems.count(sysid) && claim.alive) others = true;
  }

  NameClaimResult result;
  if (others) {
    // Another system identifier wrote here: is it live? Storage's now, read from a write of our own
    // that claims nothing (a refused writer must not look live to the holder).
    const std::string probe = Key(db, system_identifier, "probe");
    RETURN_IF_ERROR(storage.Put(probe, "probe"));
    ASSIGN_OR_RETURN(ObjectInfo probed, storage.Stat(probe));
    const SystemTime now = probed.mtime;
    const SystemTime live_since = now - options.live_window;
    const bool me_live = mine.alive && *mine.alive >= live_since;
    for (const auto& [sysid, claim] : claims) {
      if (sysid == system_identifier || options.earlier_systems.count(sysid)) continue;
      if (!claim.alive || *claim.alive < live_since) continue;  // dead: its cluster stopped writing here
      // Both live (two writers started at once): the older claim keeps the name.
      const bool mine_older =
          me_live && mine.since &&
          (!claim.since || *mine.since < *claim.since || (*mine.since == *claim.since && system_identifier < sysid));
      if (mine_older) continue;
      result.holder = sysid;
      result.holder_age = std::chrono::duration_cast<std::chrono::seconds>(
          now > *claim.alive ? now - *claim.alive : std::chrono::system_clock::duration::zero());
      return result;
    }
  }
  if (!mine.since) {
    Status s = storage.Put(Key(db, system_identifier, "since"), "since", {.if_absent = true});
    if (!s.ok() && !s.IsAlreadyExists()) return s;
  }
  RETURN_IF_ERROR(storage.Put(Key(db, system_identifier, "alive"), "alive"));
  result.granted = true;
  return result;
}

Result<std::set<uint64_t>> NameClaimants(Storage& storage, const std::string& db) {
  RETURN_IF_ERROR(Repository::ValidateDatabaseName(db));
  const std::string prefix = Prefix(db);
  ASSIGN_OR_RETURN(auto objects, ListAll(storage, prefix));
  std::set<uint64_t> out;
  for (const auto& o : objects) {
    auto parsed = ParseKey(prefix, o.key);
    if (parsed && parsed->second == "since") out.insert(parsed->first);
  }
  return out;
}

std::string NameClaimRefusal(const std::string& db, uint64_t system_identifier, const NameClaimResult& result) {
  return fmt::format(
      "database name \"{}\" is used on this storage by another live cluster (system identifier {}, last seen {}s "
      "ago); this cluster's system identifier is {}: its backups would mix with the other's; hint: give this "
      "cluster another name (the [[cluster]] name or --db)",
      db, result.holder, result.holder_age.count(), system_identifier);
}

Status CheckDatabaseName(Storage& storage, const std::string& db, uint64_t system_identifier,
                         const NameClaimOptions& options) {
  ASSIGN_OR_RETURN(NameClaimResult r, ClaimDatabaseName(storage, db, system_identifier, options));
  if (r.granted) return Status::Ok();
  return Status::FailedPrecondition(NameClaimRefusal(db, system_identifier, r));
}

}  // namespace sb
