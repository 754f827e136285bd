// `verified_at` for available-backups: when a drill last proved that a
// backup restores, from the repository's drill records alone (so a drill run
// on another machine counts too). Kept apart from the listing's layout.
// Thread-safety: stateless.
#pragma once

#include <string>

#include "cli/backup_listing_view.h"
#include "repo/repository.h"

namespace sb {

// Sets `verified_at` on each backup row of `listing` that a drill proved. Unreadable records
// are skipped; a listing error leaves them unset (null).
void AddVerifiedAt(Repository& repo, DatabaseListing& listing);

}  // namespace sb
