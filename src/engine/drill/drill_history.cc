#include "engine/drill/drill_history.h"

namespace sb {

std::map<std::string, SystemTime> VerifiedAtByBackup(const std::vector<DrillRecord>& records) {
  std::map<std::string, SystemTime> out;
  for (const auto& r : records) {
    if (r.result != DrillResult::kPassed || r.backup_id.empty()) continue;
    auto [it, inserted] = out.emplace(r.backup_id, r.finished);
    if (!inserted && it->second < r.finished) it->second = r.finished;
  }
  return out;
}

std::optional<VerifiedWindow> VerifiedWindowOf(const std::vector<DrillRecord>& records) {
  std::optional<VerifiedWindow> w;
  for (const auto& r : records) {
    if (r.result != DrillResult::kPassed || !r.reached_lsn) continue;
    if (!w) {
      w = VerifiedWindow{.start_lsn = *r.reached_lsn, .end_lsn = *r.reached_lsn,
                         .start_time = r.reached_time, .end_time = r.reached_time};
    } else {
      // Points are ordered by time where both are known (LSNs restart in a new container), else by LSN.
      auto before = [](const std::optional<SystemTime>& t, Lsn l, const std::optional<SystemTime>& t2, Lsn l2) {
        return t && t2 ? *t < *t2 : l < l2;
      };
      if (before(r.reached_time, *r.reached_lsn, w->start_time, w->start_lsn)) {
        w->start_lsn = *r.reached_lsn;
        w->start_time = r.reached_time;
      }
      if (before(w->end_time, w->end_lsn, r.reached_time, *r.reached_lsn)) {
        w->end_lsn = *r.reached_lsn;
        w->end_time = r.reached_time;
      }
    }
    ++w->drills;
  }
  return w;
}

std::optional<DrillRecord> LastDrill(const std::vector<DrillRecord>& records) {
  std::optional<DrillRecord> last;
  for (const auto& r : records) {
    if (!last || last->finished < r.finished) last = r;
  }
  return last;
}

}  // namespace sb
