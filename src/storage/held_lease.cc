#include "storage/held_lease.h"

#include <algorithm>

#include "common/logging.h"

namespace sb {

Result<std::unique_ptr<HeldLease>> HeldLease::Acquire(Storage& storage, const std::string& key,
                                                      const LeaseOptions& options) {
  ASSIGN_OR_RETURN(auto lease, storage.AcquireLease(key, options));
  return std::unique_ptr<HeldLease>(new HeldLease(std::move(lease), std::max(options.ttl / 3, std::chrono::seconds(1))));
}

HeldLease::HeldLease(std::unique_ptr<Lease> lease, std::chrono::seconds renew_every) : lease_(std::move(lease)) {
  renew_ = std::thread([this, renew_every] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, renew_every, [this] { return done_; })) {
      Status s = lease_->Renew();
      if (!s.ok()) log::Warn("{}", s.message());
    }
  });
}

HeldLease::~HeldLease() {
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  renew_.join();
  (void)lease_->Release();
}

}  // namespace sb
