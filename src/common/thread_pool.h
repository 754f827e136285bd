// ThreadPool: a fixed set of workers with a bounded queue. Submit blocks while
// the queue is full, which is how pipelines keep memory bounded.
// Thread-safety: Submit and Wait may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sb {

// `requested` workers, or one per core when requested <= 0.
int WorkerCount(int requested);

// Calls fn(i) for every i in [0, n) on up to `max_threads` threads (0: one
// per core, at most 8; the caller is one of them), and returns when all
// calls have returned. Small n (under `min_per_thread` per extra thread)
// runs inline. fn must be safe to call concurrently and must not throw.
// Work that waits on the network passes max_threads = n.
void ParallelFor(size_t n, const std::function<void(size_t)>& fn, size_t min_per_thread = 64,
                 size_t max_threads = 0);

class ThreadPool {
 public:
  ThreadPool(int threads, int max_queued);
  ~ThreadPool();  // waits for queued work
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task);
  // Blocks until every submitted task has finished.
  void Wait();

 private:
  void WorkerLoop();
  std::mutex mu_;
  std::condition_variable work_cv_;   // workers wait for tasks
  std::condition_variable space_cv_;  // submitters wait for room / Wait waits for idle
  std::deque<std::function<void()>> queue_;
  int max_queued_;
  int running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace sb
