#include "common/backoff.h"

#include <algorithm>
#include <cmath>

namespace sb {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed)
    : policy_(policy), rng_(seed != 0 ? seed : std::random_device{}()) {
  policy_.jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  policy_.multiplier = std::max(policy_.multiplier, 1.0);
  policy_.initial = std::max(policy_.initial, std::chrono::milliseconds(0));
  policy_.max = std::max(policy_.max, policy_.initial);
}

std::chrono::milliseconds Backoff::Delay(int retry) {
  // Capping the exponent first keeps pow() finite for any retry count.
  const int exponent = std::clamp(retry - 1, 0, 62);
  double ms = static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, exponent);
  ms = std::min(ms, static_cast<double>(policy_.max.count()));
  if (policy_.jitter > 0) {
    double u;
    {
      std::lock_guard lock(mu_);
      u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    }
    ms *= 1.0 - policy_.jitter * u;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

std::chrono::milliseconds Backoff::Wait(int retry, Clock& clock) {
  std::chrono::milliseconds d = Delay(retry);
  clock.SleepFor(d);
  return d;
}

}  // namespace sb
