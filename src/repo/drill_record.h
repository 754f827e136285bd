// DrillRecord: the result of one restore drill, kept in the repository as a
// small immutable JSON object next to the backups it proved
// (db/<db>/drills/<container>/<drill_id>.json, doc/repository.md "Drill
// records"), so that `available-backups` shows `verified_at` from the
// repository alone, whichever host ran the drill. Written once
// (put-if-absent) with a checksum over its canonical form like a manifest;
// every field is checked against a strict grammar when read, since what a
// record says is shown to operators and used to pick backups.
// Thread-safety: value types and stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/lsn.h"
#include "common/status.h"

namespace sb {

class Repository;

enum class DrillResult { kPassed, kFailed };
const char* DrillResultName(DrillResult result);  // "passed" | "failed"

// The step a failed drill stopped at. Failures in restore, recovery or the checks are the
// backups' (they did not restore, or restored wrong); plan and prepare are the environment's
// (storage unreachable, no scratch space, no PostgreSQL binaries).
enum class DrillStage { kNone, kPlan, kPrepare, kRestore, kRecovery, kCheck };
const char* DrillStageName(DrillStage stage);  // "", "plan", "prepare", "restore", "recovery", "check"
bool BackupsAtFault(DrillStage stage);

struct DrillRecord {
  std::string database;
  uint64_t system_identifier = 0;
  std::string container;
  std::string drill_id;   // <YYYYMMDDTHHMMSSZ>-D-<4 hex>
  std::string backup_id;  // the full backup restored ("" when none could be chosen)
  DrillResult result = DrillResult::kFailed;
  std::string target;     // "latest", "time 2026-…", "lsn 0/5000060"
  SystemTime started;
  SystemTime finished;
  // The point recovery reached (passed drills; a failed one may have none).
  std::optional<Lsn> reached_lsn;
  std::optional<SystemTime> reached_time;  // last replayed commit, when there was one
  double restore_seconds = 0;  // fetching and writing the base backup
  double replay_seconds = 0;   // PostgreSQL start to the end of recovery
  double check_seconds = 0;    // pg_amcheck and the operator's SQL check
  uint64_t bytes = 0;          // size of the restored data directory
  std::string host;            // where it ran (for people)
  std::string error;           // failed: the cause, one line
  std::string failed_object;   // failed: the repository object named as the cause, if one was
  DrillStage stage = DrillStage::kNone;  // failed: where

  std::string ToJson() const;
  // Parses and checks a record read from `origin` (its key): kCorruption for
  // anything outside the grammar, a wrong checksum, or a record naming
  // another key than the one it was read from.
  static Result<DrillRecord> FromJson(std::string_view text, const std::string& origin);
};

// "20261130T120000Z-D-3f2a": sorts by start time; a random suffix against collisions.
std::string NewDrillId(SystemTime start);
Status ValidateDrillId(std::string_view id);
// db/<db>/drills/<container>/<drill_id>.json
std::string DrillRecordKey(const std::string& db, const std::string& container, const std::string& drill_id);

// Writes the record once (put-if-absent).
Status WriteDrillRecord(Repository& repo, const DrillRecord& record);

struct DrillListing {
  std::vector<DrillRecord> records;  // oldest first (by drill id)
  std::vector<Status> unreadable;    // records that fail their checks
};
// Every drill record of db, across containers.
Result<DrillListing> ListDrillRecords(Repository& repo, const std::string& db);

}  // namespace sb
