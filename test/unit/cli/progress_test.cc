// The progress display of backup/restore/verify under a ManualClock: redrawn in place at most
// every min_interval on a terminal (and at a phase change), one summary line otherwise.
#include "cli/progress.h"

#include <gtest/gtest.h>

namespace sb {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Captured {
  std::vector<std::string> writes;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& s) { writes.push_back(s); };
  }
};

TEST(ProgressTextTest, ShowsBytesPercentRateAndEta) {
  EXPECT_EQ(ProgressText(0, 0, milliseconds(0)), "0 B");
  const std::string s = ProgressText(50ull << 20, 200ull << 20, seconds(10));
  EXPECT_NE(s.find("(25%)"), std::string::npos) << s;
  EXPECT_NE(s.find("5.0 MiB/s"), std::string::npos) << s;
  EXPECT_NE(s.find("ETA 0:30"), std::string::npos) << s;
  // Past the server's estimate (WAL during the backup): 100%, no ETA.
  const std::string over = ProgressText(210ull << 20, 200ull << 20, seconds(10));
  EXPECT_NE(over.find("(100%)"), std::string::npos) << over;
  EXPECT_EQ(over.find("ETA"), std::string::npos) << over;
}

TEST(ProgressMeterTest, TerminalRedrawsInPlaceAtMostEveryInterval) {
  ManualClock clock(std::chrono::system_clock::from_time_t(1'800'000'000));
  Captured out;
  ProgressMeter meter(&clock, {.label = "backup", .terminal = true, .min_interval = milliseconds(250),
                               .write = out.sink()});
  meter.Update("streaming", 1, 100);
  for (int i = 2; i <= 10; ++i) meter.Update("streaming", i, 100);  // no time passed: not redrawn
  EXPECT_EQ(out.writes.size(), 1u);
  meter.Update("uploading", 11, 100);  // a phase change is drawn at once
  EXPECT_EQ(out.writes.size(), 2u);
  clock.Advance(milliseconds(300));
  meter.Update("uploading", 50, 100);
  ASSERT_EQ(out.writes.size(), 3u);
  EXPECT_EQ(out.writes.back().rfind("\r\033[K", 0), 0u) << "redrawn in place";
  EXPECT_NE(out.writes.back().find("backup: uploading"), std::string::npos);
  meter.Finish(true);
  EXPECT_EQ(out.writes.back().back(), '\n');
}

TEST(ProgressMeterTest, NotATerminalPrintsOneSummaryLineOnSuccessOnly) {
  ManualClock clock(std::chrono::system_clock::from_time_t(1'800'000'000));
  Captured out;
  {
    ProgressMeter meter(&clock, {.label = "restore", .terminal = false, .write = out.sink()});
    for (int i = 1; i <= 100; ++i) {
      clock.Advance(milliseconds(100));
      meter.Update("", uint64_t(i) << 20, 100ull << 20);
    }
    EXPECT_TRUE(out.writes.empty());
    meter.Finish(true);
  }
  ASSERT_EQ(out.writes.size(), 1u);
  EXPECT_EQ(out.writes[0], "restore done: 100.0 MiB in 10.0s (10.0 MiB/s)\n");
  Captured failed;
  ProgressMeter meter(&clock, {.label = "verify", .terminal = false, .write = failed.sink()});
  meter.Update("", 1, 2);
  meter.Finish(false);
  EXPECT_TRUE(failed.writes.empty()) << "a failure has its own error line";
}

}  // namespace
}  // namespace sb
