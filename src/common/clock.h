// Clock: the only way code reads time. The scheduler, retry backoff, lease
// expiry and backup ids take a Clock so tests drive them with ManualClock.
// Thread-safety: both implementations are safe to share between threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace sb {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() = 0;
  virtual SteadyTime SteadyNow() = 0;
  virtual void SleepFor(std::chrono::milliseconds d) = 0;

  // The process-wide real clock.
  static Clock* Real();
};

// Time moves only when Advance() is called; SleepFor advances it at once so
// code under test that sleeps (e.g. retry backoff) never blocks.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start) : now_(start), steady_(SteadyTime{}) {}
  SystemTime Now() override;
  SteadyTime SteadyNow() override;
  void SleepFor(std::chrono::milliseconds d) override { Advance(d); }
  void Advance(std::chrono::milliseconds d);
  void Set(SystemTime t);

 private:
  std::mutex mu_;
  SystemTime now_;
  SteadyTime steady_;
};

}  // namespace sb
