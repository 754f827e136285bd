// TaggedStorage: a Storage decorator that marks every error its base returns
// with ErrorSource::kStorage, so that callers far above (a full backup that
// hit a full disk, WAL capture on a frozen endpoint) count and report it as a
// storage failure without reading its text. OpenStorage wraps every driver in
// it; leases it returns are wrapped too.
// Thread-safety: as the base.
#pragma once

#include <memory>

#include "storage/storage.h"

namespace sb {

class TaggedStorage final : public Storage {
 public:
  explicit TaggedStorage(std::unique_ptr<Storage> base) : base_(std::move(base)) {}

  Status Put(std::string_view key, std::string_view data, const PutOptions& options) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, uint64_t offset, uint64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Result<ListPage> List(std::string_view prefix, std::string_view page_token, int max_results) override;
  Status Delete(std::string_view key) override;
  Result<std::unique_ptr<Lease>> AcquireLease(std::string_view key, const LeaseOptions& options) override;
  std::string Describe() const override { return base_->Describe(); }

 private:
  std::unique_ptr<Storage> base_;
};

}  // namespace sb
