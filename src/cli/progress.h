// ProgressMeter: progress of a long verb (backup, restore, verify, drill) on
// stderr. On a terminal one line — phase, bytes done of total, %, rate, ETA —
// redrawn in place at most every `min_interval` (and at each phase change);
// otherwise nothing while it runs and one summary line at the end, so logs and
// cron mail stay short. Time comes from an injected Clock and output goes to a
// sink, so the rendering is unit-tested with a ManualClock.
// Thread-safety: Update may be called from several threads (engine workers);
// Finish once, after the last Update.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"

namespace sb {

struct ProgressMeterOptions {
  std::string label;  // "backup", "restore", "verify"
  bool terminal = false;  // isatty(stderr): redraw in place; else one summary line
  std::chrono::milliseconds min_interval{250};
  std::function<void(const std::string&)> write;  // raw text to stderr (tests capture it)
};

class ProgressMeter {
 public:
  ProgressMeter(Clock* clock, ProgressMeterOptions options);

  // `total` 0: not known (yet); `done` may pass `total` (the server's estimate).
  void Update(const std::string& phase, uint64_t done, uint64_t total);
  // Ends the display: on a terminal the last state is drawn and the line ended; otherwise, on
  // success, one line "<label> done: <bytes> in <secs> (<rate>)" (a failure has its own error line).
  void Finish(bool success);

 private:
  std::string Line() const;  // under mu_

  Clock* clock_;
  ProgressMeterOptions options_;
  std::mutex mu_;
  SteadyTime started_;
  std::optional<SteadyTime> last_draw_;
  std::string phase_;
  uint64_t done_ = 0, total_ = 0;
  bool drawn_ = false;
};

// "1.2 GiB / 3.4 GiB (35%) 120.0 MiB/s ETA 0:19"; pieces left out when unknown. For tests.
std::string ProgressText(uint64_t done, uint64_t total, std::chrono::milliseconds elapsed);

}  // namespace sb
