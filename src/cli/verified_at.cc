#include "cli/verified_at.h"

#include "common/logging.h"
#include "common/text.h"
#include "engine/drill/drill_history.h"
#include "repo/drill_record.h"

namespace sb {

void AddVerifiedAt(Repository& repo, DatabaseListing& listing) {
  std::map<std::string, SystemTime> verified;
  if (auto records = ListDrillRecords(repo, listing.database); records.ok()) {
    for (const auto& s : records->unreadable) log::Warn("{}", s.message());
    verified = VerifiedAtByBackup(records->records);
  } else {
    log::Warn("cannot read the drill records of \"{}\": {}", listing.database, records.status().message());
  }
  for (auto& row : listing.rows) {
    if (!row.backup_id) continue;
    auto it = verified.find(*row.backup_id);
    if (it != verified.end()) row.verified_at = it->second;
  }
}

}  // namespace sb
