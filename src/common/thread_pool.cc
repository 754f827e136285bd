#include "common/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace sb {

int WorkerCount(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void ParallelFor(size_t n, const std::function<void(size_t)>& fn, size_t min_per_thread, size_t max_threads) {
  const size_t cap = max_threads > 0 ? max_threads : static_cast<size_t>(std::min(WorkerCount(0), 8));
  const size_t threads = std::min(cap, std::max<size_t>(1, n / std::max<size_t>(1, min_per_thread)));
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Indices taken at a time: few atomic operations, yet balanced ends.
  const size_t chunk = std::clamp<size_t>(n / (threads * 8), 1, 16);
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t begin; (begin = next.fetch_add(chunk)) < n;) {
      for (size_t i = begin; i < std::min(n, begin + chunk); ++i) fn(i);
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(run);
  run();
  for (auto& h : helpers) h.join();
}

ThreadPool::ThreadPool(int threads, int max_queued) : max_queued_(std::max(1, max_queued)) {
  for (int i = 0; i < std::max(1, threads); ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  Wait();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Submit(std::function<void()> task) {
  std::unique_lock lock(mu_);
  space_cv_.wait(lock, [&] { return static_cast<int>(queue_.size()) < max_queued_; });
  queue_.push_back(std::move(task));
  work_cv_.notify_one();
}

void ThreadPool::Wait() {
  std::unique_lock lock(mu_);
  space_cv_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    space_cv_.notify_all();
    task();
    {
      std::lock_guard lock(mu_);
      --running_;
    }
    space_cv_.notify_all();
  }
}

}  // namespace sb
