// Backoff: the one retry-delay policy of the project. The n-th retry waits
// min(max, initial * multiplier^(n-1)), shortened by up to `jitter` of itself
// at random so that many clients failing together do not retry in step.
// Used by the HTTP client's request retries, the RetryStorage decorator and
// the CLI's stream reconnect loop; sleeping goes through the injected Clock
// so tests with ManualClock never wait.
// Thread-safety: Delay and Wait may be called from many threads at once (the
// jitter source is locked).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

#include "common/clock.h"

namespace sb {

struct BackoffPolicy {
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max{10000};
  double multiplier = 2.0;
  // Each delay is d * (1 - jitter * u), u uniform in [0, 1): 0 = exact delays.
  double jitter = 0.5;
};

class Backoff {
 public:
  // seed 0: a random seed. Out-of-range fields are clamped (jitter to [0, 1],
  // multiplier to >= 1, max to >= initial).
  explicit Backoff(BackoffPolicy policy = {}, uint64_t seed = 0);

  // The wait before retry number `retry` (1 = after the first failure).
  std::chrono::milliseconds Delay(int retry);
  // Sleeps Delay(retry) on `clock` and returns the time slept.
  std::chrono::milliseconds Wait(int retry, Clock& clock);

  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace sb
