#include "cli/verified_at.h"

#include "common/logging.h"
#include "common/text.h"
#include "engine/drill/drill_history.h"
#include "repo/drill_record.h"

namespace sb {

void AddVerifiedAt(Repository& repo, const std::string& db, nlohmann::json& rows) {
  std::map<std::string, SystemTime> verified;
  if (auto listing = ListDrillRecords(repo, db); listing.ok()) {
    for (const auto& s : listing->unreadable) log::Warn("{}", s.message());
    verified = VerifiedAtByBackup(listing->records);
  } else {
    log::Warn("cannot read the drill records of \"{}\": {}", db, listing.status().message());
  }
  for (auto& row : rows) {
    if (!row.is_object() || !row.contains("database") || row["database"] != db) continue;
    const auto& id = row.value("backup_id", nlohmann::json());
    auto it = id.is_string() ? verified.find(id.get<std::string>()) : verified.end();
    row["verified_at"] = it == verified.end() ? nlohmann::json(nullptr) : nlohmann::json(FormatRfc3339(it->second));
  }
}

}  // namespace sb
