#include "common/clock.h"

#include <thread>

namespace sb {
namespace {

class RealClock final : public Clock {
 public:
  SystemTime Now() override { return std::chrono::system_clock::now(); }
  SteadyTime SteadyNow() override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock clock;
  return &clock;
}

SystemTime ManualClock::Now() {
  std::lock_guard lock(mu_);
  return now_;
}

SteadyTime ManualClock::SteadyNow() {
  std::lock_guard lock(mu_);
  return steady_;
}

void ManualClock::Advance(std::chrono::milliseconds d) {
  std::lock_guard lock(mu_);
  now_ += d;
  steady_ += d;
}

void ManualClock::Set(SystemTime t) {
  std::lock_guard lock(mu_);
  if (t > now_) steady_ += t - now_;
  now_ = t;
}

}  // namespace sb
