// Gate: a one-way latch a test opens and threads wait on, so that what a test
// observes mid-way (a job running, a backup past its first chunk) does not
// depend on thread scheduling — and no test sleeps to get there.
// Thread-safety: Open and Wait from any thread.
#pragma once

#include <condition_variable>
#include <mutex>

namespace sb::test {

class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

}  // namespace sb::test
