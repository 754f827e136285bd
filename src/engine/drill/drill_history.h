// What the drill records of a database prove, computed from the records alone
// (the repository's, or those an agent keeps): the last drill, per backup when
// its restore was last proven (`verified_at`), and the verified
// recoverability window — from the oldest point a passed drill proved to the
// newest. Pure functions: status, health and available-backups share them.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "repo/drill_record.h"

namespace sb {

struct VerifiedWindow {
  Lsn start_lsn, end_lsn;
  std::optional<SystemTime> start_time, end_time;  // the replayed commits' times, when known
  int drills = 0;                                  // passed drills inside it
};

// backup id → finish time of the newest passed drill that restored it.
std::map<std::string, SystemTime> VerifiedAtByBackup(const std::vector<DrillRecord>& records);
// The points passed drills proved, oldest to newest; nullopt without any.
std::optional<VerifiedWindow> VerifiedWindowOf(const std::vector<DrillRecord>& records);
// The record that finished last.
std::optional<DrillRecord> LastDrill(const std::vector<DrillRecord>& records);

}  // namespace sb
