#include "cli/progress.h"

#include <fmt/core.h>

#include <algorithm>

#include "common/text.h"

namespace sb {
namespace {

std::string Hms(std::chrono::seconds s) {
  const auto n = s.count();
  return n >= 3600 ? fmt::format("{}:{:02}:{:02}", n / 3600, n / 60 % 60, n % 60)
                   : fmt::format("{}:{:02}", n / 60, n % 60);
}

}  // namespace

std::string ProgressText(uint64_t done, uint64_t total, std::chrono::milliseconds elapsed) {
  std::string out = FormatByteSize(done);
  if (total > 0) {
    const uint64_t pct = done >= total ? 100 : done * 100 / total;
    out += fmt::format(" / {} ({}%)", FormatByteSize(total), pct);
  }
  const double secs = elapsed.count() / 1000.0;
  if (secs >= 0.5 && done > 0) {
    const double rate = done / secs;
    out += fmt::format(" {}/s", FormatByteSize(static_cast<uint64_t>(rate)));
    if (total > done) {
      out += " ETA " + Hms(std::chrono::seconds(static_cast<int64_t>((total - done) / rate + 0.5)));
    }
  }
  return out;
}

ProgressMeter::ProgressMeter(sb::Clock* clock, ProgressMeterOptions options)
    : clock_(clock), options_(std::move(options)), started_(clock->SteadyNow()) {}

std::string ProgressMeter::Line() const {
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->SteadyNow() - started_);
  return fmt::format("{}: {}{}", options_.label, phase_.empty() ? "" : phase_ + " ", ProgressText(done_, total_, elapsed));
}

void ProgressMeter::Update(const std::string& phase, uint64_t done, uint64_t total) {
  std::lock_guard lock(mu_);
  const bool new_phase = phase != phase_;
  phase_ = phase;
  done_ = std::max(done_, done);  // workers may report out of order
  total_ = total;
  if (!options_.terminal) return;
  const SteadyTime now = clock_->SteadyNow();
  if (!new_phase && last_draw_ && now - *last_draw_ < options_.min_interval) return;
  last_draw_ = now;
  drawn_ = true;
  options_.write("\r\033[K" + Line());
}

void ProgressMeter::Finish(bool success) {
  std::lock_guard lock(mu_);
  if (options_.terminal) {
    if (drawn_) options_.write("\r\033[K" + Line() + "\n");
    return;
  }
  if (!success) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->SteadyNow() - started_);
  const double secs = elapsed.count() / 1000.0;
  std::string rate;
  if (secs > 0 && done_ > 0) rate = fmt::format(" ({}/s)", FormatByteSize(static_cast<uint64_t>(done_ / secs)));
  options_.write(fmt::format("{} done: {} in {:.1f}s{}\n", options_.label, FormatByteSize(done_), secs, rate));
}

}  // namespace sb
