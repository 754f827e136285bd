// HeldLease: a storage lease kept for as long as a writer works. A thread
// renews it at a third of its ttl (an Azure lease expires unless renewed; a
// local flock does not, but Renew notices a replaced lock file). Destroying
// it stops the renewals and releases the lease.
// Thread-safety: create and destroy on one thread; renewal runs on its own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "storage/storage.h"

namespace sb {

class HeldLease {
 public:
  // kAlreadyExists (naming the holder) when another holder holds `key`; the
  // same options.holder_id takes back a lease it left behind (a crash).
  // Renewed every options.ttl / 3.
  static Result<std::unique_ptr<HeldLease>> Acquire(Storage& storage, const std::string& key,
                                                    const LeaseOptions& options);
  ~HeldLease();
  HeldLease(const HeldLease&) = delete;
  HeldLease& operator=(const HeldLease&) = delete;

 private:
  HeldLease(std::unique_ptr<Lease> lease, std::chrono::seconds renew_every);
  std::unique_ptr<Lease> lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread renew_;
};

}  // namespace sb
