// A minimal reader of PostgreSQL 15 WAL records: just enough to find the
// commit and abort times that recovery_target_time is compared against.
// PostgreSQL refuses to finish a recovery whose time target lies after the
// last such record it replays ("recovery ended before configured recovery
// target was reached"), so a restore needs that time to know when a time
// target means "everything there is".
// Thread-safety: stateless functions.
#pragma once

#include <optional>
#include <string_view>

#include "common/clock.h"
#include "common/lsn.h"
#include "common/status.h"

namespace sb {

// The commit/abort time of the last transaction record that ends at or before
// `end` in `wal`, the WAL bytes from `start` (a page boundary) on. A record
// continued from before `start` is skipped. Reading stops at the first page
// whose header does not match its position (end of valid WAL). nullopt: no
// transaction record. kCorruption when `start` is not page-aligned.
Result<std::optional<SystemTime>> LastTransactionTime(std::string_view wal, Lsn start, Lsn end);

}  // namespace sb
