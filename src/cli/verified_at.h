// `verified_at` for available-backups: when a drill last proved that a
// backup restores, from the repository's drill records alone (so a drill run
// on another machine counts too). Kept apart from the listing's layout.
// Thread-safety: stateless.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "repo/repository.h"

namespace sb {

// Sets "verified_at" (RFC 3339, or null) on each row of `rows` (objects with "database" and
// "backup_id") that belongs to `db`. Unreadable records are skipped; a listing error leaves nulls.
void AddVerifiedAt(Repository& repo, const std::string& db, nlohmann::json& rows);

}  // namespace sb
