// InstrumentedStorage: a Storage decorator that counts every request of its
// base — operation, outcome (by status code), latency, bytes read and written
// — into a StorageStats (the process-wide one unless given another), and
// marks the operation as this thread's current one so that a retrying layer
// below can count its retries under it. OpenStorage composes it around every
// driver; leases it returns are instrumented too (renew, release).
// Ownership: owns the base; borrows stats and clock (they must outlive it).
// Thread-safety: as the base.
#pragma once

#include <memory>

#include "common/clock.h"
#include "storage/instrumented/storage_stats.h"
#include "storage/storage.h"

namespace sb {

class InstrumentedStorage final : public Storage {
 public:
  explicit InstrumentedStorage(std::unique_ptr<Storage> base, StorageStats* stats = &StorageStats::Global(),
                               Clock* clock = Clock::Real())
      : base_(std::move(base)), stats_(stats), clock_(clock) {}

  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {}) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results = 1000) override;
  Status Delete(std::string_view key) override;
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override { return base_->Describe(); }

 private:
  std::unique_ptr<Storage> base_;
  StorageStats* stats_;
  Clock* clock_;
};

}  // namespace sb
