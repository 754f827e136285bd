#include "common/thread_pool.h"

#include <algorithm>

namespace sb {

int WorkerCount(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
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
