#include "storage/instrumented/instrumented_storage.h"

#include <chrono>
#include <type_traits>

namespace sb {
namespace {

// Runs `call` as operation `op` and records it; `bytes` says what a success read or wrote.
template <typename F, typename Bytes>
auto Measured(StorageStats* stats, Clock* clock, StorageOp op, F&& call, Bytes&& bytes) {
  ScopedStorageOp scope(op);
  const SteadyTime start = clock->SteadyNow();
  auto result = call();
  const double seconds = std::chrono::duration<double>(clock->SteadyNow() - start).count();
  uint64_t read = 0, written = 0;
  Status status;
  if constexpr (std::is_same_v<std::decay_t<decltype(result)>, Status>) {
    status = result;
  } else {
    status = result.status();
  }
  if (status.ok()) bytes(result, &read, &written);
  stats->Record(op, OutcomeOf(status), seconds, read, written);
  return result;
}

auto NoBytes = [](const auto&, uint64_t*, uint64_t*) {};

class InstrumentedLease final : public Lease {
 public:
  InstrumentedLease(std::unique_ptr<Lease> base, StorageStats* stats, Clock* clock)
      : base_(std::move(base)), stats_(stats), clock_(clock) {}
  Status Renew() override {
    return Measured(stats_, clock_, StorageOp::kRenewLease, [&] { return base_->Renew(); }, NoBytes);
  }
  Status Release() override {
    return Measured(stats_, clock_, StorageOp::kReleaseLease, [&] { return base_->Release(); }, NoBytes);
  }

 private:
  std::unique_ptr<Lease> base_;
  StorageStats* stats_;
  Clock* clock_;
};

}  // namespace

Status InstrumentedStorage::Put(std::string_view key, std::string_view data, const PutOptions& options) {
  return Measured(stats_, clock_, StorageOp::kPut, [&] { return base_->Put(key, data, options); },
                  [&](const Status&, uint64_t*, uint64_t* written) { *written = data.size(); });
}

Result<std::string> InstrumentedStorage::Get(std::string_view key) {
  return Measured(stats_, clock_, StorageOp::kGet, [&] { return base_->Get(key); },
                  [](const Result<std::string>& r, uint64_t* read, uint64_t*) { *read = r->size(); });
}

Result<std::string> InstrumentedStorage::GetRange(std::string_view key, uint64_t offset, uint64_t length) {
  return Measured(stats_, clock_, StorageOp::kGetRange, [&] { return base_->GetRange(key, offset, length); },
                  [](const Result<std::string>& r, uint64_t* read, uint64_t*) { *read = r->size(); });
}

Result<ObjectInfo> InstrumentedStorage::Stat(std::string_view key) {
  return Measured(stats_, clock_, StorageOp::kStat, [&] { return base_->Stat(key); }, NoBytes);
}

Result<ListPage> InstrumentedStorage::List(std::string_view prefix, std::string_view page_token, int max_results) {
  return Measured(stats_, clock_, StorageOp::kList, [&] { return base_->List(prefix, page_token, max_results); },
                  NoBytes);
}

Status InstrumentedStorage::Delete(std::string_view key) {
  return Measured(stats_, clock_, StorageOp::kDelete, [&] { return base_->Delete(key); }, NoBytes);
}

Result<std::unique_ptr<Lease>> InstrumentedStorage::AcquireLease(std::string_view key, const LeaseOptions& options) {
  auto lease = Measured(stats_, clock_, StorageOp::kAcquireLease, [&] { return base_->AcquireLease(key, options); },
                        NoBytes);
  if (!lease.ok()) return lease.status();
  return std::unique_ptr<Lease>(std::make_unique<InstrumentedLease>(std::move(lease).value(), stats_, clock_));
}

}  // namespace sb
