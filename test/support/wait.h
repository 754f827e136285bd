// WaitFor: polls a condition until it holds or a deadline passes. Tests use it
// to wait for outcomes (a backup listed, a server promoted), never to assert
// how long something took.
#pragma once

#include <chrono>
#include <thread>

namespace sb::test {

// Polls `pred` every `every` for at most `limit`; true as soon as it holds.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::seconds limit,
             std::chrono::milliseconds every = std::chrono::milliseconds(200)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(every);
  }
  return pred();
}

}  // namespace sb::test
