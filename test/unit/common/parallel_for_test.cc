#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/thread_pool.h"

namespace sb {
namespace {

TEST(ParallelForTest, CallsEveryIndexExactlyOnce) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{1000}, size_t{4097}}) {
    std::vector<std::atomic<int>> calls(n);
    ParallelFor(n, [&](size_t i) { calls[i].fetch_add(1); }, /*min_per_thread=*/1);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(calls[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ParallelForTest, SmallInputsRunOnTheCallersThread) {
  std::set<std::thread::id> seen;
  std::mutex mu;
  ParallelFor(10, [&](size_t) {
    std::lock_guard lock(mu);
    seen.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(seen, std::set<std::thread::id>{std::this_thread::get_id()});
}

}  // namespace
}  // namespace sb
