// What drill records prove: verified_at per backup, the verified window, the last drill.
#include <gtest/gtest.h>

#include "common/text.h"
#include "engine/drill/drill_history.h"

namespace sb {
namespace {

DrillRecord Rec(const std::string& backup, bool passed, const std::string& finished, const std::string& lsn,
                const std::string& at) {
  DrillRecord r;
  r.backup_id = backup;
  r.result = passed ? DrillResult::kPassed : DrillResult::kFailed;
  r.finished = *ParseRfc3339(finished);
  if (passed) {
    r.reached_lsn = *Lsn::Parse(lsn);
    r.reached_time = *ParseRfc3339(at);
  }
  return r;
}

TEST(DrillHistoryTest, VerifiedAtWindowAndLast) {
  std::vector<DrillRecord> records = {
      Rec("B1", true, "2026-11-28T01:00:00Z", "0/3000000", "2026-11-28T00:59:00Z"),
      Rec("B1", true, "2026-11-29T01:00:00Z", "0/5000000", "2026-11-29T00:59:00Z"),
      Rec("B2", false, "2026-11-30T01:00:00Z", "", ""),
  };
  auto verified = VerifiedAtByBackup(records);
  ASSERT_EQ(verified.count("B1"), 1u);
  EXPECT_EQ(FormatRfc3339(verified["B1"]), "2026-11-29T01:00:00Z");
  EXPECT_EQ(verified.count("B2"), 0u) << "a failed drill verifies nothing";
  auto w = VerifiedWindowOf(records);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->start_lsn.ToString(), "0/3000000");
  EXPECT_EQ(w->end_lsn.ToString(), "0/5000000");
  EXPECT_EQ(w->drills, 2);
  EXPECT_EQ(LastDrill(records)->backup_id, "B2");
  EXPECT_FALSE(VerifiedWindowOf({records[2]}));
}

}  // namespace
}  // namespace sb
