#include "storage/tagged/tagged_storage.h"

namespace sb {
namespace {

Status Tag(const Status& s) { return s.WithSource(ErrorSource::kStorage); }

template <typename T>
Result<T> Tag(Result<T> r) {
  if (r.ok()) return r;
  return Tag(r.status());
}

class TaggedLease final : public Lease {
 public:
  explicit TaggedLease(std::unique_ptr<Lease> base) : base_(std::move(base)) {}
  Status Renew() override { return Tag(base_->Renew()); }
  Status Release() override { return Tag(base_->Release()); }

 private:
  std::unique_ptr<Lease> base_;
};

}  // namespace

Status TaggedStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  return Tag(base_->Put(key, data, options));
}
Result<std::string> TaggedStorage::Get(std::string_view key) { return Tag(base_->Get(key)); }
Result<std::string> TaggedStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  return Tag(base_->GetRange(key, offset, length));
}
Result<ObjectInfo> TaggedStorage::Stat(std::string_view key) { return Tag(base_->Stat(key)); }
Result<ListPage> TaggedStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  return Tag(base_->List(prefix, page_token, max_results));
}
Status TaggedStorage::Delete(std::string_view key) { return Tag(base_->Delete(key)); }
Result<std::unique_ptr<Lease>> TaggedStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  auto lease = base_->AcquireLease(key, options);
  if (!lease.ok()) return Tag(lease.status());
  return std::unique_ptr<Lease>(std::make_unique<TaggedLease>(std::move(lease).value()));
}

}  // namespace sb
